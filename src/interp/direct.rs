//! A call run on the calling thread itself, with no hand-off: only on a
//! free-threaded Python (no GIL to take turns on) and only for the benchmark,
//! which compares it with the context threads' path (a dirty scheduler against
//! a pinned actor thread; see `docs/benchmarks.md`). Calls run in the main
//! interpreter's `__main__`. Built with the `test-hooks` feature only.

use super::exec::{self, CodeCache, Op, Outcome};
use super::runtime::{self, Mode};
use super::thread::PinnedInterp;
use super::value::{Failure, Request, Value};
use std::cell::RefCell;

thread_local! {
    /// This thread's state of the main interpreter and its compiled-code cache,
    /// made on first use and kept for the thread's life (dirty schedulers live
    /// as long as the node).
    static HERE: RefCell<Option<(CodeCache, PinnedInterp)>> = const { RefCell::new(None) };
}

/// Runs `req` here; `None` on builds that are not free-threaded.
pub fn run(req: &Request) -> Option<Result<Value, Failure>> {
    if runtime::mode() != Some(Mode::FreeThreaded) {
        return None;
    }
    Some(HERE.with(|here| {
        let mut here = here.borrow_mut();
        let (cache, interp) = here.get_or_insert_with(|| (CodeCache::default(), PinnedInterp::main()));
        interp.run(|py| {
            let g = exec::main_globals(py).map_err(|e| exec::python_failure(py, e))?;
            match exec::run(py, cache, &g, Op::Call, req)? {
                Outcome::Value(v) => Ok(v),
                _ => Ok(Value::None),
            }
        })
    }))
}
