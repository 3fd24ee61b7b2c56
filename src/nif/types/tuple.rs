//! Tuples ↔ Python tuples; `{'$bytes', Bin}` is how Erlang sends Python `bytes`.

use super::decode as decode_value;
use crate::atoms;
use crate::interp::conv_error::ConvError;
use crate::interp::value::Value;
use rustler::types::tuple::{get_tuple, make_tuple};
use rustler::{Atom, Encoder, Env, Term};

pub fn encode<'a>(env: Env<'a>, items: &[Value]) -> Term<'a> {
    let terms: Vec<Term<'a>> = items.iter().map(|v| v.encode(env)).collect();
    make_tuple(env, &terms)
}

pub fn decode(term: Term<'_>, depth: usize) -> Result<Value, ConvError> {
    let items = get_tuple(term).map_err(|_| ConvError::Invalid("bad tuple".into()))?;
    if items.len() == 2 && items[0].decode::<Atom>().ok() == Some(atoms::bytes()) {
        return super::binary::decode_bytes(items[1]);
    }
    items.into_iter().map(|t| decode_value(t, depth + 1)).collect::<Result<_, _>>().map(Value::Tuple)
}
