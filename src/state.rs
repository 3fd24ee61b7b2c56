//! The shared state: one store per node, visible from every context in every
//! mode and from Erlang.
//!
//! Keys and values are kept as Erlang external term format, so any term that
//! converts can be stored and every interpreter reads its own fresh copy (no
//! Python object is ever shared between interpreters). Integers are kept as
//! atomic counters: `incr`/`decr` are a shard read-lock and a `fetch_add`, so
//! concurrent increments from any number of contexts and processes never lose one.

use dashmap::DashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock};

/// A stored value.
pub enum Slot {
    /// Any term, as external term format: shared with the reads under way, so
    /// a read copies nothing while it holds the shard's lock.
    Term(Arc<Vec<u8>>),
    /// An integer that fits 64 bits.
    Counter(AtomicI64),
}

/// What a read returns.
pub enum Value {
    Term(Arc<Vec<u8>>),
    Int(i64),
}

static STORE: LazyLock<DashMap<Vec<u8>, Slot>> = LazyLock::new(DashMap::new);

/// Stores `value` (external format) under `key` (external format).
pub fn store(key: Vec<u8>, value: Vec<u8>) {
    STORE.insert(key, Slot::Term(Arc::new(value)));
}

/// Stores an integer, which then counts atomically.
pub fn store_int(key: Vec<u8>, value: i64) {
    STORE.insert(key, Slot::Counter(AtomicI64::new(value)));
}

/// The value under `key`.
pub fn fetch(key: &[u8]) -> Option<Value> {
    STORE.get(key).map(|slot| match &*slot {
        Slot::Term(t) => Value::Term(t.clone()),
        Slot::Counter(c) => Value::Int(c.load(Ordering::Acquire)),
    })
}

/// Removes `key`; true if it was there.
pub fn remove(key: &[u8]) -> bool {
    STORE.remove(key).is_some()
}

/// Every key, in no particular order.
pub fn keys() -> Vec<Vec<u8>> {
    STORE.iter().map(|e| e.key().clone()).collect()
}

/// Removes everything.
pub fn clear() {
    STORE.clear();
}

/// Why a counter could not change.
#[derive(Debug, PartialEq, Eq)]
pub enum IncrError {
    /// The key holds something that is not a 64-bit integer.
    NotAnInteger,
    /// The result would not fit 64 bits.
    Overflow,
}

/// Adds `by` to the counter under `key` (created at 0 when missing) and returns
/// the new value.
pub fn incr(key: &[u8], by: i64) -> Result<i64, IncrError> {
    if let Some(slot) = STORE.get(key) {
        return match &*slot {
            Slot::Counter(c) => add(c, by),
            Slot::Term(_) => Err(IncrError::NotAnInteger),
        };
    }
    let slot = STORE.entry(key.to_vec()).or_insert_with(|| Slot::Counter(AtomicI64::new(0)));
    match &*slot {
        Slot::Counter(c) => add(c, by),
        Slot::Term(_) => Err(IncrError::NotAnInteger),
    }
}

fn add(c: &AtomicI64, by: i64) -> Result<i64, IncrError> {
    let mut cur = c.load(Ordering::Acquire);
    loop {
        let new = cur.checked_add(by).ok_or(IncrError::Overflow)?;
        match c.compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(new),
            Err(now) => cur = now,
        }
    }
}
