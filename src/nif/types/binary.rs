//! Binaries: UTF-8 ones go to Python as `str` (others are refused with the way
//! to send bytes); `str`, `bytes` and `bytearray` come back as binaries.

use crate::interp::conv_error::ConvError;
use crate::interp::value::{Blob, Value};
use rustler::{Binary, Encoder, Env, OwnedBinary, Term};

pub fn encode<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    let mut bin = OwnedBinary::new(bytes.len());
    bin.as_mut_slice().copy_from_slice(bytes);
    bin.release(env).encode(env)
}

pub fn decode(term: Term<'_>) -> Result<Value, ConvError> {
    let bin: Binary = term.decode().map_err(|_| not_binary())?;
    // Checking the text costs about what copying it would on this thread.
    crate::interp::conv_error::spend_bytes(bin.len())?;
    match std::str::from_utf8(bin.as_slice()) {
        Ok(_) if bin.len() >= Blob::MIN => super::blob::lend(term, true).ok_or_else(not_binary),
        Ok(s) => Ok(Value::Str(s.to_owned())),
        Err(e) => Err(ConvError::Invalid(format!(
            "binary is not valid UTF-8 (byte {}); pass {{'$bytes', Bin}} for Python bytes",
            e.valid_up_to()
        ))),
    }
}

fn not_binary() -> ConvError {
    ConvError::Invalid("bitstrings that are not binaries cannot cross".into())
}

/// `{'$bytes', Bin}`'s binary: lent when large (no copy, so nothing counted
/// against the scheduler's copy budget), else copied.
pub fn decode_bytes(term: Term<'_>) -> Result<Value, ConvError> {
    let bin: Binary = term.decode().map_err(|_| ConvError::Invalid("{'$bytes', _} needs a binary".into()))?;
    if bin.len() >= Blob::MIN {
        crate::interp::conv_error::spend(crate::interp::conv_error::bytes_cost(bin.len()))?;
        return super::blob::lend(term, false).ok_or_else(not_binary);
    }
    crate::interp::conv_error::spend_bytes(bin.len())?;
    Ok(Value::Bytes(bin.as_slice().to_vec()))
}
