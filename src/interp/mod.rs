//! Everything that touches CPython lives here, and nothing that builds an
//! Erlang term: requests come in and results go out as plain Rust values.
//!
//! * [`runtime`]: the process-wide interpreter, initialised once per node and never
//!   finalised (CPython cannot be re-initialised safely).
//! * [`thread`]: a thread state pinned to one OS thread, attached per job.
//! * [`value`]: what crosses the rooms (values, requests, failures).
//! * [`types`]: Python objects ↔ values, one file per Python type.
//! * [`host`]: what a pinned actor's thread owns: interpreter, globals, code cache.
//! * [`bridge`]: what Python needs from the Erlang side (implemented by `actors::bridge`).
//! * [`callback`]: `erlang.call`: the suspended thread's side of a callback chain.
//! * [`asyncio`]: each context's event loop, stepped by its own thread.
//! * [`conv_error`]: why a value cannot cross; the nesting limit.
//! * [`etf`]: external term format to values (stored state), in plain Rust.
//! * [`exec`]: running one call/eval/exec inside an attached interpreter.
//! * [`interrupt`]: stopping Python code whose caller gave up.
//! * [`direct`]: a call on the calling thread (free-threaded only; the benchmark's comparison).
//! * [`stream`]: the iterators of streams in flight, per interpreter.
//! * [`shared_contexts`]: contexts as globals dicts on the main interpreter.
//! * [`natives`]: the `erlang` module's native functions (state, send).
//! * [`refs`]: Python objects kept for Erlang by reference, per context.
//! * [`setup`]: `python_path`, `imports` and `preload_code`, in every interpreter and context.
//! * [`erlang_module`]: the `erlang` module every interpreter gets.
//! * [`guards`]: `os.fork`, `os._exit` and friends refused (they act on the whole VM).
//! * [`wire`]: the frames between the node and a process-isolated context's child.
//! * [`child`]: that child process's main loop (the `py_child` binary).
//! * [`chains`]: the child's `erlang.call`s waiting for their answers, by number.
//!
//! Rule of the room: every `unsafe` block says which interpreter's GIL it assumes
//! is held by the current thread.

pub mod asyncio;
pub mod bridge;
pub mod callback;
pub mod chains;
pub mod child;
pub mod conv_error;
#[cfg(feature = "test-hooks")]
pub mod direct;
pub mod erlang_module;
pub mod etf;
pub mod exec;
pub mod guards;
pub mod host;
pub mod interrupt;
pub mod malloc;
pub mod natives;
pub mod refs;
pub mod runtime;
pub mod setup;
pub mod shared_contexts;
pub mod spin;
pub mod stream;
pub mod thread;
pub mod types;
pub mod value;
pub mod wire;
