//! Each context's asyncio event loop, reached through the `erlang` module's
//! helpers (`_spawn`, `_tick`, `_cancel`, `_loop_fd`; Python source in
//! `erlang_module`). The loop is stepped only by the context's own thread, one
//! non-blocking tick at a time (`actors::looper` decides when).

use pyo3::prelude::*;

fn erlang(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    py.import("sys")?.getattr("modules")?.get_item("erlang")
}

/// Schedules `value` as task `tid` on loop `key` (collected to a list first if
/// `collect`: an async iterable). False: it is not awaitable (not an async
/// iterable).
pub fn spawn(py: Python<'_>, tid: u64, key: u32, value: &Bound<'_, PyAny>, collect: bool) -> PyResult<bool> {
    erlang(py)?.call_method1("_spawn", (tid, key, value, collect))?.extract()
}

/// One non-blocking step of loop `key`; how long it may sleep afterwards, as
/// `erlang._tick` says (seconds; 0 ready; -2 until its selector is ready; -1 idle).
/// An interruption (`py:interrupt/1`, a stop, a task's cancellation) that
/// lands outside a task's step, in the step's own code, is dropped and the
/// loop ticked again at once:
/// its tasks must not be left waiting for a tick nobody asks for.
pub fn tick(py: Python<'_>, key: u32) -> f64 {
    match erlang(py).and_then(|m| m.call_method1("_tick", (key,))).and_then(|s| s.extract()) {
        Ok(s) => s,
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) || is_cancelled_error(py, &e) => {
            // Raised before `_step`'s own handlers (3.13 may skip them: see
            // the README): its loop must not stay this thread's running one.
            let _ = py.import("asyncio.events").and_then(|m| m.call_method1("_set_running_loop", (py.None(),)));
            0.0
        }
        Err(e) => {
            e.print(py);
            -1.0
        }
    }
}

/// The selector fd of loop `key`; `None` if it has no loop (never made, or its
/// context stopped: a late step does not bring it back).
pub fn loop_fd(py: Python<'_>, key: u32) -> Option<i32> {
    let fd: i32 = erlang(py).ok()?.call_method1("_loop_fd", (key,)).ok()?.extract().ok()?;
    (fd >= 0).then_some(fd)
}

/// The loops of contexts `keys`, which stopped, taken out of the table (a
/// context started later under one of these keys gets a new loop); with
/// `thread`, only those that thread made (`erlang._take_loops`). End them
/// with [`end_loops`].
pub fn take_loops(py: Python<'_>, keys: &[u32], thread: Option<u64>) -> Option<Py<PyAny>> {
    // An interpreter without the module never ran a task.
    let m = erlang(py).ok()?;
    match m.call_method1("_take_loops", (keys.to_vec(), thread)) {
        Ok(loops) => Some(loops.unbind()),
        Err(e) => {
            e.print(py);
            None
        }
    }
}

/// Ends loops [`take_loops`] took: their tasks are cancelled and given steps
/// to end (`finally` clauses run), and the loops closed (`erlang._end_loops`).
pub fn end_loops(py: Python<'_>, loops: Option<Py<PyAny>>) {
    let (Some(loops), Ok(m)) = (loops, erlang(py)) else { return };
    if let Err(e) = m.call_method1("_end_loops", (loops,)) {
        e.print(py);
    }
}

/// What to raise in the thread stepping loop `key` now: `KeyboardInterrupt`
/// if some task's coroutine runs there (`task` `None`),
/// `asyncio.CancelledError` if task `task`'s does; `None` if none such runs
/// (the loop's own code, a task's own bookkeeping around its coroutine, or
/// nothing). Runs no bytecode: modules, the loop and the current task are
/// found by dict lookups (`asyncio.tasks._current_tasks`, a dict by loop up
/// to 3.13, also where `asyncio.current_task` is Python, as on 3.11), the
/// task's coroutine and whether it runs by C methods and getters; nothing
/// allocated is tracked by the GC, so no collection (no `__del__`) runs here.
pub fn step_exception(py: Python<'_>, key: u32, task: Option<u64>) -> Option<Bound<'_, PyAny>> {
    use pyo3::types::PyDict;
    // SAFETY: attached (`py`); a borrowed reference to this interpreter's
    // `sys.modules`, made owned here.
    let modules = unsafe { Bound::from_borrowed_ptr_or_opt(py, pyo3::ffi::PyImport_GetModuleDict()) }?;
    let modules = modules.cast_into::<PyDict>().ok()?;
    let erlang = modules.get_item("erlang").ok()??;
    let tasks = modules.get_item("asyncio.tasks").ok()??;
    let lp = erlang.getattr("_loops").ok()?.cast_into::<PyDict>().ok()?.get_item(key).ok()??;
    let current = tasks.getattr("_current_tasks").ok()?.cast_into::<PyDict>().ok()?.get_item(&lp).ok()??;
    // The task is current also while it calls the loop's (Python)
    // `call_soon` after its coroutine yielded: an exception there would lose
    // its next step. Only its coroutine running counts.
    let coro = current.call_method0("get_coro").ok()?;
    // SAFETY: attached; type checks of a live object.
    let running = match unsafe { (pyo3::ffi::PyCoro_CheckExact(coro.as_ptr()), pyo3::ffi::PyGen_Check(coro.as_ptr())) } {
        (0, 0) => return None,
        (0, _) => "gi_running", // a generator-based coroutine (an awaitable wrapped)
        _ => "cr_running",
    };
    if !coro.getattr(running).and_then(|r| r.is_truthy()).unwrap_or(false) {
        return None;
    }
    match task {
        None => Some(py.get_type::<pyo3::exceptions::PyKeyboardInterrupt>().into_any()),
        Some(tid) => {
            let t = erlang.getattr("_tasks").ok()?.cast_into::<PyDict>().ok()?.get_item(tid).ok()??;
            if !t.is(&current) {
                return None;
            }
            modules.get_item("asyncio.exceptions").ok()??.getattr("CancelledError").ok()
        }
    }
}

/// Cancels task `tid` if it is still running.
pub fn cancel(py: Python<'_>, tid: u64) -> PyResult<()> {
    erlang(py)?.call_method1("_cancel", (tid,)).map(|_| ())
}

fn is_cancelled_error(py: Python<'_>, e: &PyErr) -> bool {
    py.import("asyncio").and_then(|m| m.getattr("CancelledError")).is_ok_and(|c| e.matches(py, c).unwrap_or(false))
}
