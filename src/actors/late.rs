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
//!   until the watch sees it answered or the next one replaces it.
//! * Who keeps it: this thread looks at every mailbox's promise each tick
//!   (20 ms) and nudges one it saw unanswered at the tick before, so a
//!   promised call that runs longer than one to two ticks is nudged, whether
//!   it runs or still waits in its lane behind a job queued just before it.
//!   Every mailbox is registered here when it is made and looked at for as
//!   long as it exists, in the router's table or not: a context stopped or
//!   replaced while a promised job still runs there keeps its promise kept.
//! * Order: a reply waits out a nudge being sent (`CallToken::settle`), so a
//!   nudge never arrives after the reply it announces; a call answered first
//!   is never nudged. Both are sent with `enif_send` from threads that are not
//!   processes, which the VM queues in the order they are sent. No stray
//!   message is left in the caller's mailbox.
//! * Cost: the thread sleeps (parked) once no promise has been outstanding
//!   for a second; a new promise wakes it. While calls come, it wakes once a
//!   tick.
//!
//! No Python here.

use super::stats::SlotStats;
use super::token::CallToken;
use rustler::{Encoder, LocalPid, OwnedEnv};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::Thread;
use std::time::Duration;

/// How often promises are looked at: a long call is nudged after one to two
/// ticks. Its timer then counts from its handle's making (`py_nif:waited/1`),
/// so the nudge's delay costs no precision as long as it is well within the
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

/// Every mailbox made, for as long as it exists.
static SLOTS: Mutex<Vec<Weak<SlotStats>>> = Mutex::new(Vec::new());

/// Registers a new mailbox with the watch, starting the watch with the first
/// one. A watch that cannot start promises nothing ([`running`] is false).
pub fn register(stats: &Arc<SlotStats>) {
    let mut slots = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
    slots.retain(|w| w.strong_count() > 0);
    slots.push(Arc::downgrade(stats));
    if WATCH.get().is_none() {
        // Under the SLOTS lock: one thread is ever started.
        match std::thread::Builder::new().name("ep-late-watch".into()).spawn(run) {
            Ok(t) => {
                let _ = WATCH.set(Watch { thread: t.thread().clone(), sleeping: AtomicBool::new(false) });
            }
            Err(e) => tracing::warn!("erlang_python: cannot start the late-call watch ({e}); calls wait with a timer"),
        }
    }
}

/// Whether calls may be promised: the watch runs.
pub fn running() -> bool {
    WATCH.get().is_some()
}

/// A promise was just kept by a mailbox: the watch must be awake.
pub fn wake() {
    if let Some(w) = WATCH.get() {
        if w.sleeping.load(Ordering::SeqCst) && w.sleeping.swap(false, Ordering::SeqCst) {
            w.thread.unpark();
        }
    }
}

fn run() {
    // Started by `register` just before WATCH is set.
    let w = loop {
        match WATCH.get() {
            Some(w) => break w,
            None => std::thread::park_timeout(TICK),
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
        // wakes us; one kept before it is seen by this last look (the slot's
        // lock orders the two).
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
/// unanswered at the last tick too. True if any promise is outstanding. A
/// panic in one look is caught and logged: the watch must outlive it, since
/// every promised caller counts on it.
fn tick(out: &mut OwnedEnv, nudge: bool) -> bool {
    let slots: Vec<Arc<SlotStats>> = SLOTS.lock().unwrap_or_else(|e| e.into_inner()).iter().filter_map(Weak::upgrade).collect();
    let mut outstanding = false;
    for stats in slots {
        let looked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| look(&stats, out, nudge)));
        match looked {
            Ok(o) => outstanding |= o,
            Err(_) => {
                tracing::error!("erlang_python: the late-call watch failed on one mailbox; looking again next tick");
                *out = OwnedEnv::new();
                outstanding = true;
            }
        }
    }
    outstanding
}

/// One mailbox's promise: true if it is outstanding.
fn look(stats: &SlotStats, out: &mut OwnedEnv, nudge: bool) -> bool {
    stats.with_promise(|slot| {
        let Some(p) = slot else { return false };
        if !p.token.is_promised() {
            // Answered (or nudged): nothing more to keep it for.
            *slot = None;
            return false;
        }
        if !nudge {
            return true;
        }
        if !p.seen {
            p.seen = true;
            return true;
        }
        let (to, tag) = (p.to, p.tag);
        p.token.nudge(|| {
            let _ = out.send_and_clear(&to, |env| (crate::atoms::py_late(), tag).encode(env));
        });
        *slot = None;
        false
    })
}
