//! Floats; NaN and the infinities, which have no Erlang float, as the atoms
//! `nan`, `infinity` and `neg_infinity`.

use crate::atoms;
use crate::interp::conv_error::ConvError;
use crate::interp::value::Value;
use rustler::{Encoder, Env, Term};

pub fn encode(env: Env<'_>, f: f64) -> Term<'_> {
    if f.is_nan() {
        atoms::nan().encode(env)
    } else if f.is_infinite() {
        if f > 0.0 { atoms::infinity() } else { atoms::neg_infinity() }.encode(env)
    } else {
        f.encode(env)
    }
}

pub fn decode(term: Term<'_>) -> Result<Value, ConvError> {
    term.decode::<f64>().map(Value::Float).map_err(|_| ConvError::Invalid("unreadable float".into()))
}
