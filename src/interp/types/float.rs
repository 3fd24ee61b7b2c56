//! `float` ↔ floats (NaN and the infinities are atoms on the Erlang side; see
//! `nif::types::float`).

use crate::interp::value::Value;
use pyo3::prelude::*;
use pyo3::types::PyFloat;

pub fn to_py(py: Python<'_>, f: f64) -> Bound<'_, PyAny> {
    PyFloat::new(py, f).into_any()
}

pub fn from_py(obj: &Bound<'_, PyAny>) -> Option<Value> {
    obj.cast::<PyFloat>().ok().map(|f| Value::Float(f.value()))
}
