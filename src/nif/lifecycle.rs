//! Starting and stopping the Python side, and reading what it is.
//!
//! Each of these hands the work to the router on the actor runtime and returns at
//! once; the caller gets `{py_started, Tag, ok | {error, Message}}` when it is done,
//! so the scheduler that asked never waits on Python or on thread joins.

use crate::actors::router::{self, RouterMsg};
use crate::actors::runtime;
use crate::atoms;
use crate::interp::runtime as py_runtime;
use ractor::rpc::CallResult;
use ractor::ActorRef;
use rustler::{Atom, Encoder, Env, LocalPid, NifResult, OwnedEnv, Term};
use std::future::Future;

/// Runs `work` with the router on the actor runtime and answers `{py_started, Tag, R}`.
fn forward<'a, F, Fut, R>(env: Env<'a>, tag: Term<'a>, work: F) -> Term<'a>
where
    F: FnOnce(ActorRef<RouterMsg>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<R, String>> + Send,
    R: Reply + Send + 'static,
{
    let mut owned = OwnedEnv::new();
    let tag = owned.save(tag);
    let pid: LocalPid = env.pid();
    runtime::get().spawn(async move {
        let result = match router::get().await {
            Ok(r) => work(r).await,
            Err(e) => Err(e),
        };
        let _ = owned.send_and_clear(&pid, |e| {
            let tag = tag.load(e);
            match result {
                Ok(r) => (atoms::py_started(), tag, r.reply(e)).encode(e),
                Err(msg) => (atoms::py_started(), tag, (atoms::error(), msg)).encode(e),
            }
        });
    });
    atoms::ok().encode(env)
}

/// What a finished lifecycle request answers: `ok`, or `{ok, Value}`.
trait Reply {
    fn reply<'a>(self, env: Env<'a>) -> Term<'a>;
}

impl Reply for () {
    fn reply<'a>(self, env: Env<'a>) -> Term<'a> {
        atoms::ok().encode(env)
    }
}

impl Reply for Vec<u32> {
    fn reply<'a>(self, env: Env<'a>) -> Term<'a> {
        (atoms::ok(), self).encode(env)
    }
}

fn flatten<T>(r: Result<CallResult<Result<T, String>>, ractor::MessagingErr<RouterMsg>>) -> Result<T, String> {
    match r {
        Ok(CallResult::Success(inner)) => inner,
        Ok(_) => Err("the router did not answer".into()),
        Err(e) => Err(format!("the router is gone: {e}")),
    }
}

/// `start(NumExecutors, NumContexts, Tag) -> ok`: initialises Python (once per
/// node) and starts executors and contexts.
#[rustler::nif]
fn start<'a>(env: Env<'a>, executors: usize, contexts: usize, tag: Term<'a>) -> Term<'a> {
    forward(env, tag, move |r| async move {
        match tokio::task::spawn_blocking(|| py_runtime::ensure_initialized().and_then(|_| py_runtime::apply_setup_to_main())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(format!("Python initialisation panicked: {e}")),
        }
        flatten(r.call(|reply| RouterMsg::Start { executors, contexts, reply }, None).await)
    })
}

/// `pin_threads(Pin) -> ok`: whether actor threads started from now on are
/// each bound to one core (the `pin_threads` application setting).
#[rustler::nif]
fn pin_threads(on: bool) -> Atom {
    crate::actors::affinity::configure(on);
    atoms::ok()
}

/// `max_terms(Max) -> ok`: the most terms one conversion makes, in either
/// direction, from now on (the `max_terms` application setting).
#[rustler::nif]
fn max_terms(max: usize) -> Atom {
    crate::interp::conv_error::set_max_terms(max);
    atoms::ok()
}

/// `malloc_thresholds(Mmap, Trim) -> ok | unchanged`: glibc's mmap and trim
/// thresholds, in bytes (the `malloc_thresholds` application setting; see
/// `interp::malloc`). `unchanged`: another libc, a value glibc refuses, or
/// thresholds the environment chose.
#[rustler::nif]
fn malloc_thresholds(mmap: usize, trim: usize) -> Atom {
    if crate::interp::malloc::set_thresholds(mmap, trim) {
        atoms::ok()
    } else {
        atoms::unchanged()
    }
}

/// `setup(PythonPath, Imports, PreloadCode) -> ok`: what every interpreter and
/// context gets from now on (see `interp::setup`); applied to the main
/// interpreter by `start/3`.
#[rustler::nif]
fn setup(paths: Vec<String>, imports: Vec<String>, preload: rustler::Binary<'_>) -> Atom {
    crate::interp::setup::configure(crate::interp::setup::Setup { paths, imports, preload: preload.as_slice().to_vec() });
    atoms::ok()
}

/// `venv_configure(SitePackages) -> ok`: the active venv's site-packages, for
/// interpreters made from now on (`[]`: none).
#[rustler::nif]
fn venv_configure(dirs: Vec<String>) -> Atom {
    crate::interp::setup::configure_venv(dirs);
    atoms::ok()
}

/// `logging_configure(Level) -> ok`: interpreters made from now on hand Python
/// `logging` records at or above `Level` (Python's number) to Erlang.
#[rustler::nif]
fn logging_configure(level: i32) -> Atom {
    crate::interp::setup::configure_logging(level);
    atoms::ok()
}

/// `logging_handled(N) -> ok`: `py_logging` handled N records.
#[rustler::nif]
fn logging_handled(n: usize) -> Atom {
    crate::actors::logging::handled(n);
    atoms::ok()
}

/// `logging_dropped() -> N`: records dropped because too many were in flight.
#[rustler::nif]
fn logging_dropped() -> u64 {
    crate::actors::logging::dropped()
}

/// `start_contexts(N, Tag) -> ok`: replaces the running contexts by N new ones.
#[rustler::nif]
fn start_contexts<'a>(env: Env<'a>, n: usize, tag: Term<'a>) -> Term<'a> {
    forward(env, tag, move |r| async move { flatten(r.call(|reply| RouterMsg::StartContexts { n, reply }, None).await) })
}

/// `stop_contexts(Tag) -> ok`.
#[rustler::nif]
fn stop_contexts<'a>(env: Env<'a>, tag: Term<'a>) -> Term<'a> {
    forward(env, tag, move |r| async move { flatten(r.call(|reply| RouterMsg::StopContexts { reply }, None).await.map(|c| c.map(Ok))) })
}

/// `stop(Tag) -> ok`: stops contexts and executors (Python itself stays).
#[rustler::nif]
fn stop<'a>(env: Env<'a>, tag: Term<'a>) -> Term<'a> {
    forward(env, tag, move |r| async move { flatten(r.call(|reply| RouterMsg::StopAll { reply }, None).await.map(|c| c.map(Ok))) })
}

/// `start_pool(Name, N, Isolation, Tag) -> ok`: starts N contexts reserved for
/// pool Name, in this process (`Isolation` `none`) or each in a child process
/// (`{process, MemoryLimit :: pos_integer() | infinity}`); answers `{ok, [Id]}`.
#[rustler::nif]
fn start_pool<'a>(env: Env<'a>, name: Atom, n: usize, isolation: Term<'a>, tag: Term<'a>) -> NifResult<Term<'a>> {
    use crate::actors::router::Isolation;
    let name = name.to_term(env).atom_to_string()?;
    let isolation = if isolation.is_atom() {
        Isolation::None
    } else {
        let (_, limit): (Atom, Term<'a>) = isolation.decode()?;
        Isolation::Process(limit.decode::<u64>().ok())
    };
    Ok(forward(env, tag, move |r| async move { flatten(r.call(|reply| RouterMsg::StartPool { name, n, isolation, reply }, None).await) }))
}

/// `stop_pool(Name, Tag) -> ok`: stops pool Name's contexts.
#[rustler::nif]
fn stop_pool<'a>(env: Env<'a>, name: Atom, tag: Term<'a>) -> NifResult<Term<'a>> {
    let name = name.to_term(env).atom_to_string()?;
    Ok(forward(
        env,
        tag,
        move |r| async move { flatten(r.call(|reply| RouterMsg::StopPool { name, reply }, None).await.map(|c| c.map(Ok))) },
    ))
}

/// `load() -> {[ExecutorFigures], [ContextFigures]}`, each a map of `served`,
/// `in_flight`, `queued` and `busy_us` (and a context's `id`).
#[rustler::nif]
fn load<'a>(env: Env<'a>) -> NifResult<Term<'a>> {
    let (executors, contexts) = router::load();
    let figures = |v: Vec<crate::actors::stats::Snapshot>| -> NifResult<Vec<Term<'a>>> {
        v.into_iter()
            .map(|s| {
                Term::map_new(env)
                    .map_put("served", s.served)?
                    .map_put("in_flight", s.in_flight)?
                    .map_put("queued", s.queued)?
                    .map_put("busy_us", s.busy_us)
            })
            .collect()
    };
    let ids: Vec<u32> = contexts.iter().map(|(id, _)| *id).collect();
    let contexts = figures(contexts.into_iter().map(|(_, s)| s).collect())?
        .into_iter()
        .zip(ids)
        .map(|(m, id)| {
            let m = m.map_put("id", id)?;
            match crate::actors::stats::ISOLATED.get(&id).map(|e| *e) {
                Some((pid, n)) => {
                    rustler::atoms! { os_pid, restarts }
                    let child = Term::map_new(env).map_put(os_pid(), pid)?.map_put(restarts(), n)?;
                    m.map_put("isolated", child)
                }
                None => Ok(m),
            }
        })
        .collect::<NifResult<Vec<Term<'a>>>>()?;
    Ok((figures(executors)?, contexts).encode(env))
}

/// `console(Address) -> ok | {error, not_built | Message}`: starts the
/// tokio-console server (builds with `ERLANG_PYTHON_CONSOLE=1` only).
#[rustler::nif]
fn console<'a>(env: Env<'a>, addr: String) -> Term<'a> {
    rustler::atoms! { not_built }
    match crate::actors::trace::start_console(&addr) {
        Ok(()) => atoms::ok().encode(env),
        Err(e) if e == "not_built" => (atoms::error(), not_built()).encode(env),
        Err(e) => (atoms::error(), e).encode(env),
    }
}

/// `trace_config(Pid, Level, SlowUs) -> ok | {error, Message}`: request spans and
/// events at `Level` (0 off .. 5 trace) go to `Pid` as `{py_trace, ...}`; calls of
/// `SlowUs` microseconds or more are reported as slow.
#[rustler::nif]
fn trace_config<'a>(env: Env<'a>, to: LocalPid, level: u8, slow_us: u64) -> Term<'a> {
    match crate::actors::trace::configure(to, level, slow_us) {
        Ok(()) => atoms::ok().encode(env),
        Err(e) => (atoms::error(), e).encode(env),
    }
}

/// `trace_dropped() -> N`: trace entries dropped because the logger lagged.
#[rustler::nif]
fn trace_dropped() -> u64 {
    crate::actors::trace::dropped()
}

/// `info() -> map()`: version, mode and sizes; no version before the first start.
#[rustler::nif]
fn info<'a>(env: Env<'a>) -> NifResult<Term<'a>> {
    let (executors, contexts) = router::sizes();
    let mut map = Term::map_new(env);
    map = map.map_put("build_mode", py_runtime::build_mode().as_str())?;
    map = map.map_put("num_executors", executors)?;
    map = map.map_put("num_contexts", contexts)?;
    map = map.map_put("max_contexts", router::MAX_CONTEXTS)?;
    map = map.map_put("channels", crate::actors::channel::count())?;
    if let Some(i) = py_runtime::info() {
        map = map.map_put("version", i.version)?;
        map = map.map_put("mode", i.mode.as_str())?;
        map = map.map_put("subinterp_supported", i.subinterp_supported)?;
        map = map.map_put("gil_enabled", i.gil_enabled)?;
    }
    Ok(map)
}
