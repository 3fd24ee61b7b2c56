//! Process-wide calls that must not run inside the Erlang VM.
//!
//! Every interpreter of this node lives in the BEAM's own OS process, so a few
//! `os` functions act on the whole node rather than on Python:
//!
//! * `os.fork()` / `os.forkpty()` would copy the entire Erlang VM (every
//!   scheduler, port and socket) into a child that then runs on unsupervised;
//! * `os._exit()` / `os.abort()` would end the VM with every Erlang process in it.
//!
//! Each interpreter (the main one, every sub-interpreter) gets them replaced, in
//! both `os` and `posix`, by functions raising `RuntimeError` that says why. One
//! rule in every mode: on 3.12+ sub-interpreters would refuse fork on their own,
//! with a message that does not say what to do instead. Spawning programs is not
//! affected: `subprocess` and `os.posix_spawn` fork-and-exec inside C, never run
//! Python in a child, and sub-interpreters are created with exec allowed.

use pyo3::prelude::*;
use pyo3::types::PyDict;

const SOURCE: &str = r#"
import os as _os, posix as _posix

def _refuse(name, why):
    def refused(*args, **kwargs):
        raise RuntimeError("os.%s() is disabled inside the Erlang VM: %s" % (name, why))
    refused.__name__ = name
    refused.__qualname__ = name
    refused.__doc__ = "Disabled by erlang_python: " + why
    return refused

_guarded = [
    ("fork", "the child would be a copy of the whole Erlang node; use subprocess to run programs"),
    ("forkpty", "the child would be a copy of the whole Erlang node; use subprocess to run programs"),
]
if not _isolated:
    _guarded += [
        ("_exit", "it would stop the whole Erlang node; raise an exception or return instead"),
        ("abort", "it would stop the whole Erlang node; raise an exception or return instead"),
    ]
for _name, _why in _guarded:
    _f = _refuse(_name, _why)
    for _m in (_os, _posix):
        if hasattr(_m, _name):
            setattr(_m, _name, _f)
"#;

/// Set in the child OS process of a process-isolated context: there
/// `os._exit` and `os.abort` end only that process (its context answers
/// `{error, {context_crashed, Why}}` and is restarted), so they are left alone.
static ISOLATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks this process as a process-isolated context's child (before Python starts).
pub fn set_isolated() {
    ISOLATED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Replaces the VM-wide `os` functions in the interpreter `py` is attached to.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let scope = PyDict::new(py);
    scope.set_item("__builtins__", py.import("builtins")?)?;
    scope.set_item("_isolated", ISOLATED.load(std::sync::atomic::Ordering::Relaxed))?;
    let code = std::ffi::CString::new(SOURCE).expect("no NUL in guard source");
    py.run(&code, Some(&scope), None)
}
