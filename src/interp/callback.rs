//! `erlang.call` from Python: the thread's side of a callback chain.
//!
//! While a request runs, its thread records the request's [`Caller`] (the
//! Erlang process waiting for it, as `actors::callback` represents it) and its
//! globals. `erlang.call(name, *args)` then hands the call to that caller, which
//! runs the registered Erlang function itself, and waits on the chain's channel
//! with the GIL released for one of two things:
//!
//! * the function's result, which `erlang.call` returns; or
//! * a nested request of the same chain: the Erlang function called back into
//!   this interpreter. It is served right here, re-entrantly, in the right
//!   globals, so chains nest as deep as the user goes.
//!
//! While it waits the thread serves nothing else: unrelated callers never see
//! the suspended Python state half-way. If the caller stops waiting (timeout,
//! death) the wait ends with an `erlang.ErlangError`. A thread that serves no
//! request (Python's own threads) calls through the bridge instead: the call runs
//! in a process of the application, holding a semaphore permit.

use super::bridge::{self, CallError, Caller, ChainMsg, Place};
use super::exec::{self, CodeCache};
use super::natives::erlang_exception;
use super::types::{from_py, to_py};
use super::value::Value;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::cell::RefCell;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

/// The request a thread is serving, for the `erlang.call`s of its Python code.
struct Serving {
    caller: Arc<dyn Caller>,
    globals: Py<PyDict>,
}

thread_local! {
    static SERVING: RefCell<Vec<Serving>> = const { RefCell::new(Vec::new()) };
}

/// Marks the current thread as serving a request until the guard drops.
pub struct ServingGuard<'py>(#[allow(dead_code)] Python<'py>);

impl Drop for ServingGuard<'_> {
    fn drop(&mut self) {
        // Popped with the GIL held (the guard lives inside the attached region).
        let top = SERVING.with(|s| s.borrow_mut().pop());
        drop(top);
    }
}

thread_local! {
    /// The globals of a stream step or an asyncio loop step this thread takes
    /// (no request: nobody waits on it), for what `__main__` means meanwhile.
    static STEPPING: RefCell<Vec<Py<PyDict>>> = const { RefCell::new(Vec::new()) };
}

/// Marks the current thread as taking a step in `globals` until the guard drops.
pub struct StepGuard<'py>(#[allow(dead_code)] Python<'py>);

impl Drop for StepGuard<'_> {
    fn drop(&mut self) {
        // Popped with the GIL held (the guard lives inside the attached region).
        let top = STEPPING.with(|s| s.borrow_mut().pop());
        drop(top);
    }
}

/// Records that a stream or loop step runs in `globals`.
pub fn stepping<'py>(py: Python<'py>, globals: &Bound<'py, PyDict>) -> StepGuard<'py> {
    STEPPING.with(|v| v.borrow_mut().push(globals.clone().unbind()));
    StepGuard(py)
}

/// What `__main__` means on this thread: the globals of the request it serves,
/// else of the stream or loop step it takes, else none (the real `__main__`).
pub fn main_globals(py: Python<'_>) -> Option<Bound<'_, PyDict>> {
    current_globals(py).or_else(|| STEPPING.with(|s| s.borrow().last().map(|g| g.bind(py).clone())))
}

/// Records what `erlang.call` needs while a request of `caller` runs in `globals`.
pub fn enter<'py>(py: Python<'py>, caller: Arc<dyn Caller>, globals: &Bound<'py, PyDict>) -> ServingGuard<'py> {
    SERVING.with(|v| v.borrow_mut().push(Serving { caller, globals: globals.clone().unbind() }));
    ServingGuard(py)
}

/// Text written to `sys.stdout` (1) or `sys.stderr` (2): to the caller of the
/// request this thread serves, else to the node's logger.
pub fn output(fd: u8, text: &str) {
    let caller = SERVING.with(|s| s.borrow().last().map(|c| c.caller.clone()));
    match caller {
        Some(c) => c.output(fd, text),
        None => {
            if let Some(e) = bridge::erlang() {
                e.output(fd, text)
            }
        }
    }
}

/// The context of the request this thread serves, else the context the thread
/// belongs to (none for Python's own threads).
pub fn context() -> Option<u32> {
    SERVING.with(|s| s.borrow().last().map(|c| c.caller.context())).or_else(super::host::thread_context)
}

/// Whether the caller of the request this thread serves stopped waiting.
pub fn gave_up() -> bool {
    SERVING.with(|s| s.borrow().last().is_some_and(|c| c.caller.gave_up()))
}

/// The caller of the request this thread serves, if an interruption was
/// raised (or is being raised) in it.
pub fn interrupted() -> Option<Arc<dyn Caller>> {
    SERVING.with(|s| s.borrow().last().filter(|c| c.caller.interrupted()).map(|c| c.caller.clone()))
}

/// The globals of the request this thread is serving, if any.
pub fn current_globals(py: Python<'_>) -> Option<Bound<'_, PyDict>> {
    SERVING.with(|s| s.borrow().last().map(|c| c.globals.bind(py).clone()))
}

const POLL: Duration = Duration::from_millis(50);
const SPIN: Duration = Duration::from_micros(40);

fn values(name: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<(Value, Vec<Value>)> {
    // The name and the arguments are one conversion, counted as one.
    let _counted = super::conv_error::count(super::conv_error::max_terms());
    let name = from_py(name, 0).map_err(|e| PyTypeError::new_err(e.message()))?;
    let args = args.iter().map(|a| from_py(&a, 1)).collect::<Result<Vec<_>, _>>().map_err(|e| PyTypeError::new_err(e.message()))?;
    Ok((name, args))
}

/// `erlang.call(name, *args)`.
pub fn call_erlang<'py>(py: Python<'py>, name: &Bound<'py, PyAny>, args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
    let (name, args) = values(name, args)?;
    let serving = SERVING.with(|s| s.borrow().last().map(|c| (c.caller.clone(), c.globals.clone_ref(py))));
    let Some((caller, globals)) = serving else {
        return call_from_thread(py, &name, &args);
    };
    let rx = caller.callback(&name, &args).map_err(|e| call_error(py, e))?;
    wait(py, rx, &|| caller.gave_up(), Some(globals))
}

/// `erlang.call` from a thread that serves no request (started by Python code:
/// `threading`, `concurrent.futures`, asyncio executors).
fn call_from_thread<'py>(py: Python<'py>, name: &Value, args: &[Value]) -> PyResult<Bound<'py, PyAny>> {
    let Some(erlang) = bridge::erlang() else {
        return Err(erlang_exception(py, "ErlangError", "erlang_python is not running".into()));
    };
    let call = py.detach(|| erlang.call_from_thread(name, args)).map_err(|e| call_error(py, e))?;
    // No nested request reaches this thread: its caller accepts none.
    let result = wait(py, call.answers, &|| false, None);
    drop(call.permit);
    result
}

fn call_error(py: Python<'_>, e: CallError) -> PyErr {
    match e {
        CallError::UnknownFunction(name) => erlang_exception(py, "UnknownFunction", format!("no Erlang function registered as {name:?}")),
        CallError::Failed(m) | CallError::Unavailable(m) => erlang_exception(py, "ErlangError", m),
        CallError::BadValue(m) => PyTypeError::new_err(format!("callback result: {m}")),
    }
}

/// A nested request marked running on this thread (see
/// [`bridge::RunMark`]), until dropped, however the request ends; with the
/// interruptions its suspended request had had when it started.
struct Marked<'py>(Python<'py>, Option<Arc<dyn bridge::RunMark>>, u32);

/// Interruptions raised so far in the request this thread serves.
fn interruptions() -> u32 {
    SERVING.with(|s| s.borrow().last().map_or(0, |c| c.caller.interruptions()))
}

impl<'py> Marked<'py> {
    /// `None`: its caller gave up before it ran (it must not run).
    fn start(py: Python<'py>, mark: Option<Arc<dyn bridge::RunMark>>) -> Option<Self> {
        let before = interruptions();
        if let Some(m) = &mark {
            let (interp, thread) = super::interrupt::here(py);
            // Detached: an interrupter holds the mark's lock while it waits
            // for this interpreter's GIL.
            if !py.detach(|| m.running_on(interp, thread)) {
                return None;
            }
        }
        Some(Marked(py, mark, before))
    }
}

impl Drop for Marked<'_> {
    fn drop(&mut self) {
        let (py, Some(m)) = (self.0, self.1.take()) else { return };
        // An interruption Python did not deliver before the request ended
        // must not reach the code suspended under it, unless that code's own
        // request was interrupted while it ran (then it is that request's).
        // One being raised in that request is waited out first: its count is
        // final only then (one that decides not to raise takes it back).
        let outer = SERVING.with(|s| s.borrow().last().map(|c| c.caller.clone()));
        let interrupted = py.detach(|| {
            if let Some(c) = &outer {
                c.await_interrupt();
            }
            m.ran()
        });
        if interrupted && interruptions() == self.2 {
            super::interrupt::clear_pending(py);
        }
    }
}

fn wait<'py>(
    py: Python<'py>,
    mut rx: Receiver<ChainMsg>,
    gave_up: &dyn Fn() -> bool,
    globals: Option<Py<PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    loop {
        let (back, got) = py.detach(move || {
            // The answer usually comes within microseconds: poll briefly before
            // sleeping on the channel (waking a sleeping thread costs more).
            let (got, polled) = super::wire::recv_polled_timeout(&rx, SPIN, POLL);
            if let (Ok(ChainMsg::Reply(_, core)), Some(e)) = (&got, bridge::erlang()) {
                e.answered_from(*core, polled);
            }
            (rx, got)
        });
        rx = back;
        match got {
            Ok(ChainMsg::Reply(Ok(v), _)) => return to_py(py, &v, 0).map_err(|e| call_error(py, CallError::BadValue(e.message()))),
            Ok(ChainMsg::Reply(Err(e), _)) => return Err(call_error(py, e)),
            Ok(ChainMsg::Nested(job)) => {
                let g = match job.place() {
                    Place::Own => match &globals {
                        Some(g) => g.bind(py).clone(),
                        None => continue,
                    },
                    Place::Main => exec::main_globals(py)?,
                    Place::Shared(id) => super::shared_contexts::globals(py, id)?,
                };
                // Registered as what runs here, as a request of its own is:
                // its caller's timeout or death interrupts it.
                let Some(_marked) = Marked::start(py, job.mark()) else { continue };
                job.serve(&mut |op, req, caller| {
                    let _serving = enter(py, caller.clone(), &g);
                    exec::run(py, &mut CodeCache::default(), &g, op, req)
                });
            }
            Err(RecvTimeoutError::Timeout) if gave_up() => {
                return Err(erlang_exception(py, "ErlangError", "the Erlang caller stopped waiting".into()));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(erlang_exception(py, "ErlangError", "the Erlang caller went away during the callback".into()));
            }
        }
    }
}
