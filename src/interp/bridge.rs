//! How Python code reaches Erlang: what the `erlang` module's natives need from
//! the Erlang side, as a trait this room defines and `actors::bridge`
//! implements (installed once, at NIF load). So this room never builds a term
//! or names an actor, and the dependency runs one way: actors → interp.
//!
//! Everything here is called from interpreter threads. Methods that may block
//! (`call_from_thread`) are called with the GIL released.

use super::exec::{Op, Outcome};
use super::value::{Failure, Request, Value};
use std::sync::mpsc::Receiver;
use std::sync::OnceLock;

/// What the shared store holds under a key.
pub enum Stored {
    Int(i64),
    /// Any other term, as external term format (see `interp::etf`), shared
    /// with the store.
    Ext(std::sync::Arc<Vec<u8>>),
}

/// Why `erlang.send` did not send.
pub enum SendError {
    NotAPid,
    NotAlive,
    /// Called on a BEAM scheduler thread (a dirty-scheduler test hook).
    OnScheduler,
}

/// Why an `erlang.call` got no value.
#[derive(Debug)]
pub enum CallError {
    /// No Erlang function is registered under this name.
    UnknownFunction(String),
    /// The Erlang function failed, or its result cannot cross; the message.
    Failed(String),
    /// The node cannot take the call now (overloaded, not running).
    Unavailable(String),
    /// The result cannot become a Python value; the message.
    BadValue(String),
}

/// What reaches a thread suspended in `erlang.call`.
pub enum ChainMsg {
    /// The Erlang function's result, and the core it was sent from (-1 if
    /// unknown): a thread that keeps taking answers made on its own core
    /// moves off it ([`Erlang::answered_from`]).
    Reply(Result<Value, CallError>, i32),
    /// A request of the same chain, to run here (the Erlang function called back
    /// into this interpreter): see [`Nested`].
    Nested(Box<dyn Nested>),
}

/// Where a request runs in the interpreter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// The globals of the thread's own context (a sub-interpreter's `__main__`,
    /// a free-threaded context's dict).
    Own,
    /// The main interpreter's `__main__`.
    Main,
    /// Context N's globals on the main interpreter (`multi_executor` mode).
    Shared(u32),
}

/// How a request runs: `(op, request, caller) → outcome`, in some globals of
/// the interpreter the thread is attached to.
pub type Run<'r> = dyn FnMut(Op, &Request, &std::sync::Arc<dyn Caller>) -> Result<Outcome, Failure> + 'r;

/// A request of a callback chain, served by the thread suspended in the chain
/// (implemented by the actors' job).
pub trait Nested: Send {
    /// The globals it runs in (`Place::Own`: those of the suspended request).
    fn place(&self) -> Place;
    /// Where its caller's giving up (timeout, death) is aimed while it runs,
    /// as for a request of its own; `None`: not interrupted that way.
    fn mark(&self) -> Option<std::sync::Arc<dyn RunMark>> {
        None
    }
    /// Runs it with `run` (unless its caller gave up) and answers its caller.
    fn serve(self: Box<Self>, run: &mut Run<'_>);
    /// Back to the concrete type (a request offered to a chain whose thread is
    /// gone goes to its mailbox instead).
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send>;
}

/// Marks a request's Python code running on a thread, so that an
/// interruption (its caller giving up) can be aimed at it, and ended
/// (implemented by the actors' call token). Both take a lock an interrupter
/// holds while it waits for the interpreter's GIL: call them detached.
pub trait RunMark: Send + Sync {
    /// It starts on `interp`/`thread`; false if its caller gave up already
    /// (it must not run).
    fn running_on(&self, interp: usize, thread: u64) -> bool;
    /// It ended; true if it was interrupted meanwhile (Python may not have
    /// delivered the exception yet).
    fn ran(&self) -> bool;
}

/// The Erlang caller of the request a thread is serving: where that request's
/// `erlang.call`s go.
pub trait Caller: Send + Sync {
    /// Sends the call to the waiting caller; its answer, or nested requests,
    /// come on the receiver.
    fn callback(&self, name: &Value, args: &[Value]) -> Result<Receiver<ChainMsg>, CallError>;
    /// Whether the caller stopped waiting (timeout, death).
    fn gave_up(&self) -> bool;
    /// Text the request's Python code printed (`fd` 1: stdout, 2: stderr), for
    /// the caller's group leader.
    fn output(&self, fd: u8, text: &str);
    /// The context the request runs in (0: the main interpreter).
    fn context(&self) -> u32;
    /// Whether an interruption was raised in the request's thread (timeout,
    /// death of the caller, `py:interrupt/1`): Python delivers it only at a
    /// bytecode, which a C function called directly never reaches.
    fn interrupted(&self) -> bool {
        false
    }
    /// How many interruptions were raised in the request's thread so far.
    fn interruptions(&self) -> u32 {
        0
    }
    /// Waits until an interruption [`interrupted`](Caller::interrupted)
    /// reports is set on the thread (its raising waits for the GIL). Called
    /// detached.
    fn await_interrupt(&self) {}
}

/// A call from a thread no request waits on, with the permit it holds until
/// dropped.
pub struct ThreadCall {
    pub answers: Receiver<ChainMsg>,
    pub permit: Box<dyn Send>,
}

/// What Python's `erlang` module needs from the node.
pub trait Erlang: Sync {
    fn send(&self, to: &Value, msg: &Value) -> Result<(), SendError>;
    /// The pid registered as `name`, if any (an `erlang.Pid` value).
    fn whereis(&self, name: &str) -> Option<Value>;
    /// Whether an Erlang function is registered as `name`.
    fn is_registered(&self, name: &str) -> bool;
    fn state_set(&self, key: &Value, value: &Value);
    fn state_get(&self, key: &Value) -> Option<Stored>;
    fn state_delete(&self, key: &Value);
    /// Every key, as external term format.
    fn state_keys(&self) -> Vec<Vec<u8>>;
    fn state_incr(&self, key: &Value, by: i64) -> Result<i64, crate::state::IncrError>;
    /// `erlang.call` from a thread that serves no request: runs in a process of
    /// the application once a permit is free (waits a bounded time for one).
    /// Blocks: call with the GIL released.
    fn call_from_thread(&self, name: &Value, args: &[Value]) -> Result<ThreadCall, CallError>;
    /// An asyncio task started by `py:async_call` ended: answers its caller.
    fn task_done(&self, tid: u64, result: Result<Value, Failure>);
    /// A Python `logging` record, for Erlang's `logger`. Never blocks: beyond a
    /// bound of records in flight, it is dropped and counted.
    fn log(&self, record: LogRecord);
    /// Text printed by Python code that serves no request (threads, tasks,
    /// streams): it goes to `logger`.
    fn output(&self, fd: u8, text: &str);
    /// The next value of channel `id`, waiting at most `timeout` (`None`: until
    /// one comes or the channel closes). Blocks: call with the GIL released.
    fn channel_recv(&self, id: u64, timeout: Option<std::time::Duration>) -> Result<Value, ChannelEnd>;
    /// The calling thread took an `erlang.call`'s answer sent from `core`,
    /// while it polled for it (`polled`) or after sleeping. A thread that
    /// keeps polling for answers made on its own core shares that core with
    /// the BEAM scheduler that makes them, while the other core idles: it
    /// moves off (see `actors::affinity`). Call with the GIL released.
    fn answered_from(&self, core: i32, polled: bool);
}

/// A Python `logging` record.
pub struct LogRecord {
    /// Python's level number (10 DEBUG … 50 CRITICAL).
    pub level: i32,
    pub logger: String,
    pub message: String,
    pub file: String,
    pub line: u32,
    /// The formatted exception of `exc_info`, if any.
    pub traceback: Option<String>,
    /// The context whose thread logged it (0: the main interpreter's executors),
    /// or none for Python's own threads.
    pub context: Option<u32>,
}

/// Why a channel gave no value.
pub enum ChannelEnd {
    Timeout,
    /// Closed and drained.
    Closed,
}

static ERLANG: OnceLock<&'static dyn Erlang> = OnceLock::new();

/// Installs the Erlang side (once per node; later calls are ignored).
pub fn install(e: &'static dyn Erlang) {
    let _ = ERLANG.set(e);
}

/// The Erlang side; `None` before the NIF installed it (outside a BEAM).
pub fn erlang() -> Option<&'static dyn Erlang> {
    ERLANG.get().copied()
}
