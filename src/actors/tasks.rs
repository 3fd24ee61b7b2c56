//! asyncio tasks in flight (`py:async_call/3,4`, `py:async_stream/3,4`): who
//! waits for each, so the task's done-callback (run by its context's thread)
//! can answer, unless the caller gave up meanwhile. No Python here.

use super::token::CallToken;
use dashmap::DashMap;
use rustler::LocalPid;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

/// The caller of one task and the token its reply must win.
pub struct Waiter {
    pub owner: LocalPid,
    /// The reply's tag, external format.
    pub tag: Vec<u8>,
    pub token: Arc<CallToken>,
}

static WAITERS: LazyLock<DashMap<u64, Waiter>> = LazyLock::new(DashMap::new);

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
