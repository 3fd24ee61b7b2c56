//! `py_child`: the OS process of a process-isolated context. It embeds the
//! interpreter room (`src/interp/`) itself, compiled here from the same files,
//! not the NIF library (which needs a BEAM to load): see `interp::child`.

// The room is compiled whole; the child uses the part that serves requests.
#[allow(dead_code)]
#[path = "../interp/mod.rs"]
mod interp;
#[allow(dead_code)]
#[path = "../state.rs"]
mod state;

fn main() {
    interp::child::main()
}
