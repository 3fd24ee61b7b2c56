//! Python → Erlang → Python callbacks without a blocked scheduler or a deadlock:
//! the Erlang side of a callback chain (the Python side, the thread that waits,
//! is `interp::callback`).
//!
//! When a request's Python code calls `erlang.call(name, *args)`, its
//! [`JobCaller`] sends `{py_callback, Tag, Handle, Name, Args}` to the request's
//! caller, which is waiting for that request's reply anyway and runs the
//! registered Erlang function itself. The Python thread then waits on the
//! chain's channel for the result (`callback_reply/2`, through
//! [`CallbackHandle::reply`]) or for a nested request of the same chain: the
//! Erlang function called back into the same context, and the NIF hands that job
//! to the chain ([`CallbackHandle::offer`]) instead of the mailbox, to be served
//! right there, re-entrantly.
//!
//! A call from a thread no request waits on goes to `py_cast_sink`, which runs
//! it in a process of the application (see `actors::bridge`); so do those of a
//! cast's request and of a `spawn_call`'s, whose caller waits on it only once
//! it awaits ([`JobCaller::callbacks_to_sink`]). No Python here.

use super::job::{CallToken, Job, Target};
use crate::atoms;
use crate::interp::bridge::{CallError, Caller, ChainMsg, Place};
use crate::interp::value::Value;
use rustler::env::SavedTerm;
use rustler::{Encoder, Env, LocalPid, OwnedEnv, Resource, ResourceArc, Term};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

/// Which jobs of its chain a suspended thread can serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// A context actor: only jobs for its own context (its own interpreter).
    Same(Target),
    /// An executor on the main interpreter: the main target, and every context
    /// when contexts share the main interpreter (each runs in its own globals).
    MainInterp { shared_contexts: bool },
    /// A thread that serves no request (Python's own threads): none; calls
    /// back into Python are routed as usual.
    Nothing,
}

/// The Erlang side's handle on one suspended `erlang.call`.
pub struct CallbackHandle {
    tx: Mutex<Option<Sender<ChainMsg>>>,
    accept: Accept,
}

impl Resource for CallbackHandle {}

impl CallbackHandle {
    /// A handle for a new call, and the channel its thread waits on.
    pub fn open(accept: Accept) -> (ResourceArc<CallbackHandle>, Receiver<ChainMsg>) {
        let (tx, rx) = mpsc::channel();
        (ResourceArc::new(CallbackHandle { tx: Mutex::new(Some(tx)), accept }), rx)
    }

    /// Hands `job` to the suspended thread if it is for the same interpreter;
    /// gives it back otherwise (or if the thread is gone).
    pub fn offer(&self, mut job: Job) -> Result<(), Job> {
        let place = match self.accept {
            Accept::Same(t) if job.target == t => Place::Own,
            Accept::MainInterp { .. } if job.target == Target::Main => Place::Main,
            Accept::MainInterp { shared_contexts: true } => match job.target {
                Target::Context(id) => Place::Shared(id),
                Target::Main => Place::Main,
            },
            _ => return Err(job),
        };
        job.chain = Some((place, self.accept));
        let guard = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(tx) => tx.send(ChainMsg::Nested(Box::new(job))).map_err(|mpsc::SendError(m)| match m {
                ChainMsg::Nested(j) => match j.into_any().downcast::<Job>() {
                    Ok(job) => *job,
                    Err(_) => unreachable!("a chain's channel only carries jobs"),
                },
                ChainMsg::Reply(..) => unreachable!("only jobs are offered"),
            }),
            None => Err(job),
        }
    }

    /// Delivers the callback's result, with the core it is sent from; false
    /// if the thread stopped waiting.
    pub fn reply(&self, result: Result<Value, CallError>) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        tx.is_some_and(|tx| tx.send(ChainMsg::Reply(result, super::affinity::current_cpu())).is_ok())
    }
}

/// A job's tag, read from the job's own environment while the job is served.
///
/// Only the requests whose Python code sends something to their caller
/// (`erlang.call`, `print`) need their tag outside the job. A copy made for
/// every request (external format, then a `Vec`) cost about 600 cycles of each
/// trivial call here; this costs nothing until it is used.
pub struct JobTag {
    /// The job's environment, which holds `tag`.
    env: *const OwnedEnv,
    tag: SavedTerm,
    /// The thread serving the job: the only one that may read the tag.
    thread: std::thread::ThreadId,
    /// Cleared by [`JobTag::retire`] when the job's Python code has returned.
    live: AtomicBool,
}

// SAFETY: `env` is only dereferenced on `thread` (checked in `term`), and the
// thread that built the `JobTag` is the one serving the job: no two threads
// ever use the environment through it.
unsafe impl Send for JobTag {}
// SAFETY: as above; the only shared state read from other threads is `live`,
// an atomic.
unsafe impl Sync for JobTag {}

impl JobTag {
    /// The tag `tag` saved in `env`, a job's environment: call on the thread
    /// serving the job, and [`JobTag::retire`] before the job is answered.
    pub fn new(env: &OwnedEnv, tag: &SavedTerm) -> JobTag {
        JobTag { env, tag: tag.clone(), thread: this_thread(), live: AtomicBool::new(true) }
    }

    /// Whether the tag can be read here and now: the job's Python code still
    /// runs, and this is its thread.
    fn usable(&self) -> bool {
        self.live.load(Ordering::Acquire) && this_thread() == self.thread
    }

    /// The tag as a term of `e` (`undefined` where it is not [`usable`](Self::usable)).
    fn term<'a>(&self, e: Env<'a>) -> Term<'a> {
        if !self.usable() {
            return atoms::undefined().encode(e);
        }
        // SAFETY: `env` points into the job being served: the job is borrowed
        // by `Job::serve_python` (or a nested serve) for as long as its Python
        // code runs, which is until `retire`, and `live` says we are before
        // that. We are on the serving thread, which is inside that Python code
        // and not using the environment itself.
        let env = unsafe { &*self.env };
        env.run(|je| self.tag.load(je).in_env(e))
    }

    /// The job's Python code has returned: the tag is not read any more.
    pub fn retire(&self) {
        self.live.store(false, Ordering::Release);
    }
}

thread_local! {
    static THIS_THREAD: std::thread::ThreadId = std::thread::current().id();
}

/// This thread's id, read once per thread (`thread::current()` takes a
/// reference on the thread's handle each time: two atomics per request).
fn this_thread() -> std::thread::ThreadId {
    THIS_THREAD.with(|t| *t)
}

/// The Erlang caller of one job, as its Python code's `erlang.call` sees it.
pub struct JobCaller {
    reply_to: LocalPid,
    /// Its callbacks go to the cast sink (`spawn_call`), not to `reply_to`.
    to_sink: bool,
    tag: JobTag,
    token: Arc<CallToken>,
    accept: Accept,
    target: Target,
}

impl JobCaller {
    pub fn new(reply_to: LocalPid, tag: JobTag, token: Arc<CallToken>, accept: Accept, target: Target) -> JobCaller {
        JobCaller { reply_to, to_sink: false, tag, token, accept, target }
    }

    /// Its callbacks go to the cast sink (which runs each in a process of its
    /// own), not to the caller.
    pub fn callbacks_to_sink(mut self) -> JobCaller {
        self.to_sink = true;
        self
    }

    /// Retires the tag (see [`JobTag::retire`]) when the guard drops: when
    /// the job's Python code has returned, or unwound.
    pub fn retiring(&self) -> Retire<'_> {
        Retire(self)
    }
}

/// Retires a [`JobCaller`]'s tag when dropped.
pub struct Retire<'a>(&'a JobCaller);

impl Drop for Retire<'_> {
    fn drop(&mut self) {
        self.0.tag.retire();
    }
}

impl Caller for JobCaller {
    fn callback(&self, name: &Value, args: &[Value]) -> Result<Receiver<ChainMsg>, CallError> {
        if !self.tag.usable() {
            return Err(CallError::Failed("the request this erlang.call belongs to is over".into()));
        }
        if self.token.is_cancelled() {
            // Its caller stopped waiting: a callback message would stay in
            // its mailbox for good.
            return Err(CallError::Failed("the Erlang caller stopped waiting".into()));
        }
        let (handle, rx) = CallbackHandle::open(self.accept);
        if !self.to_sink {
            if !send_callback(&self.reply_to, |e| self.tag.term(e), &handle, name, args) {
                return Err(CallError::Failed("the Erlang caller is gone".into()));
            }
            return Ok(rx);
        }
        // To the sink (found by name: it may have been restarted), with the
        // caller, whose group leader the callback's process takes (its output
        // goes where the caller's does).
        let sent = super::bridge::whereis_pid("py_cast_sink")
            .is_some_and(|sink| send_callback(&sink, |e| (self.tag.term(e), self.reply_to).encode(e), &handle, name, args));
        if !sent {
            return Err(CallError::Failed("the application's process that runs Erlang calls (py_cast_sink) is not running".into()));
        }
        Ok(rx)
    }

    fn gave_up(&self) -> bool {
        self.token.is_cancelled()
    }

    fn context(&self) -> u32 {
        self.target.key()
    }

    fn interrupted(&self) -> bool {
        self.token.was_interrupted()
    }

    fn interruptions(&self) -> u32 {
        self.token.interruptions()
    }

    fn await_interrupt(&self) {
        self.token.await_interrupt()
    }

    fn output(&self, fd: u8, text: &str) {
        rustler::atoms! { py_output }
        if self.token.is_cancelled() || !self.tag.usable() {
            return;
        }
        let _ = OwnedEnv::new().send_and_clear(&self.reply_to, |e| (py_output(), self.tag.term(e), fd, text).encode(e));
    }
}

/// Sends `{py_callback, Tag, Handle, Name, Args}` to `to`; false if `to` is gone.
pub fn send_callback(
    to: &LocalPid,
    tag: impl for<'a> Fn(rustler::Env<'a>) -> rustler::Term<'a>,
    handle: &ResourceArc<CallbackHandle>,
    name: &Value,
    args: &[Value],
) -> bool {
    let mut env = OwnedEnv::new();
    env.send_and_clear(to, |e| (crate::atoms::py_callback(), tag(e), handle.clone(), name, args.to_vec()).encode(e)).is_ok()
}
