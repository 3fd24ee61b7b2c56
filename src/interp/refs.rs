//! Python objects kept for Erlang by reference (`#{return => ref}`).
//!
//! Each context keeps its objects in a dict of its own globals
//! (`__erlang_refs__`, keyed by a node-wide id), so they live exactly as long as
//! the context: a sub-interpreter's go when it ends, a namespace's when it is
//! forgotten. Erlang holds a NIF resource naming the context and the id; work on
//! it is routed to that context, and when the last Erlang copy is collected a
//! job deletes the entry there, with that interpreter's GIL held.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::atomic::{AtomicU64, Ordering};

const TABLE: &str = "__erlang_refs__";

fn table<'py>(globals: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
    if let Some(t) = globals.get_item(TABLE)? {
        if let Ok(d) = t.cast_into::<PyDict>() {
            return Ok(d);
        }
    }
    let d = PyDict::new(globals.py());
    globals.set_item(TABLE, &d)?;
    Ok(d)
}

static NEXT: AtomicU64 = AtomicU64::new(1);

/// Ids are given from `first` on (each child of a process-isolated context
/// starts in a block of ids of its own, past every earlier child's).
pub fn first_id(first: u64) {
    NEXT.store(first.max(1), Ordering::Relaxed);
}

/// Keeps `obj` in `globals`' table under a new id.
pub fn keep(globals: &Bound<'_, PyDict>, obj: &Bound<'_, PyAny>) -> PyResult<u64> {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    table(globals)?.set_item(id, obj)?;
    Ok(id)
}

/// The object kept under `id` in `globals`, if it is there.
pub fn get<'py>(globals: &Bound<'py, PyDict>, id: u64) -> PyResult<Option<Bound<'py, PyAny>>> {
    match globals.get_item(TABLE)? {
        Some(t) => Ok(t.cast_into::<PyDict>().ok().and_then(|t| t.get_item(id).ok().flatten())),
        None => Ok(None),
    }
}

/// Forgets `id` (its object goes if nothing else holds it).
pub fn release(globals: &Bound<'_, PyDict>, id: u64) {
    if let Ok(t) = table(globals) {
        let _ = t.del_item(id);
    }
}
