//! Everything that touches CPython lives here.
//!
//! * [`runtime`]: the process-wide interpreter, initialised once per node and never
//!   finalised (CPython cannot be re-initialised safely).
//! * [`thread`]: a thread state pinned to one OS thread, attached per job.
//! * [`convert`]: Erlang terms straight to Python objects and back, no intermediate tree.
//! * [`asyncio`]: each context's event loop, stepped by its own thread.
//! * [`conv_error`]: why a value cannot cross; the nesting limit.
//! * [`etf`]: external term format straight to Python (stored state).
//! * [`exec`]: running one call/eval/exec inside an attached interpreter.
//! * [`interrupt`]: stopping Python code whose caller gave up.
//! * [`direct`]: a call on the calling thread (free-threaded only; the benchmark's comparison).
//! * [`stream`]: the iterators of streams in flight, per interpreter.
//! * [`shared_contexts`]: contexts as globals dicts on the main interpreter.
//! * [`natives`]: the `erlang` module's native functions (state, send).
//! * [`erlang_module`]: the `erlang` module every interpreter gets.
//! * [`guards`]: `os.fork`, `os._exit` and friends refused (they act on the whole VM).
//!
//! Rule of the room: every `unsafe` block says which interpreter's GIL it assumes
//! is held by the current thread.

pub mod asyncio;
pub mod conv_error;
pub mod convert;
pub mod direct;
pub mod erlang_module;
pub mod etf;
pub mod exec;
pub mod guards;
pub mod interrupt;
pub mod natives;
pub mod runtime;
pub mod shared_contexts;
pub mod stream;
pub mod thread;
