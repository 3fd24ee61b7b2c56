//! The iterators of streams in flight (`py:stream_start/3,4`), kept in the
//! interpreter they belong to: a dict `erlang._streams` keyed by stream id, so
//! they are only touched with that interpreter's GIL and go with it when the
//! context stops.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator};
use std::time::Duration;

/// How long one batch of a stream's steps may run: a generator that is slow
/// to yield then takes one job per few items, so the other requests of its
/// context, and a cancel or its consumer's death, wait for at most this and
/// the step under way, not for a whole batch.
pub const PULL_TIME: Duration = Duration::from_millis(5);

fn table<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    let module = py.import("sys")?.getattr("modules")?.get_item("erlang")?;
    if let Ok(d) = module.getattr("_streams") {
        if let Ok(d) = d.cast_into::<PyDict>() {
            return Ok(d);
        }
    }
    let d = PyDict::new(py);
    module.setattr("_streams", &d)?;
    Ok(d)
}

/// Keeps `iter(value)` as stream `id`. `Err(None)`: not iterable; `Err(Some(e))`:
/// Python failed otherwise.
pub fn register(py: Python<'_>, id: u64, value: &Bound<'_, PyAny>) -> Result<(), Option<PyErr>> {
    let it = value.try_iter().map_err(|_| None)?;
    table(py).and_then(|t| t.set_item(id, it)).map_err(Some)
}

/// What the next step of a stream gave.
pub enum Next<'py> {
    Item(Bound<'py, PyAny>),
    /// The iterator is exhausted (and forgotten).
    End,
    /// It raised (and is forgotten).
    Failed(PyErr),
    /// No such stream in this interpreter (its context was replaced).
    Gone,
}

/// The next item of stream `id`.
pub fn next(py: Python<'_>, id: u64) -> Next<'_> {
    let t = match table(py) {
        Ok(t) => t,
        Err(e) => return Next::Failed(e),
    };
    let it = match t.get_item(id) {
        Ok(Some(it)) => it,
        Ok(None) => return Next::Gone,
        Err(e) => return Next::Failed(e),
    };
    let mut it = match it.cast_into::<PyIterator>() {
        Ok(it) => it,
        Err(e) => return Next::Failed(e.into()),
    };
    match it.next() {
        Some(Ok(item)) => Next::Item(item),
        Some(Err(e)) => {
            let _ = t.del_item(id);
            Next::Failed(e)
        }
        None => {
            let _ = t.del_item(id);
            Next::End
        }
    }
}

/// Forgets stream `id` and closes its iterator (a generator's `finally` runs).
pub fn close(py: Python<'_>, id: u64) {
    let Ok(t) = table(py) else { return };
    if let Ok(Some(it)) = t.get_item(id) {
        let _ = t.del_item(id);
        if it.hasattr("close").unwrap_or(false) {
            if let Err(e) = it.call_method0("close") {
                // A generator that raises on close: nobody waits for it any more.
                e.write_unraisable(py, Some(&it));
            }
        }
    }
}
