//! The native functions of the `erlang` module: shared state, messages and calls
//! into Erlang, each reaching the node through [`super::bridge`].
//!
//! Plain CPython `METH_FASTCALL` functions built from static method tables, so
//! each interpreter gets its own function objects from [`install`] and nothing
//! pyo3 caches per process is involved. Every function runs on a thread that holds
//! the calling interpreter's GIL (CPython only calls them that way).

use super::bridge::{self, Erlang, SendError, Stored};
use super::conv_error::ConvError;
use super::types::{from_py, to_py};
use super::value::Value;
use crate::state::IncrError;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt, PyList, PyType};
use std::panic::AssertUnwindSafe;

type Native = for<'py> fn(Python<'py>, &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>>;

/// Runs `f` with the arguments CPython passed, turning errors and panics into
/// Python exceptions.
///
/// # Safety
/// Called by CPython with the calling interpreter's GIL held and `args` pointing
/// at `nargs` borrowed references.
unsafe fn dispatch(args: *mut *mut ffi::PyObject, nargs: ffi::Py_ssize_t, f: Native) -> *mut ffi::PyObject {
    let run = AssertUnwindSafe(|| {
        Python::attach(|py| {
            let argv: Vec<Bound<'_, PyAny>> = (0..nargs.max(0) as usize)
                // SAFETY: CPython calls a native holding the GIL of the interpreter
                // running the calling code (the one `py` is attached to) and passes
                // `nargs` valid borrowed references of that interpreter.
                .map(|i| unsafe { Bound::from_borrowed_ptr(py, *args.add(i)) })
                .collect();
            match f(py, &argv) {
                Ok(v) => v.into_ptr(),
                Err(e) => {
                    e.restore(py);
                    std::ptr::null_mut()
                }
            }
        })
    });
    match std::panic::catch_unwind(run) {
        Ok(p) => p,
        Err(_) => Python::attach(|py| {
            PyRuntimeError::new_err("internal error in the erlang module").restore(py);
            std::ptr::null_mut()
        }),
    }
}

macro_rules! natives {
    ($($name:ident => $imp:path, $doc:literal;)*) => {
        $(
            unsafe extern "C" fn $name(_slf: *mut ffi::PyObject, args: *mut *mut ffi::PyObject, nargs: ffi::Py_ssize_t) -> *mut ffi::PyObject {
                // SAFETY: CPython calls this with the calling interpreter's GIL held
                // (see `dispatch`).
                unsafe { dispatch(args, nargs, $imp) }
            }
        )*
        struct Defs([ffi::PyMethodDef; [$(stringify!($name)),*].len()]);
        // SAFETY: the table is immutable static data; CPython only reads it.
        unsafe impl Sync for Defs {}
        static DEFS: Defs = Defs([$(
            ffi::PyMethodDef {
                ml_name: concat!(stringify!($name), "\0").as_ptr().cast(),
                ml_meth: ffi::PyMethodDefPointer { PyCFunctionFast: $name },
                ml_flags: ffi::METH_FASTCALL,
                ml_doc: concat!($doc, "\0").as_ptr().cast(),
            },
        )*]);
    };
}

natives! {
    state_set => st_set, "state_set(key, value): store value under key, for every context and Erlang.";
    state_get => st_get, "state_get(key, default=None): the value under key.";
    state_delete => st_delete, "state_delete(key): remove key.";
    state_keys => st_keys, "state_keys(): every key.";
    state_incr => st_incr, "state_incr(key, n=1): atomically add n to the counter under key; returns the new value.";
    state_decr => st_decr, "state_decr(key, n=1): atomically subtract n; returns the new value.";
    send => msg_send, "send(pid, term): send term to the Erlang process pid.";
    _call => cb_call, "_call(name, args): call the Erlang function registered as name.";
    _registered => cb_registered, "_registered(name): whether an Erlang function is registered as name.";
    whereis => msg_whereis, "whereis(name): the erlang.Pid registered as name, or None.";
    _task_done => task_done, "_task_done(tid, task): answers the caller waiting for asyncio task tid.";
    _apply => apply_pending, "_apply(): makes the call py:call asked for, from the calling Python frame.";
    _chan_recv => chan_recv, "_chan_recv(id, timeout): the next term of channel id.";
    _write => write_output, "_write(fd, text): text printed to stdout (1) or stderr (2), for Erlang.";
    _log => log_record, "_log(levelno, logger, msg, file, line, exc): a logging record, for Erlang's logger.";
    _context_globals => context_globals, "_context_globals(): the globals of the request this thread serves, or None.";
}

/// Adds the native functions to `module` (in the interpreter `py` is attached to).
pub fn install(py: Python<'_>, module: &Bound<'_, PyAny>) -> PyResult<()> {
    for def in DEFS.0.iter() {
        // SAFETY: the GIL of the interpreter `py` is attached to (the one being
        // given the module) is held; `def` is static and outlives every interpreter;
        // PyCFunction_NewEx returns a new reference or NULL with an exception set.
        let func = unsafe {
            let ptr = ffi::PyCFunction_NewEx(def as *const _ as *mut _, std::ptr::null_mut(), std::ptr::null_mut());
            Bound::from_owned_ptr_or_err(py, ptr)?
        };
        // SAFETY: ml_name is a static NUL-terminated ASCII name.
        let name = unsafe { std::ffi::CStr::from_ptr(def.ml_name) }.to_str().unwrap_or("?");
        module.setattr(name, func)?;
    }
    Ok(())
}

fn arity(args: &[Bound<'_, PyAny>], min: usize, max: usize, name: &str) -> PyResult<()> {
    if args.len() < min || args.len() > max {
        return Err(PyTypeError::new_err(format!("{name}() takes {min} to {max} arguments, got {}", args.len())));
    }
    Ok(())
}

fn conv(e: ConvError) -> PyErr {
    match e {
        ConvError::Unsupported(t) => PyTypeError::new_err(format!("cannot send a {t} to Erlang")),
        ConvError::Invalid(m) => PyValueError::new_err(m),
        e @ ConvError::TooMany(_) => PyValueError::new_err(e.message()),
    }
}

/// The Erlang side, or the error saying the node does not run.
fn node(py: Python<'_>) -> PyResult<&'static dyn Erlang> {
    bridge::erlang().ok_or_else(|| erlang_exception(py, "ErlangError", "erlang_python is not running".into()))
}

fn value(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    from_py(obj, 0).map_err(conv)
}

/// A term stored as external format, as a new Python object.
fn from_ext<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let v = super::etf::decode(bytes).map_err(conv)?;
    to_py(py, &v, 0).map_err(conv)
}

fn st_set<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 2, 2, "state_set")?;
    node(py)?.state_set(&value(&a[0])?, &value(&a[1])?);
    Ok(py.None().into_bound(py))
}

fn st_get<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 1, 2, "state_get")?;
    match node(py)?.state_get(&value(&a[0])?) {
        Some(Stored::Int(i)) => Ok(PyInt::new(py, i).into_any()),
        Some(Stored::Ext(t)) => from_ext(py, &t),
        None => Ok(a.get(1).cloned().unwrap_or_else(|| py.None().into_bound(py))),
    }
}

fn st_delete<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 1, 1, "state_delete")?;
    node(py)?.state_delete(&value(&a[0])?);
    Ok(py.None().into_bound(py))
}

fn st_keys<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 0, 0, "state_keys")?;
    // A key stored from Erlang that Python cannot hold (a binary that is not
    // UTF-8, a reference) is left out: it must not hide every other key.
    let keys: Vec<_> = node(py)?.state_keys().iter().filter_map(|k| from_ext(py, k).ok()).collect();
    Ok(PyList::new(py, keys)?.into_any())
}

fn counter<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>], sign: i64, name: &str) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 1, 2, name)?;
    let by: i64 = match a.get(1) {
        Some(n) => n.extract()?,
        None => 1,
    };
    let by = by.checked_mul(sign).ok_or_else(|| PyValueError::new_err("increment out of range"))?;
    match node(py)?.state_incr(&value(&a[0])?, by) {
        Ok(v) => Ok(PyInt::new(py, v).into_any()),
        Err(IncrError::NotAnInteger) => Err(PyTypeError::new_err("the value under this key is not an integer counter")),
        Err(IncrError::Overflow) => Err(PyValueError::new_err("counter overflow (64-bit)")),
    }
}

fn st_incr<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    counter(py, a, 1, "state_incr")
}

fn st_decr<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    counter(py, a, -1, "state_decr")
}

/// The `erlang` module's own exception class `name`, for this interpreter.
pub fn erlang_exception(py: Python<'_>, name: &str, msg: String) -> PyErr {
    let class = py
        .import("sys")
        .and_then(|s| s.getattr("modules"))
        .and_then(|m| m.get_item("erlang"))
        .and_then(|m| m.getattr(name))
        .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
    match class {
        Ok(c) => PyErr::from_type(c, msg),
        Err(e) => e,
    }
}

fn cb_call<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 2, 2, "_call")?;
    let args = a[1].cast::<pyo3::types::PyTuple>().map_err(|_| PyTypeError::new_err("_call() needs a tuple of arguments"))?;
    super::callback::call_erlang(py, &a[0], args)
}

fn msg_send<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 2, 2, "send")?;
    let to = match value(&a[0]) {
        Ok(v @ Value::Pid { .. }) => v,
        _ => return Err(PyTypeError::new_err("send() needs an erlang.Pid")),
    };
    match node(py)?.send(&to, &value(&a[1])?) {
        Ok(()) => Ok(py.None().into_bound(py)),
        Err(SendError::NotAPid) => Err(PyTypeError::new_err("send() needs an erlang.Pid")),
        Err(SendError::OnScheduler) => Err(PyRuntimeError::new_err("erlang.send() cannot run on a BEAM scheduler thread")),
        Err(SendError::NotAlive) => Err(erlang_exception(py, "ProcessError", format!("process {} is not alive", a[0].repr()?))),
    }
}

fn cb_registered<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 1, 1, "_registered")?;
    let name: String = a[0].extract()?;
    let registered = bridge::erlang().is_some_and(|e| e.is_registered(&name));
    Ok(PyBool::new(py, registered).to_owned().into_any())
}

fn msg_whereis<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 1, 1, "whereis")?;
    let name: String = a[0].extract().map_err(|_| PyTypeError::new_err("whereis() needs a name (str)"))?;
    match node(py)?.whereis(&name) {
        Some(pid) => to_py(py, &pid, 0).map_err(conv),
        None => Ok(py.None().into_bound(py)),
    }
}

/// The done-callback of an asyncio task started by `py:async_call` (run by the
/// loop, on the context's thread): hands its result, its exception (with the
/// traceback) or its cancellation to the caller, unless the caller gave up.
fn task_done<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 2, 2, "_task_done")?;
    let tid: u64 = a[0].extract()?;
    let task = &a[1];
    let result = if task.call_method0("cancelled").and_then(|c| c.extract::<bool>()).unwrap_or(false) {
        Err(super::value::Failure::Cancelled)
    } else {
        match task.call_method0("exception") {
            Ok(exc) if !exc.is_none() => Err(super::exec::python_failure(py, PyErr::from_value(exc))),
            Ok(_) => match task.call_method0("result") {
                Ok(v) => from_py(&v, 0).map_err(super::value::Failure::from),
                Err(e) => Err(super::exec::python_failure(py, e)),
            },
            Err(e) => Err(super::exec::python_failure(py, e)),
        }
    };
    node(py)?.task_done(tid, result);
    Ok(py.None().into_bound(py))
}

/// A call `py:call(builtins, eval | exec | …)` makes from a Python frame (see
/// `exec::call_in_frame`): set just before that frame runs, taken by `_apply`.
type PendingCall = (Py<PyAny>, Py<pyo3::types::PyTuple>, Option<Py<pyo3::types::PyDict>>);

thread_local! {
    static PENDING: std::cell::RefCell<Option<PendingCall>> = const { std::cell::RefCell::new(None) };
}

/// Parks `f(*args, **kwargs)` for this thread's next `erlang._apply()`.
pub fn set_pending_call(f: Bound<'_, PyAny>, args: Bound<'_, pyo3::types::PyTuple>, kwargs: Option<Bound<'_, pyo3::types::PyDict>>) {
    PENDING.with(|p| *p.borrow_mut() = Some((f.unbind(), args.unbind(), kwargs.map(Bound::unbind))));
}

/// Takes the parked call back (drop it with the interpreter's GIL held).
pub fn take_pending_call() -> Option<PendingCall> {
    PENDING.with(|p| p.borrow_mut().take())
}

fn apply_pending<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 0, 0, "_apply")?;
    let (f, args, kwargs) = take_pending_call().ok_or_else(|| PyRuntimeError::new_err("_apply() has no call to make"))?;
    f.bind(py).call(args.bind(py), kwargs.as_ref().map(|k| k.bind(py)))
}

/// How long one wait of a `recv` with no timeout lasts before it looks whether
/// the request it serves was given up.
const CHANNEL_SLICE: std::time::Duration = std::time::Duration::from_millis(100);

/// `erlang.Channel.recv`: waits with the GIL released; `TimeoutError` after
/// `timeout` seconds; `erlang.ChannelClosed` once closed and drained.
fn chan_recv<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    use super::bridge::ChannelEnd;
    use std::time::{Duration, Instant};
    arity(a, 2, 2, "_chan_recv")?;
    let id: u64 = a[0].extract()?;
    let timeout: Option<f64> = a[1].extract()?;
    let node = node(py)?;
    // A timeout too long for a deadline (1e300, inf) is none at all.
    let deadline = timeout.and_then(|t| Duration::try_from_secs_f64(t.max(0.0)).ok().and_then(|d| Instant::now().checked_add(d)));
    loop {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(CHANNEL_SLICE),
            None => CHANNEL_SLICE,
        };
        match py.detach(|| node.channel_recv(id, Some(slice))) {
            Ok(v) => return to_py(py, &v, 0).map_err(conv),
            Err(ChannelEnd::Closed) => return Err(erlang_exception(py, "ChannelClosed", format!("channel {id} is closed"))),
            Err(ChannelEnd::Timeout) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(pyo3::exceptions::PyTimeoutError::new_err("no message on the channel in time"));
                }
                // A request whose caller gave up stops waiting (Python could not
                // be interrupted while the thread waited outside it).
                if super::callback::gave_up() {
                    return Err(erlang_exception(py, "ErlangError", "the Erlang caller stopped waiting".into()));
                }
                // An exception aimed at this thread meanwhile (py:interrupt/1).
                super::interrupt::raise_pending(py)?;
            }
        }
    }
}

/// `erlang._context_globals()`: what `__main__` means for the calling thread
/// (see `erlang._share_main`).
fn context_globals<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 0, 0, "_context_globals")?;
    Ok(match super::callback::main_globals(py) {
        Some(g) => g.into_any(),
        None => py.None().into_bound(py),
    })
}

/// `sys.stdout.write` / `sys.stderr.write` (see `erlang._Output`).
fn write_output<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 2, 2, "_write")?;
    let fd: u8 = a[0].extract()?;
    let text = a[1].cast::<pyo3::types::PyString>().map_err(|_| PyTypeError::new_err("write() argument must be str"))?;
    let text = text.to_str()?;
    super::callback::output(fd, text);
    Ok(pyo3::types::PyInt::new(py, text.chars().count() as i64).into_any())
}

/// A `logging` record for Erlang's `logger` (see `erlang._configure_logging`).
fn log_record<'py>(py: Python<'py>, a: &[Bound<'py, PyAny>]) -> PyResult<Bound<'py, PyAny>> {
    arity(a, 6, 6, "_log")?;
    let record = super::bridge::LogRecord {
        level: a[0].extract()?,
        logger: a[1].extract()?,
        message: a[2].extract()?,
        file: a[3].extract().unwrap_or_default(),
        line: a[4].extract().unwrap_or(0),
        traceback: a[5].extract()?,
        context: super::callback::context(),
    };
    if let Some(e) = bridge::erlang() {
        e.log(record);
    }
    Ok(py.None().into_bound(py))
}
