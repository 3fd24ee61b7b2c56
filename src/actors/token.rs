//! The cancellation token shared by a caller and its job.
//!
//! Its states move PENDING -> RUNNING -> REPLIED on the actor side, and to
//! CANCELLED from the caller's side (timeout or death) unless REPLIED came first.
//!
//! While the job's Python code runs, the token also knows where (interpreter and
//! thread, as numbers), so a caller that gives up can have it interrupted. The
//! lock around that is what keeps an interruption from outliving its job: the job
//! cannot be marked ended while one is being delivered, and the job thread
//! takes it only with its interpreter detached (an interrupter may be waiting
//! for that interpreter's GIL).
//!
//! A synchronous caller with a timeout may also wait with no timer of its own
//! (`actors::late`): the token then carries a promise that the caller hears
//! from us within tens of milliseconds, by its reply or by a `{py_late, Tag}`
//! nudge, after which it arms its timer. The promise moves NONE -> PROMISED
//! (before the job is queued) -> NUDGING -> SETTLED on the watch's side, or
//! PROMISED -> SETTLED on the reply's; a reply waits out a nudge being sent, so
//! a nudge always reaches the caller before its reply and never after it.
//!
//! No rustler or Python here, so it is tested on its own in tests/.

use super::semaphore::Permit;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const REPLIED: u8 = 2;
const CANCELLED: u8 = 3;

// The promise of a caller waiting with no timer (see the module's doc).
// (0: no promise, the default)
const PROMISED: u8 = 1;
const NUDGING: u8 = 2;
const SETTLED: u8 = 3;

/// Where the job's Python code runs, for interrupting it.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    #[default]
    NotYet,
    /// Running on this interpreter (address) and thread (CPython's identifier);
    /// `interrupted` once an exception was aimed at it: the job thread then
    /// clears what Python did not deliver.
    On {
        interp: usize,
        thread: u64,
        interrupted: bool,
    },
    Ended,
}

/// The state shared by a caller and its job: where the call is, where its
/// Python code runs, the promise to a caller that waits with no timer, and
/// the job's semaphore permit. The permit is kept here, not in the job, so
/// that a caller giving up before its job starts gives it back at once: a job
/// that will never run must not keep others out while it waits in its mailbox.
/// Also: how many interruptions were raised in it, whether a stop raised one,
/// and, for a step of an asyncio loop, that loop's key.
#[derive(Default, Debug)]
pub struct CallToken(AtomicU8, Mutex<Run>, AtomicU8, OnceLock<Permit>, AtomicU32, AtomicBool, OnceLock<u32>);

impl CallToken {
    /// Its caller waits with no timer: it must hear from us (reply or nudge)
    /// soon. Set before the job is queued, by the only thread that holds it.
    pub fn promise(&self) {
        self.2.store(PROMISED, Ordering::SeqCst);
    }
    /// Whether the call was promised and neither answered nor nudged yet.
    pub fn is_promised(&self) -> bool {
        self.2.load(Ordering::SeqCst) == PROMISED && matches!(self.0.load(Ordering::Acquire), PENDING | RUNNING)
    }
    /// Tells a promised caller that its call runs long, with `send`, unless
    /// it was answered (or gave up) first; true if `send` ran. At most once.
    pub fn nudge(&self, send: impl FnOnce()) -> bool {
        if self.2.compare_exchange(PROMISED, NUDGING, Ordering::SeqCst, Ordering::SeqCst).is_err() {
            return false;
        }
        let live = matches!(self.0.load(Ordering::SeqCst), PENDING | RUNNING);
        if live {
            send();
        }
        self.2.store(SETTLED, Ordering::SeqCst);
        live
    }
    /// No nudge from now on; waits out one being sent, so that it reaches the
    /// caller before what follows (the reply). That is one `enif_send`; the
    /// core is given up between polls after the first few, in case the
    /// sending thread was preempted (this may run on a BEAM scheduler, from
    /// `cancel`).
    fn settle(&self) {
        let mut polls = 0u32;
        loop {
            match self.2.load(Ordering::SeqCst) {
                NUDGING => {
                    polls += 1;
                    if polls < 64 {
                        std::hint::spin_loop();
                    } else {
                        std::thread::yield_now();
                    }
                }
                PROMISED => {
                    if self.2.compare_exchange(PROMISED, SETTLED, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                        return;
                    }
                }
                _ => return, // no promise, or settled already
            }
        }
    }
    /// The actor starts the job; false if the caller already gave up.
    pub fn start(&self) -> bool {
        self.0.compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
    /// The actor is about to send the reply; false if the caller gave up meanwhile.
    pub fn finish(&self) -> bool {
        self.settle();
        self.0.compare_exchange(RUNNING, REPLIED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
    /// A job dropped unanswered (its actor stopped or failed) takes the right to
    /// send an error reply; false if the caller gave up or was already answered.
    pub fn claim(&self) -> bool {
        self.settle();
        self.0
            .compare_exchange(PENDING, REPLIED, Ordering::AcqRel, Ordering::Acquire)
            .or_else(|_| self.0.compare_exchange(RUNNING, REPLIED, Ordering::AcqRel, Ordering::Acquire))
            .is_ok()
    }
    /// Whether the caller gave up.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire) == CANCELLED
    }
    /// The job's Python code is about to start on `interp`/`thread` (job thread,
    /// attached). False if the caller gave up meanwhile (it may have done so
    /// while the job waited for its interpreter): the job must not run. Checked
    /// under the lock an interrupter takes, so a give-up is either seen here or
    /// finds the job running and interrupts it; it is never lost in between.
    pub fn running_on(&self, interp: usize, thread: u64) -> bool {
        let mut run = self.1.lock().unwrap_or_else(|p| p.into_inner());
        if *run != Run::NotYet {
            return *run != Run::Ended;
        }
        if self.is_cancelled() {
            *run = Run::Ended;
            return false;
        }
        *run = Run::On { interp, thread, interrupted: false };
        true
    }
    /// The job's Python code is over (job thread, detached; also on a panic, see
    /// [`RunGuard`]). True if it was interrupted meanwhile: the thread must then
    /// clear a pending interruption before its next job.
    pub fn ran(&self) -> bool {
        let mut run = self.1.lock().unwrap_or_else(|p| p.into_inner());
        matches!(std::mem::replace(&mut *run, Run::Ended), Run::On { interrupted: true, .. })
    }
    /// Interrupts the job's Python code if it is running and its caller gave up,
    /// by calling `raise` with its interpreter and thread, holding the lock that
    /// keeps the job from ending meanwhile.
    pub fn interrupt(&self, raise: impl FnOnce(usize, u64)) -> bool {
        self.interrupt_if(true, false, |i, t| {
            raise(i, t);
            true
        })
    }
    /// Interrupts the job's Python code if it is running, whether or not its
    /// caller still waits (`py:interrupt/1`).
    pub fn interrupt_running(&self, raise: impl FnOnce(usize, u64)) -> bool {
        self.interrupt_if(false, false, |i, t| {
            raise(i, t);
            true
        })
    }
    /// [`CallToken::interrupt_running`] with a `raise` that may decide not
    /// to (it answers whether it raised): nothing is then recorded.
    pub fn interrupt_running_if(&self, raise: impl FnOnce(usize, u64) -> bool) -> bool {
        self.interrupt_if(false, false, raise)
    }
    /// Interrupts the job's Python code, if it is running, because its
    /// context is stopping: an error it then ends with is answered as
    /// `context_stopped` ([`CallToken::was_stopped`]).
    pub fn stop_running(&self, raise: impl FnOnce(usize, u64)) -> bool {
        self.interrupt_if(false, true, |i, t| {
            raise(i, t);
            true
        })
    }
    /// The job is a step of asyncio loop `key` (set once, before it runs):
    /// an interruption is then raised only in a task's step, never in the
    /// loop's own code.
    pub fn steps_loop(&self, key: u32) {
        let _ = self.6.set(key);
    }
    /// The loop this job steps, if it is a loop step.
    pub fn stepped_loop(&self) -> Option<u32> {
        self.6.get().copied()
    }
    /// Whether the job's Python code was interrupted because its context
    /// stopped (set only when the interruption was raised in it).
    pub fn was_stopped(&self) -> bool {
        self.5.load(Ordering::Acquire)
    }
    fn interrupt_if(&self, only_cancelled: bool, stopping: bool, raise: impl FnOnce(usize, u64) -> bool) -> bool {
        let mut run = self.1.lock().unwrap_or_else(|p| p.into_inner());
        match *run {
            Run::On { interp, thread, interrupted } if !only_cancelled || self.is_cancelled() => {
                // set first: `raise` waits for the interpreter's GIL, which a
                // C function the job called may hold until it returns (taken
                // back if it did not raise; only this thread, under this
                // lock, writes them)
                let was_stopped = self.5.load(Ordering::Acquire);
                if stopping {
                    self.5.store(true, Ordering::Release);
                }
                self.4.fetch_add(1, Ordering::AcqRel);
                if !raise(interp, thread) {
                    self.4.fetch_sub(1, Ordering::AcqRel);
                    self.5.store(was_stopped, Ordering::Release);
                    *run = Run::On { interp, thread, interrupted };
                    return false;
                }
                *run = Run::On { interp, thread, interrupted: true };
                true
            }
            _ => false,
        }
    }
    /// Whether an interruption was raised, or is being raised, in the job's
    /// Python code (it may not have been delivered yet: see
    /// `interp::interrupt::delivered`). One load, read after every call.
    pub fn was_interrupted(&self) -> bool {
        self.4.load(Ordering::Acquire) > 0
    }
    /// How many interruptions were raised, or are being raised, in the job's
    /// Python code: a nested request tells by it whether the request it is
    /// nested in was interrupted while it ran.
    pub fn interruptions(&self) -> u32 {
        self.4.load(Ordering::Acquire)
    }
    /// Waits until an interruption being raised is set (the interrupter holds
    /// the run lock while it raises). Call detached: raising takes the GIL.
    pub fn await_interrupt(&self) {
        drop(self.1.lock().unwrap_or_else(|p| p.into_inner()));
    }
    /// The job's permit, until [`CallToken::release_permit`] (or the token's
    /// end). Set once, before the job can be seen by its caller's handle (a
    /// second one is given back at once).
    pub fn hold(&self, permit: Permit) {
        let _ = self.3.set(permit);
    }

    /// Gives the job's permit back, if it holds one and has not yet (at most
    /// once, whoever calls).
    pub fn release_permit(&self) {
        if let Some(p) = self.3.get() {
            p.release();
        }
    }

    /// The caller gives up; false if the reply is already on its way. A job
    /// that had not started never will: its permit goes back now.
    pub fn cancel(&self) -> bool {
        self.settle();
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            match cur {
                REPLIED => return false,
                CANCELLED => return true,
                _ => match self.0.compare_exchange(cur, CANCELLED, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(PENDING) => {
                        self.release_permit();
                        return true;
                    }
                    Ok(_) => return true,
                    Err(now) => cur = now,
                },
            }
        }
    }
}

/// Marks a job's Python code ended when dropped, however the job ends (a panic
/// included), so no interruption is ever aimed at a job, or an interpreter, that
/// is gone. Create it before attaching; it must drop detached.
pub struct RunGuard<'a>(Option<&'a CallToken>);

impl<'a> RunGuard<'a> {
    pub fn new(token: &'a CallToken) -> Self {
        RunGuard(Some(token))
    }
    /// Ends the run now; true if a pending interruption must be cleared.
    pub fn finish(mut self) -> bool {
        self.0.take().is_some_and(|t| t.ran())
    }
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.ran();
        }
    }
}
