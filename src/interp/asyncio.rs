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
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) || is_cancelled_error(py, &e) => 0.0,
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

/// The exception that cancels task `tid` (`asyncio.CancelledError`) if a
/// step of it runs now on some thread, else `None` (`erlang._task_running`).
pub fn running_task_exception(py: Python<'_>, tid: u64) -> Option<Bound<'_, PyAny>> {
    let class = erlang(py).ok()?.call_method1("_task_running", (tid,)).ok()?;
    (!class.is_none()).then_some(class)
}

/// Cancels task `tid` if it is still running.
pub fn cancel(py: Python<'_>, tid: u64) -> PyResult<()> {
    erlang(py)?.call_method1("_cancel", (tid,)).map(|_| ())
}

fn is_cancelled_error(py: Python<'_>, e: &PyErr) -> bool {
    py.import("asyncio").and_then(|m| m.getattr("CancelledError")).is_ok_and(|c| e.matches(py, c).unwrap_or(false))
}
