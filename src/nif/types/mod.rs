//! Erlang terms ↔ [`Value`]s, one file per Erlang type (as rustler's own
//! `types/`): what `src/interp/` hands over is encoded here, and what a request
//! carries is decoded here, with no Python and no GIL involved. `Value` is an
//! [`Encoder`]; decoding is [`decode`] (its errors name what cannot cross).

mod atom;
mod binary;
pub mod blob;
pub mod failure;
mod float;
mod int;
mod list;
mod map;
mod pid;
mod reference;
pub mod request;
mod tuple;

use crate::interp::conv_error::{self, ConvError, MAX_DEPTH};
use crate::interp::value::Value;
use rustler::{Encoder, Env, Term, TermType};

pub use atom::atom_name;

impl Encoder for Value {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            Value::None => crate::atoms::none().encode(env),
            Value::Bool(b) => b.encode(env),
            Value::Int(i) => i.encode(env),
            Value::BigInt(b) => b.encode(env),
            Value::Float(f) => float::encode(env, *f),
            Value::Str(s) => binary::encode(env, s.as_bytes()),
            Value::Bytes(b) => binary::encode(env, b),
            Value::Blob(b) => blob::encode(env, b),
            Value::List(items) => items.encode(env),
            Value::Tuple(items) => tuple::encode(env, items),
            Value::Map(pairs) => map::encode(env, pairs),
            Value::Pid { ext, .. } => pid::encode(env, ext),
            // Only made by decoding a ref or a channel term, never sent back.
            Value::Ref { .. } | Value::Channel(_) => crate::atoms::undefined().encode(env),
        }
    }
}

/// The [`Value`] of a term bound for Python. At most `max_terms` terms are
/// made (counted from the outermost conversion: see [`conv_error::count`]).
///
/// [`conv_error::count`]: crate::interp::conv_error::count
pub fn decode(term: Term<'_>, depth: usize) -> Result<Value, ConvError> {
    if depth > MAX_DEPTH {
        return Err(ConvError::deep());
    }
    let _counted = (depth == 0).then(|| conv_error::count(conv_error::max_terms()));
    conv_error::spend(1)?;
    match term.get_type() {
        TermType::Integer => int::decode(term),
        TermType::Float => float::decode(term),
        TermType::Binary => binary::decode(term),
        TermType::Atom => atom::decode(term),
        TermType::List => list::decode(term, depth),
        TermType::Tuple => tuple::decode(term, depth),
        TermType::Map => map::decode(term, depth),
        TermType::Pid => Ok(pid::decode(term)),
        TermType::Fun => Err(ConvError::Invalid("funs cannot cross to Python".into())),
        TermType::Port => Err(ConvError::Invalid("ports cannot cross to Python".into())),
        TermType::Ref => reference::decode(term),
        TermType::Unknown => Err(ConvError::Invalid("unknown term type".into())),
    }
}
