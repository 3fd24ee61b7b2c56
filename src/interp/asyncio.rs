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
pub fn tick(py: Python<'_>, key: u32) -> PyResult<f64> {
    erlang(py)?.call_method1("_tick", (key,))?.extract()
}

/// The selector fd of loop `key` (created on first use).
pub fn loop_fd(py: Python<'_>, key: u32) -> PyResult<i32> {
    erlang(py)?.call_method1("_loop_fd", (key,))?.extract()
}

/// Contexts `keys` stopped: their loops are forgotten, their tasks cancelled
/// and given steps to end, and the loops closed (`erlang._drop_loops`).
/// Nothing for a context that had none.
pub fn drop_loops(py: Python<'_>, keys: &[u32]) {
    // An interpreter without the module never ran a task.
    let Ok(m) = erlang(py) else { return };
    if let Err(e) = m.call_method1("_drop_loops", (keys.to_vec(),)) {
        e.print(py);
    }
}

/// Cancels task `tid` if it is still running.
pub fn cancel(py: Python<'_>, tid: u64) -> PyResult<()> {
    erlang(py)?.call_method1("_cancel", (tid,)).map(|_| ())
}
