//! Proper lists ↔ Python lists (improper lists cannot cross).

use super::decode as decode_value;
use crate::interp::conv_error::ConvError;
use crate::interp::value::Value;
use rustler::Term;

pub fn decode(term: Term<'_>, depth: usize) -> Result<Value, ConvError> {
    let mut items = Vec::new();
    decode_into(term, depth, &mut items)?;
    Ok(Value::List(items))
}

/// The elements of list `term` (itself at `depth`), decoded into `items`: a
/// `Vec`, or the inline arguments of a call (`request::decode`).
pub fn decode_into(term: Term<'_>, depth: usize, items: &mut impl Extend<Value>) -> Result<(), ConvError> {
    let mut rest = term;
    while !rest.is_empty_list() {
        let (head, tail) = rest.list_get_cell().map_err(|_| ConvError::Invalid("improper lists cannot cross".into()))?;
        items.extend(std::iter::once(decode_value(head, depth + 1)?));
        rest = tail;
    }
    Ok(())
}
