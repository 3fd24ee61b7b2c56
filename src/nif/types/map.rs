//! Maps ↔ dicts.

use super::decode as decode_value;
use crate::interp::conv_error::ConvError;
use crate::interp::value::Value;
use rustler::{Encoder, Env, Term};

/// Largest map built with `enif_make_map_from_arrays` (a flat map, no hashing).
const SMALL_MAP: usize = 32;

pub fn encode<'a>(env: Env<'a>, pairs: &[(Value, Value)]) -> Term<'a> {
    let keys: Vec<Term<'a>> = pairs.iter().map(|(k, _)| k.encode(env)).collect();
    let values: Vec<Term<'a>> = pairs.iter().map(|(_, v)| v.encode(env)).collect();
    // enif_make_map_from_arrays crashes the emulator (in erts_qsort) when it
    // builds a hash map (over 32 keys) on a thread that is not a scheduler, as
    // actor threads are: small maps are built in one go, larger ones key by key.
    if keys.len() <= SMALL_MAP {
        if let Ok(map) = Term::map_from_term_arrays(env, &keys, &values) {
            return map;
        }
        // Keys that meet as one Erlang term: only from an Erlang map, which
        // has none (the dict conversion refuses Python keys that would meet).
    }
    let mut map = Term::map_new(env);
    for (k, v) in keys.into_iter().zip(values) {
        if let Ok(m) = map.map_put(k, v) {
            map = m;
        }
    }
    map
}

/// A map's pairs. Keys distinct in Erlang that are one key in Python
/// (`a` and `<<"a">>`, `1` and `1.0`) are refused here, before the request is
/// queued: a cast, a channel message or a stored value would otherwise fail
/// later, where its sender cannot hear of it. (The dict conversion checks
/// again, for what this does not see.)
pub fn decode(term: Term<'_>, depth: usize) -> Result<Value, ConvError> {
    let iter = rustler::types::map::MapIterator::new(term).ok_or_else(|| ConvError::Invalid("bad map".into()))?;
    let mut pairs = Vec::with_capacity(term.map_size().unwrap_or(0));
    let mut kinds = Kinds::default();
    for (k, v) in iter {
        let key = decode_value(k, depth + 1)?;
        kinds.note(k, &key);
        pairs.push((key, decode_value(v, depth + 1)?));
    }
    if kinds.may_meet() {
        if let Some(key) = crate::interp::value::same_python_key(pairs.iter().map(|(k, _)| k)) {
            return Err(ConvError::Invalid(format!("two map keys are the same key in Python: {key}")));
        }
    }
    Ok(Value::Map(pairs))
}

/// The kinds of a map's keys, so that the common maps (all atoms, all
/// binaries, all integers) are not checked key by key.
#[derive(Default)]
struct Kinds {
    atom_text: bool,
    binary_text: bool,
    int: bool,
    float: bool,
    boolean: bool,
    nones: u32,
    tuples: u32,
}

impl Kinds {
    fn note(&mut self, term: Term<'_>, key: &Value) {
        match key {
            Value::Str(_) if term.is_atom() => self.atom_text = true,
            Value::Str(_) => self.binary_text = true,
            Value::Blob(b) if b.text().is_some() => self.binary_text = true,
            Value::Int(_) | Value::BigInt(_) => self.int = true,
            Value::Float(_) => self.float = true,
            Value::Bool(_) => self.boolean = true,
            Value::None => self.nones += 1,
            Value::Tuple(_) => self.tuples += 1,
            _ => {}
        }
    }

    /// Whether two keys may be one in Python.
    fn may_meet(&self) -> bool {
        (self.atom_text && self.binary_text)
            || (self.int && (self.float || self.boolean))
            || (self.float && self.boolean)
            || self.nones > 1
            || self.tuples > 1
    }
}
