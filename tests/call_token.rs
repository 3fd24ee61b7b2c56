//! The race between a reply and a caller giving up: exactly one side wins.

#[path = "../src/actors/token.rs"]
mod token;
use token::CallToken;
use std::sync::Arc;


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
    t.running_on(7, 42);
    // running, but the caller still waits: no interruption
    assert!(!t.interrupt(|i, th| raised.push((i, th))));
    assert!(t.cancel());
    assert!(t.interrupt(|i, th| raised.push((i, th))));
    // once only
    assert!(!t.interrupt(|i, th| raised.push((i, th))));
    assert_eq!(raised, vec![(7, 42)]);
    // the job thread learns it must clear what Python did not deliver
    assert!(t.ran());
}

#[test]
fn no_interrupt_after_the_job_ran() {
    let t = CallToken::default();
    assert!(t.start());
    t.running_on(1, 2);
    assert!(!t.ran());
    assert!(t.cancel());
    assert!(!t.interrupt(|_, _| panic!("interrupted a job that had ended")));
}
