//! Forwarding calls: `submit/4` enqueues a job and returns a handle; `cancel/1`
//! withdraws it when the caller stops waiting.

use crate::actors::job::{CallToken, Job, Target, Work};
use crate::actors::router::{self, SubmitError};
use crate::actors::semaphore;
use crate::atoms;
use crate::interp::exec::Op;
use rustler::{Atom, Encoder, Env, NifResult, Resource, ResourceArc, Term};
use std::sync::Arc;

/// The caller's side of a job. When the caller's process dies its heap is freed,
/// this resource with it, and the job is withdrawn if it has not run yet.
pub struct CallHandle(Arc<CallToken>);

impl Resource for CallHandle {}

impl Drop for CallHandle {
    fn drop(&mut self) {
        self.0.cancel();
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

/// `submit(Target, Op, Payload, Tag) -> {ok, Handle} | {error, Reason}`, where
/// Target is `main` or a context number. The reply arrives later as
/// `{py_reply, Tag, Result}` (or `{py_reply, Tag, Error, Traceback}`).
#[rustler::nif]
fn submit<'a>(env: Env<'a>, target: Term<'a>, op: Atom, payload: Term<'a>, tag: Term<'a>) -> NifResult<Term<'a>> {
    let (Some(target), Some(work)) = (target_of(target), work_of(op)) else {
        return Err(rustler::Error::BadArg);
    };
    let permit = match semaphore::try_acquire() {
        Ok(p) => p,
        Err((current, max)) => return Ok((atoms::error(), (atoms::overloaded(), current, max)).encode(env)),
    };
    let (job, token) = Job::new(work, target, payload, tag, env.pid(), permit);
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

/// `cancel(Handle) -> boolean()`: true if the reply will never be sent; false if
/// it is already on its way (the caller should then receive it).
#[rustler::nif]
fn cancel(handle: ResourceArc<CallHandle>) -> bool {
    handle.0.cancel()
}
