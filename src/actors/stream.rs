//! A stream in flight (`py:stream_start/3,4`): who consumes it and how much it
//! may still send, `gen_tcp`'s `{active, N}` style.
//!
//! The iterator itself lives in its interpreter (`interp::stream`); here is only
//! the flow: pull jobs take a batch of at most the credit left, send each item
//! as a message, and either go on (a new pull job, so other requests of the
//! context run in between), or pause with `{py_passive, Ref}` when the credit is
//! spent: then no job and no thread is held until `py:stream_active/2` adds
//! credit. Every message is sent under this lock after checking the stream is
//! live, so once `cancel` returns nothing more reaches the consumer.
//!
//! No Python here.

use super::job::Target;
use super::token::CallToken;
use rustler::LocalPid;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One stream: its id (the key of its iterator in its interpreter), consumer,
/// reference (external format, as in every message), target, and flow.
pub struct Stream {
    pub id: u64,
    pub owner: LocalPid,
    pub tag: Vec<u8>,
    pub target: Target,
    pub flow: StreamFlow,
    /// The token of the pull job running now, if one is: a cancel aims its
    /// interruption there (an iterator that takes long between two items
    /// would otherwise hold its context until its next item).
    pull: Mutex<Option<Arc<CallToken>>>,
}

impl Stream {
    pub fn new(owner: LocalPid, tag: Vec<u8>, target: Target, credit: Credit) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Stream { id: NEXT.fetch_add(1, Ordering::Relaxed), owner, tag, target, flow: StreamFlow::new(credit), pull: Mutex::new(None) }
    }

    /// A pull job starts (`Some`, its token) or ends (`None`).
    pub fn pulling(&self, token: Option<Arc<CallToken>>) {
        *self.pull.lock().unwrap_or_else(|e| e.into_inner()) = token;
    }

    /// The token of the pull job running now, if any.
    pub fn running_pull(&self) -> Option<Arc<CallToken>> {
        self.pull.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// How many more items the consumer accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credit {
    /// `active => true`.
    Unlimited,
    /// `active => N`: N more, then `{py_passive, Ref}`.
    Left(u64),
}

impl Credit {
    fn positive(self) -> bool {
        self != Credit::Left(0)
    }
}

/// What a pull job does once its batch is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Queue another pull job.
    Continue,
    /// The credit is spent: send `{py_passive, Ref}` and hold nothing.
    Passive,
    /// The stream ended, failed or was cancelled.
    Stop,
}

#[derive(Debug)]
struct Flow {
    credit: Credit,
    /// The start job answered: pulls may run.
    started: bool,
    /// A pull job is queued or running (at most one, so pulls never overlap).
    pulling: bool,
    /// Ended, failed or cancelled: no message is sent any more.
    done: bool,
}

/// A stream's flow state.
#[derive(Debug)]
pub struct StreamFlow(Mutex<Flow>);

impl StreamFlow {
    pub fn new(credit: Credit) -> Self {
        StreamFlow(Mutex::new(Flow { credit, started: false, pulling: false, done: false }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Flow> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The start job answered `ok`: true if a first pull must be queued.
    pub fn started(&self) -> bool {
        let mut f = self.lock();
        f.started = true;
        let pull = !f.done && !f.pulling && f.credit.positive();
        f.pulling |= pull;
        pull
    }

    /// How many items the next batch may take, at most `max` (0: none).
    pub fn batch(&self, max: u64) -> u64 {
        let f = self.lock();
        match (f.done, f.credit) {
            (true, _) => 0,
            (false, Credit::Unlimited) => max,
            (false, Credit::Left(n)) => n.min(max),
        }
    }

    /// Runs `send` (one item's message) unless the stream is over, counting it
    /// against the credit. False if it was not sent.
    pub fn send_item(&self, send: impl FnOnce()) -> bool {
        let mut f = self.lock();
        if f.done {
            return false;
        }
        send();
        if let Credit::Left(n) = f.credit {
            f.credit = Credit::Left(n.saturating_sub(1));
        }
        true
    }

    /// Runs `send` (the last message: end or error) unless the stream is over,
    /// and ends it.
    pub fn send_last(&self, send: impl FnOnce()) -> bool {
        let mut f = self.lock();
        if f.done {
            return false;
        }
        send();
        f.done = true;
        f.pulling = false;
        true
    }

    /// The batch is sent: what next. For `Passive`, `send_passive` runs under
    /// the lock (so a cancel cannot slip in between).
    pub fn after_batch(&self, send_passive: impl FnOnce()) -> After {
        let mut f = self.lock();
        if f.done {
            f.pulling = false;
            return After::Stop;
        }
        if f.credit.positive() {
            return After::Continue;
        }
        f.pulling = false;
        send_passive();
        After::Passive
    }

    /// Adds credit (`py:stream_active/2`): true if a pull must be queued (the
    /// stream was paused).
    pub fn add_credit(&self, more: Credit) -> bool {
        let mut f = self.lock();
        if f.done {
            return false;
        }
        f.credit = match (f.credit, more) {
            (_, Credit::Unlimited) | (Credit::Unlimited, _) => Credit::Unlimited,
            (Credit::Left(a), Credit::Left(b)) => Credit::Left(a.saturating_add(b)),
        };
        let pull = f.started && !f.pulling && f.credit.positive();
        f.pulling |= pull;
        pull
    }

    /// Ends the stream from the consumer's side; true if it was still live.
    pub fn cancel(&self) -> bool {
        let mut f = self.lock();
        let live = !f.done;
        f.done = true;
        live
    }

    /// Whether the stream is over (ended, failed or cancelled).
    pub fn is_done(&self) -> bool {
        self.lock().done
    }
}
