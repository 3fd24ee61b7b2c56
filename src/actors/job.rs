//! A request in flight: what the NIF enqueues and an actor answers.
//!
//! The caller keeps a [`CallToken`] (inside a NIF resource) and the job keeps
//! another reference to it. Exactly one side wins the race between "the reply is
//! being sent" and "the caller gave up" (timeout, or the caller died and its
//! resource was collected), so a late reply never lands in a mailbox that stopped
//! waiting for it, and a job whose caller is gone is skipped without running.

use crate::interp::exec::Op;
use rustler::env::SavedTerm;
use rustler::{LocalPid, OwnedEnv};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

const PENDING: u8 = 0;
const RUNNING: u8 = 1;
const REPLIED: u8 = 2;
const CANCELLED: u8 = 3;

/// The state shared by a caller and its job.
#[derive(Default)]
pub struct CallToken(AtomicU8);

impl CallToken {
    /// The actor starts the job; false if the caller already gave up.
    pub fn start(&self) -> bool {
        self.0
            .compare_exchange(PENDING, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
    /// The actor is about to send the reply; false if the caller gave up meanwhile.
    pub fn finish(&self) -> bool {
        self.0
            .compare_exchange(RUNNING, REPLIED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
    /// The caller gives up; false if the reply is already on its way.
    pub fn cancel(&self) -> bool {
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            match cur {
                REPLIED => return false,
                CANCELLED => return true,
                _ => match self.0.compare_exchange(cur, CANCELLED, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return true,
                    Err(now) => cur = now,
                },
            }
        }
    }
}

/// What the actor does with a job.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// Run Python.
    Python(Op),
    /// Send the payload straight back: the floor of the mailbox round trip.
    Echo,
}

/// One request, self-contained: its terms live in its own environment, which also
/// carries the reply.
pub struct Job {
    pub env: OwnedEnv,
    pub work: Work,
    pub payload: SavedTerm,
    pub tag: SavedTerm,
    pub reply_to: LocalPid,
    pub token: Arc<CallToken>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
