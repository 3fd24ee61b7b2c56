//! Binaries: UTF-8 ones go to Python as `str` (others are refused with the way
//! to send bytes); `str`, `bytes` and `bytearray` come back as binaries.

use crate::interp::conv_error::ConvError;
use crate::interp::value::Value;
use rustler::{Binary, Encoder, Env, OwnedBinary, Term};

pub fn encode<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    let mut bin = OwnedBinary::new(bytes.len());
    bin.as_mut_slice().copy_from_slice(bytes);
    bin.release(env).encode(env)
}

pub fn decode(term: Term<'_>) -> Result<Value, ConvError> {
    let bin: Binary = term.decode().map_err(|_| ConvError::Invalid("bitstrings that are not binaries cannot cross".into()))?;
    crate::interp::conv_error::spend_bytes(bin.len())?;
    match std::str::from_utf8(bin.as_slice()) {
        Ok(s) => Ok(Value::Str(s.to_owned())),
        Err(e) => Err(ConvError::Invalid(format!(
            "binary is not valid UTF-8 (byte {}); pass {{'$bytes', Bin}} for Python bytes",
            e.valid_up_to()
        ))),
    }
}
