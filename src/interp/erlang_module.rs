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
        ext = bytes(ext)
        # the external format of a pid (version 131, PID_EXT or NEW_PID_EXT),
        # nothing else: any other term would cross back to Erlang as itself
        if len(ext) < 3 or ext[0] != 131 or ext[1] not in (88, 103):
            raise TypeError('erlang.Pid: not the external format of a pid')
        self._ext = ext
        self._text = str(text)

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


class ChannelClosed(Exception):
    """Raised by Channel.recv once the channel is closed and drained."""


class Channel:
    """Terms sent from Erlang with py:channel_send/2, in order. recv() waits
    without holding the GIL; iterating ends when the channel is closed."""
    __slots__ = ('_id', '_hold')

    def __init__(self, cid, _hold=None):
        self._id = cid
        # Keeps the channel (and what is queued in it) while this object lives.
        self._hold = _hold

    def recv(self, timeout=None):
        """The next term; TimeoutError after timeout seconds; ChannelClosed once
        closed and drained."""
        return _chan_recv(self._id, timeout)

    def __iter__(self):
        while True:
            try:
                yield _chan_recv(self._id, None)
            except ChannelClosed:
                return

    async def arecv(self):
        """recv() for coroutines: the loop runs other tasks meanwhile. It looks
        again after 1 ms, then backs off to every 20 ms (no thread is used: a
        sub-interpreter must not end with threads left in it)."""
        import asyncio
        delay = 0.001
        while True:
            try:
                return _chan_recv(self._id, 0.0)
            except TimeoutError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.02)

    def __repr__(self):
        return 'erlang.Channel(%d)' % self._id

    # A channel is a handle: a copy is the same channel (and keeps it too);
    # pickled, it is its id (usable while something else holds the channel).
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return (Channel, (self._id,))


class _Output:
    """sys.stdout / sys.stderr: what a request prints goes to the group leader
    of its Erlang caller (a shell shows it); anything else printed goes to the
    node's logger."""
    encoding = 'utf-8'
    errors = 'strict'

    def __init__(self, fd):
        self._fd = fd

    def write(self, s):
        return _write(self._fd, s)

    def writelines(self, lines):
        for line in lines:
            _write(self._fd, line)

    def flush(self):
        pass

    def isatty(self):
        return False

    def writable(self):
        return True

    def fileno(self):
        raise OSError('erlang output has no file descriptor')


def _configure_logging(level):
    """Installs (or re-levels) the handler that hands logging records to
    Erlang's logger; called by py:configure_logging/0,1."""
    import logging
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, '_erlang', False):
            root.removeHandler(h)

    class ErlangHandler(logging.Handler):
        _erlang = True

        def emit(self, record):
            # Never breaks the logging call: a record that cannot be
            # formatted is reported as such.
            try:
                try:
                    msg = record.getMessage()
                except Exception as e:
                    msg = '%r (unformattable: %s)' % (record.msg, e)
                exc = None
                if record.exc_info and record.exc_info[0] is not None:
                    import traceback
                    exc = ''.join(traceback.format_exception(*record.exc_info))
                _log(record.levelno, record.name, msg, record.pathname, record.lineno, exc)
            except Exception:
                pass

    root.addHandler(ErlangHandler(level))
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)


class ProcessError(Exception):
    """Raised when a message cannot reach an Erlang process (it is not alive)."""


class ErlangError(Exception):
    """Raised when an Erlang function called from Python fails."""


class UnknownFunction(ErlangError, LookupError, AttributeError):
    """Raised when no Erlang function is registered under the name called (also
    an AttributeError, so hasattr(erlang, name) is False for such a name)."""


def call(name, *args):
    """Call the Erlang function registered with py:register_function(Name, Fun)."""
    if not isinstance(name, (str, bytes)):
        raise TypeError('erlang.call: the name must be a str, not %s' % type(name).__name__)
    return _call(name, args)


# asyncio: one event loop per context, stepped by the context's own thread
# (a tick job each time its selector is ready or a timer is due).
_loops = {}
_tasks = {}


def _noop():
    pass


def _share_main():
    """Contexts that share the main interpreter (multi_executor and
    free-threaded modes) each run in a globals dict of their own, while
    sys.modules['__main__'] is one module. Its class becomes one that reads
    and writes the globals of the request the calling thread serves (the real
    __main__'s when it serves none), so `import __main__`, `__main__.x` and
    pickle's lookup of classes defined in a context see that context."""
    import sys, types
    context_globals = _context_globals
    base = types.ModuleType

    class _Main(base):
        __slots__ = ()

        def __getattribute__(self, name):
            g = context_globals()
            if g is None:
                return base.__getattribute__(self, name)
            if name == '__dict__':
                return g
            try:
                return g[name]
            except KeyError:
                if name[:2] == '__' == name[-2:]:
                    return base.__getattribute__(self, name)
                raise AttributeError("module '__main__' has no attribute %r" % name) from None

        def __setattr__(self, name, value):
            g = context_globals()
            if g is None:
                base.__setattr__(self, name, value)
            else:
                g[name] = value

        def __delattr__(self, name):
            g = context_globals()
            if g is None:
                base.__delattr__(self, name)
            else:
                try:
                    del g[name]
                except KeyError:
                    raise AttributeError(name) from None

        def __dir__(self):
            g = context_globals()
            return sorted(g) if g is not None else base.__dir__(self)

    sys.modules['__main__'].__class__ = _Main


def _venv_add(ds):
    """Adds a venv's site-packages ds (site.addsitedir: their .pth files are
    read) ahead of the base Python's site-packages, as a venv's own Python
    would see them: a package the venv pins wins over the base's copy."""
    import site, sys
    before = list(sys.path)
    for d in ds:
        site.addsitedir(d)
    added = [p for p in sys.path if p not in before]
    kept = [p for p in sys.path if p in before]
    base = set(site.getsitepackages() + [site.getusersitepackages()])
    at = next((i for i, p in enumerate(kept) if p in base), len(kept))
    sys.path[:] = kept[:at] + added + kept[at:]


def _loop(key):
    loop = _loops.get(key)
    if loop is None:
        import asyncio, threading
        loop = asyncio.new_event_loop()
        # Held while a thread steps the loop: a step and a stopped context's
        # end (_end_loops) never overlap, GIL or not. Reentrant: a thread
        # never waits for itself.
        loop._ep_lock = threading.RLock()
        # The thread that made it (a context's own thread, where it has one).
        loop._ep_thread = threading.get_ident()
        _loops[key] = loop
    return loop


def _loop_fd(key):
    """The selector fd of loop key, or -1 if it has none (never made, or
    its context stopped: a late step must not bring it back)."""
    loop = _loops.get(key)
    if loop is None or loop.is_closed():
        return -1
    return loop._selector.fileno()


def _spawn(tid, key, aw, collect):
    """Schedules awaitable aw (an async iterable, collected to a list, when
    collect) as task tid on context key's loop; False if it is not one (a
    coroutine refused is closed: no 'never awaited' warning)."""
    import inspect, asyncio
    if collect:
        if not hasattr(aw, '__aiter__'):
            if inspect.iscoroutine(aw):
                aw.close()
            return False
        agen = aw
        async def gather_items():
            return [x async for x in agen]
        aw = gather_items()
    elif not inspect.isawaitable(aw):
        return False
    loop = _loop(key)
    task = asyncio.ensure_future(aw, loop=loop)
    _tasks[tid] = task
    def done(t, tid=tid):
        # A task of a stopped context (_end_loops) is answered by the node.
        if _tasks.pop(tid, None) is not None:
            _task_done(tid, t)
    task.add_done_callback(done)
    return True


def _cancel(tid):
    t = _tasks.get(tid)
    if t is not None:
        t.cancel()


def _tick(key):
    """One step of context key's loop, never blocking. Returns how long the
    loop may sleep: 0.0 (work is ready), seconds to the next timer, -2.0 (until
    its selector is ready) or -1.0 (nothing to wait for)."""
    loop = _loops.get(key)
    if loop is None:
        return -1.0
    with loop._ep_lock:
        if _loops.get(key) is not loop or loop.is_closed():
            # Its context stopped meanwhile.
            return -1.0
        return _step(loop)


def _step(loop):
    import asyncio.events as events
    try:
        events._set_running_loop(loop)
        loop.call_soon(_noop)
        loop._run_once()
    except (SystemExit, KeyboardInterrupt) as e:
        # asyncio lets these two out of the loop. A task that raised one has
        # it recorded already, and its done callback (queued) answers its
        # caller on the next step, which the ready queue asks for at once.
        # One raised by a plain callback has nobody waiting: it is reported.
        if not any(t.done() and not t.cancelled() and t.exception() is e for t in _tasks.values()):
            import traceback
            traceback.print_exception(type(e), e, e.__traceback__)
    finally:
        events._set_running_loop(None)
    if loop._ready:
        return 0.0
    if loop._scheduled:
        return max(0.0, loop._scheduled[0]._when - loop.time())
    if any(t.get_loop() is loop for t in _tasks.values()):
        return -2.0
    return -1.0


def _take_loops(keys, thread=None):
    """Contexts keys stopped: their loops, taken out at once, so that a
    context started later under one of these keys gets a new loop. With
    thread, only loops that thread made (a context's own thread ending: a
    context that replaced it under the same key keeps its loop)."""
    taken = []
    for key in keys:
        loop = _loops.get(key)
        if loop is not None and (thread is None or loop._ep_thread == thread):
            gone = _loops.pop(key, None)
            if gone is loop:
                taken.append(loop)
            elif gone is not None:
                # Replaced between the two looks (free-threaded): kept.
                _loops[key] = gone
    return taken


def _end_loops(loops):
    """Ends the loops _take_loops took: every task of each is cancelled and
    the loop stepped, never blocking, until they have ended (their `except
    CancelledError` and `finally` clauses run; at most 100 steps: a task
    still awaiting something slow then is left), then it is closed. The
    callers of py:async_call tasks are answered `context_stopped` by the
    node, not here."""
    for loop in loops:
        # A step another thread is in ends first (at most a second).
        if not loop._ep_lock.acquire(timeout=1.0):
            continue
        try:
            _end_loop(loop)
        finally:
            loop._ep_lock.release()


def _end_loop(loop):
    import asyncio
    for tid, t in list(_tasks.items()):
        if t.get_loop() is loop:
            _tasks.pop(tid, None)
    tasks = asyncio.all_tasks(loop)
    for t in tasks:
        t.cancel()
    for _ in range(100):
        if not loop._ready and all(t.done() for t in tasks):
            break
        try:
            _step(loop)
        except Exception:
            break
    for t in tasks:
        # What a task raised while it ended is nobody's: taken, so asyncio
        # does not report it as never retrieved.
        if t.done() and not t.cancelled():
            t.exception()
    try:
        loop.close()
    except Exception:
        pass


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
    // Contexts sharing the main interpreter see their own globals as `__main__`.
    let shared = crate::interp::runtime::build_mode() != crate::interp::runtime::Mode::Subinterp;
    // SAFETY: the GIL of the interpreter `py` is attached to is held.
    let on_main = unsafe { pyo3::ffi::PyInterpreterState_Get() == pyo3::ffi::PyInterpreterState_Main() };
    if shared && on_main {
        // Its class changes, not its dict: `exec::main_globals` (the C-level
        // dict) is unaffected.
        module.getattr("_share_main")?.call0()?;
    }
    // print and sys.stdout/stderr reach Erlang (this interpreter's sys).
    let output = module.getattr("_Output")?;
    sys.setattr("stdout", output.call1((1,))?)?;
    sys.setattr("stderr", output.call1((2,))?)?;
    super::guards::install(py)
}

/// The `erlang.Pid` class of the interpreter `py` is attached to.
pub fn pid_class<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
    let modules = py.import("sys")?.getattr("modules")?;
    modules.get_item("erlang")?.getattr("Pid")
}

/// An `erlang.Channel` for channel `id`, keeping `hold` (see
/// `value::ChannelHold`), in the interpreter `py` is attached to.
pub fn channel<'py>(py: Python<'py>, id: u64, hold: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let modules = py.import("sys")?.getattr("modules")?;
    modules.get_item("erlang")?.getattr("Channel")?.call1((id, hold))
}
