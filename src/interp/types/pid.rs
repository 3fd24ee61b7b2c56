//! `erlang.Pid` ↔ pids. A Pid keeps the pid's external term format (`_ext`), so
//! it comes back as the very same pid.

use super::{pyerr, type_name, PyConv};
use crate::interp::conv_error::ConvError;
use crate::interp::value::Value;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

pub fn to_py<'py>(py: Python<'py>, ext: &[u8], text: &str) -> PyConv<'py> {
    let class = crate::interp::erlang_module::pid_class(py).map_err(pyerr)?;
    class.call1((PyBytes::new(py, ext), text)).map_err(pyerr)
}

/// `Some` if `obj` is an `erlang.Pid`.
pub fn from_py(obj: &Bound<'_, PyAny>) -> Result<Option<Value>, ConvError> {
    if type_name(obj) != "Pid" {
        return Ok(None);
    }
    let Ok(class) = crate::interp::erlang_module::pid_class(obj.py()) else { return Ok(None) };
    if !obj.is_instance(&class).unwrap_or(false) {
        return Ok(None);
    }
    let ext = obj.getattr("_ext").map_err(pyerr)?;
    let ext = ext.cast::<PyBytes>().map_err(|e| ConvError::Invalid(e.to_string()))?;
    // `_ext` may have been replaced since `Pid.__init__` checked it
    if !is_pid_ext(ext.as_bytes()) {
        return Err(ConvError::Invalid("an erlang.Pid must hold a pid's external format".into()));
    }
    let text = obj.str().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Some(Value::Pid { ext: ext.as_bytes().to_vec(), text }))
}

/// Whether `ext` starts as a pid's external term format does (version 131,
/// then `NEW_PID_EXT` or `PID_EXT`): the NIF decodes it, and no other term
/// may come back to Erlang through an `erlang.Pid`.
fn is_pid_ext(ext: &[u8]) -> bool {
    matches!(ext, [131, 88 | 103, _, ..])
}
