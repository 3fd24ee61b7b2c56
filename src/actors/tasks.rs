//! asyncio tasks in flight (`py:async_call/3,4`, `py:async_stream/3,4`): who
//! waits for each, so the task's done-callback (run by its context's thread)
//! can answer, unless the caller gave up meanwhile. No Python here.

use super::job::Target;
use super::token::CallToken;
use dashmap::DashMap;
use rustler::{Atom, Encoder, Env, LocalPid, OwnedEnv, Term};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

/// The caller of one task and the token its reply must win.
pub struct Waiter {
    pub owner: LocalPid,
    /// The reply's tag, external format.
    pub tag: Vec<u8>,
    pub token: Arc<CallToken>,
    /// Where the task runs: its loop goes with that context.
    pub target: Target,
}

impl Waiter {
    /// Sends the caller its `{py_reply, Tag, …}` (built by `reply` from the
    /// environment, the `py_reply` atom and the tag), unless it gave up.
    pub fn answer(&self, reply: impl for<'a> FnOnce(Env<'a>, Atom, Term<'a>) -> Term<'a>) {
        if !self.token.finish() {
            return;
        }
        let _ = OwnedEnv::new().send_and_clear(&self.owner, |e| {
            let tag = e.binary_to_term(&self.tag).map(|(t, _)| t).unwrap_or_else(|| crate::atoms::undefined().encode(e));
            reply(e, crate::atoms::py_reply(), tag)
        });
    }
}

static WAITERS: LazyLock<DashMap<u64, Waiter>> = LazyLock::new(DashMap::new);

/// Tasks whose caller gave up, by id, with their loop's key: cancelled by
/// their loop's next step before it runs anything, so that a task resumed by
/// that step does not run on (and, never awaiting again, hold its context)
/// before the cancel queued behind that step is served.
static GIVEN_UP: LazyLock<DashMap<u64, u32>> = LazyLock::new(DashMap::new);

/// Task `id` of loop `key` is to be cancelled (its caller gave up).
pub fn given_up(id: u64, key: u32) {
    GIVEN_UP.insert(id, key);
}

/// Task `id`'s queued cancel is served: false if a loop step cancelled it
/// already ([`to_cancel`]), so there is nothing left to do.
pub fn cancelled(id: u64) -> bool {
    GIVEN_UP.remove(&id).is_some()
}

/// The tasks of loop `key` to cancel before its next step, taken.
pub fn to_cancel(key: u32) -> Vec<u64> {
    if GIVEN_UP.is_empty() {
        return Vec::new();
    }
    let ids: Vec<u64> = GIVEN_UP.iter().filter(|e| *e.value() == key).map(|e| *e.key()).collect();
    ids.into_iter().filter(|id| GIVEN_UP.remove(id).is_some()).collect()
}

/// A new task id.
pub fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Task `id` now answers its caller when done.
pub fn register(id: u64, waiter: Waiter) {
    WAITERS.insert(id, waiter);
}

/// Task `id` is done, or its caller gave up: who waited for it, if anyone.
pub fn take(id: u64) -> Option<Waiter> {
    WAITERS.remove(&id).map(|(_, w)| w)
}

/// Contexts `ids` stopped (or failed): their event loops, and the tasks on
/// them, went with them. Each caller still waiting for one is answered
/// `{error, Reason}` (`context_stopped` or `context_failed`) instead of
/// waiting out its timeout, or for ever.
pub fn stopped(ids: &[u32], reason: Atom) {
    GIVEN_UP.retain(|_, key| !ids.contains(key));
    let gone: Vec<u64> =
        WAITERS.iter().filter(|w| matches!(w.target, Target::Context(id) if ids.contains(&id))).map(|w| *w.key()).collect();
    for w in gone.into_iter().filter_map(take) {
        w.answer(|e, reply, tag| (reply, tag, (crate::atoms::error(), reason)).encode(e));
    }
}
