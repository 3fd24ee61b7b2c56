//! Channels from Erlang into running Python: open, send, close. The queue is
//! `actors::channel`; these NIFs decode the term and push, never waiting.

use super::calls::{refused, within, Decoding};
use crate::actors::channel::{Channel, SendError};
use crate::atoms;
use rustler::{Encoder, Env, Resource, ResourceArc, Term};
use std::sync::Arc;

/// What `py:channel/0,1` returns: closes the channel when its last Erlang copy
/// is collected.
pub struct ChannelHandle(pub Arc<Channel>);

impl Resource for ChannelHandle {}

impl Drop for ChannelHandle {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// `channel_open(Max) -> Channel`.
#[rustler::nif]
fn channel_open(max: usize) -> ResourceArc<ChannelHandle> {
    ResourceArc::new(ChannelHandle(Channel::open(max)))
}

/// `channel_send(Channel, Term) -> ok | dirty | {error, full | closed |
/// {bad_argument, Message}}`. A term too large to decode within a normal
/// scheduler's time slice answers `dirty`, as a request does: the caller
/// then sends it with `channel_send_dirty/2`.
#[rustler::nif]
fn channel_send<'a>(env: Env<'a>, ch: Term<'a>, term: Term<'a>) -> Term<'a> {
    send_with(env, ch, term, Decoding::OnScheduler)
}

/// `channel_send/2` on a dirty CPU scheduler, for a term that answered `dirty`.
#[rustler::nif(schedule = "DirtyCpu")]
fn channel_send_dirty<'a>(env: Env<'a>, ch: Term<'a>, term: Term<'a>) -> Term<'a> {
    send_with(env, ch, term, Decoding::Dirty)
}

fn send_with<'a>(env: Env<'a>, ch: Term<'a>, term: Term<'a>, place: Decoding) -> Term<'a> {
    rustler::atoms! { full, closed }
    let Ok(ch) = ch.decode::<ResourceArc<ChannelHandle>>() else {
        return not_a_channel(env);
    };
    let value = match within(place, || super::types::decode(term, 0).map_err(|e| e.message())) {
        Ok(v) => v,
        Err(why) => return refused(env, why),
    };
    match ch.0.send(value) {
        Ok(()) => atoms::ok().encode(env),
        Err(SendError::Full) => (atoms::error(), full()).encode(env),
        Err(SendError::Closed) => (atoms::error(), closed()).encode(env),
    }
}

/// `channel_close(Channel) -> ok | {error, {bad_argument, Message}}`.
#[rustler::nif]
fn channel_close<'a>(env: Env<'a>, ch: Term<'a>) -> Term<'a> {
    match ch.decode::<ResourceArc<ChannelHandle>>() {
        Ok(ch) => {
            ch.0.close();
            atoms::ok().encode(env)
        }
        Err(_) => not_a_channel(env),
    }
}

/// `channel_len(Channel) -> N | {error, {bad_argument, Message}}`: terms queued now.
#[rustler::nif]
fn channel_len<'a>(env: Env<'a>, ch: Term<'a>) -> Term<'a> {
    match ch.decode::<ResourceArc<ChannelHandle>>() {
        Ok(ch) => ch.0.len().encode(env),
        Err(_) => not_a_channel(env),
    }
}

fn not_a_channel(env: Env<'_>) -> Term<'_> {
    super::calls::bad_argument(env, "not a channel (py:channel/0,1 makes one)".into())
}

/// `is_ref(Term) -> boolean()`: whether Term is a ref (`#{return => ref}`).
#[rustler::nif]
fn is_ref(term: Term<'_>) -> bool {
    term.decode::<ResourceArc<crate::actors::refs::RefHandle>>().is_ok()
}
