//! `list` ↔ lists. `set` and `frozenset` become lists too (in iteration order):
//! Erlang has no set term.

use super::{items, pyerr, to_py as value_to_py, PyConv};
use crate::interp::conv_error::ConvError;
use crate::interp::value::Value;
use pyo3::prelude::*;
use pyo3::types::{PyFrozenSet, PyList, PySet};

pub fn to_py<'py>(py: Python<'py>, values: &[Value], depth: usize) -> PyConv<'py> {
    let objs = values.iter().map(|v| value_to_py(py, v, depth + 1)).collect::<Result<Vec<_>, _>>()?;
    Ok(PyList::new(py, objs).map_err(pyerr)?.into_any())
}

/// `Some` if `obj` is a list, set or frozenset.
pub fn from_py(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Option<Value>, ConvError> {
    if let Ok(list) = obj.cast::<PyList>() {
        return items(list.iter(), depth).map(|v| Some(Value::List(v)));
    }
    if let Ok(set) = obj.cast::<PySet>() {
        return items(set.iter(), depth).map(|v| Some(Value::List(v)));
    }
    if let Ok(set) = obj.cast::<PyFrozenSet>() {
        return items(set.iter(), depth).map(|v| Some(Value::List(v)));
    }
    Ok(None)
}
