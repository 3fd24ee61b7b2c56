//! Forwarding streams (`py:stream_start/3,4`): the start is a call whose reply
//! says `started`; items then arrive as messages, paced by the credit the
//! consumer gives (`stream_active/2`), until `{py_end, Ref}`, `{py_error, Ref, _}`
//! or `stream_cancel/1`.

use super::calls::queue_job;
use crate::actors::job::{Job, Target, Work};
use crate::actors::stream::{Credit, Stream};
use crate::actors::{interrupt, router};
use crate::atoms;
use crate::interp::exec::Op;
use rustler::{Atom, Encoder, Env, NifResult, Resource, ResourceArc, Term};
use std::sync::Arc;

/// The consumer's side of a stream, kept in its process dictionary: when the
/// consumer exits (or drops it) the stream is cancelled and its iterator closed.
pub struct StreamHandle(Arc<Stream>);

impl Resource for StreamHandle {}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        close(&self.0);
    }
}

/// Ends the stream (no message after this) and closes its iterator where it
/// lives: at once if a pull runs it now (`GeneratorExit` raised in it, so its
/// `finally` runs), else by a close job.
fn close(s: &Arc<Stream>) {
    if s.flow.cancel() {
        if let Some(token) = s.running_pull() {
            interrupt::request(token, interrupt::Why::Closing);
        }
        let _ = router::submit(Job::for_stream(Work::StreamClose, s.clone()));
    }
}

fn credit(t: Term<'_>) -> Option<Credit> {
    if t.decode::<bool>().ok() == Some(true) {
        Some(Credit::Unlimited)
    } else {
        t.decode::<u64>().ok().filter(|&n| n > 0).map(Credit::Left)
    }
}

/// `stream_start(Target, Payload, Tag, Active) -> {ok | queued, CallHandle,
/// StreamHandle} | {error, Reason}`: Payload as for `call`; the start's reply
/// comes as for a call (`{ok, started}` or the error), then `{py_chunk, Tag,
/// Item}`… as `Active` (`true` or a count) allows.
/// A payload too large for a normal scheduler answers `dirty`, as for
/// `submit/5`: the caller then uses `stream_start_dirty/4`.
#[rustler::nif]
fn stream_start<'a>(env: Env<'a>, target: Term<'a>, payload: Term<'a>, tag: Term<'a>, active: Term<'a>) -> NifResult<Term<'a>> {
    stream_start_with(env, target, payload, tag, active, super::calls::Decoding::OnScheduler)
}

/// `stream_start/4` on a dirty CPU scheduler, for a payload that answered `dirty`.
#[rustler::nif(schedule = "DirtyCpu")]
fn stream_start_dirty<'a>(env: Env<'a>, target: Term<'a>, payload: Term<'a>, tag: Term<'a>, active: Term<'a>) -> NifResult<Term<'a>> {
    stream_start_with(env, target, payload, tag, active, super::calls::Decoding::Dirty)
}

fn stream_start_with<'a>(
    env: Env<'a>,
    target: Term<'a>,
    payload: Term<'a>,
    tag: Term<'a>,
    active: Term<'a>,
    place: super::calls::Decoding,
) -> NifResult<Term<'a>> {
    let credit = credit(active).ok_or(rustler::Error::BadArg)?;
    let request = match super::calls::within(place, || crate::nif::types::request::decode(Op::StreamStart(0), payload)) {
        Ok(r) => r,
        Err(why) => return Ok(super::calls::refused(env, why)),
    };
    let target: Target = match super::routing::resolve(env, target, request.module())? {
        Ok(t) => t,
        Err(why) => return Ok(super::calls::submit_error(env, why)),
    };
    let stream = Arc::new(Stream::new(env.pid(), tag.to_binary().as_slice().to_vec(), target, credit));
    let (job, token) = Job::new(Work::Python(Op::StreamStart(stream.id)), target, Ok(request), tag, env.pid());
    let job = job.starting(stream.clone());
    let handle = ResourceArc::new(StreamHandle(stream));
    Ok(match queue_job(env, job, token, None, None) {
        Ok((state, call)) => (state, call, handle).encode(env),
        Err(e) => e,
    })
}

/// `stream_active(StreamHandle, true | N) -> ok`: lets `N` more items come (or
/// all of them); resumes a paused stream.
#[rustler::nif]
fn stream_active<'a>(env: Env<'a>, handle: ResourceArc<StreamHandle>, active: Term<'a>) -> NifResult<Atom> {
    let more = credit(active).ok_or(rustler::Error::BadArg)?;
    let s = &handle.0;
    if s.flow.add_credit(more) {
        if let Err((job, _)) = router::submit(Job::for_stream(Work::StreamPull, s.clone())) {
            // Its context is gone: the stream is over, and its consumer is told
            // so, as a stream whose context stops while it runs is.
            drop(job);
            s.flow.send_last(|| {
                let _ = env.send(&s.owner, crate::actors::job::stream_stopped_message(env, s));
            });
        }
    }
    Ok(atoms::ok())
}

/// `stream_cancel(StreamHandle) -> ok`: no message of the stream is sent after
/// this returns; its iterator is closed (a generator's `finally` runs).
#[rustler::nif]
fn stream_cancel(handle: ResourceArc<StreamHandle>) -> Atom {
    close(&handle.0);
    atoms::ok()
}

/// `stream_done(StreamHandle) -> boolean()`: whether the stream is over.
#[rustler::nif]
fn stream_done(handle: ResourceArc<StreamHandle>) -> bool {
    handle.0.flow.is_done()
}
