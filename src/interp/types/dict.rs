//! `dict` ↔ maps.

use super::{from_py as value_from_py, to_py as value_to_py, PyConv};
use crate::interp::conv_error::ConvError;
use crate::interp::value::Value;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// A dict of `pairs`. Keys distinct in Erlang that are one key in Python
/// (`a` and `<<"a">>`, `1` and `1.0`, `true` and `1`) are refused: one value
/// would be dropped without a word.
pub fn to_py<'py>(py: Python<'py>, pairs: &[(Value, Value)], depth: usize) -> PyConv<'py> {
    let dict = PyDict::new(py);
    for (k, v) in pairs {
        let key = value_to_py(py, k, depth + 1)?;
        let value = value_to_py(py, v, depth + 1)?;
        let before = dict.len();
        dict.set_item(&key, value).map_err(|e| ConvError::Invalid(format!("map key cannot be a dict key in Python: {e}")))?;
        if dict.len() == before {
            return Err(one_key(&key));
        }
    }
    Ok(dict.into_any())
}

/// The error for two keys that are one key in Python.
pub fn one_key(key: &Bound<'_, PyAny>) -> ConvError {
    let shown = key.repr().map(|r| r.to_string_lossy().into_owned()).unwrap_or_default();
    ConvError::Invalid(format!("two map keys are the same key in Python: {shown}"))
}

pub fn from_py(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Option<Value>, ConvError> {
    let Ok(dict) = obj.cast::<PyDict>() else { return Ok(None) };
    let mut pairs = Vec::with_capacity(dict.len());
    let (mut strs, mut bytes) = (false, false);
    for (k, v) in dict.iter() {
        let key = value_from_py(&k, depth + 1)?;
        strs |= matches!(key, Value::Str(_));
        bytes |= matches!(key, Value::Bytes(_));
        pairs.push((key, value_from_py(&v, depth + 1)?));
    }
    if strs && bytes {
        same_binary(&pairs)?;
    }
    Ok(Some(Value::Map(pairs)))
}

/// A `str` key and a `bytes` key of the same content are one binary key in
/// Erlang: refused, as one value would be dropped without a word.
fn same_binary(pairs: &[(Value, Value)]) -> Result<(), ConvError> {
    let mut seen = std::collections::HashSet::new();
    for (k, _) in pairs {
        let b = match k {
            Value::Str(s) => s.as_bytes(),
            Value::Bytes(b) => b.as_slice(),
            _ => continue,
        };
        if !seen.insert(b) {
            return Err(ConvError::Invalid(format!(
                "a str key and a bytes key are the same binary key in Erlang: {:?}",
                String::from_utf8_lossy(b)
            )));
        }
    }
    Ok(())
}
