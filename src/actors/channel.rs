//! Channels: Erlang into running Python (`py:channel/0,1`).
//!
//! A channel is a bounded queue of values with a node-wide id. Erlang pushes
//! with `py:channel_send/2` (never waiting: a full channel answers
//! `{error, full}`); Python's `erlang.Channel.recv` takes from it on an
//! interpreter thread, waiting on a condition variable with its GIL released.
//! Closing (`py:channel_close/1`, or the last Erlang copy of the channel
//! collected) lets Python drain what is queued, then `recv` raises
//! `erlang.ChannelClosed`. No Python here.

use crate::interp::value::Value;
use dashmap::DashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// One channel.
pub struct Channel {
    pub id: u64,
    max: usize,
    state: Mutex<State>,
    ready: Condvar,
}

struct State {
    queue: VecDeque<Value>,
    closed: bool,
}

/// Why a send was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    Full,
    Closed,
}

/// Why a receive got nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum RecvError {
    Timeout,
    /// Closed and drained (or never existed).
    Closed,
}

static CHANNELS: LazyLock<DashMap<u64, Arc<Channel>>> = LazyLock::new(DashMap::new);

impl Channel {
    /// A new open channel holding at most `max` values.
    pub fn open(max: usize) -> Arc<Channel> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let ch = Arc::new(Channel {
            id,
            max: max.max(1),
            state: Mutex::new(State { queue: VecDeque::new(), closed: false }),
            ready: Condvar::new(),
        });
        CHANNELS.insert(id, ch.clone());
        ch
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `v` unless the channel is full or closed.
    pub fn send(&self, v: Value) -> Result<(), SendError> {
        let mut st = self.lock();
        if st.closed {
            return Err(SendError::Closed);
        }
        if st.queue.len() >= self.max {
            return Err(SendError::Full);
        }
        st.queue.push_back(v);
        drop(st);
        self.ready.notify_one();
        Ok(())
    }

    /// Values queued now.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the channel: no more sends; receivers drain what is queued.
    pub fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        let drained = st.queue.is_empty();
        drop(st);
        self.ready.notify_all();
        if drained {
            CHANNELS.remove(&self.id);
        }
    }

    /// The next value, waiting at most `timeout` (`None`: until one comes or
    /// the channel closes). Blocks: call with no GIL held.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Value, RecvError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.lock();
        loop {
            if let Some(v) = st.queue.pop_front() {
                if st.closed && st.queue.is_empty() {
                    CHANNELS.remove(&self.id);
                }
                return Ok(v);
            }
            if st.closed {
                CHANNELS.remove(&self.id);
                return Err(RecvError::Closed);
            }
            st = match deadline {
                None => self.ready.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Err(RecvError::Timeout);
                    }
                    self.ready.wait_timeout(st, d - now).unwrap_or_else(|e| e.into_inner()).0
                }
            };
        }
    }
}

/// Channel `id`, if it is open or still has values to drain.
pub fn get(id: u64) -> Option<Arc<Channel>> {
    CHANNELS.get(&id).map(|c| c.clone())
}
