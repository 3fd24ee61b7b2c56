//! erlang_python: CPython inside the BEAM.
//!
//! Three rooms, one rule each:
//! * [`nif`]: turns an Erlang request into a mailbox message and returns at once.
//! * [`actors`]: owns threads, interpreters and mailboxes; replies by `enif_send`.
//! * [`interp`]: everything that touches CPython.

pub mod actors;
pub mod atoms;
pub mod interp;
pub mod nif;

rustler::init!("py_nif", load = nif::load);
