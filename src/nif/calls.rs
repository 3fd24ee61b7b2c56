//! Forwarding calls: `submit/4` enqueues a job and returns a handle; `cancel/1`
//! withdraws it when the caller stops waiting.

use crate::actors::callback::CallbackHandle;
use crate::actors::job::{CallToken, Job, Target, Work};
use crate::actors::router::{self, SubmitError};
use crate::actors::semaphore;
use crate::atoms;
use crate::interp::exec::Op;
use rustler::{Atom, Encoder, Env, NifResult, OwnedEnv, Resource, ResourceArc, Term};
use std::sync::Arc;

/// The caller's side of a job. When the caller's process dies its heap is freed,
/// this resource with it, and the job is withdrawn if it has not run yet.
pub struct CallHandle(Arc<CallToken>);

impl Resource for CallHandle {}

impl CallHandle {
    /// The caller stops waiting: true if the reply will never be sent; then the
    /// job's Python code, if it is running, is interrupted.
    fn give_up(&self) -> bool {
        let cancelled = self.0.cancel();
        if cancelled {
            crate::actors::interrupt::request(self.0.clone());
        }
        cancelled
    }
}

impl Drop for CallHandle {
    fn drop(&mut self) {
        self.give_up();
    }
}

rustler::atoms! { call, eval, exec, echo, main, crash = "$crash" }

fn work_of(op: Atom) -> Option<Work> {
    if op == call() {
        Some(Work::Python(Op::Call))
    } else if op == eval() {
        Some(Work::Python(Op::Eval))
    } else if op == exec() {
        Some(Work::Python(Op::Exec))
    } else if op == echo() {
        Some(Work::Echo)
    } else if op == crash() {
        Some(Work::Crash)
    } else {
        None
    }
}

fn target_of(t: Term<'_>) -> Option<Target> {
    if t.decode::<Atom>().ok() == Some(main()) {
        Some(Target::Main)
    } else {
        t.decode::<u32>().ok().map(Target::Context)
    }
}

/// `submit(Target, Op, Payload, Tag, Chain) -> {ok, Handle} | {error, Reason}`,
/// where Target is `main` or a context number and Chain is the callback handle the
/// calling process is running under (or `undefined`). The reply arrives later as
/// `{py_reply, Tag, Result}` (or `{py_reply, Tag, Error, Traceback}`).
#[rustler::nif]
fn submit<'a>(env: Env<'a>, target: Term<'a>, op: Atom, payload: Term<'a>, tag: Term<'a>, chain: Term<'a>) -> NifResult<Term<'a>> {
    let (Some(target), Some(work)) = (target_of(target), work_of(op)) else {
        return Err(rustler::Error::BadArg);
    };
    let chain = chain.decode::<ResourceArc<CallbackHandle>>().ok();
    // A call made from inside a callback belongs to a chain that already holds a
    // permit: nested calls take none, so a deep chain cannot starve itself.
    let permit = match (&chain, semaphore::try_acquire()) {
        (Some(_), _) => None,
        (None, Ok(p)) => Some(p),
        (None, Err((current, max))) => {
            return Ok((atoms::error(), (atoms::overloaded(), current, max)).encode(env));
        }
    };
    let (job, token) = Job::new(work, target, payload, tag, env.pid(), permit);
    // A call made from inside a callback goes to the thread suspended in it.
    let job = match chain {
        Some(handle) => match handle.offer(job) {
            Ok(()) => return Ok((atoms::ok(), ResourceArc::new(CallHandle(token))).encode(env)),
            Err(job) => job,
        },
        None => job,
    };
    match router::submit(job) {
        Ok(()) => Ok((atoms::ok(), ResourceArc::new(CallHandle(token))).encode(env)),
        Err((job, why)) => {
            job.abandon();
            Ok(match why {
                SubmitError::NotStarted => (atoms::error(), atoms::not_started()).encode(env),
                SubmitError::NoContext(n) => (atoms::error(), (atoms::no_context(), n)).encode(env),
            })
        }
    }
}

/// `callback_reply(Handle, Result) -> boolean()`: the result of an Erlang
/// function Python called; false if Python stopped waiting for it.
#[rustler::nif]
fn callback_reply(handle: ResourceArc<CallbackHandle>, result: Term<'_>) -> bool {
    let env = OwnedEnv::new();
    let saved = env.save(result);
    handle.reply(env, saved)
}

/// `semaphore(max | current) -> integer()`.
#[rustler::nif]
fn semaphore_get(which: Atom) -> NifResult<usize> {
    rustler::atoms! { max, current }
    if which == max() {
        Ok(semaphore::max())
    } else if which == current() {
        Ok(semaphore::current())
    } else {
        Err(rustler::Error::BadArg)
    }
}

/// `semaphore_set_max(N) -> ok`.
#[rustler::nif]
fn semaphore_set_max(n: usize) -> Atom {
    semaphore::set_max(n);
    atoms::ok()
}

/// `cancel(Handle) -> boolean()`: true if the reply will never be sent (and the
/// job's Python code, if running, is interrupted); false if it is already on its
/// way (the caller should then receive it).
#[rustler::nif]
fn cancel(handle: ResourceArc<CallHandle>) -> bool {
    handle.give_up()
}
