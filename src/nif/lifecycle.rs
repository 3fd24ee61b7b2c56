//! Starting and stopping the Python side, and reading what it is.
//!
//! Both start and stop run on the actor runtime and answer the caller by message,
//! so the scheduler that asked never waits on Python initialisation or thread joins.

use crate::actors::{pool, runtime};
use crate::atoms;
use crate::interp::runtime as py_runtime;
use rustler::{Encoder, Env, LocalPid, NifResult, OwnedEnv, Term};

fn reply(to: LocalPid, tag: rustler::env::SavedTerm, env: OwnedEnv, result: Result<(), String>) {
    let mut env = env;
    let _ = env.send_and_clear(&to, |e| {
        let tag = tag.load(e);
        match result {
            Ok(()) => (atoms::py_started(), tag, atoms::ok()).encode(e),
            Err(msg) => (atoms::py_started(), tag, (atoms::error(), msg)).encode(e),
        }
    });
}

/// `start(NumExecutors, Tag) -> ok`; later `{py_started, Tag, ok | {error, Msg}}`.
#[rustler::nif]
fn start<'a>(env: Env<'a>, num_executors: usize, tag: Term<'a>) -> NifResult<Term<'a>> {
    let owned = OwnedEnv::new();
    let tag = owned.save(tag);
    let pid = env.pid();
    runtime::get().spawn(async move {
        let init = tokio::task::spawn_blocking(py_runtime::ensure_initialized).await;
        let result = match init {
            Ok(Ok(_)) => pool::start(num_executors).await,
            Ok(Err(e)) => Err(e),
            Err(e) => Err(format!("Python initialisation panicked: {e}")),
        };
        reply(pid, tag, owned, result);
    });
    Ok(atoms::ok().encode(env))
}

/// `stop(Tag) -> ok`; later `{py_started, Tag, ok}` once every executor ended.
#[rustler::nif]
fn stop<'a>(env: Env<'a>, tag: Term<'a>) -> NifResult<Term<'a>> {
    let owned = OwnedEnv::new();
    let tag = owned.save(tag);
    let pid = env.pid();
    runtime::get().spawn(async move {
        pool::stop().await;
        reply(pid, tag, owned, Ok(()));
    });
    Ok(atoms::ok().encode(env))
}

/// `info() -> map()`: version, mode and pool size, `#{}` before the first start.
#[rustler::nif]
fn info<'a>(env: Env<'a>) -> NifResult<Term<'a>> {
    let mut map = Term::map_new(env);
    map = map.map_put("build_mode", py_runtime::build_mode().as_str())?;
    map = map.map_put("num_executors", pool::size())?;
    if let Some(i) = py_runtime::info() {
        map = map.map_put("version", i.version)?;
        map = map.map_put("mode", i.mode.as_str())?;
        map = map.map_put("subinterp_supported", i.subinterp_supported)?;
        map = map.map_put("gil_enabled", i.gil_enabled)?;
    }
    Ok(map)
}
