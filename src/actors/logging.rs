//! Python `logging` records on their way to Erlang's `logger`: sent to the
//! `py_logging` server, at most [`MAX_IN_FLIGHT`] at a time. Beyond that a
//! record is dropped and counted (`py:load()` shows the count), so Python never
//! waits on Erlang to log and a tight logging loop cannot grow a mailbox
//! without bound. No Python here.

use crate::interp::bridge::LogRecord;
use rustler::{Encoder, OwnedEnv};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Records sent and not yet handled by `py_logging`, at most.
pub const MAX_IN_FLIGHT: usize = 10_000;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Records dropped so far.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// `py_logging` handled `n` records.
pub fn handled(n: usize) {
    let _ = IN_FLIGHT.fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(v.saturating_sub(n)));
}

/// Sends `{py_log, Level, Logger, Message, File, Line, Traceback, Context}`, or
/// drops the record when too many are in flight (or nobody listens).
pub fn forward(r: LogRecord) {
    if IN_FLIGHT.fetch_add(1, Ordering::AcqRel) >= MAX_IN_FLIGHT {
        handled(1);
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    rustler::atoms! { py_log, undefined }
    let Some(to) = super::bridge::whereis_pid("py_logging") else {
        handled(1);
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let sent = OwnedEnv::new().send_and_clear(&to, |e| {
        let tb = match &r.traceback {
            Some(t) => t.as_str().encode(e),
            None => undefined().encode(e),
        };
        let ctx = match r.context {
            Some(c) => c.encode(e),
            None => undefined().encode(e),
        };
        let fields = [
            py_log().encode(e),
            r.level.encode(e),
            r.logger.as_str().encode(e),
            r.message.as_str().encode(e),
            r.file.as_str().encode(e),
            r.line.encode(e),
            tb,
            ctx,
        ];
        rustler::types::tuple::make_tuple(e, &fields)
    });
    if sent.is_err() {
        handled(1);
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}
