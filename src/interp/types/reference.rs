//! Erlang references that stand for something on this side: a ref
//! (`#{return => ref}`) arrives as the object it names, when it names one of
//! this context's; a channel arrives as an `erlang.Channel`.

use super::{pyerr, PyConv};
use crate::interp::conv_error::ConvError;
use crate::interp::value::ChannelHold;
use pyo3::prelude::*;

pub fn to_py(py: Python<'_>, id: u64) -> PyConv<'_> {
    let globals = crate::interp::callback::current_globals(py).ok_or_else(not_here)?;
    crate::interp::refs::get(&globals, id).map_err(pyerr)?.ok_or_else(not_here)
}

fn not_here() -> ConvError {
    ConvError::Invalid("a ref can only be passed to calls in the context that made it".into())
}

/// An `erlang.Channel` that keeps a hold on the channel (in a capsule) for as
/// long as Python keeps the object.
pub fn channel_to_py<'py>(py: Python<'py>, ch: &ChannelHold) -> PyConv<'py> {
    let hold = pyo3::types::PyCapsule::new(py, ch.hold.clone(), None).map_err(pyerr)?;
    crate::interp::erlang_module::channel(py, ch.id, hold.into_any()).map_err(pyerr)
}
