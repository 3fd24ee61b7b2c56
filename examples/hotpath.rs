//! `hotpath`: the interpreter room's share of one `py:call(math, sqrt, [16])`,
//! without a BEAM, so that `valgrind --tool=callgrind` can count its
//! instructions (the BEAM's JIT does not run under valgrind on OTP 25).
//!
//! `cargo run --release --example hotpath -- N [context]` serves N calls on an
//! executor's thread state (`context`: in a context's own interpreter, a
//! sub-interpreter from 3.12). `scripts/hotpath-count` runs it under callgrind
//! for two values of N and prints the instructions per call (the difference,
//! so start-up is not counted).

#[allow(dead_code)]
#[path = "../src/interp/mod.rs"]
mod interp;
#[allow(dead_code)]
#[path = "../src/state.rs"]
mod state;

use interp::bridge::{CallError, Caller, ChainMsg, Place};
use interp::exec::Op;
use interp::host::Host;
use interp::value::{Args, Name, Request, Value};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// A caller nobody waits on: the calls measured make no callback.
struct Quiet;

impl Caller for Quiet {
    fn callback(&self, _: &Value, _: &[Value]) -> Result<Receiver<ChainMsg>, CallError> {
        Err(CallError::Failed("no Erlang side here".into()))
    }
    fn gave_up(&self) -> bool {
        false
    }
    fn output(&self, _: u8, _: &str) {}
    fn context(&self) -> u32 {
        0
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let in_context = args.next().as_deref() == Some("context");
    interp::runtime::ensure_initialized().expect("Python starts");
    let mut host = if in_context { Host::context(1).expect("a context starts") } else { Host::executor() };
    let place = if in_context { Place::Own } else { Place::Main };
    // Kept once, as the NIF keeps them (it finds them again by the atom).
    let (module, function) = (Name::new("math"), Name::new("sqrt"));
    for _ in 0..n {
        // As the NIF hands it over: the names kept, the argument inline.
        let mut args = Args::new();
        args.push(Value::Int(16));
        let req = Request::Call { module: module.clone(), function: function.clone(), args, kwargs: vec![] };
        let out = host.serve(place, Op::Call, &req, Arc::new(Quiet));
        assert!(matches!(out, Ok(interp::exec::Outcome::Value(Value::Float(f))) if f == 4.0));
    }
    println!("served {n}");
}
