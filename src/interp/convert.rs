//! Conversion between Erlang terms and Python objects, in one pass each way.
//!
//! Erlang → Python follows SPEC.md's table: integers of any size, floats, UTF-8
//! binaries as `str`, `{'$bytes', Bin}` as `bytes`, atoms as `str` except
//! `true`/`false`/`none`/`nil`/`undefined`, lists, tuples, maps, pids as
//! `erlang.Pid`. Python → Erlang: `str`/`bytes`/`bytearray` as binaries, `nan` and
//! the infinities as atoms, `erlang.Pid` back to the pid, containers recursively.
//! Both directions stop at [`MAX_DEPTH`] levels of nesting, which also catches
//! self-referencing Python containers.

use crate::atoms;
use num_bigint::BigInt;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple};
use rustler::types::tuple::{get_tuple, make_tuple};
use rustler::{Atom, Binary, Encoder, Env, OwnedBinary, Term, TermType};

/// Largest map built with `enif_make_map_from_arrays` (a flat map, no hashing).
const SMALL_MAP: usize = 32;

pub use super::conv_error::{ConvError, MAX_DEPTH};

type PResult<'py> = Result<Bound<'py, PyAny>, ConvError>;

fn pyerr(e: PyErr) -> ConvError {
    ConvError::Invalid(e.to_string())
}

/// An atom's name as UTF-8. OTP 25's `enif_get_atom` reads Latin-1 names only,
/// so an atom beyond Latin-1 (`'日本'`) is read from its external format, where
/// every atom is written as UTF-8.
pub fn atom_name(term: Term<'_>) -> Result<String, ConvError> {
    if let Ok(name) = term.atom_to_string() {
        return Ok(name);
    }
    let ext = term.to_binary();
    let bytes = ext.as_slice();
    let name = match bytes {
        // version, ATOM_UTF8_EXT, 2-byte length
        [131, 118, hi, lo, rest @ ..] => rest.get(..u16::from_be_bytes([*hi, *lo]) as usize),
        // version, SMALL_ATOM_UTF8_EXT, 1-byte length
        [131, 119, n, rest @ ..] => rest.get(..*n as usize),
        _ => None,
    };
    name.and_then(|n| std::str::from_utf8(n).ok()).map(str::to_owned).ok_or_else(|| ConvError::Invalid("bad atom".into()))
}

/// Converts an Erlang term into a new Python object of the attached interpreter.
pub fn term_to_py<'py>(py: Python<'py>, term: Term<'_>, depth: usize) -> PResult<'py> {
    if depth > MAX_DEPTH {
        return Err(ConvError::deep());
    }
    match term.get_type() {
        TermType::Integer => {
            if let Ok(i) = term.decode::<i64>() {
                return Ok(pyo3::types::PyInt::new(py, i).into_any());
            }
            let big: BigInt = term.decode().map_err(|_| ConvError::Invalid("unreadable integer".into()))?;
            big_to_py(py, &big)
        }
        TermType::Float => {
            let f: f64 = term.decode().map_err(|_| ConvError::Invalid("unreadable float".into()))?;
            Ok(PyFloat::new(py, f).into_any())
        }
        TermType::Binary => {
            let bin: Binary = term.decode().map_err(|_| ConvError::Invalid("bitstrings that are not binaries cannot cross".into()))?;
            match std::str::from_utf8(bin.as_slice()) {
                Ok(s) => Ok(PyString::new(py, s).into_any()),
                Err(e) => Err(ConvError::Invalid(format!(
                    "binary is not valid UTF-8 (byte {}); pass {{'$bytes', Bin}} for Python bytes",
                    e.valid_up_to()
                ))),
            }
        }
        TermType::Atom => {
            let atom: Atom = term.decode().map_err(|_| ConvError::Invalid("bad atom".into()))?;
            if atom == atoms::true_() {
                Ok(PyBool::new(py, true).to_owned().into_any())
            } else if atom == atoms::false_() {
                Ok(PyBool::new(py, false).to_owned().into_any())
            } else if atom == atoms::none() || atom == atoms::nil() || atom == atoms::undefined() {
                Ok(py.None().into_bound(py))
            } else {
                let name = atom_name(term)?;
                Ok(PyString::new(py, &name).into_any())
            }
        }
        TermType::List => {
            let list = PyList::empty(py);
            let mut rest = term;
            loop {
                if rest.is_empty_list() {
                    break;
                }
                let (head, tail) = rest.list_get_cell().map_err(|_| ConvError::Invalid("improper lists cannot cross".into()))?;
                list.append(term_to_py(py, head, depth + 1)?).map_err(pyerr)?;
                rest = tail;
            }
            Ok(list.into_any())
        }
        TermType::Tuple => {
            let items = get_tuple(term).map_err(|_| ConvError::Invalid("bad tuple".into()))?;
            if items.len() == 2 && items[0].decode::<Atom>().ok() == Some(atoms::bytes()) {
                let bin: Binary = items[1].decode().map_err(|_| ConvError::Invalid("{'$bytes', _} needs a binary".into()))?;
                return Ok(PyBytes::new(py, bin.as_slice()).into_any());
            }
            let mut objs = Vec::with_capacity(items.len());
            for item in items {
                objs.push(term_to_py(py, item, depth + 1)?);
            }
            Ok(PyTuple::new(py, objs).map_err(pyerr)?.into_any())
        }
        TermType::Map => {
            let dict = PyDict::new(py);
            let iter = rustler::types::map::MapIterator::new(term).ok_or_else(|| ConvError::Invalid("bad map".into()))?;
            for (k, v) in iter {
                let key = term_to_py(py, k, depth + 1)?;
                let value = term_to_py(py, v, depth + 1)?;
                dict.set_item(key, value).map_err(|e| ConvError::Invalid(format!("map key cannot be a dict key in Python: {e}")))?;
            }
            Ok(dict.into_any())
        }
        TermType::Pid => {
            let ext = term.to_binary();
            let text = format!("{term:?}");
            let class = super::erlang_module::pid_class(py).map_err(pyerr)?;
            class.call1((PyBytes::new(py, ext.as_slice()), text)).map_err(pyerr)
        }
        TermType::Fun => Err(ConvError::Invalid("funs cannot cross to Python".into())),
        TermType::Port => Err(ConvError::Invalid("ports cannot cross to Python".into())),
        TermType::Ref => Err(ConvError::Invalid("references cannot cross to Python".into())),
        TermType::Unknown => Err(ConvError::Invalid("unknown term type".into())),
    }
}

fn big_to_py<'py>(py: Python<'py>, big: &BigInt) -> PResult<'py> {
    let bytes = big.to_signed_bytes_le();
    let int_type = py.get_type::<PyInt>();
    let kwargs = PyDict::new(py);
    kwargs.set_item("signed", true).map_err(pyerr)?;
    int_type.call_method("from_bytes", (PyBytes::new(py, &bytes), "little"), Some(&kwargs)).map_err(pyerr)
}

fn binary_term<'a>(env: Env<'a>, bytes: &[u8]) -> Result<Term<'a>, ConvError> {
    let mut bin = OwnedBinary::new(bytes.len());
    bin.as_mut_slice().copy_from_slice(bytes);
    Ok(bin.release(env).encode(env))
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

/// Converts a Python object into a term built in `env`.
pub fn py_to_term<'a>(env: Env<'a>, obj: &Bound<'_, PyAny>, depth: usize) -> Result<Term<'a>, ConvError> {
    if depth > MAX_DEPTH {
        return Err(ConvError::deep());
    }
    if obj.is_none() {
        return Ok(atoms::none().encode(env));
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(b.is_true().encode(env));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        if let Ok(v) = i.extract::<i64>() {
            return Ok(v.encode(env));
        }
        let nbits: usize = i.call_method0("bit_length").and_then(|n| n.extract()).map_err(pyerr)?;
        let kwargs = PyDict::new(obj.py());
        kwargs.set_item("signed", true).map_err(pyerr)?;
        let bytes = i.call_method("to_bytes", (nbits / 8 + 1, "little"), Some(&kwargs)).map_err(pyerr)?;
        let bytes = bytes.cast::<PyBytes>().map_err(|e| ConvError::Invalid(e.to_string()))?;
        return Ok(BigInt::from_signed_bytes_le(bytes.as_bytes()).encode(env));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let v = f.value();
        return Ok(if v.is_nan() {
            atoms::nan().encode(env)
        } else if v.is_infinite() {
            if v > 0.0 { atoms::infinity() } else { atoms::neg_infinity() }.encode(env)
        } else {
            v.encode(env)
        });
    }
    if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_str().map_err(|e| ConvError::Invalid(format!("str is not encodable as UTF-8: {e}")))?;
        return binary_term(env, text.as_bytes());
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return binary_term(env, b.as_bytes());
    }
    if let Ok(list) = obj.cast::<PyList>() {
        let mut items = Vec::with_capacity(list.len());
        for item in list.iter() {
            items.push(py_to_term(env, &item, depth + 1)?);
        }
        return Ok(items.encode(env));
    }
    if let Ok(tuple) = obj.cast::<PyTuple>() {
        let mut items = Vec::with_capacity(tuple.len());
        for item in tuple.iter() {
            items.push(py_to_term(env, &item, depth + 1)?);
        }
        return Ok(make_tuple(env, &items));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        let mut keys = Vec::with_capacity(dict.len());
        let mut values = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            keys.push(py_to_term(env, &k, depth + 1)?);
            values.push(py_to_term(env, &v, depth + 1)?);
        }
        // enif_make_map_from_arrays crashes the emulator (in erts_qsort) when it
        // builds a hash map (over 32 keys) on a thread that is not a scheduler, as
        // ours are: small maps are built in one go, larger ones key by key.
        if keys.len() <= SMALL_MAP {
            if let Ok(map) = Term::map_from_term_arrays(env, &keys, &values) {
                return Ok(map);
            }
            // Distinct Python keys that meet as one Erlang term ('a' and b'a'): last wins.
        }
        let mut map = Term::map_new(env);
        for (k, v) in keys.into_iter().zip(values) {
            map = map.map_put(k, v).map_err(|_| ConvError::Invalid("bad map".into()))?;
        }
        return Ok(map);
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return binary_term(env, &b.to_vec());
    }
    // Sets become lists (in the set's iteration order): Erlang has no set term.
    if let Ok(set) = obj.cast::<PySet>() {
        return set.iter().map(|item| py_to_term(env, &item, depth + 1)).collect::<Result<Vec<_>, _>>().map(|v| v.encode(env));
    }
    if let Ok(set) = obj.cast::<PyFrozenSet>() {
        return set.iter().map(|item| py_to_term(env, &item, depth + 1)).collect::<Result<Vec<_>, _>>().map(|v| v.encode(env));
    }
    if type_name(obj) == "Pid" {
        if let Ok(class) = super::erlang_module::pid_class(obj.py()) {
            if obj.is_instance(&class).unwrap_or(false) {
                let ext = obj.getattr("_ext").map_err(pyerr)?;
                let ext = ext.cast::<PyBytes>().map_err(|e| ConvError::Invalid(e.to_string()))?;
                let (term, _) = env.binary_to_term(ext.as_bytes()).ok_or_else(|| ConvError::Invalid("corrupt erlang.Pid".into()))?;
                return Ok(term);
            }
        }
    }
    Err(ConvError::Unsupported(type_name(obj)))
}
