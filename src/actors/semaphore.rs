//! The node's rate limiter: at most `max` Python requests in flight (queued in a
//! mailbox or running), across every context and executor.
//!
//! A permit is taken in the NIF before a job is enqueued and travels inside the
//! job; it is returned when the job is dropped, whatever happened to it (answered,
//! skipped because its caller gave up or died, or dropped with a failed actor). So
//! no permit is ever lost, and the mailboxes in front of the interpreters hold at
//! most `max` jobs between them: a flood becomes overload errors, not memory.

use std::sync::atomic::{AtomicUsize, Ordering};

static MAX: AtomicUsize = AtomicUsize::new(usize::MAX);
static CURRENT: AtomicUsize = AtomicUsize::new(0);

/// One unit of the limit, held by a job: released once, either just before the
/// job's reply is sent (so a caller that got its answer sees the permit back) or
/// when the job is dropped unanswered.
#[derive(Debug, Default)]
pub struct Permit(std::sync::atomic::AtomicBool);

impl Permit {
    /// Returns the permit if still held.
    pub fn release(&self) {
        if self.0.swap(false, Ordering::AcqRel) {
            CURRENT.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.release();
    }
}

/// Takes a permit, or says how full the semaphore is: `(current, max)`.
pub fn try_acquire() -> Result<Permit, (usize, usize)> {
    let max = MAX.load(Ordering::Acquire);
    let mut cur = CURRENT.load(Ordering::Acquire);
    loop {
        if cur >= max {
            return Err((cur, max));
        }
        match CURRENT.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(Permit(std::sync::atomic::AtomicBool::new(true))),
            Err(now) => cur = now,
        }
    }
}

/// Sets the limit; takes effect for the next acquisition (permits already held
/// are returned as usual, so lowering it under load drains down to the new limit).
pub fn set_max(n: usize) {
    MAX.store(n, Ordering::Release);
}

/// The limit.
pub fn max() -> usize {
    MAX.load(Ordering::Acquire)
}

/// Permits held now.
pub fn current() -> usize {
    CURRENT.load(Ordering::Acquire)
}
