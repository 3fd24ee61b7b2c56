//! The race between a reply and a caller giving up: exactly one side wins.

#[path = "../src/actors/token.rs"]
mod token;
// The token keeps its job's permit (only a few of the semaphore's functions
// are used here).
#[allow(dead_code)]
#[path = "../src/actors/semaphore.rs"]
mod semaphore;
use std::sync::Arc;
use token::{CallToken, RunGuard};

#[test]
fn reply_wins_then_cancel_fails() {
    let t = CallToken::default();
    assert!(t.start());
    assert!(t.finish());
    assert!(!t.cancel());
}

#[test]
fn cancel_before_start_skips_the_job() {
    let t = CallToken::default();
    assert!(t.cancel());
    assert!(!t.start());
}

#[test]
fn cancel_while_running_suppresses_the_reply() {
    let t = CallToken::default();
    assert!(t.start());
    assert!(t.cancel());
    assert!(!t.finish());
    assert!(t.cancel());
}

#[test]
fn exactly_one_side_wins_under_contention() {
    for _ in 0..2000 {
        let t = Arc::new(CallToken::default());
        assert!(t.start());
        let t2 = t.clone();
        let h = std::thread::spawn(move || t2.cancel());
        let replied = t.finish();
        let cancelled = h.join().unwrap();
        assert!(replied != cancelled, "replied={replied} cancelled={cancelled}");
    }
}

#[test]
fn claim_answers_an_unanswered_job_once() {
    let t = CallToken::default();
    assert!(t.claim());
    assert!(!t.claim());
    assert!(!t.start());
    assert!(!t.cancel());
    let t = CallToken::default();
    assert!(t.start());
    assert!(t.claim());
    assert!(!t.finish());
}

#[test]
fn claim_loses_to_cancel_and_to_a_reply() {
    let t = CallToken::default();
    assert!(t.cancel());
    assert!(!t.claim());
    let t = CallToken::default();
    assert!(t.start());
    assert!(t.finish());
    assert!(!t.claim());
}

#[test]
fn interrupt_only_while_running_and_cancelled() {
    let t = CallToken::default();
    let mut raised = Vec::new();
    // not running yet: nothing to interrupt
    assert!(t.start());
    assert!(!t.interrupt(|i, th| raised.push((i, th))));
    assert!(t.running_on(7, 42));
    // running, but the caller still waits: no interruption
    assert!(!t.interrupt(|i, th| raised.push((i, th))));
    assert!(t.cancel());
    assert!(t.interrupt(|i, th| raised.push((i, th))));
    assert_eq!(raised, vec![(7, 42)]);
    // the job thread learns it must clear what Python did not deliver
    assert!(t.ran());
}

#[test]
fn no_interrupt_after_the_job_ran() {
    let t = CallToken::default();
    assert!(t.start());
    assert!(t.running_on(1, 2));
    assert!(!t.ran());
    assert!(t.cancel());
    assert!(!t.interrupt(|_, _| panic!("interrupted a job that had ended")));
}

#[test]
fn give_up_while_waiting_for_the_interpreter_is_not_lost() {
    // The caller gives up after the job started but before its Python code
    // recorded where it runs (the job thread was waiting for its GIL): the job
    // learns it there and does not run, so nothing is left to interrupt.
    let t = CallToken::default();
    assert!(t.start());
    assert!(t.cancel());
    assert!(!t.interrupt(|_, _| panic!("nothing runs yet")));
    assert!(!t.running_on(1, 2));
    assert!(!t.interrupt(|_, _| panic!("the job did not run")));
    assert!(!t.ran());
}

#[test]
fn a_panicking_job_is_marked_ended() {
    let t = Arc::new(CallToken::default());
    assert!(t.start());
    let t2 = t.clone();
    let r = std::thread::spawn(move || {
        let _run = RunGuard::new(&t2);
        assert!(t2.running_on(3, 4));
        panic!("the job's code panics");
    })
    .join();
    assert!(r.is_err());
    assert!(t.cancel());
    // the interpreter the job ran on may be gone: nothing aims at it
    assert!(!t.interrupt(|_, _| panic!("interrupted a job that panicked")));
    assert!(!t.interrupt_running(|_, _| panic!("interrupted a job that panicked")));
}

#[test]
fn an_interruption_not_raised_leaves_no_trace() {
    let t = CallToken::default();
    t.steps_loop(3);
    assert_eq!(t.stepped_loop(), Some(3));
    assert!(t.start());
    let run = RunGuard::new(&t);
    assert!(t.running_on(5, 6));
    // the raise looked and decided not to (no task step ran): nothing recorded
    assert!(!t.interrupt_running_if(|_, _| {
        assert!(t.was_interrupted(), "counted while it is being raised");
        false
    }));
    assert!(!t.was_interrupted());
    assert_eq!(t.interruptions(), 0);
    // one that is raised is counted, each time
    assert!(t.interrupt_running_if(|_, _| true));
    assert!(t.interrupt_running(|_, _| {}));
    assert_eq!(t.interruptions(), 2);
    assert!(!t.was_stopped());
    assert!(t.finish());
    assert!(run.finish());
    // a stop always raises, and says so
    let t = CallToken::default();
    assert!(t.start() && t.running_on(1, 2));
    assert!(t.stop_running(|_, _| {}));
    assert!(t.was_stopped());
}

#[test]
fn interrupt_running_needs_no_give_up_and_repeats() {
    let t = CallToken::default();
    assert!(!t.interrupt_running(|_, _| panic!("nothing runs yet")));
    assert!(t.start());
    let mut raised = 0;
    let run = RunGuard::new(&t);
    assert!(t.running_on(5, 6));
    // what the serving thread reads after a C function returns: set before
    // the exception is raised (raising may wait for the GIL the function
    // holds), and the run lock held until it is raised
    assert!(!t.was_interrupted());
    assert!(t.interrupt_running(|i, th| {
        assert_eq!((i, th), (5, 6));
        assert!(t.was_interrupted());
        raised += 1
    }));
    t.await_interrupt();
    assert!(t.was_interrupted());
    assert!(t.interrupt_running(|_, _| raised += 1));
    assert_eq!(raised, 2);
    // the caller still waits: its reply goes out
    assert!(t.finish());
    // the thread must clear what Python did not deliver
    assert!(run.finish());
    assert!(!t.interrupt_running(|_, _| panic!("the job ended")));
}

#[test]
fn a_stop_interrupts_what_runs_and_says_so() {
    let t = CallToken::default();
    assert!(!t.was_stopped());
    // nothing runs yet: nothing raised, and the job's own errors stay its own
    assert!(!t.stop_running(|_, _| panic!("nothing runs yet")));
    assert!(!t.was_stopped());
    assert!(t.start());
    let run = RunGuard::new(&t);
    assert!(t.running_on(7, 8));
    let mut raised = 0;
    assert!(t.stop_running(|i, th| {
        assert_eq!((i, th), (7, 8));
        raised += 1
    }));
    assert_eq!(raised, 1);
    // the job's answer is then `context_stopped` if its code failed
    assert!(t.was_stopped() && t.was_interrupted());
    assert!(t.finish());
    assert!(run.finish());
    // after the run, nothing is raised, and the stop raised during it is
    // still known
    assert!(!t.stop_running(|_, _| panic!("the job ended")));
    assert!(t.was_stopped());
}

// The promise of a caller that waits with no timer (`actors::late`).

/// A promised call whose job has started.
fn promised_running() -> CallToken {
    let t = CallToken::default();
    t.promise();
    assert!(t.start());
    t
}

#[test]
fn unpromised_call_is_never_nudged() {
    let t = CallToken::default();
    assert!(t.start());
    assert!(!t.is_promised());
    assert!(!t.nudge(|| panic!("no promise: no nudge")));
}

#[test]
fn promised_call_is_nudged_once() {
    let t = promised_running();
    assert!(t.is_promised());
    let mut sent = 0;
    assert!(t.nudge(|| sent += 1));
    assert!(!t.nudge(|| sent += 1));
    assert_eq!(sent, 1);
    assert!(!t.is_promised());
    // The reply still goes after the nudge.
    assert!(t.finish());
}

#[test]
fn answered_call_is_not_nudged() {
    let t = promised_running();
    assert!(t.finish());
    assert!(!t.is_promised());
    assert!(!t.nudge(|| panic!("answered: no nudge")));
}

#[test]
fn call_given_up_or_dropped_is_not_nudged() {
    let t = CallToken::default();
    t.promise();
    assert!(t.cancel());
    assert!(!t.nudge(|| panic!("gave up: no nudge")));
    let t = CallToken::default();
    t.promise();
    assert!(t.claim());
    assert!(!t.nudge(|| panic!("answered from the destructor: no nudge")));
}

/// Runs `settle_by` (a reply, a cancel, a destructor's answer) while a nudge
/// of `t` is being sent; true if it returned only once the nudge was sent.
fn waits_for_nudge(t: Arc<CallToken>, settle_by: impl FnOnce(&CallToken)) -> bool {
    use std::sync::atomic::{AtomicBool, Ordering};
    let sent = Arc::new(AtomicBool::new(false));
    let (in_send_tx, in_send_rx) = std::sync::mpsc::channel();
    let nudger = {
        let (t, sent) = (t.clone(), sent.clone());
        std::thread::spawn(move || {
            t.nudge(|| {
                in_send_tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(100));
                sent.store(true, Ordering::SeqCst);
            })
        })
    };
    in_send_rx.recv().unwrap();
    settle_by(&t);
    let waited = sent.load(Ordering::SeqCst);
    assert!(nudger.join().unwrap());
    waited
}

#[test]
fn cancel_and_destructor_wait_for_a_nudge_being_sent() {
    // A caller that gives up, or a job dropped unanswered, settles the
    // promise too: a nudge being sent is out before either returns.
    assert!(waits_for_nudge(Arc::new(promised_running()), |t| assert!(t.cancel())));
    // (A job dropped before it started.)
    let t = CallToken::default();
    t.promise();
    assert!(waits_for_nudge(Arc::new(t), |t| assert!(t.claim())));
}

#[test]
fn reply_waits_for_a_nudge_being_sent() {
    // The nudge must reach the caller before the reply: a reply that comes
    // while the nudge is being sent waits for it to be sent.
    assert!(waits_for_nudge(Arc::new(promised_running()), |t| assert!(t.finish())));
}

/// The semaphore is process-wide: the tests that take its permits run one at
/// a time, each from a known count.
static SEMAPHORE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A token holding a permit, and the semaphore's count with it held.
fn token_with_permit() -> (CallToken, usize) {
    let t = CallToken::default();
    t.hold(semaphore::try_acquire().expect("a free permit"));
    (t, semaphore::current())
}

#[test]
fn giving_up_before_the_start_gives_back_the_permit() {
    let _one_at_a_time = SEMAPHORE.lock().unwrap_or_else(|e| e.into_inner());
    let (t, held) = token_with_permit();
    assert!(t.cancel());
    assert_eq!(semaphore::current(), held - 1);
    // once: a second give-up, and the job that never starts, give back nothing more
    assert!(t.cancel());
    assert!(!t.start());
    t.release_permit();
    drop(t);
    assert_eq!(semaphore::current(), held - 1);
}

#[test]
fn giving_up_later_leaves_the_permit_to_the_job() {
    let _one_at_a_time = SEMAPHORE.lock().unwrap_or_else(|e| e.into_inner());
    // running: the job gives it back when it ends (its code may still run)
    let (t, held) = token_with_permit();
    assert!(t.start());
    assert!(t.cancel());
    assert_eq!(semaphore::current(), held);
    t.release_permit();
    assert_eq!(semaphore::current(), held - 1);
    // answered: nothing to give up
    let (t, held) = token_with_permit();
    assert!(t.start());
    assert!(t.finish());
    assert!(!t.cancel());
    assert_eq!(semaphore::current(), held);
}
