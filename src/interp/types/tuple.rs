//! `tuple` ↔ tuples.

use super::{items, pyerr, to_py as value_to_py, PyConv};
use crate::interp::conv_error::ConvError;
use crate::interp::value::Value;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

pub fn to_py<'py>(py: Python<'py>, values: &[Value], depth: usize) -> PyConv<'py> {
    let objs = values.iter().map(|v| value_to_py(py, v, depth + 1)).collect::<Result<Vec<_>, _>>()?;
    Ok(PyTuple::new(py, objs).map_err(pyerr)?.into_any())
}

pub fn from_py(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Option<Value>, ConvError> {
    match obj.cast::<PyTuple>() {
        Ok(t) => items(t.iter(), depth).map(|v| Some(Value::Tuple(v))),
        Err(_) => Ok(None),
    }
}
