//! `int` and `bool` ↔ integers and `true`/`false`. Integers of any size: those
//! beyond 64 bits through pyo3's `num-bigint` support (num-bigint 0.4 there,
//! 0.5 in [`Value`], as rustler has it: the two meet as signed bytes).

use super::{pyerr, PyConv};
use crate::interp::conv_error::ConvError;
use crate::interp::value::Value;
use num_bigint::BigInt;
use num_bigint_04::BigInt as PyBigInt;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};
use pyo3::IntoPyObjectExt;

pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyConv<'py> {
    match v {
        Value::Bool(b) => Ok(PyBool::new(py, *b).to_owned().into_any()),
        Value::Int(i) => Ok(PyInt::new(py, *i).into_any()),
        Value::BigInt(b) => PyBigInt::from_signed_bytes_le(&b.to_signed_bytes_le()).into_bound_py_any(py).map_err(pyerr),
        _ => unreachable!("int::to_py on {v:?}"),
    }
}

/// `Some` if `obj` is a bool or an int.
pub fn from_py(obj: &Bound<'_, PyAny>) -> Result<Option<Value>, ConvError> {
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Some(Value::Bool(b.is_true())));
    }
    let Ok(i) = obj.cast::<PyInt>() else { return Ok(None) };
    if let Ok(v) = i.extract::<i64>() {
        return Ok(Some(Value::Int(v)));
    }
    let big: PyBigInt = i.extract().map_err(pyerr)?;
    Ok(Some(Value::BigInt(BigInt::from_signed_bytes_le(&big.to_signed_bytes_le()))))
}
