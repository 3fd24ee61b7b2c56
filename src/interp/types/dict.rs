//! `dict` ↔ maps.

use super::{from_py as value_from_py, to_py as value_to_py, PyConv};
use crate::interp::conv_error::ConvError;
use crate::interp::value::Value;
use pyo3::prelude::*;
use pyo3::types::PyDict;

pub fn to_py<'py>(py: Python<'py>, pairs: &[(Value, Value)], depth: usize) -> PyConv<'py> {
    let dict = PyDict::new(py);
    for (k, v) in pairs {
        let key = value_to_py(py, k, depth + 1)?;
        let value = value_to_py(py, v, depth + 1)?;
        dict.set_item(key, value).map_err(|e| ConvError::Invalid(format!("map key cannot be a dict key in Python: {e}")))?;
    }
    Ok(dict.into_any())
}

pub fn from_py(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Option<Value>, ConvError> {
    let Ok(dict) = obj.cast::<PyDict>() else { return Ok(None) };
    let mut pairs = Vec::with_capacity(dict.len());
    for (k, v) in dict.iter() {
        pairs.push((value_from_py(&k, depth + 1)?, value_from_py(&v, depth + 1)?));
    }
    Ok(Some(Value::Map(pairs)))
}
