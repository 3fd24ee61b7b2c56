//! A request in flight: what the NIF enqueues and an actor answers.
//!
//! The caller keeps a [`CallToken`] (inside a NIF resource) and the job keeps
//! another reference to it. Exactly one side wins the race between "the reply is
//! being sent" and "the caller gave up" (timeout, or the caller died and its
//! resource was collected), so a late reply never lands in a mailbox that stopped
//! waiting for it, and a job whose caller is gone is skipped without running.
//!
//! A job dropped without an answer (its actor stopped or failed with the job in
//! its mailbox) answers `{error, context_stopped | context_failed}` from its
//! destructor: no caller waits for a reply that cannot come.

use crate::atoms;
use crate::interp::exec::{self, CodeCache, Globals, Op};
use crate::interp::thread::PinnedInterp;
use rustler::env::SavedTerm;
use rustler::{Encoder, Env, LocalPid, OwnedEnv, Term};
use std::sync::Arc;

pub use super::token::CallToken;
use super::semaphore::Permit;

/// What the actor does with a job.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// Run Python.
    Python(Op),
    /// Send the payload straight back: the floor of the mailbox round trip.
    Echo,
    /// Fail the actor serving it (fault injection for supervision tests).
    Crash,
}

/// Which globals a job runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// The main interpreter's `__main__`, served by the executors.
    Main,
    /// Context `n` (1-based).
    Context(u32),
}

/// One request, self-contained: its terms live in its own environment, which also
/// carries the reply.
pub struct Job {
    env: OwnedEnv,
    work: Work,
    payload: SavedTerm,
    tag: SavedTerm,
    reply_to: LocalPid,
    token: Arc<CallToken>,
    pub target: Target,
    /// Returned to the semaphore when the job is dropped, however it ends.
    _permit: Permit,
}

impl Job {
    /// Copies `payload` and `tag` into a fresh environment; returns the job and the
    /// caller's half of its token.
    pub fn new(work: Work, target: Target, payload: Term<'_>, tag: Term<'_>, reply_to: LocalPid, permit: Permit) -> (Job, Arc<CallToken>) {
        let env = OwnedEnv::new();
        let payload = env.save(payload);
        let tag = env.save(tag);
        let token = Arc::new(CallToken::default());
        let job = Job { env, work, payload, tag, reply_to, token: token.clone(), target, _permit: permit };
        (job, token)
    }

    /// Drops a job that never reached a mailbox, without replying (the NIF tells
    /// its caller directly; a BEAM thread may not send from a process-less env).
    pub fn abandon(self) {
        self.token.cancel();
    }

    /// Runs the job in `globals` of `interp` and replies, unless the caller gave up.
    pub fn serve(self, interp: &PinnedInterp, cache: &mut CodeCache, globals: Globals<'_>) {
        if !self.token.start() {
            return;
        }
        match self.work {
            Work::Echo => self.env.run(|env| {
                let msg = (atoms::py_echo(), self.tag.load(env), self.payload.load(env)).encode(env);
                if self.token.finish() {
                    send(env, &self.reply_to, msg);
                }
            }),
            Work::Crash => panic!("crash requested for a supervision test"),
            Work::Python(op) => interp.run(|py| {
                self.env.run(|env| {
                    let tag = self.tag.load(env);
                    let result = match globals.get(py) {
                        Ok(g) => exec::run(py, env, cache, &g, op, self.payload.load(env)),
                        Err(e) => Err(exec::python_failure(py, env, e)),
                    };
                    let msg = match result {
                        Ok(value) => (atoms::py_reply(), tag, (atoms::ok(), value)).encode(env),
                        Err(f) => match f.traceback {
                            Some(tb) => (atoms::py_reply(), tag, (atoms::error(), f.reason), tb).encode(env),
                            None => (atoms::py_reply(), tag, (atoms::error(), f.reason)).encode(env),
                        },
                    };
                    if self.token.finish() {
                        send(env, &self.reply_to, msg);
                    }
                })
            }),
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        if rustler::thread::is_scheduler_thread() || !self.token.claim() {
            return;
        }
        let reason = if std::thread::panicking() { atoms::context_failed() } else { atoms::context_stopped() };
        self.env.run(|env| {
            let msg = (atoms::py_reply(), self.tag.load(env), (atoms::error(), reason)).encode(env);
            send(env, &self.reply_to, msg);
        });
    }
}

/// Sends `msg`, built in the job's own environment, without copying it.
fn send(env: Env<'_>, to: &LocalPid, msg: Term<'_>) {
    // SAFETY: actor threads are not BEAM threads, so the caller env is NULL; `env`
    // is the process-independent environment `msg` lives in, and no term of it is
    // used after enif_send (the job is answered exactly once, by its token).
    unsafe {
        rustler::sys::enif_send(std::ptr::null_mut(), to.as_c_arg(), env.as_c_arg(), msg.as_c_arg());
    }
}
