//! Floors for the benchmark: what a call costs before Python does anything.

use crate::atoms;
use rustler::Atom;

/// `noop() -> ok`: the cost of entering and leaving a NIF.
#[rustler::nif]
fn noop() -> Atom {
    atoms::ok()
}
