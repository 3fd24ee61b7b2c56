//! Channels: Erlang into running Python (`py:channel/0,1`).
//!
//! A channel is a bounded queue of values with a node-wide id. Erlang pushes
//! with `py:channel_send/2` (never waiting: a full channel answers
//! `{error, full}`); Python's `erlang.Channel.recv` takes from it on an
//! interpreter thread, waiting on a condition variable with its GIL released.
//! Closing (`py:channel_close/1`, or the last Erlang copy of the channel
//! collected) lets Python drain what is queued, then `recv` raises
//! `erlang.ChannelClosed`. No Python here.
//!
//! A channel lives while anything holds it: its Erlang copies (the NIF
//! resource), the requests and stored values carrying it, and the Python
//! objects made from those (see `interp::value::ChannelHold`). The table maps
//! ids to weak references, for `recv` by id; the last hold frees the channel
//! and what is still queued in it (nothing could read it any more).

use crate::interp::value::Value;
use dashmap::DashMap;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, Weak};
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

static CHANNELS: LazyLock<DashMap<u64, Weak<Channel>>> = LazyLock::new(DashMap::new);

/// Channels alive on the node (`py:info/0`).
pub fn count() -> usize {
    CHANNELS.len()
}

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
        CHANNELS.insert(id, Arc::downgrade(&ch));
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
        drop(st);
        self.ready.notify_all();
    }

    /// The next value, waiting at most `timeout` (`None`: until one comes or
    /// the channel closes). Blocks: call with no GIL held.
    pub fn recv(&self, timeout: Option<Duration>) -> Result<Value, RecvError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut st = self.lock();
        loop {
            if let Some(v) = st.queue.pop_front() {
                return Ok(v);
            }
            if st.closed {
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

impl Drop for Channel {
    /// The last hold is gone: forget the id. (Ids are never reused, so this
    /// cannot remove another channel's entry.) What is still queued is freed
    /// off the BEAM's schedulers: the last hold often goes with the Erlang
    /// copy a garbage collection frees, and a queue of large terms takes
    /// milliseconds to free.
    fn drop(&mut self) {
        CHANNELS.remove(&self.id);
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if !state.queue.is_empty() && rustler::thread::is_scheduler_thread() {
            free_elsewhere(std::mem::take(&mut state.queue));
        }
    }
}

/// Frees `queue` on a thread of its own, started on first use and fed in
/// order (not the actor runtime's blocking pool, whose one thread may be
/// busy ending a context); here if that thread cannot be had.
fn free_elsewhere(queue: VecDeque<Value>) {
    static FREER: LazyLock<Option<std::sync::mpsc::Sender<VecDeque<Value>>>> = LazyLock::new(|| {
        let (tx, rx) = std::sync::mpsc::channel::<VecDeque<Value>>();
        let started = std::thread::Builder::new().name("ep-channel-free".into()).spawn(move || {
            for queue in rx {
                drop(queue);
            }
        });
        started.ok().map(|_| tx)
    });
    if let Some(tx) = FREER.as_ref() {
        // Given back (and dropped here) only if that thread is gone.
        let _ = tx.send(queue);
    }
}

/// Channel `id`, if something still holds it.
pub fn get(id: u64) -> Option<Arc<Channel>> {
    // The shard's guard is dropped at the end of this statement, before the
    // caller can drop the returned Arc (whose Drop takes the shard's lock).
    CHANNELS.get(&id).and_then(|c| c.upgrade())
}
