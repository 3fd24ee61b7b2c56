//! Integers of any size (those beyond 64 bits through rustler's `big_integer`).

use crate::interp::conv_error::ConvError;
use crate::interp::value::Value;
use num_bigint::BigInt;
use rustler::Term;

pub fn decode(term: Term<'_>) -> Result<Value, ConvError> {
    if let Ok(i) = term.decode::<i64>() {
        return Ok(Value::Int(i));
    }
    term.decode::<BigInt>().map(Value::BigInt).map_err(|_| ConvError::Invalid("unreadable integer".into()))
}
