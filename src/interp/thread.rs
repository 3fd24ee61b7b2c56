//! A Python thread state pinned to one OS thread.
//!
//! Each executor or context actor runs on its own OS thread and owns one
//! [`PinnedInterp`]: a thread state of the main interpreter (`multi_executor`), or
//! a whole OWN_GIL sub-interpreter (`subinterp`). The thread attaches for each job
//! and detaches when idle, so Python threads started by user code still run.
//!
//! A `PinnedInterp` is `!Send`: created, used and dropped on the same thread.

use pyo3::ffi;
use pyo3::Python;
use std::marker::PhantomData;

/// Which interpreter a [`PinnedInterp`] holds a thread state for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A thread state of the main interpreter; shares the main GIL.
    Main,
    /// An OWN_GIL sub-interpreter owned by this thread alone.
    Sub,
}

/// One thread state, detached while idle.
pub struct PinnedInterp {
    tstate: *mut ffi::PyThreadState,
    /// Sub-interpreters keep a parked main-interpreter thread state they were
    /// created from, dropped after the sub-interpreter ends.
    parent: *mut ffi::PyThreadState,
    kind: Kind,
    _not_send: PhantomData<*mut ()>,
}

impl PinnedInterp {
    /// A new thread state of the main interpreter for the calling thread.
    pub fn main() -> Self {
        // SAFETY: PyThreadState_New needs no GIL; the main interpreter exists since
        // runtime::ensure_initialized succeeded before any actor starts.
        let tstate = unsafe { ffi::PyThreadState_New(ffi::PyInterpreterState_Main()) };
        PinnedInterp { tstate, parent: std::ptr::null_mut(), kind: Kind::Main, _not_send: PhantomData }
    }

    /// A new OWN_GIL sub-interpreter owned by the calling thread.
    #[cfg(all(Py_3_12, not(Py_GIL_DISABLED)))]
    pub fn new_subinterpreter() -> Result<Self, String> {
        // SAFETY: we create a main-interpreter thread state for this thread and take
        // the main GIL with it; Py_NewInterpreterFromConfig then switches this thread
        // to the new sub-interpreter's own GIL (the main GIL is released by it).
        unsafe {
            let parent = ffi::PyThreadState_New(ffi::PyInterpreterState_Main());
            ffi::PyEval_RestoreThread(parent);
            let config = ffi::PyInterpreterConfig {
                use_main_obmalloc: 0,
                allow_fork: 0,
                // Exec is what subprocess and os.posix_spawn need (fork stays refused).
                allow_exec: 1,
                allow_threads: 1,
                allow_daemon_threads: 0,
                check_multi_interp_extensions: 1,
                gil: ffi::PyInterpreterConfig_OWN_GIL,
            };
            let mut tstate: *mut ffi::PyThreadState = std::ptr::null_mut();
            let status = ffi::Py_NewInterpreterFromConfig(&mut tstate, &config);
            if ffi::PyStatus_Exception(status) != 0 || tstate.is_null() {
                // Back to the main interpreter to drop the parent state.
                ffi::PyThreadState_Swap(parent);
                ffi::PyThreadState_Clear(parent);
                ffi::PyThreadState_DeleteCurrent();
                let msg = if status.err_msg.is_null() {
                    "Py_NewInterpreterFromConfig failed".to_string()
                } else {
                    std::ffi::CStr::from_ptr(status.err_msg).to_string_lossy().into_owned()
                };
                return Err(msg);
            }
            // Now attached to the sub-interpreter with its own GIL held.
            let installed = Python::attach(|py| {
                super::erlang_module::install(py)?;
                guard_known_hazards(py)
            });
            ffi::PyEval_SaveThread();
            let me = PinnedInterp { tstate, parent, kind: Kind::Sub, _not_send: PhantomData };
            installed.map_err(|e| format!("installing the erlang module: {e}"))?;
            Ok(me)
        }
    }

    /// Which interpreter this is.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Runs `f` attached to this thread's interpreter, detaching afterwards even if
    /// `f` panics.
    pub fn run<R>(&self, f: impl FnOnce(Python<'_>) -> R) -> R {
        struct Detach;
        impl Drop for Detach {
            fn drop(&mut self) {
                // SAFETY: this thread holds the GIL of this PinnedInterp's own
                // interpreter, taken by the PyEval_RestoreThread below on this
                // thread; this gives it back and detaches `tstate`.
                unsafe {
                    ffi::PyEval_SaveThread();
                }
            }
        }
        // SAFETY: `tstate` belongs to this thread (PinnedInterp is !Send) and is
        // detached; RestoreThread takes its interpreter's GIL.
        unsafe { ffi::PyEval_RestoreThread(self.tstate) };
        let _detach = Detach;
        // With our thread state current, pyo3's attach finds it through the
        // gilstate binding (made at PyThreadState_New on 3.11, at every activation
        // on 3.12+) and only bumps counters, so pyo3 knows the thread is attached.
        Python::attach(f)
    }
}

impl Drop for PinnedInterp {
    fn drop(&mut self) {
        // SAFETY: we re-attach our own thread state on its own thread; for a
        // sub-interpreter Py_EndInterpreter needs its GIL held and leaves no
        // thread state current, then we attach the parked main state to delete it.
        unsafe {
            ffi::PyEval_RestoreThread(self.tstate);
            match self.kind {
                Kind::Main => {
                    ffi::PyThreadState_Clear(self.tstate);
                    ffi::PyThreadState_DeleteCurrent();
                }
                Kind::Sub => {
                    ffi::Py_EndInterpreter(self.tstate);
                    ffi::PyEval_RestoreThread(self.parent);
                    ffi::PyThreadState_Clear(self.parent);
                    ffi::PyThreadState_DeleteCurrent();
                }
            }
        }
    }
}

/// CPython bugs that take the whole process down from a sub-interpreter, steered
/// around before user code runs.
///
/// * 3.12: importing the `_decimal` C module in a second sub-interpreter aborts
///   the process (double free). Marking it unavailable makes `decimal` fall back
///   to its pure-Python twin `_pydecimal`, same API, slower.
#[cfg(all(Py_3_12, not(Py_GIL_DISABLED)))]
fn guard_known_hazards(py: Python<'_>) -> pyo3::PyResult<()> {
    use pyo3::prelude::*;
    if !cfg!(Py_3_13) {
        py.import("sys")?.getattr("modules")?.set_item("_decimal", py.None())?;
    }
    Ok(())
}
