//! `str` ↔ UTF-8 text; `bytes` and `bytearray` ↔ raw bytes.

use crate::interp::conv_error::ConvError;
use crate::interp::value::{Blob, Value};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};

pub fn str_to_py<'py>(py: Python<'py>, s: &str) -> Bound<'py, PyAny> {
    PyString::new(py, s).into_any()
}

pub fn bytes_to_py<'py>(py: Python<'py>, b: &[u8]) -> Bound<'py, PyAny> {
    PyBytes::new(py, b).into_any()
}

/// `Some` if `obj` is a str, bytes or bytearray.
pub fn from_py(obj: &Bound<'_, PyAny>) -> Result<Option<Value>, ConvError> {
    use crate::interp::conv_error::{bytes_cost, spend};
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_str().map_err(|e| ConvError::Invalid(format!("str is not encodable as UTF-8: {e}")))?;
        spend(bytes_cost(text.len()))?;
        return Ok(Some(if text.len() >= Blob::MIN { Blob::owned(text.as_bytes().to_vec(), true) } else { Value::Str(text.to_owned()) }));
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        spend(bytes_cost(b.as_bytes().len()))?;
        return Ok(Some(bytes(b.as_bytes().to_vec())));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        spend(bytes_cost(b.len()))?;
        return Ok(Some(bytes(b.to_vec())));
    }
    Ok(None)
}

/// Raw bytes going to Erlang: a large buffer as a [`Blob`], which the
/// binary made from it shares rather than copies.
fn bytes(b: Vec<u8>) -> Value {
    if b.len() >= Blob::MIN {
        Blob::owned(b, false)
    } else {
        Value::Bytes(b)
    }
}
