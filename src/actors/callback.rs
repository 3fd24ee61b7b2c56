//! Python → Erlang → Python callbacks without a blocked scheduler or a deadlock.
//!
//! When Python calls `erlang.call(name, *args)` while a job is being served, the
//! serving thread sends `{py_callback, Tag, Handle, Name, Args}` to the job's
//! caller, which is waiting for that job's reply anyway and runs the registered
//! Erlang function itself. The thread then waits on the chain's channel, with its
//! GIL released, for one of two things:
//!
//! * the callback's result (`callback_reply/2`), which `erlang.call` returns; or
//! * a nested job of the same chain: the Erlang function called back into the
//!   same context. The NIF routes such a job (its caller carries the chain handle)
//!   to this channel instead of the mailbox, and the waiting thread serves it right
//!   there, re-entrantly, so chains nest as deep as the user goes.
//!
//! While it waits the thread serves nothing else: unrelated callers never see the
//! suspended Python state half-way. If the caller stops waiting (timeout, death)
//! the wait ends with an `erlang.ErlangError` in Python.

use super::job::{CallToken, Job, Target};
use crate::interp::convert::{py_to_term, term_to_py};
use crate::interp::exec::Globals;
use crate::interp::natives::erlang_exception;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use rustler::env::SavedTerm;
use rustler::types::tuple::get_tuple;
use rustler::{Encoder, LocalPid, OwnedEnv, Resource, ResourceArc};
use std::cell::RefCell;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What reaches a suspended thread.
pub enum ChainMsg {
    /// The callback's result: `{ok, Value} | {error, Reason}` saved in the env.
    Reply(OwnedEnv, SavedTerm),
    /// A job of the same chain for the same target.
    Nested(Job),
}

/// Which jobs of its chain a suspended thread can serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accept {
    /// A context actor: only jobs for its own context (its own interpreter).
    Same(Target),
    /// An executor on the main interpreter: the main target, and every context
    /// when contexts share the main interpreter (each runs in its own globals).
    MainInterp { shared_contexts: bool },
    /// A thread that serves no request (Python's own threads): none; calls
    /// back into Python are routed as usual.
    Nothing,
}

/// The Erlang side's handle on one suspended `erlang.call`.
pub struct CallbackHandle {
    tx: Mutex<Option<Sender<ChainMsg>>>,
    accept: Accept,
}

impl Resource for CallbackHandle {}

impl CallbackHandle {
    /// Hands `job` to the suspended thread if it is for the same target;
    /// gives it back otherwise (or if the thread is gone).
    pub fn offer(&self, job: Job) -> Result<(), Job> {
        let ok = match self.accept {
            Accept::Same(t) => job.target == t,
            Accept::MainInterp { shared_contexts } => job.target == Target::Main || shared_contexts,
            Accept::Nothing => false,
        };
        if !ok {
            return Err(job);
        }
        let guard = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(tx) => tx.send(ChainMsg::Nested(job)).map_err(|mpsc::SendError(m)| match m {
                ChainMsg::Nested(j) => j,
                ChainMsg::Reply(..) => unreachable!(),
            }),
            None => Err(job),
        }
    }

    /// Delivers the callback's result; false if the thread stopped waiting.
    pub fn reply(&self, env: OwnedEnv, result: SavedTerm) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        tx.is_some_and(|tx| tx.send(ChainMsg::Reply(env, result)).is_ok())
    }
}

/// The job a thread is serving, for `erlang.call` made by its Python code.
struct Serving {
    reply_to: LocalPid,
    tag: Vec<u8>,
    token: Arc<CallToken>,
    accept: Accept,
    globals: Py<PyDict>,
}

thread_local! {
    static SERVING: RefCell<Vec<Serving>> = const { RefCell::new(Vec::new()) };
}

/// Marks the current thread as serving a job until the guard drops.
pub struct ServingGuard<'py>(Python<'py>);

impl Drop for ServingGuard<'_> {
    fn drop(&mut self) {
        // Popped with the GIL held (the guard lives inside the attached region).
        let top = SERVING.with(|s| s.borrow_mut().pop());
        drop(top);
    }
}

/// Records what `erlang.call` needs while `job` runs in `globals`.
pub fn enter<'py>(
    py: Python<'py>,
    reply_to: LocalPid,
    tag: &[u8],
    token: Arc<CallToken>,
    accept: Accept,
    globals: &Bound<'py, PyDict>,
) -> ServingGuard<'py> {
    let s = Serving { reply_to, tag: tag.to_vec(), token, accept, globals: globals.clone().unbind() };
    SERVING.with(|v| v.borrow_mut().push(s));
    ServingGuard(py)
}

const POLL: Duration = Duration::from_millis(50);
const SPIN: Duration = Duration::from_micros(40);

/// `erlang.call(name, *args)`.
pub fn call_erlang<'py>(py: Python<'py>, name: &Bound<'py, PyAny>, args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
    let serving =
        SERVING.with(|s| s.borrow().last().map(|c| (c.reply_to, c.tag.clone(), c.token.clone(), c.accept, c.globals.clone_ref(py))));
    let Some((reply_to, tag, token, accept, globals)) = serving else {
        return call_from_thread(py, name, args);
    };
    let (tx, rx) = mpsc::channel();
    let handle = ResourceArc::new(CallbackHandle { tx: Mutex::new(Some(tx)), accept });
    // {py_callback, Tag, Handle, Name, Args}
    let mut env = OwnedEnv::new();
    let msg = env.run(|e| -> PyResult<SavedTerm> {
        let (tag, _) = e.binary_to_term(&tag).ok_or_else(|| PyRuntimeError::new_err("bad tag"))?;
        let name = py_to_term(e, name, 0).map_err(|err| PyTypeError::new_err(err.message()))?;
        let args = py_to_term(e, args.as_any(), 0).map_err(|err| PyTypeError::new_err(err.message()))?;
        let args: Vec<_> = get_tuple(args).unwrap_or_default();
        Ok(env.save((crate::atoms::py_callback(), tag, handle.clone(), name, args).encode(e)))
    })?;
    if env.send_and_clear(&reply_to, |e| msg.load(e)).is_err() {
        return Err(erlang_exception(py, "ErlangError", "the Erlang caller is gone".into()));
    }
    drop(handle);
    wait(py, rx, &token, accept, globals)
}

/// How long a Python thread's `erlang.call` waits for a semaphore permit.
const THREAD_PERMIT_WAIT: Duration = Duration::from_millis(1000);

/// `erlang.call` from a thread that serves no request (started by Python code:
/// `threading`, `concurrent.futures`, asyncio executors). Nobody waits for this
/// thread in Erlang, so the call runs in a fresh process of the application
/// (`py_cast_sink` spawns it); it takes a semaphore permit for its duration,
/// waiting at most a second for one (then `erlang.ErlangError` naming the
/// overload, never a hang), and the thread waits without the GIL.
fn call_from_thread<'py>(py: Python<'py>, name: &Bound<'py, PyAny>, args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
    let permit = py.detach(|| -> Result<super::semaphore::Permit, ()> {
        if let Ok(p) = super::semaphore::try_acquire() {
            return Ok(p);
        }
        let (ptx, prx) = mpsc::channel();
        let id = super::semaphore::enqueue(Box::new(move |p| ptx.send(p).err().map(|mpsc::SendError(p)| p)));
        match prx.recv_timeout(THREAD_PERMIT_WAIT) {
            Ok(p) => Ok(p),
            Err(_) if super::semaphore::withdraw(id) => Err(()),
            // Handed one just now.
            Err(_) => prx.recv().map_err(|_| ()),
        }
    });
    let Ok(permit) = permit else {
        let (cur, max) = (super::semaphore::current(), super::semaphore::max());
        return Err(erlang_exception(
            py,
            "ErlangError",
            format!(
                "erlang_python is overloaded ({cur} of {max} requests in flight): erlang.call from a thread gave up after {} ms",
                THREAD_PERMIT_WAIT.as_millis()
            ),
        ));
    };
    let (tx, rx) = mpsc::channel();
    let handle = ResourceArc::new(CallbackHandle { tx: Mutex::new(Some(tx)), accept: Accept::Nothing });
    rustler::atoms! { thread, py_cast_sink }
    let mut env = OwnedEnv::new();
    let sink = env.run(|e| {
        let mut pid = std::mem::MaybeUninit::uninit();
        // SAFETY: Python threads are not BEAM threads, so the caller env is NULL
        // as enif_whereis_pid requires there; the name is an atom term.
        let found = unsafe { rustler::sys::enif_whereis_pid(std::ptr::null_mut(), py_cast_sink().to_term(e).as_c_arg(), pid.as_mut_ptr()) };
        // SAFETY: initialised by the successful call.
        (found != 0).then(|| LocalPid::from_c_arg(unsafe { pid.assume_init() }))
    });
    let Some(sink) = sink else {
        return Err(erlang_exception(py, "ErlangError", "erlang_python is not running".into()));
    };
    let msg = env.run(|e| -> PyResult<SavedTerm> {
        let name = py_to_term(e, name, 0).map_err(|err| PyTypeError::new_err(err.message()))?;
        let args = py_to_term(e, args.as_any(), 0).map_err(|err| PyTypeError::new_err(err.message()))?;
        let args: Vec<_> = get_tuple(args).unwrap_or_default();
        Ok(env.save((crate::atoms::py_callback(), thread(), handle.clone(), name, args).encode(e)))
    })?;
    if env.send_and_clear(&sink, |e| msg.load(e)).is_err() {
        return Err(erlang_exception(py, "ErlangError", "erlang_python is not running".into()));
    }
    drop(handle);
    // No nested job reaches this thread (`Accept::Nothing`): the globals go unused.
    let result = wait(py, rx, &CallToken::default(), Accept::Nothing, PyDict::new(py).unbind());
    drop(permit);
    result
}

fn wait<'py>(
    py: Python<'py>,
    mut rx: Receiver<ChainMsg>,
    token: &CallToken,
    accept: Accept,
    globals: Py<PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    loop {
        let (back, got) = py.detach(move || {
            // The answer usually comes within microseconds: poll briefly before
            // sleeping on the channel (waking a sleeping thread costs more).
            let until = std::time::Instant::now() + SPIN;
            while std::time::Instant::now() < until {
                match rx.try_recv() {
                    Ok(m) => return (rx, Ok(m)),
                    Err(mpsc::TryRecvError::Disconnected) => return (rx, Err(RecvTimeoutError::Disconnected)),
                    Err(mpsc::TryRecvError::Empty) => std::thread::yield_now(),
                }
            }
            let got = rx.recv_timeout(POLL);
            (rx, got)
        });
        rx = back;
        match got {
            Ok(ChainMsg::Reply(env, result)) => return reply_to_python(py, env, result),
            Ok(ChainMsg::Nested(job)) => match accept {
                Accept::Nothing => drop(job),
                Accept::Same(_) => job.serve_nested(py, globals.bind(py), accept),
                Accept::MainInterp { .. } => {
                    let g = match job.target {
                        Target::Main => Globals::Main,
                        Target::Context(id) => Globals::Shared(id),
                    };
                    match g.get(py) {
                        Ok(g) => job.serve_nested(py, &g, accept),
                        Err(e) => return Err(e),
                    }
                }
            },
            Err(RecvTimeoutError::Timeout) if token.is_cancelled() => {
                return Err(erlang_exception(py, "ErlangError", "the Erlang caller stopped waiting".into()));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                return Err(erlang_exception(py, "ErlangError", "the Erlang caller went away during the callback".into()));
            }
        }
    }
}

fn reply_to_python<'py>(py: Python<'py>, env: OwnedEnv, result: SavedTerm) -> PyResult<Bound<'py, PyAny>> {
    rustler::atoms! { unknown_function }
    env.run(|e| {
        let t = result.load(e);
        let parts = get_tuple(t).unwrap_or_default();
        match parts.as_slice() {
            [tag, value] if tag.decode::<rustler::Atom>().ok() == Some(crate::atoms::ok()) => {
                term_to_py(py, *value, 0).map_err(|err| PyTypeError::new_err(format!("callback result: {}", err.message())))
            }
            [_, reason] => {
                let (class, text) = match get_tuple(*reason).ok().as_deref() {
                    Some([k, name]) if k.decode::<rustler::Atom>().ok() == Some(unknown_function()) => {
                        ("UnknownFunction", format!("no Erlang function registered as {:?}", name.decode::<String>().unwrap_or_default()))
                    }
                    _ => ("ErlangError", reason.decode::<String>().unwrap_or_else(|_| format!("{reason:?}"))),
                };
                Err(erlang_exception(py, class, text))
            }
            _ => Err(PyRuntimeError::new_err("malformed callback reply")),
        }
    })
}
