//! Process-wide calls that must not run inside the Erlang VM.
//!
//! Every interpreter of this node lives in the BEAM's own OS process, so a few
//! `os` functions act on the whole node rather than on Python:
//!
//! * `os.fork()` / `os.forkpty()` would copy the entire Erlang VM (every
//!   scheduler, port and socket) into a child that then runs on unsupervised;
//! * `os._exit()` / `os.abort()` would end the VM with every Erlang process in it;
//! * signal dispositions and timers are the process's, so the BEAM's:
//!   `signal.signal(SIGTERM, SIG_IGN)` would keep the node from being stopped,
//!   `signal.alarm(1)` would kill it a second later, and so would
//!   `signal.raise_signal`, `signal.pthread_kill` or `os.kill` aimed at the
//!   node itself.
//!
//! Each interpreter (the main one, every sub-interpreter) gets them replaced, in
//! both `os` and `posix`, by functions raising `RuntimeError` that says why.
//! `signal.signal` and `signal.siginterrupt` raise the `ValueError` CPython
//! raises off the main thread, which libraries already expect; sending signal
//! 0 (a liveness check) and signalling other processes stay allowed. One
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

if not _isolated:
    import signal as _signal

    def _not_main(name):
        def refused(*args, **kwargs):
            raise ValueError("signal only works in main thread of the main interpreter "
                             "(inside the Erlang VM, signals belong to the node)")
        refused.__name__ = name
        refused.__qualname__ = name
        return refused

    def _signal_refused(name, why):
        def refused(*args, **kwargs):
            raise RuntimeError("signal.%s() is disabled inside the Erlang VM: %s" % (name, why))
        refused.__name__ = name
        refused.__qualname__ = name
        return refused

    _timer = "a process-wide timer's SIGALRM would stop the whole Erlang node"
    _self = "it would signal the whole Erlang node"
    for _name in ("signal", "siginterrupt"):
        if hasattr(_signal, _name):
            setattr(_signal, _name, _not_main(_name))
    for _name, _why in (("alarm", _timer), ("setitimer", _timer), ("raise_signal", _self)):
        if hasattr(_signal, _name):
            setattr(_signal, _name, _signal_refused(_name, _why))

    if hasattr(_signal, "pthread_kill"):
        _pthread_kill = _signal.pthread_kill
        def pthread_kill(thread_id, signalnum):
            if signalnum != 0:
                raise RuntimeError("signal.pthread_kill() is disabled inside the Erlang VM: " + _self)
            return _pthread_kill(thread_id, signalnum)
        _signal.pthread_kill = pthread_kill

    def _guard_kill(real, name, aimed_at_us):
        def guarded(target, signalnum):
            if signalnum != 0 and aimed_at_us(target):
                raise RuntimeError("os.%s() at this process is disabled inside the Erlang VM: %s" % (name, _self))
            return real(target, signalnum)
        guarded.__name__ = name
        guarded.__qualname__ = name
        return guarded

    # os.kill: this process, its group (0) or a group by number (negative).
    _kill = _guard_kill(_os.kill, "kill",
                        lambda pid: pid == _os.getpid() or pid == 0 or (pid < 0 and -pid == _os.getpgrp()) or pid == -1)
    _killpg = _guard_kill(_os.killpg, "killpg", lambda pgid: pgid in (0, _os.getpgrp()))
    for _m in (_os, _posix):
        _m.kill = _kill
        _m.killpg = _killpg
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
