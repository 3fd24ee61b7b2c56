//! Pids ↔ `erlang.Pid`, carried as their external term format.

use crate::interp::value::Value;
use rustler::{Encoder, Env, Term};

pub fn encode<'a>(env: Env<'a>, ext: &[u8]) -> Term<'a> {
    match env.binary_to_term(ext) {
        Some((t, _)) => t,
        None => crate::atoms::undefined().encode(env),
    }
}

pub fn decode(term: Term<'_>) -> Value {
    Value::Pid { ext: term.to_binary().as_slice().to_vec(), text: format!("{term:?}") }
}
