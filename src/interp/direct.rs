//! A call run on the calling thread itself, with no hand-off: only on a
//! free-threaded Python (no GIL to take turns on) and only for the benchmark,
//! which compares it with the context threads' path (a dirty scheduler against
//! a pinned actor thread; see `docs/benchmarks.md`). Calls run in the main
//! interpreter's `__main__`.

use super::exec::{self, CodeCache, Op};
use super::runtime::{self, Mode};
use super::thread::PinnedInterp;
use crate::atoms;
use rustler::{Encoder, Env, Term};
use std::cell::RefCell;

thread_local! {
    /// This thread's state of the main interpreter and its compiled-code cache,
    /// made on first use and kept for the thread's life (dirty schedulers live
    /// as long as the node).
    static HERE: RefCell<Option<(CodeCache, PinnedInterp)>> = const { RefCell::new(None) };
}

/// Runs `op` with `payload` here and returns `{ok, Value} | {error, Reason}`, or
/// `{error, not_free_threaded}` on other builds.
pub fn run<'a>(env: Env<'a>, op: Op, payload: Term<'a>) -> Term<'a> {
    rustler::atoms! { not_free_threaded }
    if !runtime::info().is_some_and(|i| i.mode == Mode::FreeThreaded) {
        return (atoms::error(), not_free_threaded()).encode(env);
    }
    HERE.with(|here| {
        let mut here = here.borrow_mut();
        let (cache, interp) = here.get_or_insert_with(|| (CodeCache::default(), PinnedInterp::main()));
        interp.run(|py| {
            let result = exec::main_globals(py)
                .map_err(|e| exec::python_failure(py, env, e))
                .and_then(|g| exec::run(py, env, cache, &g, op, payload));
            match result {
                Ok(v) => (atoms::ok(), v).encode(env),
                Err(f) => (atoms::error(), f.reason).encode(env),
            }
        })
    })
}
