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
        // Distinct Python keys that meet as one Erlang term ('a' and b'a'): last wins.
    }
    let mut map = Term::map_new(env);
    for (k, v) in keys.into_iter().zip(values) {
        if let Ok(m) = map.map_put(k, v) {
            map = m;
        }
    }
    map
}

pub fn decode(term: Term<'_>, depth: usize) -> Result<Value, ConvError> {
    let iter = rustler::types::map::MapIterator::new(term).ok_or_else(|| ConvError::Invalid("bad map".into()))?;
    let mut pairs = Vec::with_capacity(term.map_size().unwrap_or(0));
    for (k, v) in iter {
        pairs.push((decode_value(k, depth + 1)?, decode_value(v, depth + 1)?));
    }
    Ok(Value::Map(pairs))
}
