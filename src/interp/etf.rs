//! Erlang external term format → Python objects, directly.
//!
//! Stored state is kept as external term format. Reading it back into an
//! environment with `enif_binary_to_term` would build large maps with the
//! emulator's hash-map code, which crashes the node (in `erts_qsort`, OTP 25) on
//! a thread that is not a scheduler, as every interpreter thread is. So Python
//! reads decode the bytes here, following the same table as [`super::convert`].

use super::conv_error::{ConvError, MAX_DEPTH};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

type R<'py> = Result<Bound<'py, PyAny>, ConvError>;

struct Reader<'b> {
    buf: &'b [u8],
    pos: usize,
}

fn bad(what: &str) -> ConvError {
    ConvError::Invalid(format!("stored term: {what}"))
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], ConvError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| bad("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ConvError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, ConvError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u32(&mut self) -> Result<usize, ConvError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
}

/// Decodes one term in external format (with its leading version byte).
pub fn decode<'py>(py: Python<'py>, bytes: &[u8]) -> R<'py> {
    let mut r = Reader { buf: bytes, pos: 0 };
    if r.u8()? != 131 {
        return Err(bad("not external term format"));
    }
    term(py, &mut r, 0)
}

fn atom<'py>(py: Python<'py>, name: &[u8]) -> R<'py> {
    Ok(match name {
        b"true" => PyBool::new(py, true).to_owned().into_any(),
        b"false" => PyBool::new(py, false).to_owned().into_any(),
        b"none" | b"nil" | b"undefined" => py.None().into_bound(py),
        _ => PyString::new(py, std::str::from_utf8(name).map_err(|_| bad("atom is not UTF-8"))?).into_any(),
    })
}

fn atom_name<'b>(r: &mut Reader<'b>) -> Result<&'b [u8], ConvError> {
    match r.u8()? {
        118 | 100 => {
            let n = r.u16()?;
            r.take(n)
        }
        119 | 115 => {
            let n = r.u8()? as usize;
            r.take(n)
        }
        _ => Err(bad("expected an atom")),
    }
}

fn big<'py>(py: Python<'py>, r: &mut Reader<'_>, n: usize) -> R<'py> {
    let sign = r.u8()?;
    let digits = r.take(n)?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("signed", false).map_err(|e| bad(&e.to_string()))?;
    let v = py
        .get_type::<PyInt>()
        .call_method("from_bytes", (PyBytes::new(py, digits), "little"), Some(&kwargs))
        .map_err(|e| bad(&e.to_string()))?;
    if sign == 0 {
        Ok(v)
    } else {
        v.neg().map_err(|e| bad(&e.to_string()))
    }
}

fn term<'py>(py: Python<'py>, r: &mut Reader<'_>, depth: usize) -> R<'py> {
    if depth > MAX_DEPTH {
        return Err(ConvError::Invalid(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    let start = r.pos;
    match r.u8()? {
        97 => Ok(PyInt::new(py, r.u8()? as i64).into_any()),
        98 => {
            let b = r.take(4)?;
            Ok(PyInt::new(py, i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64).into_any())
        }
        70 => {
            let b = r.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(PyFloat::new(py, f64::from_be_bytes(a)).into_any())
        }
        118 | 100 | 119 | 115 => {
            r.pos = start;
            atom(py, atom_name(r)?)
        }
        104 | 105 => {
            let n = if r.buf[start] == 104 { r.u8()? as usize } else { r.u32()? };
            let mut items = Vec::with_capacity(n.min(1 << 16));
            let first = r.pos;
            // {'$bytes', Bin}
            if n == 2 && matches!(r.buf.get(first), Some(118 | 100 | 119 | 115)) {
                let name = atom_name(r)?;
                if name == b"$bytes" && r.buf.get(r.pos) == Some(&109) {
                    r.u8()?;
                    let len = r.u32()?;
                    return Ok(PyBytes::new(py, r.take(len)?).into_any());
                }
                items.push(atom(py, name)?);
            }
            while items.len() < n {
                items.push(term(py, r, depth + 1)?);
            }
            Ok(PyTuple::new(py, items).map_err(|e| bad(&e.to_string()))?.into_any())
        }
        106 => Ok(PyList::empty(py).into_any()),
        107 => {
            let n = r.u16()?;
            let items: Vec<i64> = r.take(n)?.iter().map(|&b| b as i64).collect();
            Ok(PyList::new(py, items).map_err(|e| bad(&e.to_string()))?.into_any())
        }
        108 => {
            let n = r.u32()?;
            let list = PyList::empty(py);
            for _ in 0..n {
                list.append(term(py, r, depth + 1)?).map_err(|e| bad(&e.to_string()))?;
            }
            if r.u8()? != 106 {
                return Err(ConvError::Invalid("improper lists cannot cross".into()));
            }
            Ok(list.into_any())
        }
        109 => {
            let n = r.u32()?;
            let b = r.take(n)?;
            match std::str::from_utf8(b) {
                Ok(s) => Ok(PyString::new(py, s).into_any()),
                Err(_) => Err(ConvError::Invalid("binary is not valid UTF-8; store {'$bytes', Bin} for Python bytes".into())),
            }
        }
        110 => {
            let n = r.u8()? as usize;
            big(py, r, n)
        }
        111 => {
            let n = r.u32()?;
            big(py, r, n)
        }
        116 => {
            let n = r.u32()?;
            let dict = PyDict::new(py);
            for _ in 0..n {
                let k = term(py, r, depth + 1)?;
                let v = term(py, r, depth + 1)?;
                dict.set_item(k, v).map_err(|e| ConvError::Invalid(format!("map key cannot be a dict key in Python: {e}")))?;
            }
            Ok(dict.into_any())
        }
        88 | 103 => {
            let _node = atom_name(r)?;
            let id = r.u32()?;
            let serial = r.u32()?;
            let _creation = if r.buf[start] == 88 { r.take(4)? } else { r.take(1)? };
            let mut ext = Vec::with_capacity(1 + r.pos - start);
            ext.push(131);
            ext.extend_from_slice(&r.buf[start..r.pos]);
            let class = super::erlang_module::pid_class(py).map_err(|e| bad(&e.to_string()))?;
            class.call1((PyBytes::new(py, &ext), format!("<0.{id}.{serial}>"))).map_err(|e| bad(&e.to_string()))
        }
        90 | 114 | 101 => Err(ConvError::Invalid("references cannot cross to Python".into())),
        89 | 102 | 120 | 121 => Err(ConvError::Invalid("ports cannot cross to Python".into())),
        112 | 113 | 117 => Err(ConvError::Invalid("funs cannot cross to Python".into())),
        77 => Err(ConvError::Invalid("bitstrings that are not binaries cannot cross".into())),
        t => Err(bad(&format!("unsupported tag {t}"))),
    }
}
