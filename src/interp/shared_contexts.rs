//! Contexts that share the main interpreter (`multi_executor` mode): each is its
//! own globals dict, served by whichever executor takes the job.
//!
//! The table's mutex is held only for a lookup or a swap, never while waiting
//! for the GIL: [`forget`] takes entries out without it.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Mutex;

static GLOBALS: Mutex<Vec<Option<Py<PyDict>>>> = Mutex::new(Vec::new());

/// The globals of context `id` (1-based), created empty on first use.
pub fn globals(py: Python<'_>, id: u32) -> PyResult<Bound<'_, PyDict>> {
    let mut table = GLOBALS.lock().unwrap_or_else(|e| e.into_inner());
    let i = id as usize;
    if table.len() <= i {
        table.resize_with(i + 1, || None);
    }
    if let Some(g) = &table[i] {
        return Ok(g.bind(py).clone());
    }
    let g = super::exec::fresh_globals(py)?;
    super::setup::apply_globals(py, &g).map_err(pyo3::exceptions::PyImportError::new_err)?;
    table[i] = Some(g.clone().unbind());
    Ok(g)
}

/// Forgets the globals and asyncio loops of contexts `ids` (they were stopped
/// or replaced), calls `taken` once both are out of their tables (a context
/// started from then on under one of these ids makes its own), then ends the
/// loops' tasks, which may take a while (their `finally` clauses run). Takes
/// the main interpreter's GIL itself; call from a thread that may block.
pub fn forget(ids: &[u32], taken: impl FnOnce()) {
    if ids.is_empty() || crate::interp::runtime::info().is_none() {
        taken();
        return;
    }
    // Out of the table at once, without the GIL, which code of a stopped
    // context may hold for long: a context started under one of these ids
    // from now on makes its own. Dropped below, with the GIL.
    let old: Vec<Py<PyDict>> = {
        let mut table = GLOBALS.lock().unwrap_or_else(|e| e.into_inner());
        ids.iter().filter_map(|id| table.get_mut(*id as usize).and_then(Option::take)).collect()
    };
    Python::attach(|py| {
        let loops = super::asyncio::take_loops(py, ids, None);
        taken();
        // Their tasks end with their globals still alive (held here and by
        // their frames).
        super::asyncio::end_loops(py, loops);
        // Dropped here, with the GIL of the main interpreter they belong to (a
        // call of the context still running keeps its dict until it returns).
        drop(old);
    });
}
