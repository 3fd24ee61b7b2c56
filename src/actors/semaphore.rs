//! The node's rate limiter: at most `max` Python requests in flight (queued in a
//! mailbox or running), across every context and executor, and a fair queue of
//! the requests waiting for a permit.
//!
//! A permit is taken in the NIF before a job is enqueued and travels inside the
//! job; it is returned when the job is dropped, whatever happened to it (answered,
//! skipped because its caller gave up or died, or dropped with a failed actor). So
//! no permit is ever lost, and the mailboxes in front of the interpreters hold at
//! most `max` jobs between them.
//!
//! When no permit is free the request waits in arrival order: whoever returns a
//! permit hands it straight to the first waiter (no polling, no barging: a new
//! request does not overtake waiting ones). A waiter is withdrawn only by its
//! caller, when its `overload_wait` is over (`{error, {overloaded, _, _}}`) or when
//! it dies. No Python and no rustler here: tested on its own in tests/.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

static MAX: AtomicUsize = AtomicUsize::new(usize::MAX);
static CURRENT: AtomicUsize = AtomicUsize::new(0);
/// Waiters in the queue; read without the lock on the fast paths.
static WAITING: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static QUEUE: Mutex<VecDeque<Waiter>> = Mutex::new(VecDeque::new());

/// What a waiter does with the permit it is handed: uses it, or gives it back
/// (its caller is gone) for the next waiter.
pub type Grant = Box<dyn FnOnce(Permit) -> Option<Permit> + Send>;

struct Waiter {
    id: u64,
    grant: Grant,
}

/// One unit of the limit, held by a job: released once, either just before the
/// job's reply is sent (so a caller that got its answer sees the permit back) or
/// when the job is dropped unanswered.
#[derive(Debug)]
pub struct Permit(AtomicBool);

impl Permit {
    fn new() -> Self {
        Permit(AtomicBool::new(true))
    }

    /// Returns the permit if still held; hands it on to the first waiter, if any.
    pub fn release(&self) {
        if self.0.swap(false, Ordering::AcqRel) {
            CURRENT.fetch_sub(1, Ordering::SeqCst);
            if WAITING.load(Ordering::SeqCst) > 0 {
                dispatch();
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.release();
    }
}

fn take_one() -> Option<Permit> {
    let max = MAX.load(Ordering::Acquire);
    let mut cur = CURRENT.load(Ordering::SeqCst);
    loop {
        if cur >= max {
            return None;
        }
        match CURRENT.compare_exchange_weak(cur, cur + 1, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return Some(Permit::new()),
            Err(now) => cur = now,
        }
    }
}

/// Takes a permit if one is free and nobody waits for one; else says how full
/// the semaphore is: `(current, max)`.
pub fn try_acquire() -> Result<Permit, (usize, usize)> {
    if WAITING.load(Ordering::SeqCst) == 0 {
        if let Some(p) = take_one() {
            return Ok(p);
        }
    }
    Err((current(), max()))
}

/// Queues a waiter behind the others; `grant` runs (on whichever thread returns
/// a permit, possibly this one, never with the queue locked) when its turn comes.
/// Returns the waiter's id, for [`withdraw`].
pub fn enqueue(grant: Grant) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    {
        let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
        q.push_back(Waiter { id, grant });
        WAITING.fetch_add(1, Ordering::SeqCst);
    }
    // A permit returned between the caller's failed try and the push above saw
    // no waiter: look again.
    dispatch();
    id
}

/// Removes waiter `id` from the queue; false if it was already handed a permit
/// (or withdrawn). Its grant is dropped unrun.
pub fn withdraw(id: u64) -> bool {
    let removed = {
        let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
        let at = q.iter().position(|w| w.id == id);
        at.and_then(|i| q.remove(i)).inspect(|_| {
            WAITING.fetch_sub(1, Ordering::SeqCst);
        })
    };
    removed.is_some()
}

/// Hands free permits to waiters, first come first served.
fn dispatch() {
    let mut spare: Option<Permit> = None;
    loop {
        let waiter = {
            let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
            if q.is_empty() {
                break;
            }
            if spare.is_none() {
                spare = take_one();
                if spare.is_none() {
                    break;
                }
            }
            WAITING.fetch_sub(1, Ordering::SeqCst);
            q.pop_front().expect("queue is not empty")
        };
        let permit = spare.take().expect("a permit is in hand");
        spare = (waiter.grant)(permit);
    }
    // Unused (the queue emptied meanwhile): back to the pool.
    drop(spare);
}

/// Sets the limit; takes effect for the next acquisition (permits already held
/// are returned as usual, so lowering it under load drains down to the new
/// limit; raising it serves waiters at once).
pub fn set_max(n: usize) {
    MAX.store(n, Ordering::Release);
    dispatch();
}

/// The limit.
pub fn max() -> usize {
    MAX.load(Ordering::Acquire)
}

/// Permits held now.
pub fn current() -> usize {
    CURRENT.load(Ordering::Acquire)
}

/// Requests waiting for a permit now.
pub fn waiting() -> usize {
    WAITING.load(Ordering::Acquire)
}
