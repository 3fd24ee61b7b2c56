//! What a pinned actor's thread owns on the Python side: its interpreter (a
//! thread state of the main interpreter, or a whole sub-interpreter), the
//! globals of its context, and its compiled-code cache. Every method attaches to
//! the interpreter, does its Python work and detaches; what goes in and out is
//! plain Rust data. So `actors::pinned` drives Python without touching a Python
//! object.
//!
//! A `Host` is `!Send` (it holds a `PinnedInterp`): made, used and dropped on
//! its actor's thread.

use super::bridge::{Caller, Place};
use super::exec::{self, CodeCache, Op, Outcome};
use super::thread::{Kind, PinnedInterp};
use super::types::from_py;
use super::value::{Failure, Request, Value};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Arc;

thread_local! {
    /// The context this thread serves (0: an executor), for log metadata.
    static THREAD_CONTEXT: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// The context the calling thread serves, if it is a pinned actor's.
pub fn thread_context() -> Option<u32> {
    THREAD_CONTEXT.get()
}

/// An interpreter, the globals of its context and its code cache.
pub struct Host {
    cache: CodeCache,
    /// The context's own globals (none for an executor: it serves the main
    /// interpreter's `__main__` and the shared contexts' dicts).
    globals: Option<Py<PyDict>>,
    /// Its interpreter and OS thread, as CPython identifies them.
    ids: (usize, u64),
    // Declared last: ended after the objects above were released.
    interp: PinnedInterp,
}

/// One step of a stream.
pub enum Pulled {
    Item(Value),
    /// Exhausted.
    End,
    /// It raised, or an item could not cross (the stream is closed).
    Failed(Failure),
    /// No such stream in this interpreter (its context was replaced).
    Gone,
}

impl Host {
    /// An executor's: a thread state of the main interpreter.
    pub fn executor() -> Host {
        THREAD_CONTEXT.set(Some(0));
        Host::new(PinnedInterp::main(), false).expect("a main-interpreter thread state needs no setup that can fail")
    }

    /// A context's: a sub-interpreter (its `__main__` is the context's globals),
    /// or on a free-threaded build a main-interpreter thread state with a fresh
    /// globals dict.
    pub fn context(id: u32) -> Result<Host, String> {
        THREAD_CONTEXT.set(Some(id));
        Host::new(new_interp()?, true)
    }

    fn new(interp: PinnedInterp, own_globals: bool) -> Result<Host, String> {
        let made = interp.run(|py| -> Result<_, String> {
            let globals = match (own_globals, interp.kind()) {
                (false, _) => None,
                (true, Kind::Sub) => {
                    // A sub-interpreter has a sys.path, modules and logging of its own.
                    super::setup::apply_interpreter(py)?;
                    super::setup::apply_logging(py);
                    Some(exec::main_globals(py).map_err(|e| e.to_string())?)
                }
                (true, Kind::Main) => Some(exec::fresh_globals(py).map_err(|e| e.to_string())?),
            };
            if let Some(g) = &globals {
                super::setup::apply_globals(py, g)?;
            }
            Ok((super::interrupt::here(py), globals.map(Bound::unbind)))
        });
        // On failure the globals were dropped inside `run`, attached to the
        // interpreter they belong to.
        let (ids, globals) = made?;
        Ok(Host { cache: CodeCache::default(), globals, ids, interp })
    }

    /// Its interpreter (address) and thread (CPython's identifier).
    pub fn ids(&self) -> (usize, u64) {
        self.ids
    }

    /// Runs `op` with `req` in the globals `place` names; `caller` receives the
    /// `erlang.call`s its Python code makes.
    pub fn serve(&mut self, place: Place, op: Op, req: &Request, caller: Arc<dyn Caller>) -> Result<Outcome, Failure> {
        let Host { cache, globals, interp, .. } = self;
        interp.run(|py| {
            let g = place_globals(py, globals, place).map_err(|e| exec::python_failure(py, e))?;
            let _serving = super::callback::enter(py, caller, &g);
            super::interrupt::delivered(py, exec::run(py, cache, &g, op, req))
        })
    }

    /// Releases the object kept by reference under `id` in `place`'s globals.
    pub fn release_ref(&self, place: Place, id: u64) {
        let globals = &self.globals;
        self.interp.run(|py| {
            if let Ok(g) = place_globals(py, globals, place) {
                super::refs::release(&g, id);
            }
        })
    }

    /// Drops an interruption Python did not deliver before the job ended.
    pub fn clear_pending_interrupt(&self) {
        self.interp.run(super::interrupt::clear_pending);
    }

    /// One step of asyncio loop `key`: how long it may sleep (seconds; see
    /// `interp::asyncio::tick`) and its selector's fd.
    pub fn loop_tick(&self, place: Place, key: u32) -> Option<(f64, i32)> {
        let globals = &self.globals;
        self.interp.run(|py| {
            // Its tasks' `__main__` is the context's globals (see `erlang._share_main`).
            let g = place_globals(py, globals, place).ok();
            let _step = g.as_ref().map(|g| super::callback::stepping(py, g));
            let sleep = super::asyncio::tick(py, key);
            super::asyncio::loop_fd(py, key).map(|fd| (sleep, fd))
        })
    }

    /// The selector fd of asyncio loop `key`.
    pub fn loop_fd(&self, key: u32) -> Option<i32> {
        self.interp.run(|py| super::asyncio::loop_fd(py, key))
    }

    /// Cancels asyncio task `tid` (delivered by its loop's next step).
    pub fn cancel_task(&self, tid: u64) {
        self.interp.run(|py| {
            let _ = super::asyncio::cancel(py, tid);
        });
    }

    /// Closes stream `id` (a generator's `finally` runs).
    pub fn stream_close(&self, id: u64) {
        self.interp.run(|py| super::stream::close(py, id));
    }

    /// Takes up to `max` steps of stream `id`, handing each to `each` (with the
    /// interpreter attached: keep it short); stops after the first that is not an
    /// item, when `each` answers false (the stream was cancelled), or once the
    /// batch has run [`super::stream::PULL_TIME`].
    pub fn pull(&self, place: Place, id: u64, max: u64, mut each: impl FnMut(Pulled) -> bool) {
        use super::stream::Next;
        let globals = &self.globals;
        self.interp.run(|py| {
            // The generator's `__main__` is the context's globals.
            let g = place_globals(py, globals, place).ok();
            let _step = g.as_ref().map(|g| super::callback::stepping(py, g));
            // From the interpreter taken, not from the wait for it.
            let began = std::time::Instant::now();
            for _ in 0..max {
                let step = match super::stream::next(py, id) {
                    Next::Item(obj) => match from_py(&obj, 0) {
                        Ok(v) => Pulled::Item(v),
                        Err(e) => {
                            super::stream::close(py, id);
                            Pulled::Failed(Failure::from(e))
                        }
                    },
                    Next::End => Pulled::End,
                    Next::Failed(e) => Pulled::Failed(exec::python_failure(py, e)),
                    Next::Gone => Pulled::Gone,
                };
                let last = !matches!(step, Pulled::Item(_));
                if !each(step) || last || began.elapsed() >= super::stream::PULL_TIME {
                    return;
                }
            }
        })
    }
}

/// The globals `place` names, in the interpreter `py` is attached to.
fn place_globals<'py>(py: Python<'py>, own: &Option<Py<PyDict>>, place: Place) -> PyResult<Bound<'py, PyDict>> {
    match place {
        Place::Own => match own {
            Some(g) => Ok(g.bind(py).clone()),
            None => exec::main_globals(py),
        },
        Place::Main => exec::main_globals(py),
        Place::Shared(id) => super::shared_contexts::globals(py, id),
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let globals = self.globals.take();
        let cache = &mut self.cache;
        let shared = self.interp.kind() == Kind::Main;
        self.interp.run(|py| {
            // A context's asyncio tasks end while its globals and threads
            // are whole (an executor's loops are its contexts': see
            // `shared_contexts::forget`). Only the loop this thread made: a
            // context that replaced this one under the same id while it was
            // ending (free-threaded builds share one table) keeps its own.
            if let Some(key) = thread_context().filter(|k| *k != 0) {
                let loops = super::asyncio::take_loops(py, &[key], Some(self.ids.1));
                super::asyncio::end_loops(py, loops);
            }
            cache.release(py);
            // A context of the main interpreter (free-threaded builds): its
            // dict is emptied first. A function defined there refers back to
            // it, and on a free-threaded build such a cycle was not collected
            // (every stop of a context that had defined a function kept all its
            // names: 50 MB per stop with a 50 MB bytearray). A sub-interpreter's
            // is left to its teardown (its atexit functions may still use it).
            if let (true, Some(g)) = (shared, &globals) {
                g.bind(py).clear();
            }
            drop(globals);
            if !shared {
                end_threads(py);
            }
        });
    }
}

/// How long a stopping sub-interpreter's Python threads get to end by
/// themselves before `SystemExit` is raised in them.
const THREADS_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Waits up to [`THREADS_GRACE`] for every other Python thread of this
/// sub-interpreter to end, then asks those left to end by raising `SystemExit`
/// in them: the interpreter's end waits for all of them, and one that loops
/// (`while True: time.sleep(1)`) held the context's stop for its whole grace,
/// then left its OS thread and interpreter behind for good. A thread that
/// catches `SystemExit` still can.
fn end_threads(py: Python<'_>) {
    let Ok(Some(threading)) = py
        .import("sys")
        .and_then(|s| s.getattr("modules"))
        .and_then(|m| m.call_method1("get", ("threading",)).map(|t| (!t.is_none()).then_some(t)))
    else {
        return;
    };
    // By identifier: `threading.current_thread()` would make a dummy thread
    // object for this thread, whose finalizer fails at the interpreter's end.
    let Ok(me) = threading.call_method0("get_ident").and_then(|i| i.extract::<u64>()) else { return };
    // This thread's own dummy thread object (made when its code called
    // `current_thread()`, as logging does) is dropped now, while `threading`
    // is whole: 3.13 drops it at the thread state's end, after the module's
    // globals are gone, and printed a `TypeError` for each context stopped.
    if let Ok(info) = threading.getattr("_thread_local_info") {
        if info.hasattr("_track_dummy_thread_ref").unwrap_or(false) {
            let _ = info.delattr("_track_dummy_thread_ref");
        }
    }
    let Ok(all) = threading.call_method0("enumerate").and_then(|a| a.try_iter().map(|i| i.flatten().collect::<Vec<_>>())) else {
        return;
    };
    let ident = |t: &Bound<'_, PyAny>| t.getattr("ident").and_then(|i| i.extract::<Option<u64>>()).ok().flatten();
    // Only threads its code started: not the objects `threading` keeps for
    // the interpreter's first thread or for threads it did not start (a
    // dummy one is alive for ever: waiting for it would take the whole grace).
    let foreign = |t: &Bound<'_, PyAny>| {
        ["_DummyThread", "_MainThread"].iter().any(|c| threading.getattr(*c).and_then(|c| t.is_instance(&c)).unwrap_or(false))
    };
    let others: Vec<_> = all.into_iter().filter(|t| ident(t) != Some(me) && !foreign(t)).collect();
    // Not `join`: it calls `current_thread()` too.
    let alive = |t: &Bound<'_, PyAny>| t.call_method0("is_alive").and_then(|a| a.is_truthy()).unwrap_or(false);
    let deadline = std::time::Instant::now() + THREADS_GRACE;
    while others.iter().any(alive) && std::time::Instant::now() < deadline {
        py.detach(|| std::thread::sleep(std::time::Duration::from_millis(5)));
    }
    for t in others {
        if !alive(&t) {
            continue;
        }
        let Some(ident) = ident(&t) else { continue };
        // SAFETY: this interpreter's GIL is held (`py`); the call looks the
        // identifier up among this interpreter's thread states and sets the
        // exception on the one found (none: nothing happens). SystemExit is a
        // static builtin shared by every interpreter.
        unsafe {
            pyo3::ffi::PyThreadState_SetAsyncExc(ident as _, pyo3::ffi::PyExc_SystemExit);
        }
    }
}

#[cfg(all(Py_3_12, not(Py_GIL_DISABLED)))]
fn new_interp() -> Result<PinnedInterp, String> {
    PinnedInterp::new_subinterpreter()
}

#[cfg(Py_GIL_DISABLED)]
fn new_interp() -> Result<PinnedInterp, String> {
    Ok(PinnedInterp::main())
}

#[cfg(not(any(Py_3_12, Py_GIL_DISABLED)))]
fn new_interp() -> Result<PinnedInterp, String> {
    Err("contexts of this Python share the main interpreter and have no actor".into())
}
