//! Who owns what: the actors that own pinned interpreters, and their mailboxes.
//!
//! * [`runtime`]: the tokio runtime actors are spawned from (never a BEAM thread).
//! * [`job`]: the message a NIF puts in a mailbox, with its cancellation token.
//! * [`callback`]: Python → Erlang → Python chains on a suspended thread.
//! * [`console`]: tokio-console server (feature `console`).
//! * [`trace`]: request spans and events, to Erlang's logger and tokio-console.
//! * [`executor`]: an actor pinned to its own OS thread, on the main interpreter.
//! * [`context`]: an actor pinned to its own OS thread, owning a sub-interpreter.
//! * [`interrupt`]: the thread that stops Python code whose caller gave up.
//! * [`looper`]: the threads that wait for asyncio loops to have work.
//! * [`tasks`]: asyncio tasks in flight and who waits for each.
//! * [`lane`]: the lock-free request queue each pinned actor drains.
//! * [`registry`]: names of the Erlang functions registered for Python.
//! * [`router`]: starts, supervises and publishes executors, contexts and routes.
//! * [`routing`]: which context a request goes to (bindings, placements, pools).
//! * [`semaphore`]: the limit on requests in flight, one permit per job.
//! * [`state`]: the node's shared state store (terms and atomic counters).
//! * [`stats`]: load figures per executor and context.
//! * [`stream`]: a stream's consumer and flow control (`{active, N}`).
//! * [`token`]: who wins between a reply and a caller giving up.

pub mod callback;
pub mod console;
pub mod context;
pub mod executor;
pub mod interrupt;
pub mod job;
pub mod lane;
pub mod looper;
pub mod registry;
pub mod router;
pub mod routing;
pub mod runtime;
pub mod semaphore;
pub mod state;
pub mod stats;
pub mod stream;
pub mod tasks;
pub mod token;
pub mod trace;
