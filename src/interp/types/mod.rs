//! Python objects ↔ [`Value`]s, one file per Python type (as rustler's `types/`
//! does for terms). Each file has the two directions of its type; this one
//! dispatches. Both directions stop at [`MAX_DEPTH`] levels of nesting, which
//! also catches self-referencing Python containers. Every function here runs
//! with the GIL of the interpreter the objects belong to held (`py`).

mod dict;
mod float;
mod int;
mod list;
mod pid;
mod reference;
mod text;
mod tuple;

use super::conv_error::{ConvError, MAX_DEPTH};
use super::value::Value;
use pyo3::ffi;
use pyo3::prelude::*;

/// A converted object, or why it could not be converted.
pub type PyConv<'py> = Result<Bound<'py, PyAny>, ConvError>;

pub(crate) fn pyerr(e: PyErr) -> ConvError {
    ConvError::Invalid(e.to_string())
}

/// A new Python object of the attached interpreter for `value`.
pub fn to_py<'py>(py: Python<'py>, value: &Value, depth: usize) -> PyConv<'py> {
    if depth > MAX_DEPTH {
        return Err(ConvError::deep());
    }
    match value {
        Value::None => Ok(py.None().into_bound(py)),
        Value::Bool(_) | Value::Int(_) | Value::BigInt(_) => int::to_py(py, value),
        Value::Float(f) => Ok(float::to_py(py, *f)),
        Value::Str(s) => Ok(text::str_to_py(py, s)),
        Value::Bytes(b) => Ok(text::bytes_to_py(py, b)),
        Value::Blob(b) => Ok(match b.text() {
            Some(t) => text::str_to_py(py, t),
            None => text::bytes_to_py(py, b.bytes()),
        }),
        Value::List(items) => list::to_py(py, items, depth),
        Value::Tuple(items) => tuple::to_py(py, items, depth),
        Value::Map(pairs) => dict::to_py(py, pairs, depth),
        Value::Pid { ext, text } => pid::to_py(py, ext, text),
        Value::Ref { id, .. } => reference::to_py(py, *id),
        Value::Channel(ch) => reference::channel_to_py(py, ch),
    }
}

/// A new dict of the attached interpreter for `pairs` (a map's, or an eval's
/// locals).
pub fn dict_to_py<'py>(py: Python<'py>, pairs: &[(Value, Value)]) -> Result<Bound<'py, pyo3::types::PyDict>, ConvError> {
    let d = dict::to_py(py, pairs, 0)?;
    d.cast_into::<pyo3::types::PyDict>().map_err(|e| ConvError::Invalid(e.to_string()))
}

/// The [`Value`] of a Python object. At most `max_terms` terms are made,
/// counted from the outermost conversion (see [`super::conv_error::count`]):
/// a container shared many times over is written out in full each time.
pub fn from_py(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Value, ConvError> {
    if depth > MAX_DEPTH {
        return Err(ConvError::deep());
    }
    let _counted = (depth == 0).then(|| super::conv_error::count(super::conv_error::max_terms()));
    super::conv_error::spend(1)?;
    if obj.is_none() {
        return Ok(Value::None);
    }
    if let Some(v) = int::from_py(obj)? {
        return Ok(v);
    }
    if let Some(v) = float::from_py(obj) {
        return Ok(v);
    }
    if let Some(v) = text::from_py(obj)? {
        return Ok(v);
    }
    if let Some(v) = list::from_py(obj, depth)? {
        return Ok(v);
    }
    if let Some(v) = tuple::from_py(obj, depth)? {
        return Ok(v);
    }
    if let Some(v) = dict::from_py(obj, depth)? {
        return Ok(v);
    }
    if let Some(v) = pid::from_py(obj)? {
        return Ok(v);
    }
    Err(ConvError::Unsupported(type_name(obj)))
}

/// Items of a Python iterable of containers, converted one level deeper.
fn items<'py>(it: impl Iterator<Item = Bound<'py, PyAny>>, depth: usize) -> Result<Vec<Value>, ConvError> {
    it.map(|item| from_py(&item, depth + 1)).collect()
}

/// The type name Python shows for `obj` (`__name__` of its class).
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    // SAFETY: the caller holds the GIL of the interpreter owning `obj` (it has a
    // Bound); tp_name is a NUL-terminated string owned by the type, read only.
    let full = unsafe {
        let tp = ffi::Py_TYPE(obj.as_ptr());
        std::ffi::CStr::from_ptr((*tp).tp_name).to_string_lossy().into_owned()
    };
    match full.rsplit_once('.') {
        Some((_, last)) => last.to_string(),
        None => full,
    }
}
