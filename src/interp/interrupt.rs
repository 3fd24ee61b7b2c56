//! Stopping running Python code: `TimeoutError` (its caller gave up) or
//! `KeyboardInterrupt` (`py:interrupt/1`) raised asynchronously in the thread that runs it (`PyThreadState_SetAsyncExc`).
//! Python delivers it at its next bytecode boundary, so a loop in Python stops;
//! a blocking C call (`time.sleep`, I/O) finishes first. A C function a request
//! calls directly runs no bytecode after it: [`delivered`] raises the
//! exception when it returns.

use super::exec::Outcome;
use super::value::Failure;
use pyo3::ffi;
use pyo3::Python;
use std::os::raw::c_ulong;

extern "C" {
    /// CPython's identifier of the calling OS thread (what `tstate->thread_id` holds).
    fn PyThread_get_thread_ident() -> c_ulong;
}

/// Where the calling thread runs Python: its interpreter and thread identifier,
/// as plain numbers (see `actors::token`).
pub fn here(_py: Python<'_>) -> (usize, u64) {
    // SAFETY: the caller is attached (`py`), so its interpreter is current and alive.
    unsafe { (ffi::PyInterpreterState_Get() as usize, PyThread_get_thread_ident() as u64) }
}

/// Which exception an interruption raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Raise {
    /// The caller gave up (timeout or death).
    Timeout,
    /// `py:interrupt/1`.
    KeyboardInterrupt,
    /// A stream cancelled while its iterator runs: `GeneratorExit`.
    Closing,
    /// In a step of asyncio loop `key`, only while a task's step runs there
    /// (never in the loop's own code, where it would lose the loop's work):
    /// `KeyboardInterrupt` in whichever task (`py:interrupt/1`), or
    /// `asyncio.CancelledError` in task `task` only (its caller gave up).
    InTask { key: u32, task: Option<u64> },
}

/// Raises `exc` in thread `thread` of interpreter `interp`; false if it
/// decided not to (an [`Raise::InTask`] with no such task step running).
///
/// # Safety
/// Call from a thread with no Python thread state of its own (it takes one of
/// `interp` for the duration, so it waits for that interpreter's GIL if it has
/// one), and only while `interp` is alive: the job running there cannot end
/// before this returns (see `actors::token::CallToken::interrupt`).
pub unsafe fn raise(interp: usize, thread: u64, exc: Raise) -> bool {
    // With no GIL the job's thread runs on while we look: a task's step seen
    // running may have ended before the exception is taken, and it would
    // cancel another task. Such a task is cancelled at its next await.
    if cfg!(Py_GIL_DISABLED) && matches!(exc, Raise::InTask { task: Some(_), .. }) {
        return false;
    }
    let interp = interp as *mut ffi::PyInterpreterState;
    // SAFETY (per the contract above): a fresh thread state of `interp` for this
    // thread; attaching takes `interp`'s GIL (or none on a free-threaded build),
    // which PyThreadState_SetAsyncExc requires; then the state is dropped again.
    // The builtin exception classes are statics shared by every interpreter;
    // `asyncio.CancelledError` is found in `interp` itself, attached. pyo3's
    // attach inside finds this thread state through the gilstate binding
    // `PyEval_RestoreThread` made (see `thread::PinnedInterp::run`).
    let ts = ffi::PyThreadState_New(interp);
    ffi::PyEval_RestoreThread(ts);
    let raised = match exc {
        Raise::Timeout => {
            ffi::PyThreadState_SetAsyncExc(thread as _, ffi::PyExc_TimeoutError);
            true
        }
        Raise::KeyboardInterrupt => {
            ffi::PyThreadState_SetAsyncExc(thread as _, ffi::PyExc_KeyboardInterrupt);
            true
        }
        Raise::Closing => {
            ffi::PyThreadState_SetAsyncExc(thread as _, ffi::PyExc_GeneratorExit);
            true
        }
        Raise::InTask { key, task } => Python::attach(|py| {
            // Looked at running no bytecode (dict lookups and `_asyncio`'s C
            // functions), so with the GIL held here the job's thread cannot
            // move on meanwhile; it takes the exception at its next bytecode,
            // inside the same step.
            let Some(class) = super::asyncio::step_exception(py, key, task) else { return false };
            ffi::PyThreadState_SetAsyncExc(thread as _, class.as_ptr());
            true
        }),
    };
    ffi::PyThreadState_Clear(ts);
    ffi::PyThreadState_DeleteCurrent();
    raised
}

/// Raises an asynchronous exception aimed at the calling thread (a timeout,
/// the caller's death, `py:interrupt/1`), if one is pending. Python delivers
/// one only while it runs bytecode: code that waits or loops outside Python
/// (a channel's `recv`, a C iterator) calls this now and then.
pub fn raise_pending(py: Python<'_>) -> pyo3::PyResult<()> {
    py.eval(c"None", None, None).map(drop)
}

/// `result` of the request this thread serves, or the exception an
/// interruption raised meanwhile (a timeout, the caller's death,
/// `py:interrupt/1`) that Python has not delivered: raised while a C function
/// the request called directly ran (`py:call(Ctx, time, sleep, [5])`), it
/// would never be, since no bytecode runs after it. Only a plain result: a
/// ref, a stream or a task is kept already.
pub fn delivered(py: Python<'_>, result: Result<Outcome, Failure>) -> Result<Outcome, Failure> {
    let Ok(Outcome::Value(_) | Outcome::Done) = result else { return result };
    let Some(caller) = super::callback::interrupted() else { return result };
    // The interrupter may still wait for the GIL this thread holds (a C
    // function that keeps it ran until now): let it raise, then deliver.
    py.detach(|| caller.await_interrupt());
    match raise_pending(py) {
        Err(e) => Err(super::exec::python_failure(py, e)),
        Ok(()) => result,
    }
}

/// Drops an asynchronous exception aimed at the calling thread that Python did not
/// deliver before the job ended, so the next job does not get it.
pub fn clear_pending(_py: Python<'_>) {
    // SAFETY: the caller is attached to its interpreter (`py`); a NULL exception
    // clears the pending one of the thread with this identifier.
    unsafe {
        ffi::PyThreadState_SetAsyncExc(PyThread_get_thread_ident() as _, std::ptr::null_mut());
    }
}
