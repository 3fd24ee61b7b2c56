//! Who owns what: threads, mailboxes, routing and supervision. No Python object
//! is touched in this room: interpreters are driven through `interp::host`.
//!
//! * [`runtime`]: the tokio runtime actors are spawned from (never a BEAM thread).
//! * [`affinity`]: actor threads' names and, with `pin_threads`, their cores.
//! * [`job`]: the message a NIF puts in a mailbox, with its cancellation token.
//! * [`callback`]: Python → Erlang → Python chains on a suspended thread.
//! * [`console`]: tokio-console server (feature `console`).
//! * [`trace`]: request spans and events, to Erlang's logger and tokio-console.
//! * [`pinned`]: an actor pinned to its own OS thread, owning an interpreter
//!   (an executor on the main interpreter, or a context).
//! * [`engine`]: what a pinned actor serves with: an interpreter here, or a child process.
//! * [`isolated`]: process-isolated contexts: the child OS process, its pipes, crashes.
//! * [`bridge`]: the node as Python's `erlang` module reaches it.
//! * [`channel`]: bounded queues from Erlang into running Python.
//! * [`refs`]: the Erlang side of Python objects kept by reference.
//! * [`logging`]: Python logging records on their way to `logger`, bounded.
//! * [`interrupt`]: the thread that stops Python code whose caller gave up.
//! * [`late`]: the watch that lets a synchronous caller wait with no timer.
//! * [`looper`]: the threads that wait for asyncio loops to have work.
//! * [`tasks`]: asyncio tasks in flight and who waits for each.
//! * [`lane`]: the lock-free request queue each pinned actor drains.
//! * [`envs`]: the environments requests carry, reused from one to the next.
//! * [`registry`]: names of the Erlang functions registered for Python.
//! * [`router`]: starts, supervises and publishes executors, contexts and routes.
//! * [`routing`]: which context a request goes to (bindings, placements, pools).
//! * [`semaphore`]: the limit on requests in flight, one permit per job.
//! * [`stats`]: load figures per executor and context.
//! * [`stream`]: a stream's consumer and flow control (`{active, N}`).
//! * [`token`]: who wins between a reply and a caller giving up.

// A job that cannot be queued or handed over comes back by value, so that its
// caller can be answered; boxing it would cost an allocation per request.
#![allow(clippy::result_large_err)]

pub mod affinity;
pub mod bridge;
pub mod callback;
pub mod channel;
pub mod console;
pub mod engine;
pub mod envs;
pub mod interrupt;
pub mod isolated;
pub mod job;
pub mod lane;
pub mod late;
pub mod logging;
pub mod looper;
pub mod pinned;
pub mod refs;
pub mod registry;
pub mod router;
pub mod routing;
pub mod runtime;
pub mod semaphore;
pub mod stats;
pub mod stream;
pub mod tasks;
pub mod token;
pub mod trace;
