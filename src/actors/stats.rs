//! Load figures per mailbox (one per executor, one per context actor): calls
//! submitted, taken from the mailbox, finished, and time spent running Python.
//! Plain relaxed counters, bumped by the NIF and the serving thread; which
//! job's Python code runs there now, for `py:interrupt/1`; and the promise of
//! the call that waits with no timer, if any, for the late-call watch
//! (`actors::late`).

use super::token::CallToken;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Counters of one executor or context.
#[derive(Default, Debug)]
pub struct SlotStats {
    /// Jobs queued or running right now; also how the main interpreter's callers
    /// find an idle executor (see `router::submit`).
    active: AtomicUsize,
    submitted: AtomicU64,
    started: AtomicU64,
    done: AtomicU64,
    busy_ns: AtomicU64,
    /// The job running now (its target's key: 0 for the main interpreter, N for
    /// context N) and its token. One at a time: a pinned thread serves one job
    /// (a callback chain's nested jobs run inside it, on the same thread).
    current: Mutex<Option<(u32, Arc<CallToken>)>>,
    /// The promised call of this mailbox, if any (`actors::late`): only a call
    /// that found the mailbox idle is promised, so there is at most one. Kept
    /// by the caller's thread: on a cache line of its own, away from `current`,
    /// which the serving thread writes twice per call.
    promise: OwnLine<Mutex<Option<super::late::Promise>>>,
}

/// A field on cache lines of its own (128 bytes: x86's adjacent-line
/// prefetcher pairs lines), so that two threads writing two fields do not
/// take the same line from each other.
#[derive(Default, Debug)]
#[repr(align(128))]
struct OwnLine<T>(T);

/// The child process of each process-isolated context, by context id: its OS
/// pid (0 while none runs) and how many times it was restarted after a crash.
pub static ISOLATED: std::sync::LazyLock<dashmap::DashMap<u32, (u32, u64)>> = std::sync::LazyLock::new(dashmap::DashMap::new);

/// A snapshot, for `py:load/0`.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot {
    pub served: u64,
    pub in_flight: u64,
    pub queued: u64,
    pub busy_us: u64,
}

impl SlotStats {
    /// Takes this mailbox for one job if it has none.
    pub fn try_reserve_idle(&self) -> bool {
        self.active.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed).is_ok()
    }
    /// Jobs queued or running here now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Counts one more job for this mailbox; true if it had none (idle).
    pub fn reserve(&self) -> bool {
        self.active.fetch_add(1, Ordering::AcqRel) == 0
    }
    /// Keeps `p` for the watch, before its job is queued here: that job found
    /// the mailbox idle, so no other call can be promised here until it is
    /// over (a job dropped unanswered counts itself done just before its
    /// destructor answers, and settles its promise then). Gives back the
    /// promise it replaces, for the caller to drop once the job is queued.
    pub fn keep_promise(&self, p: super::late::Promise) -> Option<super::late::Promise> {
        self.promise.0.lock().unwrap_or_else(|e| e.into_inner()).replace(p)
    }
    /// Takes back the promise kept for `job`, which could not be queued.
    pub fn forget_promise(&self, job: &super::job::Job) {
        let mut slot = self.promise.0.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|p| job.is_promised_by(p)) {
            *slot = None;
        }
    }
    /// Runs `f` on this mailbox's promise, for the watch.
    pub fn with_promise<R>(&self, f: impl FnOnce(&mut Option<super::late::Promise>) -> R) -> R {
        f(&mut self.promise.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
    pub fn submitted(&self) {
        self.submitted.fetch_add(1, Ordering::Relaxed);
    }
    pub fn started(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
    }
    pub fn done(&self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
        self.done.fetch_add(1, Ordering::Relaxed);
    }
    pub fn busy(&self, d: std::time::Duration) {
        self.busy_ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }
    /// The serving thread starts (`Some`) or ends (`None`) a job's Python code.
    pub fn set_current(&self, job: Option<(u32, Arc<CallToken>)>) {
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = job;
    }
    /// The token of the job running now, if any.
    pub fn current(&self) -> Option<Arc<CallToken>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(|(_, t)| t.clone())
    }
    /// The token of the job running now for target `key`, if any.
    pub fn current_for(&self, key: u32) -> Option<Arc<CallToken>> {
        let cur = self.current.lock().unwrap_or_else(|e| e.into_inner());
        cur.as_ref().filter(|(k, _)| *k == key).map(|(_, t)| t.clone())
    }
    pub fn snapshot(&self) -> Snapshot {
        let done = self.done.load(Ordering::Relaxed);
        let started = self.started.load(Ordering::Relaxed);
        let submitted = self.submitted.load(Ordering::Relaxed).max(started).max(done);
        Snapshot {
            served: done,
            in_flight: submitted - done,
            queued: submitted - started,
            busy_us: self.busy_ns.load(Ordering::Relaxed) / 1000,
        }
    }
}
