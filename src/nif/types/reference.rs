//! References that name something of ours: a ref (`#{return => ref}`) becomes
//! [`Value::Ref`], a channel [`Value::Channel`]; any other reference cannot
//! cross to Python.

use crate::actors::refs::RefHandle;
use crate::interp::conv_error::ConvError;
use crate::interp::value::{ChannelHold, RefHold, Value};
use crate::nif::channels::ChannelHandle;
use rustler::{ResourceArc, Term};

pub fn decode(term: Term<'_>) -> Result<Value, ConvError> {
    if let Ok(r) = term.decode::<ResourceArc<RefHandle>>() {
        // The request carrying it holds the handle (see `RefHold`).
        return Ok(Value::Ref { key: r.target.key(), id: r.id, hold: RefHold(Some(std::sync::Arc::new(r))) });
    }
    if let Ok(c) = term.decode::<ResourceArc<ChannelHandle>>() {
        return Ok(Value::Channel(ChannelHold { id: c.0.id, hold: c.0.clone() }));
    }
    Err(ConvError::Invalid("references cannot cross to Python".into()))
}
