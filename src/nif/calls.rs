//! Forwarding calls: `submit/4` enqueues a job and returns a handle; `cancel/1`
//! withdraws it when the caller stops waiting.

use crate::actors::callback::CallbackHandle;
use crate::actors::job::{CallToken, Job, Target, Work};
use crate::actors::router::{self, SubmitError};
use crate::actors::semaphore;
use crate::atoms;
use crate::interp::bridge::CallError;
use crate::interp::exec::Op;
use crate::probe::{self, Stage};
use rustler::{Atom, Encoder, Env, LocalPid, NifResult, OwnedEnv, Resource, ResourceArc, Term};
use std::sync::Arc;
use std::time::Instant;

/// The caller's side of a job. When the caller's process dies its heap is freed,
/// this resource with it, and the job is withdrawn if it has not run yet.
pub struct CallHandle {
    token: Arc<CallToken>,
    /// The job's place in the semaphore's queue, when it had to wait for a permit.
    queued: Option<u64>,
    /// A cast's handle: it only withdraws the cast while it waits for a permit;
    /// once queued the cast runs whatever happens to its caller.
    cast: bool,
    /// An async call: its asyncio task (id, context, caller), cancelled when the
    /// caller gives up.
    task: Option<(u64, Target, LocalPid)>,
    /// When the handle was made: a caller's timeout counts from here
    /// ([`waited`]), so `py:call` reads no clock of its own on the way in.
    made: Instant,
}

impl Resource for CallHandle {}

impl CallHandle {
    /// A handle made once its job is on its way (or in the semaphore's queue):
    /// the clock read here runs while the job is served, not before it.
    fn new(token: Arc<CallToken>, queued: Option<u64>, cast: bool, task: Option<(u64, Target, LocalPid)>) -> ResourceArc<CallHandle> {
        ResourceArc::new(CallHandle { token, queued, cast, task, made: Instant::now() })
    }

    /// The caller stops waiting: true if the reply will never be sent; then the
    /// job's Python code, if it is running, is interrupted.
    fn give_up(&self) -> bool {
        let cancelled = self.token.cancel();
        if cancelled {
            crate::actors::interrupt::request(self.token.clone(), crate::actors::interrupt::Why::GaveUp);
            if let Some((tid, target, owner)) = self.task {
                // Scheduled already: the task is cancelled on its loop, and
                // where it runs now if it does (a step that never awaits
                // would not see the first).
                if crate::actors::tasks::take(tid).is_some() {
                    crate::actors::tasks::given_up(tid, target.key());
                    if router::submit(Job::loop_work(Work::TaskCancel(tid), target, owner)).is_err() {
                        // Its context is gone, and its loop with it.
                        let _ = crate::actors::tasks::cancelled(tid);
                    }
                    router::interrupt_task(target, tid);
                }
            }
        }
        cancelled
    }
}

impl Drop for CallHandle {
    fn drop(&mut self) {
        if let Some(id) = self.queued {
            semaphore::withdraw(id);
        }
        if !self.cast {
            self.give_up();
        }
    }
}

/// Hands a waiting job the permit it waited for and queues it; gives the permit
/// back if the caller is gone or the job cannot be queued.
fn grant(job: Job, permit: semaphore::Permit) -> Option<semaphore::Permit> {
    if job.is_cancelled() {
        return Some(permit);
    }
    match router::submit(job.with_permit(permit)) {
        Ok(()) => None,
        // The application stopped, or contexts were restarted with fewer,
        // while it waited: its caller is told so, the permit goes on.
        Err((job, why)) => {
            job.give_back_permit();
            job.refuse(why);
            None
        }
    }
}

rustler::atoms! { call, eval, exec, stream_call, stream_eval, async_call, async_stream, echo, queued, promised, dirty, callbacks, sink, call_ref, eval_ref, on_ref = "ref", crash = "$crash" }

fn work_of(op: Atom) -> Option<Work> {
    if op == call() {
        Some(Work::Python(Op::Call))
    } else if op == eval() {
        Some(Work::Python(Op::Eval))
    } else if op == exec() {
        Some(Work::Python(Op::Exec))
    } else if op == stream_call() {
        Some(Work::Python(Op::StreamCall))
    } else if op == stream_eval() {
        Some(Work::Python(Op::StreamEval))
    } else if op == async_call() {
        Some(Work::Python(Op::AsyncCall { task: 0, key: 0 }))
    } else if op == async_stream() {
        Some(Work::Python(Op::AsyncStream { task: 0, key: 0 }))
    } else if op == call_ref() {
        Some(Work::Python(Op::CallRef))
    } else if op == eval_ref() {
        Some(Work::Python(Op::EvalRef))
    } else if op == on_ref() {
        Some(Work::Python(Op::OnRef))
    } else if op == echo() {
        Some(Work::Echo)
    } else if cfg!(feature = "test-hooks") && op == crash() {
        crash_work()
    } else {
        None
    }
}

#[cfg(feature = "test-hooks")]
fn crash_work() -> Option<Work> {
    Some(Work::Crash)
}

#[cfg(not(feature = "test-hooks"))]
fn crash_work() -> Option<Work> {
    None
}

/// `submit(Target, Op, Payload, Tag, Chain) -> {ok, Handle} | {promised, Handle}
/// | {queued, Handle} | dirty | {error, Reason}`, where Target is `main`, a context number, `auto` (the
/// caller's context: see `nif::routing`) or `{pool, Name}`, and Chain is the
/// callback handle the calling process is running under (or `undefined`),
/// or `{callbacks, sink}` / `{callbacks, sink, Handle}`: the same, and the
/// `erlang.call`s of its Python code go to the cast sink, not to the caller
/// (`spawn_call`, whose caller takes them only once it awaits). The
/// reply arrives later as `{py_reply, Tag, Result}` (or `{py_reply, Tag, Error,
/// Traceback}`). `queued`: every permit is taken; the job waits its turn in the
/// semaphore's queue until the caller withdraws it (`withdraw/1`). An integer
/// Tag says the caller also handles `{py_late, Tag}`: `promised` then means it
/// may wait with no timer until that nudge comes (`actors::late`).
///
/// A payload too large to decode within a normal scheduler's time slice
/// ([`ON_SCHEDULER`] terms) answers `dirty`: the caller then submits it with
/// `submit_dirty/5`, the same on a dirty CPU scheduler.
#[rustler::nif]
fn submit<'a>(env: Env<'a>, target: Term<'a>, op: Atom, payload: Term<'a>, tag: Term<'a>, chain: Term<'a>) -> NifResult<Term<'a>> {
    submit_with(env, target, op, payload, tag, chain, Decoding::OnScheduler)
}

/// `submit_dirty(Target, Op, Payload, Tag, Chain)`: `submit/5` for a payload
/// that answered `dirty`, on a dirty CPU scheduler, decoded up to `max_terms`.
#[rustler::nif(schedule = "DirtyCpu")]
fn submit_dirty<'a>(env: Env<'a>, target: Term<'a>, op: Atom, payload: Term<'a>, tag: Term<'a>, chain: Term<'a>) -> NifResult<Term<'a>> {
    submit_with(env, target, op, payload, tag, chain, Decoding::Dirty)
}

/// Terms a request may have to be decoded on a normal scheduler: about a
/// millisecond of work (a binary counts one per KiB of it).
const ON_SCHEDULER: usize = 20_000;

/// Bytes of binaries a request may copy on a normal scheduler: about 0.15
/// ms (1 MB held the only scheduler 0.6 ms here, 19 MB 9.6 ms, when only
/// the term count decided).
const ON_SCHEDULER_BYTES: usize = 256 << 10;

/// Where a request's payload is decoded.
#[derive(Clone, Copy)]
pub(super) enum Decoding {
    /// On a normal scheduler: at most [`ON_SCHEDULER`] terms, else the caller
    /// is told to ask again from a dirty one.
    OnScheduler,
    /// On a dirty CPU scheduler: up to `max_terms`, and never sent on.
    Dirty,
}

/// What `decode` gives, decoding at most `max_terms` terms (and on a normal
/// scheduler at most [`ON_SCHEDULER`]); `Err(None)` when a payload decoded on
/// a normal scheduler needs more than that but may have up to `max_terms`
/// (the caller asks again from a dirty scheduler), `Err(Some(message))` for a
/// bad payload, one past `max_terms` included. A dirty decoding never answers
/// `Err(None)`, so the retry happens at most once.
pub(super) fn within<T>(place: Decoding, decode: impl FnOnce() -> Result<T, String>) -> Result<T, Option<String>> {
    use crate::interp::conv_error;
    let max = conv_error::max_terms();
    let (limit, may_retry) = match place {
        Decoding::OnScheduler if ON_SCHEDULER < max => (ON_SCHEDULER, true),
        _ => (max, false),
    };
    let counted = conv_error::count(limit);
    let budget = may_retry.then(|| conv_error::copy_budget(ON_SCHEDULER_BYTES));
    let decoded = decode();
    let too_big = may_retry && decoded.is_err() && conv_error::over();
    drop(budget);
    drop(counted);
    decoded.map_err(|msg| (!too_big).then_some(msg))
}

/// What a payload [`within`] refused answers: `dirty` (ask again from a dirty
/// scheduler) or `{error, {bad_argument, Message}}`.
pub(super) fn refused(env: Env<'_>, why: Option<String>) -> Term<'_> {
    match why {
        None => dirty().encode(env),
        Some(msg) => bad_argument(env, msg),
    }
}

#[allow(clippy::too_many_arguments)]
fn submit_with<'a>(
    env: Env<'a>,
    target: Term<'a>,
    op: Atom,
    payload: Term<'a>,
    tag: Term<'a>,
    chain: Term<'a>,
    place: Decoding,
) -> NifResult<Term<'a>> {
    let t0 = probe::now();
    let work = work_of(op).ok_or(rustler::Error::BadArg)?;
    let request = match within(place, || request_of(work, payload)) {
        Ok(r) => r,
        Err(why) => return Ok(refused(env, why)),
    };
    probe::add(Stage::Decode, t0);
    let t1 = probe::now();
    // Any request that names a module (a call, a stream's, an async call's)
    // is routed by it: a module that refuses sub-interpreters goes to main.
    let module = request.as_ref().ok().and_then(|r| r.module());
    // Work on a ref goes to the context that keeps its object, whoever calls.
    let owner = match request.as_ref().ok() {
        Some(crate::interp::value::Request::OnRef { .. }) => super::types::request::ref_target(payload),
        _ => None,
    };
    let target = match owner {
        Some(t) => match router::check(t) {
            Ok(()) => t,
            // Its context is gone, and the object with it.
            Err(_) => return Ok((atoms::error(), atoms::context_stopped()).encode(env)),
        },
        None => match super::routing::resolve(env, target, module)? {
            Ok(t) => t,
            Err(why) => return Ok(submit_error(env, why)),
        },
    };
    probe::add(Stage::Route, t1);
    let (chain, sink) = chain_of(chain);
    // An async call becomes an asyncio task of its target's loop, with an id.
    let (work, task) = match work {
        Work::Python(Op::AsyncCall { .. }) | Work::Python(Op::AsyncStream { .. }) => {
            let tid = crate::actors::tasks::next_id();
            let op = match work {
                Work::Python(Op::AsyncStream { .. }) => Op::AsyncStream { task: tid, key: target.key() },
                _ => Op::AsyncCall { task: tid, key: target.key() },
            };
            (Work::Python(op), Some((tid, target, env.pid())))
        }
        w => (w, None),
    };
    let t2 = probe::now();
    let (job, token) = Job::new(work, target, request, tag, env.pid());
    let job = if sink { job.callbacks_to_sink() } else { job };
    probe::add(Stage::Job, t2);
    let handle = |queued| CallHandle::new(token.clone(), queued, false, task);
    // A call made from inside a callback belongs to a chain that already holds a
    // permit: nested calls take none, so a deep chain cannot starve itself. It
    // goes to the thread suspended in the chain when that serves its target.
    if let Some(chain) = chain {
        let job = match chain.offer(job) {
            Ok(()) => return Ok((atoms::ok(), handle(None)).encode(env)),
            Err(job) => job,
        };
        return Ok(match router::submit(job) {
            Ok(()) => (atoms::ok(), handle(None)).encode(env),
            Err((job, why)) => {
                job.abandon();
                submit_error(env, why)
            }
        });
    }
    let t3 = probe::now();
    // An integer tag: a synchronous caller that can wait with no timer.
    let promise = if task.is_none() { tag.decode::<i64>().ok() } else { None };
    let queued = match queue_job(env, job, token, task, promise) {
        Ok((state, h)) => (state, h).encode(env),
        Err(e) => e,
    };
    probe::add(Stage::Queue, t3);
    probe::add(Stage::Submit, t0);
    probe::done("submit");
    Ok(queued)
}

/// The `Chain` argument of `submit/5`: the callback chain the caller runs
/// under, and whether the request's own callbacks go to the cast sink.
fn chain_of(chain: Term<'_>) -> (Option<ResourceArc<CallbackHandle>>, bool) {
    if chain.is_atom() {
        // `undefined`: the common call, decided with one look.
        return (None, false);
    }
    if let Ok(c) = chain.decode::<ResourceArc<CallbackHandle>>() {
        return (Some(c), false);
    }
    if let Ok((a, b)) = chain.decode::<(Atom, Atom)>() {
        return (None, a == callbacks() && b == sink());
    }
    match chain.decode::<(Atom, Atom, ResourceArc<CallbackHandle>)>() {
        Ok((a, b, c)) if a == callbacks() && b == sink() => (Some(c), true),
        _ => (None, false),
    }
}

/// Queues `job` with a permit: at once if one is free (`ok`, or `promised`
/// when `promise`, its caller's integer tag, is given and the job found its
/// mailbox idle: see `actors::late`), else in the semaphore's queue
/// (`queued`, never promised); its caller's handle comes back with the word.
/// `Err` is the `{error, Reason}` term when it cannot be queued at all.
pub(super) fn queue_job<'a>(
    env: Env<'a>,
    job: Job,
    token: Arc<CallToken>,
    task: Option<(u64, Target, LocalPid)>,
    promise: Option<i64>,
) -> Result<(Atom, ResourceArc<CallHandle>), Term<'a>> {
    let target = job.target;
    match semaphore::try_acquire() {
        Ok(permit) => match router::submit_promising(job.with_permit(permit), promise) {
            Ok(promised) => Ok((if promised { self::promised() } else { atoms::ok() }, CallHandle::new(token, None, false, task))),
            Err((job, why)) => {
                job.abandon();
                Err(submit_error(env, why))
            }
        },
        Err(_) => {
            if let Err(why) = router::check(target) {
                job.abandon();
                return Err(submit_error(env, why));
            }
            let id = semaphore::enqueue(Box::new(move |permit| grant(job, permit)));
            Ok((queued(), CallHandle::new(token, Some(id), false, task)))
        }
    }
}

/// What a job of `work` carries: its request decoded from `payload` (or the
/// `{bad_argument, Message}` text), or an echo's term itself.
pub(super) fn request_of(work: Work, payload: Term<'_>) -> Result<Result<crate::interp::value::Request, Term<'_>>, String> {
    match work {
        Work::Python(op) => super::types::request::decode(op, payload).map(Ok),
        _ => Ok(Err(payload)),
    }
}

/// `{error, {bad_argument, Message}}`.
pub(super) fn bad_argument(env: Env<'_>, msg: String) -> Term<'_> {
    (atoms::error(), (atoms::bad_argument(), msg)).encode(env)
}

pub(super) fn submit_error(env: Env<'_>, why: SubmitError) -> Term<'_> {
    (atoms::error(), why.reason(env)).encode(env)
}

/// `cast(Target, Payload, Tag, Sink) -> ok | {queued, Handle} | {error, Reason}`:
/// a `call` whose result is dropped; its errors (with their tracebacks) and the
/// Erlang calls its Python code makes go to `Sink`. `queued`: no permit is free;
/// the cast waits its turn, and its caller gets `{py_granted, Tag}` once it has
/// one (or `withdraw/1`s it). A queued cast cannot be cancelled.
/// A payload too large for a normal scheduler answers `dirty`, as for
/// `submit/5`: the caller then uses `cast_dirty/4`.
#[rustler::nif]
fn cast<'a>(env: Env<'a>, target: Term<'a>, payload: Term<'a>, tag: Term<'a>, sink: LocalPid) -> NifResult<Term<'a>> {
    cast_with(env, target, payload, tag, sink, Decoding::OnScheduler)
}

/// `cast/4` on a dirty CPU scheduler, for a payload that answered `dirty`.
#[rustler::nif(schedule = "DirtyCpu")]
fn cast_dirty<'a>(env: Env<'a>, target: Term<'a>, payload: Term<'a>, tag: Term<'a>, sink: LocalPid) -> NifResult<Term<'a>> {
    cast_with(env, target, payload, tag, sink, Decoding::Dirty)
}

fn cast_with<'a>(env: Env<'a>, target: Term<'a>, payload: Term<'a>, tag: Term<'a>, sink: LocalPid, place: Decoding) -> NifResult<Term<'a>> {
    let request = match within(place, || super::types::request::decode(Op::Call, payload)) {
        Ok(r) => r,
        Err(why) => return Ok(refused(env, why)),
    };
    let target = match super::routing::resolve(env, target, request.module())? {
        Ok(t) => t,
        Err(why) => return Ok(submit_error(env, why)),
    };
    let (job, token) = Job::new(Work::Python(Op::Call), target, Ok(request), tag, env.pid());
    let job = job.cast(sink);
    let job = match semaphore::try_acquire() {
        Ok(permit) => job.with_permit(permit),
        Err(_) => {
            if let Err(why) = router::check(target) {
                job.abandon();
                return Ok(submit_error(env, why));
            }
            let caller = env.pid();
            let notice = OwnedEnv::new();
            let notice_tag = notice.save(tag);
            let id = semaphore::enqueue(Box::new(move |permit| {
                let unused = grant(job, permit);
                send_granted(caller, notice, notice_tag);
                unused
            }));
            let handle = CallHandle::new(token, Some(id), true, None);
            return Ok((queued(), handle).encode(env));
        }
    };
    match router::submit(job) {
        Ok(()) => Ok(atoms::ok().encode(env)),
        Err((job, why)) => {
            job.abandon();
            Ok(submit_error(env, why))
        }
    }
}

/// Tells a queued cast's caller that its cast left the queue: `{py_granted, Tag}`.
/// A BEAM scheduler thread (where a permit may be handed on) cannot send from a
/// process-less environment, so from there the actor runtime sends it.
fn send_granted(to: LocalPid, mut env: OwnedEnv, tag: rustler::env::SavedTerm) {
    rustler::atoms! { py_granted }
    if rustler::thread::is_scheduler_thread() {
        crate::actors::runtime::get().spawn(async move { send_granted(to, env, tag) });
        return;
    }
    let _ = env.send_and_clear(&to, |e| (py_granted(), tag.load(e)).encode(e));
}

/// `withdraw(Handle) -> boolean()`: takes a `queued` job out of the semaphore's
/// queue; false if it was already handed a permit (its reply will come).
#[rustler::nif]
fn withdraw(handle: ResourceArc<CallHandle>) -> bool {
    match handle.queued {
        Some(id) if semaphore::withdraw(id) => {
            handle.give_up();
            true
        }
        _ => false,
    }
}

/// `interrupt(Target) -> ok | {error, Reason}`: raises `KeyboardInterrupt` in the
/// Python code running now for Target (nothing running: no effect).
#[rustler::nif]
fn interrupt<'a>(env: Env<'a>, target: Term<'a>) -> NifResult<Term<'a>> {
    let target = match super::routing::resolve(env, target, None)? {
        Ok(t) => t,
        Err(why) => return Ok(submit_error(env, why)),
    };
    Ok(match router::interrupt(target) {
        Ok(()) => atoms::ok().encode(env),
        Err(why) => submit_error(env, why),
    })
}

/// `callback_reply(Handle, Result) -> boolean() | dirty`: the result of an
/// Erlang function Python called; false if Python stopped waiting for it. A
/// result too large to decode within a normal scheduler's time slice answers
/// `dirty` (and is not given): the caller then gives it with
/// `callback_reply_dirty/2`.
#[rustler::nif]
fn callback_reply<'a>(env: Env<'a>, handle: ResourceArc<CallbackHandle>, result: Term<'a>) -> Term<'a> {
    reply_with(env, handle, result, Decoding::OnScheduler)
}

/// `callback_reply/2` on a dirty CPU scheduler, for a result that answered `dirty`.
#[rustler::nif(schedule = "DirtyCpu")]
fn callback_reply_dirty<'a>(env: Env<'a>, handle: ResourceArc<CallbackHandle>, result: Term<'a>) -> Term<'a> {
    reply_with(env, handle, result, Decoding::Dirty)
}

fn reply_with<'a>(env: Env<'a>, handle: ResourceArc<CallbackHandle>, result: Term<'a>, place: Decoding) -> Term<'a> {
    // A value that cannot be converted is `within`'s error, so that one too
    // large for this scheduler is told from one that is bad.
    let given = within(place, || match callback_result(result) {
        Err(CallError::BadValue(msg)) => Err(msg),
        other => Ok(other),
    });
    let given = match given {
        Ok(r) => r,
        Err(None) => return dirty().encode(env),
        Err(Some(msg)) => Err(CallError::BadValue(msg)),
    };
    handle.reply(given).encode(env)
}

/// An Erlang function's result as Python's `erlang.call` takes it: `{ok, V}`,
/// `{error, {unknown_function, Name}}` or `{error, Reason}` (a binary, or any
/// term, shown as Erlang prints it).
fn callback_result(result: Term<'_>) -> Result<crate::interp::value::Value, CallError> {
    rustler::atoms! { unknown_function }
    let parts = rustler::types::tuple::get_tuple(result).unwrap_or_default();
    match parts.as_slice() {
        [tag, value] if tag.decode::<Atom>().ok() == Some(atoms::ok()) => {
            super::types::decode(*value, 0).map_err(|e| CallError::BadValue(e.message()))
        }
        [_, reason] => match rustler::types::tuple::get_tuple(*reason).ok().as_deref() {
            Some([k, name]) if k.decode::<Atom>().ok() == Some(unknown_function()) => {
                Err(CallError::UnknownFunction(name.decode::<String>().unwrap_or_default()))
            }
            _ => Err(CallError::Failed(reason.decode::<String>().unwrap_or_else(|_| format!("{reason:?}")))),
        },
        _ => Err(CallError::Failed("malformed callback reply".into())),
    }
}

/// `callback_registered(Name, Registered) -> ok`: mirrors `py_callback_registry`.
#[rustler::nif]
fn callback_registered(name: String, registered: bool) -> Atom {
    crate::actors::registry::set(&name, registered);
    atoms::ok()
}

/// `callback_registry_reset() -> ok`: no name registered (a new registry started).
#[rustler::nif]
fn callback_registry_reset() -> Atom {
    crate::actors::registry::clear();
    atoms::ok()
}

/// `semaphore(max | current | waiting) -> integer()`.
#[rustler::nif]
fn semaphore_get(which: Atom) -> NifResult<usize> {
    rustler::atoms! { max, current, waiting }
    if which == max() {
        Ok(semaphore::max())
    } else if which == current() {
        Ok(semaphore::current())
    } else if which == waiting() {
        Ok(semaphore::waiting())
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

/// `waited(Handle) -> Ms`: the milliseconds since the handle was made, which is
/// how long its caller has waited so far (its timeout counts from there).
#[rustler::nif]
fn waited(handle: ResourceArc<CallHandle>) -> u64 {
    handle.made.elapsed().as_millis() as u64
}
