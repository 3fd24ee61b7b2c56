//! The `erlang` Python module, installed in every interpreter this node creates.
//!
//! It is built from Python source in each interpreter rather than as a pyo3
//! `#[pymodule]`/`#[pyclass]`: those have one type object per process, which
//! sub-interpreters must not share. Here every interpreter gets its own classes.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Python source of the module's pure-Python part.
const SOURCE: &str = r#"
"""Bridge to the Erlang node this interpreter runs in."""

class Pid:
    """An Erlang process identifier. Hashable, comparable, and sent back to
    Erlang as the same pid."""
    __slots__ = ('_ext', '_text')

    def __init__(self, ext, text):
        self._ext = bytes(ext)
        self._text = text

    def __eq__(self, other):
        if isinstance(other, Pid):
            return self._ext == other._ext
        return NotImplemented

    def __lt__(self, other):
        if isinstance(other, Pid):
            return self._ext < other._ext
        return NotImplemented

    def __hash__(self):
        return hash(self._ext)

    def __repr__(self):
        return 'erlang.Pid(%s)' % self._text

    __str__ = __repr__


class ProcessError(Exception):
    """Raised when a message cannot reach an Erlang process (it is not alive)."""


class ErlangError(Exception):
    """Raised when an Erlang function called from Python fails."""


class UnknownFunction(ErlangError, LookupError, AttributeError):
    """Raised when no Erlang function is registered under the name called (also
    an AttributeError, so hasattr(erlang, name) is False for such a name)."""


def call(name, *args):
    """Call the Erlang function registered with py:register_function(Name, Fun)."""
    return _call(name, args)


def __getattr__(name):
    # `from erlang import my_func` and `erlang.my_func(...)` for registered functions.
    if name.startswith('__'):
        raise AttributeError(name)
    if not _registered(name):
        raise UnknownFunction("no Erlang function registered as %r" % name)
    def registered(*args):
        return _call(name, args)
    registered.__name__ = name
    return registered
"#;

/// Creates the `erlang` module in the interpreter `py` is attached to and registers
/// it in `sys.modules`.
pub fn install(py: Python<'_>) -> PyResult<()> {
    let types = py.import("types")?;
    let module = types.getattr("ModuleType")?.call1(("erlang",))?;
    let dict = module.getattr("__dict__")?.cast_into::<PyDict>()?;
    let code = std::ffi::CString::new(SOURCE).expect("no NUL in module source");
    py.run(&code, Some(&dict), None)?;
    super::natives::install(py, &module)?;
    let sys = py.import("sys")?;
    sys.getattr("modules")?.set_item("erlang", &module)?;
    // Bound in `__main__` (every context's globals): no import needed.
    py.import("__main__")?.setattr("erlang", &module)?;
    super::guards::install(py)
}

/// The `erlang.Pid` class of the interpreter `py` is attached to.
pub fn pid_class<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
    let modules = py.import("sys")?.getattr("modules")?;
    modules.get_item("erlang")?.getattr("Pid")
}
