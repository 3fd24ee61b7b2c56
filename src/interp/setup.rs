//! What every interpreter and every context gets before its first request: the
//! application's `python_path` (first on `sys.path`), `imports` (imported), and
//! `preload_code` (run in the context's globals). Applied to the main
//! interpreter when the application starts, to each sub-interpreter when its
//! context starts, and to each context's globals when they are made, so a
//! context that is replaced gets them again.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::ffi::CString;
use std::sync::RwLock;

/// The application's settings (`py_nif:setup/3`).
#[derive(Clone, Default)]
pub struct Setup {
    pub paths: Vec<String>,
    pub imports: Vec<String>,
    pub preload: Vec<u8>,
}

static SETUP: RwLock<Option<Setup>> = RwLock::new(None);

/// Replaces the settings (for contexts made from now on).
pub fn configure(s: Setup) {
    *SETUP.write().unwrap_or_else(|e| e.into_inner()) = Some(s);
}

/// The settings now (sent to the child process of a process-isolated context).
pub fn current() -> Setup {
    SETUP.read().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default()
}

/// The site-packages directories of the active virtual environment
/// (`py:activate_venv/1`), for interpreters made from now on.
static VENV: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Sets (or, empty, clears) the active venv's site-packages directories.
pub fn configure_venv(dirs: Vec<String>) {
    *VENV.write().unwrap_or_else(|e| e.into_inner()) = dirs;
}

/// The active venv's site-packages directories.
pub fn venv_dirs() -> Vec<String> {
    VENV.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Adds the active venv's site-packages to the interpreter `py` is attached to,
/// ahead of the base Python's (`erlang._venv_add`: `site.addsitedir`, so its
/// `.pth` files are read).
pub fn apply_venv(py: Python<'_>) -> Result<(), String> {
    let dirs = VENV.read().unwrap_or_else(|e| e.into_inner()).clone();
    if dirs.is_empty() {
        return Ok(());
    }
    let erlang =
        py.import("sys").and_then(|s| s.getattr("modules")).and_then(|m| m.get_item("erlang")).map_err(|e| format!("venv: {e}"))?;
    erlang.call_method1("_venv_add", (dirs,)).map_err(|e| format!("venv: {e}"))?;
    Ok(())
}

/// `python_path` first on `sys.path` (in order, once each), the active venv's
/// site-packages, and `imports` imported, in the interpreter `py` is attached
/// to. The error names the setting.
pub fn apply_interpreter(py: Python<'_>) -> Result<(), String> {
    let s = current();
    let path = py.import("sys").and_then(|sys| sys.getattr("path")).map_err(|e| format!("python_path: {e}"))?;
    for (i, p) in s.paths.iter().enumerate() {
        let present = path.contains(p.as_str()).unwrap_or(false);
        if present {
            let _ = path.call_method1("remove", (p.as_str(),));
        }
        path.call_method1("insert", (i, p.as_str())).map_err(|e| format!("python_path: {e}"))?;
    }
    apply_venv(py)?;
    for m in &s.imports {
        py.import(m.as_str()).map_err(|e| format!("imports: {m}: {}", describe(py, &e)))?;
    }
    Ok(())
}

/// Runs `preload_code` in `globals`. The error names the setting and the
/// Python exception.
pub fn apply_globals(py: Python<'_>, globals: &Bound<'_, PyDict>) -> Result<(), String> {
    let s = current();
    if s.preload.is_empty() {
        return Ok(());
    }
    let code = CString::new(s.preload).map_err(|_| "preload_code: contains a NUL byte".to_string())?;
    py.run(&code, Some(globals), None).map_err(|e| format!("preload_code: {}", describe(py, &e)))
}

/// `Name: message` of a Python exception.
fn describe(py: Python<'_>, e: &PyErr) -> String {
    let name = e.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    format!("{name}: {}", e.value(py))
}

/// The level `py:configure_logging/0,1` asked for (Python's level number), for
/// interpreters made after it.
static LOGGING: RwLock<Option<i32>> = RwLock::new(None);

/// Records that every interpreter made from now on hands `logging` records at
/// or above `level` to Erlang.
pub fn configure_logging(level: i32) {
    *LOGGING.write().unwrap_or_else(|e| e.into_inner()) = Some(level);
}

/// Installs the logging handler in the interpreter `py` is attached to, if
/// logging was configured. A failure leaves logging as it was.
pub fn apply_logging(py: Python<'_>) {
    let level = *LOGGING.read().unwrap_or_else(|e| e.into_inner());
    if let Some(level) = level {
        let installed = py
            .import("sys")
            .and_then(|s| s.getattr("modules"))
            .and_then(|m| m.get_item("erlang"))
            .and_then(|e| e.call_method1("_configure_logging", (level,)));
        if let Err(e) = installed {
            e.print(py);
        }
    }
}
