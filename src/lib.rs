//! erlang_python: CPython inside the BEAM.
//!
//! Three rooms, one rule each:
//! * [`nif`]: decodes an Erlang request, forwards it to a mailbox, returns at
//!   once; encodes what comes back (`nif::types`: terms ↔ values).
//! * [`actors`]: owns threads, mailboxes, routing and supervision; replies by
//!   `enif_send`; touches no Python object.
//! * [`interp`]: everything that touches CPython; takes and returns plain Rust
//!   values (`interp::value`), never Erlang terms.
//!
//! And [`state`], the node's shared store, which both Erlang and Python reach
//! (through `nif::state` and the bridge of `actors::bridge`).

pub mod actors;
pub mod atoms;
pub mod interp;
pub mod nif;
pub mod probe;
pub mod state;

rustler::init!("py_nif", load = nif::load);
