//! The watch that lets a synchronous caller wait with no timer.
//!
//! `py:call` with a timeout used to wait in a `receive ... after Timeout`: the
//! VM sets a timer for every call and cancels it when the reply comes, about
//! 0.1 to 0.2 µs of a trivial call's 2.5 here (docs/benchmarks.md). Most calls
//! end long before any timeout, so a caller may instead wait with no timer, on
//! a promise: it hears from us within tens of milliseconds, by its reply or by a
//! `{py_late, Tag}` nudge, and only then arms its timer for what is left.
//!
//! * Who is promised: a synchronous caller that asks for it (an integer tag,
//!   see `nif::calls::submit`) and whose job found its mailbox idle, nothing
//!   queued or running (`SlotStats::reserve`). So each mailbox has at most one
//!   promised call at a time, which it keeps ([`Promise`], in its `SlotStats`)
//!   until the next one.
//! * Who keeps it: this thread looks at every mailbox's promise each tick
//!   (20 ms) and nudges one it saw unanswered at the tick before, so a
//!   promised call that runs longer than one to two ticks is nudged, whether
//!   it runs or still waits in its lane behind a job queued just before it.
//! * Order: a reply waits out a nudge being sent (`CallToken::settle`), so a
//!   nudge never arrives after the reply it announces; a call answered first
//!   is never nudged. No stray message is left in the caller's mailbox.
//! * Cost: the thread sleeps (parked) while no promise is outstanding; a new
//!   promise wakes it when it sleeps. While calls come, it wakes once a tick.
//!
//! No Python here.

use super::token::CallToken;
use rustler::{Encoder, LocalPid, OwnedEnv};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

/// How often promises are looked at: a long call is nudged after one to two
/// ticks. Its timer then counts from the call's start (`py_nif:waited/1`), so
/// the nudge's delay costs no precision as long as it is well within the
/// timeout: only timeouts of `PROMISE_MIN_MS` (py.erl) or more are promised.
/// Fifty wake-ups a second while calls come.
const TICK: Duration = Duration::from_millis(20);

/// Ticks with no promise outstanding before the thread sleeps (a second).
const QUIET_TICKS: u32 = 50;

/// A caller that waits with no timer, and the call it waits for.
pub struct Promise {
    pub token: Arc<CallToken>,
    to: LocalPid,
    tag: i64,
    /// Seen unanswered at the last tick.
    seen: bool,
}

impl Promise {
    pub fn new(token: Arc<CallToken>, to: LocalPid, tag: i64) -> Promise {
        Promise { token, to, tag, seen: false }
    }
}

impl std::fmt::Debug for Promise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Promise").field("tag", &self.tag).field("seen", &self.seen).finish_non_exhaustive()
    }
}

struct Watch {
    thread: Thread,
    sleeping: AtomicBool,
}

static WATCH: OnceLock<Watch> = OnceLock::new();

/// A promise was just kept by a mailbox: the watch must be awake.
pub fn watch() {
    let w = WATCH.get_or_init(|| {
        let thread = std::thread::Builder::new().name("ep-late-watch".into()).spawn(run).expect("cannot start the late-call watch");
        Watch { thread: thread.thread().clone(), sleeping: AtomicBool::new(false) }
    });
    if w.sleeping.load(Ordering::SeqCst) && w.sleeping.swap(false, Ordering::SeqCst) {
        w.thread.unpark();
    }
}

fn run() {
    // The thread starts from `watch`'s get_or_init: wait until it is set.
    let w = loop {
        match WATCH.get() {
            Some(w) => break w,
            None => std::thread::sleep(TICK),
        }
    };
    let mut out = OwnedEnv::new();
    let mut quiet = 0;
    loop {
        std::thread::park_timeout(TICK);
        if tick(&mut out, true) {
            quiet = 0;
            continue;
        }
        quiet += 1;
        if quiet < QUIET_TICKS {
            continue;
        }
        // Going to sleep. A promise kept from now on finds `sleeping` set and
        // wakes us; one kept before it is seen by this last look.
        w.sleeping.store(true, Ordering::SeqCst);
        if tick(&mut out, false) {
            w.sleeping.store(false, Ordering::SeqCst);
            quiet = 0;
            continue;
        }
        while w.sleeping.load(Ordering::SeqCst) {
            std::thread::park();
        }
        quiet = 0;
    }
}

/// Looks at every mailbox's promise; with `nudge`, nudges those seen
/// unanswered at the last tick too. True if any promise is outstanding.
fn tick(out: &mut OwnedEnv, nudge: bool) -> bool {
    let mut outstanding = false;
    super::router::each_slot(|stats| {
        stats.with_promise(|slot| {
            let Some(p) = slot else { return };
            if !p.token.is_promised() {
                // Answered (or nudged): nothing more to keep it for.
                *slot = None;
                return;
            }
            outstanding = true;
            if !nudge {
                return;
            }
            if !p.seen {
                p.seen = true;
                return;
            }
            let (to, tag) = (p.to, p.tag);
            p.token.nudge(|| {
                let _ = out.send_and_clear(&to, |env| (crate::atoms::py_late(), tag).encode(env));
            });
            *slot = None;
        })
    });
    outstanding
}
