//! Running one request inside an attached interpreter.
//!
//! A request arrives as plain Rust data ([`Request`]); its arguments become
//! Python objects here, and its result a [`Value`] (or a [`Failure`]) before the
//! GIL is given back. No Erlang term is touched in this room.

use super::types::{dict_to_py, from_py, to_py, type_name};
use super::value::{Failure, Name, RefOp, Request, Value};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use std::collections::HashMap;
use std::ffi::CString;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `{Module, Function, Args, Kwargs}`
    Call,
    /// `{Code, Locals}`
    Eval,
    /// `{Code}`
    Exec,
    /// As `Call`, then the result is iterated to its end in Python: a list.
    StreamCall,
    /// As `Eval`, then the result is iterated to its end in Python: a list.
    StreamEval,
    /// As `Call`, then the result's iterator is kept as stream N (see
    /// `interp::stream`) and the reply is `started`.
    StreamStart(u64),
    /// As `Call`; the result must be awaitable and becomes asyncio task
    /// `task` on the loop of context `key`; the task answers when done.
    AsyncCall { task: u64, key: u32 },
    /// As `AsyncCall`, for an async iterable, collected to a list.
    AsyncStream { task: u64, key: u32 },
    /// As `Call`, but the result is kept in the context by reference
    /// (`#{return => ref}`): the reply carries its id.
    CallRef,
    /// As `Eval`, the result kept by reference.
    EvalRef,
    /// Work on an object kept by reference (`Request::OnRef`).
    OnRef,
}

/// What a request that did not fail gave.
#[derive(Debug)]
pub enum Outcome {
    /// The result (`{ok, Value}`).
    Value(Value),
    /// `exec` ran (`ok`).
    Done,
    /// A stream's iterator is kept (`started`).
    Started,
    /// An asyncio task was scheduled; it answers itself (`scheduled`).
    Scheduled,
    /// The result is kept by reference under this id (see `interp::refs`).
    Ref(u64),
}

/// What a pinned thread keeps between requests, in its own interpreter: code
/// compiled for `eval`/`exec`, keyed by source text (compiled code does not
/// depend on globals, so one cache serves every namespace the thread runs in),
/// and the names of the modules and functions it was asked to call (see
/// [`Names`]). Owned by one thread and dropped on it, attached.
#[derive(Default)]
pub struct CodeCache {
    /// `Py_eval_input` code, then `Py_file_input` code: looked up by the
    /// source's bytes, with no copy of them; with whether the code makes
    /// scopes of its own ([`has_nested_scopes`], found once at compile time).
    eval: HashMap<Vec<u8>, (Py<PyAny>, bool)>,
    file: HashMap<Vec<u8>, (Py<PyAny>, bool)>,
    names: Names,
}

/// Compiled snippets kept per thread (per mode) before the cache is flushed.
const CODE_CACHE_LIMIT: usize = 512;

impl CodeCache {
    /// Drops every Python reference held, with the GIL of their interpreter held
    /// (pyo3's reference pool is disabled on purpose).
    pub fn release(&mut self, _py: Python<'_>) {
        self.eval.clear();
        self.file.clear();
        self.names = Names::default();
    }

    fn compile<'py>(&mut self, py: Python<'py>, code: &[u8], mode: i32) -> PyResult<Bound<'py, PyAny>> {
        self.compiled(py, code, mode).map(|(c, _)| c)
    }

    /// [`CodeCache::compile`], with whether the code makes scopes of its own.
    fn compiled<'py>(&mut self, py: Python<'py>, code: &[u8], mode: i32) -> PyResult<(Bound<'py, PyAny>, bool)> {
        let table = if mode == ffi::Py_eval_input { &mut self.eval } else { &mut self.file };
        if let Some((c, nested)) = table.get(code) {
            return Ok((c.bind(py).clone(), *nested));
        }
        let src = CString::new(code).map_err(|_| pyo3::exceptions::PyValueError::new_err("source code contains a NUL byte"))?;
        // SAFETY: the GIL of the interpreter this cache belongs to is held (`py`);
        // Py_CompileString returns a new reference or NULL with an exception set.
        let compiled = unsafe {
            let ptr = ffi::Py_CompileString(src.as_ptr(), c"<erlang>".as_ptr(), mode);
            Bound::from_owned_ptr_or_err(py, ptr)?
        };
        if table.len() >= CODE_CACHE_LIMIT {
            table.clear();
        }
        let nested = has_nested_scopes(&compiled);
        table.insert(code.to_vec(), (compiled.clone().unbind(), nested));
        Ok((compiled, nested))
    }
}

/// The module and function names a thread was asked to call, as interned Python
/// strings, and each module as last found fully imported.
///
/// A call names its module and function as kept Rust strings ([`Name`]: each
/// is kept once, for good), so this table is keyed by their address: no
/// hashing, a bounded table, one slot per address. Made afresh, a name costs an
/// allocation, a UTF-8 decode and a hash for each lookup (about 1,300
/// instructions of a trivial call: docs/benchmarks.md).
///
/// The module is only a shortcut for `PyImport_GetModule`'s check that the
/// module is not half-imported by another thread: when `sys.modules` still
/// holds the very object found imported before, that check is not repeated.
/// The function a call found is kept too, while the versions of `sys.modules`
/// and of the module's dict stay the same ([`Found`]); otherwise both are read
/// again, so a reload or a replaced module is seen at once.
pub struct Names {
    slots: Vec<Option<NameSlot>>,
    found: Vec<Option<Found>>,
}

/// A function found in a module, and the versions of `sys.modules` and of the
/// module's dict it was found under.
///
/// Every change to a dict gives it a new version number, unique in its
/// interpreter (PEP 509's `ma_version_tag`, kept up to 3.13). While both
/// versions are the same, `sys.modules` maps the name to the same module and
/// that module's dict holds the same function, so the two lookups and the
/// attribute machinery (about 400 of a trivial call's 2,260 instructions on
/// 3.11: docs/benchmarks.md) are skipped. Anything that changes either dict (an
/// import anywhere, a reload, a patched attribute, a module replaced in
/// `sys.modules`) gives it a new version, and the next call looks again.
struct Found {
    /// The kept module and function names' keys (`Name::key`).
    key: ((usize, usize), (usize, usize)),
    modules_version: u64,
    /// The module (`sys.modules` holds it as long as its version stands; held
    /// here too, so its dict is never another one). Its class is looked at on
    /// every use, since `module.__class__` may be rebound to a subclass with an
    /// attribute lookup of its own, which changes neither dict.
    module: Py<PyAny>,
    /// The version of the module's dict (`PyModule_GetDict`: a module's dict
    /// is never replaced).
    dict_version: u64,
    function: Py<PyAny>,
}

struct NameSlot {
    /// The kept name's address and length (`Name::key`) this slot holds.
    key: (usize, usize),
    name: Py<PyString>,
    module: Option<Py<PyAny>>,
}

/// Slots of the names table (a power of two).
const NAME_SLOTS: usize = 64;

impl Default for Names {
    fn default() -> Self {
        Names { slots: (0..NAME_SLOTS).map(|_| None).collect(), found: (0..NAME_SLOTS).map(|_| None).collect() }
    }
}

/// The version of `dict` (see [`Found`]); `None` where CPython no longer keeps
/// one (3.14), and then nothing is remembered.
///
/// SAFETY: the caller holds the GIL of the interpreter `dict` belongs to (on a
/// free-threaded build: is attached to it) and `dict` is a live dict. The field
/// is only read, as an atomic: on a free-threaded build another thread may
/// write it meanwhile, and CPython stores a changed entry before its new
/// version, so a version read before a lookup never vouches for a value
/// stored after it.
#[cfg(not(Py_3_14))]
#[allow(deprecated)]
unsafe fn dict_version(dict: *mut ffi::PyObject) -> Option<u64> {
    // SAFETY: `dict` is a live dict (the caller's condition): the field's
    // address is taken, nothing is read or referenced yet.
    let field = unsafe { std::ptr::addr_of_mut!((*dict.cast::<ffi::PyDictObject>()).ma_version_tag) };
    // SAFETY: an aligned u64 of a live dict; CPython writes it with plain or
    // atomic stores, and it is only loaded here.
    Some(unsafe { std::sync::atomic::AtomicU64::from_ptr(field) }.load(std::sync::atomic::Ordering::Acquire))
}

#[cfg(Py_3_14)]
unsafe fn dict_version(_dict: *mut ffi::PyObject) -> Option<u64> {
    None
}

/// The slot of the function table for a kept module name and function name.
fn found_slot(key: ((usize, usize), (usize, usize))) -> usize {
    ((key.0 .0 >> 4) ^ (key.1 .0 >> 3)) & (NAME_SLOTS - 1)
}

impl Names {
    /// The slot of a kept name (`None` for an allocated one: it is not kept
    /// here either).
    fn slot(&mut self, py: Python<'_>, name: &Name) -> Option<&mut NameSlot> {
        let key = name.key()?;
        // Kept names are separate allocations, at least 16 bytes apart: the
        // low bits say little.
        let i = (key.0 >> 4) & (NAME_SLOTS - 1);
        let hit = matches!(&self.slots[i], Some(s) if s.key == key);
        if !hit {
            self.slots[i] = Some(NameSlot { key, name: PyString::intern(py, name).unbind(), module: None });
        }
        self.slots[i].as_mut()
    }

    /// `name` as an interned Python string.
    fn name<'py>(&mut self, py: Python<'py>, name: &Name) -> Bound<'py, PyString> {
        match self.slot(py, name) {
            Some(slot) => slot.name.bind(py).clone(),
            // Not interned: an interned string lives for good (3.12+), and
            // these are the names a program makes up.
            None => PyString::new(py, name),
        }
    }

    /// `module.function`, as found by the last call of the same names, if
    /// neither `sys.modules` nor the module's dict changed since (see [`Found`]).
    /// What no longer holds is dropped (with the interpreter attached), so a
    /// module taken out of `sys.modules` is not kept alive here.
    fn found<'py>(&mut self, py: Python<'py>, module: &Name, function: &Name) -> Option<Bound<'py, PyAny>> {
        let key = (module.key()?, function.key()?);
        let slot = &mut self.found[found_slot(key)];
        let f = slot.as_ref().filter(|f| f.key == key)?;
        // SAFETY: the GIL of the interpreter `py` is attached to is held; the
        // table belongs to this interpreter's thread, so `f.module` is a live
        // object of it; PyImport_GetModuleDict returns its (borrowed, live)
        // sys.modules; PyModule_CheckExact reads a type, and only for a module
        // is PyModule_GetDict asked for its (borrowed, never NULL) dict.
        let same = unsafe {
            dict_version(ffi::PyImport_GetModuleDict()) == Some(f.modules_version)
                && ffi::PyModule_CheckExact(f.module.as_ptr()) != 0
                && dict_version(ffi::PyModule_GetDict(f.module.as_ptr())) == Some(f.dict_version)
        };
        if !same {
            *slot = None;
            return None;
        }
        Some(f.function.bind(py).clone())
    }

    /// Remembers `function` as `module.function` when it is the module's own
    /// entry: `module_obj` is `sys.modules[module]`, a plain module (no class
    /// of its own with its own attribute lookup), and `function` its dict's
    /// entry (not made by a module `__getattr__`).
    fn remember(&mut self, py: Python<'_>, module: &Name, function: &Name, module_obj: &Bound<'_, PyAny>, found: &Bound<'_, PyAny>) {
        let (Some(m), Some(f)) = (module.key(), function.key()) else { return };
        let Some(modname) = self.slot(py, module).map(|s| s.name.clone_ref(py)) else { return };
        let Some(pyname) = self.slot(py, function).map(|s| s.name.clone_ref(py)) else { return };
        // SAFETY: the GIL of the interpreter `py` is attached to is held;
        // PyModule_CheckExact reads the type; PyModule_GetDict returns a borrowed
        // reference to the module's dict (never NULL for a module), alive while
        // the module is; PyDict_GetItemWithError a borrowed reference or NULL,
        // only compared; dict_version's conditions hold for both dicts.
        unsafe {
            if ffi::PyModule_CheckExact(module_obj.as_ptr()) == 0 {
                return;
            }
            let modules = ffi::PyImport_GetModuleDict();
            let dict = ffi::PyModule_GetDict(module_obj.as_ptr());
            // Read before the entries are looked at (see dict_version): a
            // change made meanwhile leaves a newer version, and the next call
            // looks again.
            let (Some(modules_version), Some(dict_version)) = (dict_version(modules), dict_version(dict)) else { return };
            let current = ffi::PyDict_GetItemWithError(modules, modname.as_ptr());
            if current != module_obj.as_ptr() {
                let _ = PyErr::take(py);
                return;
            }
            let entry = ffi::PyDict_GetItemWithError(dict, pyname.as_ptr());
            if entry != found.as_ptr() {
                let _ = PyErr::take(py);
                return;
            }
            let key = (m, f);
            self.found[found_slot(key)] =
                Some(Found { key, modules_version, module: module_obj.clone().unbind(), dict_version, function: found.clone().unbind() });
        }
    }

    /// The module `name`: `sys.modules[name]` if already imported, else a real import.
    fn module<'py>(&mut self, py: Python<'py>, name: &Name) -> PyResult<Bound<'py, PyAny>> {
        let Some(slot) = self.slot(py, name) else {
            return import(py, &PyString::new(py, name));
        };
        let pyname = slot.name.bind(py).clone();
        // SAFETY: the GIL of the interpreter `py` is attached to is held;
        // PyImport_GetModuleDict returns a borrowed reference to that
        // interpreter's sys.modules, PyDict_GetItemWithError a borrowed
        // reference or NULL (an exception set only on a real error, taken below).
        let current = unsafe {
            let modules = ffi::PyImport_GetModuleDict();
            Bound::from_borrowed_ptr_or_opt(py, ffi::PyDict_GetItemWithError(modules, pyname.as_ptr()))
        };
        if let (Some(m), Some(known)) = (&current, &slot.module) {
            if m.as_ptr() == known.as_ptr() {
                return Ok(current.expect("matched above"));
            }
        }
        let _ = PyErr::take(py);
        let module = import(py, &pyname)?;
        slot.module = Some(module.clone().unbind());
        Ok(module)
    }
}

/// Where a request's globals come from.
pub enum Globals<'a> {
    /// `__main__.__dict__` of the attached interpreter.
    Main,
    /// A context sharing the main interpreter.
    Shared(u32),
    /// A dict the serving thread owns (a sub-interpreter's `__main__`).
    Owned(&'a Py<PyDict>),
}

impl Globals<'_> {
    /// The dict, in the attached interpreter.
    pub fn get<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        match self {
            Globals::Main => main_globals(py),
            Globals::Shared(id) => super::shared_contexts::globals(py, *id),
            Globals::Owned(d) => Ok(d.bind(py).clone()),
        }
    }
}

/// The `__main__` module's globals of the attached interpreter. Looked up in
/// `sys.modules`, not imported: an import runs the import machinery, about
/// 12,000 instructions of a trivial call's 18,000 (docs/benchmarks.md). The main
/// interpreter's are kept after the first lookup (its `__main__` module stays
/// for the node's life); a sub-interpreter's context keeps its own in its
/// `Host`.
pub fn main_globals(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    static MAIN: std::sync::OnceLock<Py<PyDict>> = std::sync::OnceLock::new();
    // SAFETY: the GIL of the interpreter `py` is attached to is held, so there is
    // a current interpreter to compare.
    let on_main = unsafe { ffi::PyInterpreterState_Get() == ffi::PyInterpreterState_Main() };
    if let (true, Some(g)) = (on_main, MAIN.get()) {
        return Ok(g.bind(py).clone());
    }
    // SAFETY: as above; PyImport_AddModule returns a borrowed reference to that
    // interpreter's `sys.modules['__main__']` (made if missing) or NULL with an
    // exception set, and PyModule_GetDict a borrowed reference to its dict
    // (never NULL for a module); both are made owned before anything else runs.
    let globals = unsafe {
        let main = ffi::PyImport_AddModule(c"__main__".as_ptr());
        let main = Bound::from_borrowed_ptr_or_err(py, main)?;
        let dict = ffi::PyModule_GetDict(main.as_ptr());
        Bound::from_borrowed_ptr_or_err(py, dict)?.cast_into::<PyDict>()?
    };
    if on_main {
        // Another thread may have set it meanwhile: then ours is dropped here,
        // with the main interpreter's GIL held.
        let _ = MAIN.set(globals.clone().unbind());
    }
    Ok(globals)
}

/// A fresh, empty module namespace, as `__main__` starts: for contexts that share
/// the main interpreter.
pub fn fresh_globals(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let globals = PyDict::new(py);
    globals.set_item("__name__", "__main__")?;
    globals.set_item("__builtins__", py.import("builtins")?)?;
    globals.set_item("erlang", py.import("erlang")?)?;
    Ok(globals)
}

fn eval_code<'py>(
    py: Python<'py>,
    code: &Bound<'py, PyAny>,
    globals: &Bound<'py, PyDict>,
    locals: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the GIL of the interpreter `py` is attached to (the request's) is
    // held; all three objects belong to that interpreter;
    // PyEval_EvalCode returns a new reference or NULL with an exception set.
    unsafe {
        let ptr = ffi::PyEval_EvalCode(code.as_ptr(), globals.as_ptr(), locals.as_ptr());
        Bound::from_owned_ptr_or_err(py, ptr)
    }
}

fn bad_argument(msg: impl Into<String>) -> Failure {
    Failure::BadArgument(msg.into())
}

/// Runs `op` with `req` in `globals`.
pub fn run<'py>(py: Python<'py>, cache: &mut CodeCache, globals: &Bound<'py, PyDict>, op: Op, req: &Request) -> Result<Outcome, Failure> {
    let fail = |e: PyErr| python_failure(py, e);
    let value = match req {
        Request::Call { module, function, args, kwargs } => {
            let callable = resolve(py, &mut cache.names, globals, module, function).map_err(fail)?;
            let frame = &**module == "builtins" && FRAME_BUILTINS.contains(&&**function);
            if kwargs.is_empty() && args.len() <= VECTOR_ARGS && !frame {
                return finish(py, op, globals, vectorcall(py, &callable, args)?);
            }
            let names = frame && args.is_empty() && kwargs.is_empty() && NAMESPACE_BUILTINS.contains(&&**function);
            let args = convert_args(py, args)?;
            let kwargs = convert_kwargs(py, kwargs)?;
            if frame {
                let value = call_in_frame(py, cache, globals, callable, args, kwargs).map_err(fail)?;
                if names && matches!(op, Op::Call) {
                    convertible_names(py, &value).map_err(fail)?
                } else {
                    value
                }
            } else {
                callable.call(args, kwargs.as_ref()).map_err(fail)?
            }
        }
        Request::Eval { code, locals } => {
            let (compiled, nested) = cache.compiled(py, code, ffi::Py_eval_input).map_err(fail)?;
            if locals.is_empty() {
                eval_code(py, &compiled, globals, globals).map_err(fail)?
            } else {
                let given = dict_to_py(py, locals).map_err(|e| bad_argument(e.message()))?;
                if nested {
                    // A nested scope (a generator expression, a comprehension
                    // before 3.12, a lambda) reads free names from the
                    // globals only, so it would not see eval's separate
                    // locals: the given names are bound over a copy of the
                    // globals instead, for this expression.
                    let scope = globals.copy().map_err(fail)?;
                    scope.update(given.as_mapping()).map_err(fail)?;
                    eval_code(py, &compiled, &scope, &scope).map_err(fail)?
                } else {
                    eval_code(py, &compiled, globals, &given).map_err(fail)?
                }
            }
        }
        Request::Exec { code } => {
            let compiled = cache.compile(py, code, ffi::Py_file_input).map_err(fail)?;
            eval_code(py, &compiled, globals, globals).map_err(fail)?;
            return Ok(Outcome::Done);
        }
        Request::OnRef { id, op: ref_op, .. } => {
            let obj = super::refs::get(globals, *id).map_err(fail)?.ok_or(Failure::ContextStopped)?;
            match ref_op {
                RefOp::GetAttr(name) => obj.getattr(name.as_str()).map_err(fail)?,
                RefOp::Method { name, args, kwargs } => {
                    let args = convert_args(py, args)?;
                    let kwargs = convert_kwargs(py, kwargs)?;
                    obj.call_method(name.as_str(), args, kwargs.as_ref()).map_err(fail)?
                }
                RefOp::ToTerm => obj,
            }
        }
    };
    finish(py, op, globals, value)
}

/// What becomes of a request's result: a value, a stream, a task, a ref.
fn finish<'py>(py: Python<'py>, op: Op, globals: &Bound<'py, PyDict>, value: Bound<'py, PyAny>) -> Result<Outcome, Failure> {
    let fail = |e: PyErr| python_failure(py, e);
    let value = match op {
        Op::StreamCall | Op::StreamEval => collect(py, &value)?,
        Op::AsyncCall { task, key } | Op::AsyncStream { task, key } => {
            let collect = matches!(op, Op::AsyncStream { .. });
            return match super::asyncio::spawn(py, task, key, &value, collect) {
                Ok(true) => Ok(Outcome::Scheduled),
                // `async_stream` collects an async iterable (a coroutine is not one)
                Ok(false) if collect => Err(Failure::NotAsyncIterable(type_name(&value))),
                Ok(false) => Err(Failure::NotAwaitable(type_name(&value))),
                Err(e) => Err(fail(e)),
            };
        }
        Op::CallRef | Op::EvalRef => return super::refs::keep(globals, &value).map(Outcome::Ref).map_err(fail),
        Op::StreamStart(id) => {
            return match super::stream::register(py, id, &value) {
                Ok(()) => Ok(Outcome::Started),
                Err(None) => Err(Failure::NotIterable(type_name(&value))),
                Err(Some(e)) => Err(fail(e)),
            };
        }
        _ => value,
    };
    from_py(&value, 0).map(Outcome::Value).map_err(Failure::from)
}

/// Whether compiled code makes scopes of its own (its constants hold code
/// objects: generator expressions, lambdas, comprehensions before 3.12).
fn has_nested_scopes(compiled: &Bound<'_, PyAny>) -> bool {
    let Ok(consts) = compiled.getattr("co_consts") else { return false };
    let Ok(consts) = consts.cast_into::<PyTuple>() else { return false };
    consts.iter().any(|c| c.get_type().name().is_ok_and(|n| n == "code"))
}

/// Builtins that read the frame that calls them (its globals, its locals).
const FRAME_BUILTINS: [&str; 6] = ["eval", "exec", "globals", "locals", "vars", "dir"];

/// Those of them that, called with no argument, give the context's namespace.
const NAMESPACE_BUILTINS: [&str; 3] = ["globals", "locals", "vars"];

/// A namespace as a plain call gives it back: the names whose values can
/// cross. Every context's globals hold modules (`erlang`, `__builtins__`) and
/// usually functions, which cannot, so the whole dict never would; the
/// names of modules, functions and classes are in `dir()`, and
/// `#{return => ref}` keeps the dict itself.
fn convertible_names<'py>(py: Python<'py>, namespace: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let Ok(dict) = namespace.cast::<PyDict>() else {
        return Ok(namespace.clone());
    };
    let out = PyDict::new(py);
    for (k, v) in dict.iter() {
        if from_py(&v, 0).is_ok() {
            out.set_item(k, v)?;
        }
    }
    Ok(out.into_any())
}

/// Calls `f(*args, **kwargs)` from a Python frame whose globals and locals are
/// the context's `globals`, so a frame-reading builtin (`eval`, `dir`, …) sees the
/// context's names as module-level code would. Called directly from Rust there
/// is no frame at all ("frame does not exist").
fn call_in_frame<'py>(
    py: Python<'py>,
    cache: &mut CodeCache,
    globals: &Bound<'py, PyDict>,
    f: Bound<'py, PyAny>,
    args: Bound<'py, PyTuple>,
    kwargs: Option<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let code = cache.compile(py, b"__import__('erlang')._apply()", ffi::Py_eval_input)?;
    super::natives::set_pending_call(f, args, kwargs);
    let result = eval_code(py, &code, globals, globals);
    // Not taken if the code failed before reaching `_apply`: dropped here, attached.
    drop(super::natives::take_pending_call());
    result
}

/// Iterates `value` (a generator, an iterator, any iterable) to its end, in
/// Python, into a list.
///
/// An iterator written in C (`range`, `itertools.count`, a C extension's)
/// runs no Python bytecode, so an exception aimed at this thread (a timeout,
/// the caller's death, `py:interrupt/1`) would never be raised in it: every
/// [`COLLECT_CHECK`] items one that is pending is raised
/// (`interrupt::raise_pending`), and a caller that gave up ends the loop in
/// any case.
fn collect<'py>(py: Python<'py>, value: &Bound<'py, PyAny>) -> Result<Bound<'py, PyAny>, Failure> {
    let iter = value.try_iter().map_err(|_| Failure::NotIterable(type_name(value)))?;
    let list = pyo3::types::PyList::empty(py);
    for (i, item) in iter.enumerate() {
        let item = item.map_err(|e| python_failure(py, e))?;
        list.append(item).map_err(|e| python_failure(py, e))?;
        if i % COLLECT_CHECK == COLLECT_CHECK - 1 {
            super::interrupt::raise_pending(py).map_err(|e| python_failure(py, e))?;
            if super::callback::gave_up() {
                return Err(Failure::BadResult("the caller gave up".into()));
            }
        }
    }
    Ok(list.into_any())
}

/// Items a stream collects between two looks for an exception aimed at it.
const COLLECT_CHECK: usize = 4096;

/// Finds `module.function`; `__main__` means the globals the request runs in, and a dotted
/// function name walks attributes (`path.join`).
fn resolve<'py>(
    py: Python<'py>,
    names: &mut Names,
    globals: &Bound<'py, PyDict>,
    module: &Name,
    function: &Name,
) -> PyResult<Bound<'py, PyAny>> {
    if !function.contains('.') {
        // The common case: the names come from the table.
        if &**module == "__main__" {
            let name = names.name(py, function);
            return globals.get_item(&name)?.ok_or_else(|| not_defined(function));
        }
        if let Some(found) = names.found(py, module, function) {
            return Ok(found);
        }
        let name = names.name(py, function);
        let m = names.module(py, module)?;
        let found = m.getattr(name)?;
        names.remember(py, module, function, &m, &found);
        return Ok(found);
    }
    let mut parts = function.split('.');
    let first = parts.next().unwrap_or("");
    let mut obj = if &**module == "__main__" {
        globals.get_item(first)?.ok_or_else(|| not_defined(first))?
    } else {
        names.module(py, module)?.getattr(first)?
    };
    for part in parts {
        obj = obj.getattr(part)?;
    }
    Ok(obj)
}

fn not_defined(name: &str) -> PyErr {
    pyo3::exceptions::PyNameError::new_err(format!("name '{name}' is not defined"))
}

/// `sys.modules[name]` if already imported (once it is fully initialised),
/// else a real import.
fn import<'py>(py: Python<'py>, pyname: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: the GIL of the interpreter `py` is attached to is held (modules are
    // looked up in that interpreter's sys.modules); PyImport_GetModule returns a new reference or NULL
    // (with an exception set only on a real error, which we clear and retry via import).
    let cached = unsafe { Bound::from_owned_ptr_or_opt(py, ffi::PyImport_GetModule(pyname.as_ptr())) };
    match cached {
        Some(m) => Ok(m),
        None => {
            let _ = PyErr::take(py);
            Ok(py.import(pyname.clone())?.into_any())
        }
    }
}

/// Positional arguments passed by vectorcall, from an array on the stack: no
/// argument tuple is made (the common call, about 600 instructions less: see
/// docs/benchmarks.md). More arguments, or keyword arguments, take a tuple.
const VECTOR_ARGS: usize = 8;

/// `callable(*args)`, with the arguments converted into an array on the stack.
fn vectorcall<'py>(py: Python<'py>, callable: &Bound<'py, PyAny>, args: &[Value]) -> Result<Bound<'py, PyAny>, Failure> {
    let mut held: [Option<Bound<'py, PyAny>>; VECTOR_ARGS] = [const { None }; VECTOR_ARGS];
    let mut ptrs = [std::ptr::null_mut::<ffi::PyObject>(); VECTOR_ARGS];
    for (i, v) in args.iter().enumerate() {
        let obj = to_py(py, v, 1).map_err(|e| bad_argument(e.message()))?;
        ptrs[i] = obj.as_ptr();
        held[i] = Some(obj);
    }
    // SAFETY: the GIL of the interpreter `py` is attached to is held; `callable`
    // and the `args.len()` objects in `ptrs` belong to it and are kept alive by
    // `callable` and `held` until after the call; no keyword names (NULL);
    // PyObject_Vectorcall returns a new reference or NULL with an exception set.
    let result = unsafe {
        let ptr = ffi::PyObject_Vectorcall(callable.as_ptr(), ptrs.as_ptr(), args.len(), std::ptr::null_mut());
        Bound::from_owned_ptr_or_err(py, ptr)
    };
    drop(held);
    result.map_err(|e| python_failure(py, e))
}

fn convert_args<'py>(py: Python<'py>, args: &[Value]) -> Result<Bound<'py, PyTuple>, Failure> {
    let objs = args.iter().map(|v| to_py(py, v, 1)).collect::<Result<Vec<_>, _>>().map_err(|e| bad_argument(e.message()))?;
    PyTuple::new(py, objs).map_err(|e| bad_argument(e.to_string()))
}

fn convert_kwargs<'py>(py: Python<'py>, kwargs: &[(String, Value)]) -> Result<Option<Bound<'py, PyDict>>, Failure> {
    if kwargs.is_empty() {
        return Ok(None);
    }
    let dict = PyDict::new(py);
    for (k, v) in kwargs {
        let value = to_py(py, v, 1).map_err(|e| bad_argument(e.message()))?;
        dict.set_item(k, value).map_err(|e| bad_argument(e.to_string()))?;
    }
    Ok(Some(dict))
}

/// A Python exception: its class name, message and formatted traceback.
pub fn python_failure(py: Python<'_>, err: PyErr) -> Failure {
    let value = err.value(py);
    let name = type_name(value.as_any());
    // An exception whose `__str__` raises is shown as Python's traceback
    // module shows it.
    let mut message = value.str().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|_| "<exception str() failed>".into());
    if message.contains("does not support loading in subinterpreters") {
        message.push_str(
            " (this context is a sub-interpreter; run code that needs this module in the main \
             interpreter: py:call(py:context(main), Module, Function, Args))",
        );
    }
    let traceback = format_traceback(py, &err).unwrap_or_default();
    Failure::Python { name, message, traceback }
}

fn format_traceback(py: Python<'_>, err: &PyErr) -> PyResult<String> {
    let tb = py.import("traceback")?;
    let lines = tb.call_method1("format_exception", (err.get_type(py), err.value(py), err.traceback(py)))?;
    let joined = PyString::new(py, "").call_method1("join", (lines,))?;
    joined.extract()
}
