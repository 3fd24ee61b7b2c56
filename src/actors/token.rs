//! The cancellation token shared by a caller and its job.
//!
//! Its states move PENDING -> RUNNING -> REPLIED on the actor side, and to
//! CANCELLED from the caller's side (timeout or death) unless REPLIED came first.
//! Plain atomics, no rustler or Python, so it is tested on its own in tests/.

use std::sync::atomic::{AtomicU8, Ordering};

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
    /// A job dropped unanswered (its actor stopped or failed) takes the right to
    /// send an error reply; false if the caller gave up or was already answered.
    pub fn claim(&self) -> bool {
        self.0
            .compare_exchange(PENDING, REPLIED, Ordering::AcqRel, Ordering::Acquire)
            .or_else(|_| self.0.compare_exchange(RUNNING, REPLIED, Ordering::AcqRel, Ordering::Acquire))
            .is_ok()
    }
    /// Whether the caller gave up.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire) == CANCELLED
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

