//! The node's one CPython runtime.
//!
//! Python is initialised once, on a thread that is not a BEAM scheduler, the first
//! time the application starts, and is kept for the life of the node: stopping and
//! starting the application reuses it. The execution mode is fixed by the build.

use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::CStr;
use std::sync::OnceLock;

/// How Python calls get parallelism with the linked CPython build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A free-threaded build (3.13t): no GIL.
    FreeThreaded,
    /// 3.12+ with a GIL: one OWN_GIL sub-interpreter per context.
    Subinterp,
    /// Older Pythons: executor threads take turns on one GIL.
    MultiExecutor,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::FreeThreaded => "free_threaded",
            Mode::Subinterp => "subinterp",
            Mode::MultiExecutor => "multi_executor",
        }
    }
}

/// Facts about the running Python, read once at initialisation.
#[derive(Clone, Debug)]
pub struct PythonInfo {
    /// `sys.version`.
    pub version: String,
    /// The mode this node runs in.
    pub mode: Mode,
    /// Whether this build can create OWN_GIL sub-interpreters.
    pub subinterp_supported: bool,
    /// On free-threaded builds: whether an extension turned the GIL back on.
    pub gil_enabled: bool,
}

static INIT: OnceLock<Result<PythonInfo, String>> = OnceLock::new();

/// Initialises CPython if it is not yet, and returns what was learnt about it.
///
/// Must be called from a thread that is not a BEAM scheduler: it takes the GIL.
pub fn ensure_initialized() -> Result<PythonInfo, String> {
    INIT.get_or_init(|| {
        // A dedicated thread becomes Python's main thread; it parks the main thread
        // state and exits, so no pool thread stays bound to it.
        std::thread::Builder::new()
            .name("py-main".into())
            .spawn(initialize)
            .map_err(|e| format!("cannot spawn the py-main thread: {e}"))?
            .join()
            .unwrap_or_else(|_| Err("Python initialisation panicked".into()))
    })
    .clone()
}

/// Applies the application's `python_path`, `imports` and `preload_code` to the
/// main interpreter (its `__main__`). Takes the main GIL: call from a thread that
/// may block, after [`ensure_initialized`].
pub fn apply_setup_to_main() -> Result<(), String> {
    Python::attach(|py| {
        super::setup::apply_interpreter(py)?;
        let main = super::exec::main_globals(py).map_err(|e| e.to_string())?;
        super::setup::apply_globals(py, &main)
    })
}

/// The info, if Python has been initialised.
pub fn info() -> Option<PythonInfo> {
    INIT.get().and_then(|r| r.as_ref().ok().cloned())
}

/// The mode this node runs in, if Python has been initialised: read on every
/// request, so without copying the info (its version string).
pub fn mode() -> Option<Mode> {
    INIT.get().and_then(|r| r.as_ref().ok()).map(|i| i.mode)
}

/// The mode the build supports, decided at compile time from the linked Python.
pub fn build_mode() -> Mode {
    if cfg!(Py_GIL_DISABLED) {
        Mode::FreeThreaded
    } else if cfg!(Py_3_12) {
        Mode::Subinterp
    } else {
        Mode::MultiExecutor
    }
}

/// The BEAM opens NIF libraries with `RTLD_LOCAL`, so libpython's symbols are not
/// visible to C extension modules (math, _json, numpy) that Python dlopens later.
/// Re-open libpython, already loaded as our dependency, with `RTLD_GLOBAL`.
fn promote_libpython_to_global() -> Result<(), String> {
    // SAFETY: dladdr only reads the loader's tables; Py_Initialize is a symbol of
    // the libpython we are linked against, so its address lies inside that library.
    unsafe {
        let mut info: libc::Dl_info = std::mem::zeroed();
        let addr = ffi::Py_Initialize as *const libc::c_void;
        if libc::dladdr(addr, &mut info) == 0 || info.dli_fname.is_null() {
            return Err("cannot locate libpython (dladdr failed)".into());
        }
        let handle = libc::dlopen(info.dli_fname, libc::RTLD_NOW | libc::RTLD_GLOBAL | libc::RTLD_NOLOAD);
        if handle.is_null() {
            let path = CStr::from_ptr(info.dli_fname).to_string_lossy();
            return Err(format!("cannot re-open {path} with RTLD_GLOBAL"));
        }
        // The handle is deliberately leaked: libpython stays loaded for the node's life.
    }
    Ok(())
}

/// The BEAM ignores `SIGCHLD` (its port programs are started and reaped by
/// `erl_child_setup`), and with `SIGCHLD` ignored the kernel reaps every child at
/// once: `waitpid` then fails with `ECHILD`, so `subprocess` reports every program
/// as having exited with 0 and `check=True` never raises. The default disposition
/// lets Python wait for the programs it starts; the BEAM itself forks nothing
/// but `erl_child_setup`, which it never waits for either way.
fn let_python_wait_for_its_children() {
    // SAFETY: signal() only swaps the process-wide disposition; SIG_DFL needs no handler.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
    }
}

/// Runs on the dedicated `py-main` thread (never a BEAM scheduler).
fn initialize() -> Result<PythonInfo, String> {
    promote_libpython_to_global()?;
    let_python_wait_for_its_children();
    // SAFETY: no GIL is held by this thread; Py_IsInitialized needs none, and
    // Py_InitializeEx makes this thread the main interpreter's main thread and
    // leaves it holding the main interpreter's GIL.
    let we_initialized = unsafe {
        if ffi::Py_IsInitialized() == 0 {
            // 0: do not install Python's signal handlers; the BEAM owns signals.
            ffi::Py_InitializeEx(0);
            true
        } else {
            false
        }
    };
    // If we initialised Python this thread holds the main GIL and attach only
    // records that pyo3 may use it; if someone else did, attach takes the GIL
    // and gives it back.
    let result = Python::attach(|py| -> Result<PythonInfo, String> {
        // pyo3 caches its PanicException type process-wide; create it here so the
        // main interpreter, which is never torn down, owns it.
        let _ = <pyo3::panic::PanicException as pyo3::PyTypeInfo>::type_object_raw(py);
        erlang_module::install(py).map_err(|e| format!("installing the erlang module: {e}"))?;
        let sys = py.import("sys").map_err(|e| e.to_string())?;
        let version: String = sys.getattr("version").and_then(|v| v.extract()).map_err(|e| e.to_string())?;
        let gil_enabled = match sys.getattr("_is_gil_enabled") {
            Ok(f) => f.call0().and_then(|v| v.extract()).unwrap_or(true),
            Err(_) => true,
        };
        let mode = build_mode();
        Ok(PythonInfo { version, mode, subinterp_supported: cfg!(Py_3_12) && !cfg!(Py_GIL_DISABLED), gil_enabled })
    });
    if we_initialized {
        // SAFETY: this thread holds the main interpreter's GIL, taken by
        // Py_InitializeEx above (attach gave back only what it took, nothing);
        // this releases it. The main thread state stays alive (parked) for the
        // life of the node.
        unsafe {
            ffi::PyEval_SaveThread();
        }
    }
    result
}

use super::erlang_module;
