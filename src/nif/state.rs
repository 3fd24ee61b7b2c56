//! The shared state from Erlang: the store lives in `crate::state`; these NIFs
//! only turn terms into external format and back (no Python involved, so they
//! run directly on the calling scheduler and return at once). What may take
//! longer than a scheduler's time slice does not run there: a value is made
//! external by `term_to_binary/1` in `py.erl` (which yields), a large one is
//! made a term again on a dirty CPU scheduler, and listing or clearing every
//! key runs on one.

use super::calls::Decoding;
use crate::atoms;
use crate::state::{self, IncrError, Value};
use rustler::{Atom, Encoder, Env, NifResult, Term};

fn ext(t: Term<'_>) -> Vec<u8> {
    t.to_binary().as_slice().to_vec()
}

/// `state_store(Key, Value) -> ok`.
#[rustler::nif]
fn state_store(key: Term<'_>, value: Term<'_>) -> Atom {
    match value.decode::<i64>() {
        Ok(i) if value.is_integer() => state::store_int(ext(key), i),
        _ => state::store(ext(key), ext(value)),
    }
    atoms::ok()
}

/// Past this many bytes of external format, a value is copied in and made a
/// term again on a dirty CPU scheduler (a list of 3,000,000 small integers,
/// about 15 MB, took 30 ms to fetch).
const ON_SCHEDULER_BYTES: usize = 64 * 1024;

rustler::atoms! { not_found, dirty }

/// `state_store_ext(Key, External) -> ok | dirty`: `External` is the value
/// made external already (`term_to_binary/1`); `dirty` for one too large to
/// copy in here (store it with `state_store_ext_dirty/2`).
#[rustler::nif]
fn state_store_ext<'a>(env: Env<'a>, key: Term<'a>, value: rustler::Binary<'a>) -> Term<'a> {
    store_with(env, key, value, Decoding::OnScheduler)
}

/// `state_store_ext/2` on a dirty CPU scheduler.
#[rustler::nif(schedule = "DirtyCpu")]
fn state_store_ext_dirty<'a>(env: Env<'a>, key: Term<'a>, value: rustler::Binary<'a>) -> Term<'a> {
    store_with(env, key, value, Decoding::Dirty)
}

fn store_with<'a>(env: Env<'a>, key: Term<'a>, value: rustler::Binary<'a>, place: Decoding) -> Term<'a> {
    if matches!(place, Decoding::OnScheduler) && value.len() > ON_SCHEDULER_BYTES {
        return dirty().encode(env);
    }
    state::store(ext(key), value.as_slice().to_vec());
    atoms::ok().encode(env)
}

/// `state_fetch(Key) -> {ok, Value} | {error, not_found} | dirty`: `dirty`
/// for a value too large to make a term of here (fetch it with
/// `state_fetch_dirty/1`).
#[rustler::nif]
fn state_fetch<'a>(env: Env<'a>, key: Term<'a>) -> NifResult<Term<'a>> {
    fetch_with(env, key, Decoding::OnScheduler)
}

/// `state_fetch/1` on a dirty CPU scheduler.
#[rustler::nif(schedule = "DirtyCpu")]
fn state_fetch_dirty<'a>(env: Env<'a>, key: Term<'a>) -> NifResult<Term<'a>> {
    fetch_with(env, key, Decoding::Dirty)
}

fn fetch_with<'a>(env: Env<'a>, key: Term<'a>, place: Decoding) -> NifResult<Term<'a>> {
    Ok(match state::fetch(&ext(key)) {
        Some(Value::Int(i)) => (atoms::ok(), i).encode(env),
        Some(Value::Term(bytes)) if matches!(place, Decoding::OnScheduler) && bytes.len() > ON_SCHEDULER_BYTES => dirty().encode(env),
        Some(Value::Term(bytes)) => {
            let (t, _) = env.binary_to_term(&bytes).ok_or(rustler::Error::BadArg)?;
            (atoms::ok(), t).encode(env)
        }
        None => (atoms::error(), not_found()).encode(env),
    })
}

/// `state_remove(Key) -> ok`.
#[rustler::nif]
fn state_remove(key: Term<'_>) -> Atom {
    state::remove(&ext(key));
    atoms::ok()
}

/// `state_keys() -> [Key]` (on a dirty CPU scheduler: there may be many).
#[rustler::nif(schedule = "DirtyCpu")]
fn state_keys<'a>(env: Env<'a>) -> Vec<Term<'a>> {
    state::keys().iter().filter_map(|k| env.binary_to_term(k).map(|(t, _)| t)).collect()
}

/// `state_clear() -> ok` (on a dirty CPU scheduler: there may be many).
#[rustler::nif(schedule = "DirtyCpu")]
fn state_clear() -> Atom {
    state::clear();
    atoms::ok()
}

/// `state_incr(Key, By) -> {ok, New} | {error, not_integer | overflow}`.
#[rustler::nif]
fn state_incr<'a>(env: Env<'a>, key: Term<'a>, by: i64) -> Term<'a> {
    rustler::atoms! { not_integer, overflow }
    match state::incr(&ext(key), by) {
        Ok(v) => (atoms::ok(), v).encode(env),
        Err(IncrError::NotAnInteger) => (atoms::error(), not_integer()).encode(env),
        Err(IncrError::Overflow) => (atoms::error(), overflow()).encode(env),
    }
}
