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
    let mut seen = Kinds::default();
    for (k, v) in dict.iter() {
        let key = value_from_py(&k, depth + 1)?;
        seen.note(&key);
        pairs.push((key, value_from_py(&v, depth + 1)?));
    }
    if (seen.strs && seen.bytes) || seen.nans {
        if let Some(n) = one_erlang_key(&pairs) {
            return Err(ConvError::Invalid(match &pairs[n].0 {
                Value::Str(s) => format!("a str key and a bytes key are the same binary key in Erlang: {s:?}"),
                Value::Bytes(b) => format!("a str key and a bytes key are the same binary key in Erlang: {:?}", String::from_utf8_lossy(b)),
                Value::Blob(b) => {
                    format!("a str key and a bytes key are the same binary key in Erlang: {:?}", String::from_utf8_lossy(b.bytes()))
                }
                _ => {
                    // As Python shows the key.
                    let shown = dict.keys().get_item(n).and_then(|k| k.repr()).map(|r| r.to_string_lossy().into_owned());
                    format!("two dict keys are the same key in Erlang: {}", shown.unwrap_or_default())
                }
            }));
        }
    }
    Ok(Some(Value::Map(pairs)))
}

/// What the keys hold, in them or in their tuples and frozensets: only keys
/// with text of both kinds, or a NaN, can be one key in Erlang and two in
/// Python, so only then are they compared.
#[derive(Default)]
struct Kinds {
    strs: bool,
    bytes: bool,
    nans: bool,
}

impl Kinds {
    fn note(&mut self, v: &Value) {
        match v {
            Value::Str(_) => self.strs = true,
            Value::Bytes(_) => self.bytes = true,
            Value::Blob(b) if b.text().is_some() => self.strs = true,
            Value::Blob(_) => self.bytes = true,
            Value::Float(f) if f.is_nan() => self.nans = true,
            Value::Tuple(items) | Value::List(items) => items.iter().for_each(|i| self.note(i)),
            _ => {}
        }
    }
}

/// Keys distinct in Python that are one key in Erlang are refused, as one
/// value would be dropped without a word: a `str` and a `bytes` of the same
/// content (both binaries), two NaNs (each NaN object is a key of its own in
/// Python; every NaN is `nan` in Erlang), and tuples and frozensets holding
/// such. The index of the first key that meets an earlier one.
fn one_erlang_key(pairs: &[(Value, Value)]) -> Option<usize> {
    let mut seen = std::collections::HashSet::new();
    // What Erlang will see, written out (a key that cannot be written is
    // refused later anyway).
    pairs.iter().position(|(k, _)| crate::interp::etf::encode(&as_erlang(k)).is_ok_and(|written| !seen.insert(written)))
}

/// `v` as Erlang will have it: text as bytes, every NaN the same.
fn as_erlang(v: &Value) -> Value {
    match v {
        Value::Str(s) => Value::Bytes(s.as_bytes().to_vec()),
        Value::Blob(b) => Value::Bytes(b.bytes().to_vec()),
        Value::Float(f) if f.is_nan() => Value::Float(f64::NAN),
        Value::Tuple(items) => Value::Tuple(items.iter().map(as_erlang).collect()),
        Value::List(items) => Value::List(items.iter().map(as_erlang).collect()),
        other => other.clone(),
    }
}
