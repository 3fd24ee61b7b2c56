//! Forwarding calls: `submit/3` enqueues a job and returns a handle; `cancel/1`
//! withdraws it when the caller stops waiting.

use crate::actors::job::{CallToken, Job, Work};
use crate::actors::pool::{self, SubmitError};
use crate::atoms;
use crate::interp::exec::Op;
use rustler::{Atom, Encoder, Env, NifResult, OwnedEnv, Resource, ResourceArc, Term};
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

fn work_of(op: Atom) -> Option<Work> {
    rustler::atoms! { call, eval, exec, echo }
    if op == call() {
        Some(Work::Python(Op::Call))
    } else if op == eval() {
        Some(Work::Python(Op::Eval))
    } else if op == exec() {
        Some(Work::Python(Op::Exec))
    } else if op == echo() {
        Some(Work::Echo)
    } else {
        None
    }
}

/// `submit(Op, Payload, Tag) -> {ok, Handle} | {error, Reason}`: the reply arrives
/// later as `{py_reply, Tag, Result}` (or `{py_reply, Tag, Error, Traceback}`).
#[rustler::nif]
fn submit<'a>(env: Env<'a>, op: Atom, payload: Term<'a>, tag: Term<'a>) -> NifResult<Term<'a>> {
    let Some(work) = work_of(op) else {
        return Err(rustler::Error::BadArg);
    };
    let owned = OwnedEnv::new();
    let payload = owned.save(payload);
    let tag = owned.save(tag);
    let token = Arc::new(CallToken::default());
    let job = Job { env: owned, work, payload, tag, reply_to: env.pid(), token: token.clone() };
    match pool::submit(job) {
        Ok(()) => Ok((atoms::ok(), ResourceArc::new(CallHandle(token))).encode(env)),
        Err(SubmitError::NotStarted(_)) => Ok((atoms::error(), atoms::not_started()).encode(env)),
    }
}

/// `cancel(Handle) -> boolean()`: true if the reply will never be sent; false if
/// it is already on its way (the caller should then receive it).
#[rustler::nif]
fn cancel(handle: ResourceArc<CallHandle>) -> bool {
    handle.0.cancel()
}
