//! Process-independent environments, reused from one request to the next.
//!
//! Every request carries one: its tag is copied there on the caller's scheduler
//! and its reply is built there by the serving thread. Allocated and freed per
//! call, the environment cost an `enif_alloc_env` on the scheduler (a few
//! hundred cycles here) and an `enif_free_env` on the serving thread, which
//! hands the memory back to the scheduler's allocator instance later, as
//! deferred work of that scheduler. Reused, it costs neither.
//!
//! Each thread keeps a few at hand ([`take`] and [`give`] use a thread-local
//! stack); they move between threads through one shared stack, in batches, so
//! the lock is taken once every [`BATCH`] requests, not per request. Both
//! stacks are bounded: an environment beyond the bound is freed.

use rustler::OwnedEnv;
use std::cell::RefCell;
use std::sync::Mutex;

/// How many move between a thread and the shared stack at a time.
const BATCH: usize = 32;
/// Most a thread keeps for itself.
const LOCAL_MAX: usize = 2 * BATCH;
/// Most the shared stack keeps.
const SHARED_MAX: usize = 1024;

static SHARED: Mutex<Vec<OwnedEnv>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: RefCell<Vec<OwnedEnv>> = const { RefCell::new(Vec::new()) };
}

/// An empty environment: one of this thread's, else a batch from the shared
/// stack, else a new one.
fn take() -> OwnedEnv {
    LOCAL
        .try_with(|l| {
            let mut l = l.borrow_mut();
            if l.is_empty() {
                let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
                let from = shared.len().saturating_sub(BATCH);
                l.extend(shared.drain(from..));
            }
            l.pop()
        })
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Gives `env` back once nothing of it is needed any more (its terms are
/// cleared here: every `SavedTerm` of it is invalid from now on).
fn give(mut env: OwnedEnv) {
    env.clear();
    // A thread being torn down has no stack left: the environment is freed.
    let _ = LOCAL.try_with(|l| {
        let mut l = l.borrow_mut();
        l.push(env);
        if l.len() >= LOCAL_MAX {
            let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
            let room = SHARED_MAX.saturating_sub(shared.len()).min(BATCH);
            let from = l.len() - BATCH;
            shared.extend(l.drain(from..from + room));
            // What found no room is freed.
            l.truncate(from);
        }
    });
}

/// An environment that goes back to the pool when dropped.
pub struct Pooled(Option<OwnedEnv>);

impl Default for Pooled {
    /// One from the pool ([`take`]).
    fn default() -> Pooled {
        Pooled(Some(take()))
    }
}

impl std::ops::Deref for Pooled {
    type Target = OwnedEnv;
    fn deref(&self) -> &OwnedEnv {
        self.0.as_ref().expect("taken only when dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(env) = self.0.take() {
            give(env);
        }
    }
}
