//! Floors for the benchmark: what a call costs before Python does anything.
//! Test hooks: only in builds with the `test-hooks` feature (`make test`,
//! `make bench`), never in the NIF a dependent project builds.

use crate::atoms;
use rustler::Atom;

/// `noop() -> ok`: the cost of entering and leaving a NIF.
#[rustler::nif]
fn noop() -> Atom {
    atoms::ok()
}

/// `direct_call(Payload) -> {ok, V} | {error, Reason}`: `py:call`'s payload run
/// right here, on a dirty CPU scheduler, with no hand-off to an actor. Only on a
/// free-threaded Python, only for the benchmark: it tells whether running calls
/// on dirty schedulers would beat the context threads.
#[rustler::nif(schedule = "DirtyCpu")]
fn direct_call<'a>(env: rustler::Env<'a>, payload: rustler::Term<'a>) -> rustler::Term<'a> {
    use rustler::Encoder;
    rustler::atoms! { not_free_threaded }
    let req = match super::types::request::decode(crate::interp::exec::Op::Call, payload) {
        Ok(r) => r,
        Err(msg) => return super::calls::bad_argument(env, msg),
    };
    match crate::interp::direct::run(&req) {
        None => (atoms::error(), not_free_threaded()).encode(env),
        Some(Ok(v)) => (atoms::ok(), v).encode(env),
        Some(Err(f)) => (atoms::error(), super::types::failure::encode(env, &f).0).encode(env),
    }
}
