//! Atoms: `true`/`false` are Python's booleans, `none`/`nil`/`undefined` its
//! `None`, any other atom its name as a `str`.

use crate::atoms;
use crate::interp::conv_error::ConvError;
use crate::interp::value::Value;
use rustler::{Atom, Term};

pub fn decode(term: Term<'_>) -> Result<Value, ConvError> {
    let atom: Atom = term.decode().map_err(|_| ConvError::Invalid("bad atom".into()))?;
    Ok(if atom == atoms::true_() {
        Value::Bool(true)
    } else if atom == atoms::false_() {
        Value::Bool(false)
    } else if atom == atoms::none() || atom == atoms::nil() || atom == atoms::undefined() {
        Value::None
    } else {
        Value::Str(atom_name(term)?)
    })
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
