//! Pids ↔ `erlang.Pid`, carried as their external term format.

use crate::interp::value::Value;
use rustler::{Encoder, Env, Term};

/// The pid `ext` holds; `undefined` if it holds anything else (decoded
/// safely: no atom is made for a node name this node never saw).
pub fn encode<'a>(env: Env<'a>, ext: &[u8]) -> Term<'a> {
    match env.binary_to_term(ext) {
        Some((t, _)) if t.get_type() == rustler::TermType::Pid => t,
        _ => crate::atoms::undefined().encode(env),
    }
}

pub fn decode(term: Term<'_>) -> Value {
    Value::Pid { ext: term.to_binary().as_slice().to_vec(), text: format!("{term:?}") }
}
