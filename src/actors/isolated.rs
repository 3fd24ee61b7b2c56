//! A process-isolated context: its actor's interpreter runs in a child OS
//! process (the `py_child` binary next to the NIF library, see
//! `interp::child`), reached by frames over pipes (`interp::wire`). A segfault,
//! `os._exit` or the address-space limit there ends the child only: the request
//! in flight answers `{error, {context_crashed, Why}}` and the next request
//! starts a new child (`python_path`, `imports` and `preload_code` applied
//! again), after a pause that grows while it keeps crashing.
//!
//! Per child, a reader thread takes every frame: what concerns the request in
//! flight (its result, its `erlang.call`s, its output) goes to the actor's
//! thread; what Python asks the node (send, state, logging) is served right
//! there through the same bridge in-process interpreters use. The actor's
//! thread writes requests and the answers of `erlang.call`; the interrupt
//! thread writes interruptions. A child exits when its pipe closes: with its
//! actor (stop_pool, the application stopping) or with the node.

use crate::interp::bridge::{self, CallError, Caller, ChainMsg, LogRecord, Stored};
use crate::interp::exec::{Op, Outcome};
use crate::interp::host::Pulled;
use crate::interp::interrupt::Raise;
use crate::interp::value::{Failure, Request, Value};
use crate::interp::wire::{self, PullEnd, Query, ToChild, ToParent};
use dashmap::DashMap;
use std::io::{BufReader, BufWriter};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

/// Children started by this node so far: each child's refs start in a block of
/// ids of its own (see `interp::refs::first_id`).
static CHILDREN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How long a new child may take to start Python and run the setup.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the actor polls for the child's answer before sleeping on it: most
/// answers come within this, and a thread woken from sleep costs more.
const ANSWER_SPIN: Duration = Duration::from_micros(100);
/// A request whose caller gave up is interrupted; if it has not ended this
/// long after (a blocking C call, which no interruption reaches), its child is
/// killed and the next request gets a new one.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// How often the actor looks at whether its caller gave up meanwhile.
const WATCH: Duration = Duration::from_millis(100);
/// Crashes within this window count towards the back-off.
const CRASH_WINDOW: Duration = Duration::from_secs(10);

type Writer = Arc<Mutex<BufWriter<ChildStdin>>>;

/// The pipe to a running child, for the interrupt thread.
struct Line {
    writer: Writer,
    /// The request the actor has in the child now.
    seq: AtomicU64,
}

/// Running children by key (`token.running_on(0, key)`), for interruptions.
static LINES: LazyLock<DashMap<u64, Arc<Line>>> = LazyLock::new(DashMap::new);
static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

/// Interrupts what child `key` runs (called by the interrupt thread, with the
/// token's lock held: the request is still running).
pub fn interrupt(key: u64, raise: Raise) {
    if let Some(line) = LINES.get(&key).map(|l| l.clone()) {
        let seq = line.seq.load(Ordering::Acquire);
        let _ = send(&line.writer, &ToChild::Interrupt { seq, timeout: raise == Raise::Timeout });
    }
}

fn send(w: &Writer, f: &ToChild) -> std::io::Result<()> {
    let frame = wire::to_child(f)?;
    frame.write(&mut *w.lock().unwrap_or_else(|e| e.into_inner()))
}

/// What the reader thread hands the actor's thread.
enum Incoming {
    Frame(ToParent),
    /// The child's stdout closed: it died (or is about to).
    Closed,
}

/// A running child process.
struct Running {
    process: std::process::Child,
    /// Killed because a request kept running after its caller gave up.
    killed: bool,
    line: Arc<Line>,
    frames: Receiver<Incoming>,
    pid: u32,
}

/// A process-isolated context, owned by its actor's thread.
pub struct Isolated {
    context: u32,
    memory_limit: Option<u64>,
    key: u64,
    running: Option<Running>,
    crashes: Vec<Instant>,
    next_seq: u64,
    /// How many children were started after the first (crashes).
    restarts: u64,
    /// Why the last child ended.
    last_crash: Option<String>,
}

impl Isolated {
    /// Starts context `context`'s child (`memory_limit`: its address space,
    /// in bytes).
    pub fn start(context: u32, memory_limit: Option<u64>) -> Result<Isolated, String> {
        let mut me = Isolated {
            context,
            memory_limit,
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            running: None,
            crashes: Vec::new(),
            next_seq: 1,
            restarts: 0,
            last_crash: None,
        };
        me.spawn()?;
        Ok(me)
    }

    /// `(0, key)`: what the job's token records as "where it runs"; the
    /// interrupt thread sends interpreter 0 here.
    pub fn ids(&self) -> (usize, u64) {
        (0, self.key)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let path = child_path()?;
        let mut cmd = Command::new(&path);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let limit = self.memory_limit;
        // SAFETY: runs in the forked child before exec, calling only
        // async-signal-safe functions (prctl, setrlimit, getppid, _exit).
        unsafe {
            cmd.pre_exec(move || {
                // Dies with the thread that started it (its actor), whatever happens.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if let Some(bytes) = limit {
                    let rl = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
                    if libc::setrlimit(libc::RLIMIT_AS, &rl) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut process = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", path.display()))?;
        let stdin = process.stdin.take().ok_or("no pipe to the child")?;
        let stdout = process.stdout.take().ok_or("no pipe from the child")?;
        // Pipes of 1 MiB (the default maximum) instead of 64 KiB: a large
        // argument or result crosses in far fewer wake-ups. Best effort.
        for fd in [stdin.as_raw_fd(), stdout.as_raw_fd()] {
            // SAFETY: fcntl on a pipe fd this process owns; failure leaves it as it was.
            unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, 1 << 20) };
        }
        let writer: Writer = Arc::new(Mutex::new(BufWriter::new(stdin)));
        let line = Arc::new(Line { writer: writer.clone(), seq: AtomicU64::new(0) });
        let (tx, frames) = mpsc::channel();
        let context = self.context;
        std::thread::Builder::new()
            .name(format!("ep-isolated-{context}"))
            .spawn(move || read_frames(BufReader::new(stdout), writer, tx, context))
            .map_err(|e| format!("cannot start the reader thread: {e}"))?;
        let setup = crate::interp::setup::current();
        let first = ToChild::Setup {
            context,
            // Node-wide, not per context: a pool stopped and started again
            // reuses context ids, and a ref of its earlier children must not
            // name an object of the new ones.
            generation: CHILDREN.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            paths: setup.paths,
            imports: setup.imports,
            preload: setup.preload,
            venv: crate::interp::setup::venv_dirs(),
        };
        let failed = |process: &mut std::process::Child, why: String| {
            let _ = process.kill();
            let _ = process.wait();
            Err(why)
        };
        if send(&line.writer, &first).is_err() {
            return failed(&mut process, "the child closed its pipe at start".into());
        }
        match frames.recv_timeout(START_TIMEOUT) {
            Ok(Incoming::Frame(ToParent::Ready { pid })) => {
                LINES.insert(self.key, line.clone());
                super::stats::ISOLATED.insert(self.context, (pid, self.restarts));
                self.running = Some(Running { process, killed: false, line, frames, pid });
                Ok(())
            }
            Ok(Incoming::Frame(ToParent::SetupFailed(why))) => failed(&mut process, why),
            Ok(_) | Err(RecvTimeoutError::Disconnected) => {
                let why = process.wait().map_or_else(|e| e.to_string(), describe);
                Err(format!("the child died while starting: {why}"))
            }
            Err(RecvTimeoutError::Timeout) => failed(&mut process, "the child did not start in time".into()),
        }
    }

    /// A child again after a crash, after a pause that grows with the crashes
    /// of the last ten seconds (none for the first two).
    fn respawn(&mut self) -> Result<(), String> {
        let now = Instant::now();
        self.crashes.retain(|t| now.duration_since(*t) < CRASH_WINDOW);
        let n = self.crashes.len() as u32;
        if n > 2 {
            let pause = Duration::from_millis(100u64 << (n - 3).min(6)).min(Duration::from_secs(5));
            tracing::warn!("isolated context {} crashed {n} times in 10 s; restarting in {pause:?}", self.context);
            std::thread::sleep(pause);
        }
        self.restarts += 1;
        self.spawn()
    }

    /// Runs `req` in the child. A child that dies meanwhile answers
    /// `ContextCrashed`; the next request starts another.
    pub fn serve(&mut self, op: Op, req: &Request, caller: Arc<dyn Caller>) -> Result<Outcome, Failure> {
        if self.running.is_none() {
            self.respawn().map_err(|e| Failure::ContextCrashed(format!("cannot restart: {e}")))?;
        }
        let seq = self.seq();
        if let Some(r) = &self.running {
            // What an interruption of this job names (nested requests of its
            // callback chain run inside it, on the same thread of the child).
            r.line.seq.store(seq, Ordering::Release);
        }
        self.run(seq, op, req, &caller)
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Sends request `seq` and waits for its end, serving its callbacks.
    fn run(&mut self, seq: u64, op: Op, req: &Request, caller: &Arc<dyn Caller>) -> Result<Outcome, Failure> {
        let Some(r) = &self.running else { return Err(self.gone()) };
        // Encoded before the writer is locked (see `wire::Frame`).
        let sent =
            wire::run_frame(seq, op, req).and_then(|frame| frame.write(&mut *r.line.writer.lock().unwrap_or_else(|e| e.into_inner())));
        match sent {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => return Err(Failure::BadArgument(e.to_string())),
            Err(_) => return Err(self.crashed()),
        }
        let mut abandoned: Option<Instant> = None;
        loop {
            let next = match &mut self.running {
                None => return Err(self.gone()),
                Some(r) => {
                    // Looked at before every frame, not only when none came
                    // for a while: a request that keeps printing sends frames
                    // without end.
                    if caller.gave_up() {
                        let since = *abandoned.get_or_insert_with(Instant::now);
                        if since.elapsed() >= KILL_GRACE && !r.killed {
                            tracing::warn!(
                                "isolated context {}: a request still runs {KILL_GRACE:?} after its caller gave up; killing its child",
                                self.context
                            );
                            r.killed = true;
                            let _ = r.process.kill();
                        }
                    }
                    match wire::recv_spinning_timeout(&r.frames, ANSWER_SPIN, WATCH) {
                        Ok(frame) => frame,
                        Err(RecvTimeoutError::Disconnected) => Incoming::Closed,
                        Err(RecvTimeoutError::Timeout) => continue,
                    }
                }
            };
            match next {
                Incoming::Frame(ToParent::Done { seq: s, result }) if s == seq => return result,
                Incoming::Frame(ToParent::Callback { id, name, args }) => self.callback(id, &name, &args, caller),
                Incoming::Frame(ToParent::Output { fd, text, .. }) => caller.output(fd, &text),
                Incoming::Frame(_) => {}
                Incoming::Closed => return Err(self.crashed()),
            }
        }
    }

    /// Runs the child's `erlang.call` number `id` through the request's caller,
    /// and sends the answer back under that number; requests of the same chain
    /// (the Erlang function calling this context again) run in the child
    /// meanwhile.
    fn callback(&mut self, id: u64, name: &Value, args: &[Value], caller: &Arc<dyn Caller>) {
        let answer = match caller.callback(name, args) {
            Err(e) => Err(e),
            // The answer usually comes within microseconds: polled briefly
            // first, as every hand-off is (`interp::spin`).
            Ok(rx) => loop {
                match wire::recv_spinning_timeout(&rx, ANSWER_SPIN, Duration::from_millis(50)) {
                    Ok(ChainMsg::Reply(r, _)) => break r,
                    Ok(ChainMsg::Nested(n)) => {
                        let mut run = |op: Op, req: &Request, c: &Arc<dyn Caller>| {
                            let s = self.seq();
                            self.run(s, op, req, c)
                        };
                        n.serve(&mut run);
                    }
                    Err(RecvTimeoutError::Timeout) if caller.gave_up() => break Err(CallError::Failed("the caller gave up".into())),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break Err(CallError::Failed("the caller gave up".into())),
                }
            },
        };
        if let Some(r) = &self.running {
            let _ = send(&r.line.writer, &ToChild::CallbackReply { id, result: answer });
        }
    }

    /// Up to `max` steps of stream `id`, handed to `each` (the child's stream
    /// registry holds the iterator). A child that died: the stream failed.
    pub fn pull(&mut self, id: u64, max: u64, mut each: impl FnMut(Pulled) -> bool) {
        // What an interruption of this pull names, as a request's seq does.
        let seq = self.seq();
        let Some(r) = &self.running else {
            each(Pulled::Gone);
            return;
        };
        r.line.seq.store(seq, Ordering::Release);
        if send(&r.line.writer, &ToChild::Pull { seq, id, max }).is_err() {
            each(Pulled::Failed(self.crashed()));
            return;
        }
        loop {
            let next = match &self.running {
                Some(r) => wire::recv_spinning(&r.frames, ANSWER_SPIN).unwrap_or(Incoming::Closed),
                None => {
                    each(Pulled::Failed(self.gone()));
                    return;
                }
            };
            match next {
                Incoming::Frame(ToParent::Pulled { id: i, items, end }) if i == id => {
                    // Items after a cancel are dropped (`each` answers false).
                    if !items.into_iter().all(|v| each(Pulled::Item(v))) {
                        return;
                    }
                    match end {
                        PullEnd::More => {}
                        PullEnd::End => _ = each(Pulled::End),
                        PullEnd::Gone => _ = each(Pulled::Gone),
                        PullEnd::Failed(f) => _ = each(Pulled::Failed(f)),
                    }
                    return;
                }
                // A generator's erlang.call has no caller waiting on it.
                Incoming::Frame(ToParent::Callback { id, .. }) => {
                    if let Some(r) = &self.running {
                        let result = Err(CallError::Unavailable("erlang.call from a stream's generator has no caller".into()));
                        let _ = send(&r.line.writer, &ToChild::CallbackReply { id, result });
                    }
                }
                Incoming::Frame(ToParent::Output { fd, text, .. }) => {
                    if let Some(n) = bridge::erlang() {
                        n.output(fd, &text)
                    }
                }
                Incoming::Frame(_) => {}
                Incoming::Closed => {
                    each(Pulled::Failed(self.crashed()));
                    return;
                }
            }
        }
    }

    /// Closes stream `id` in the child (its `finally` runs there).
    pub fn stream_close(&self, id: u64) {
        if let Some(r) = &self.running {
            let _ = send(&r.line.writer, &ToChild::StreamClose { id });
        }
    }

    /// Forgets the object the child keeps under `id`.
    pub fn release_ref(&self, id: u64) {
        if let Some(r) = &self.running {
            let _ = send(&r.line.writer, &ToChild::RefRelease { id });
        }
    }

    /// The child is gone (it crashed while a nested request ran): why.
    fn gone(&self) -> Failure {
        Failure::ContextCrashed(self.last_crash.clone().unwrap_or_else(|| "the child process is gone".into()))
    }

    /// The child died: why, as its caller will read it.
    fn crashed(&mut self) -> Failure {
        self.crashes.push(Instant::now());
        let Some(mut r) = self.running.take() else { return self.gone() };
        LINES.remove(&self.key);
        super::stats::ISOLATED.insert(self.context, (0, self.restarts));
        // Its stdout closed: it has exited or is exiting; make sure.
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = loop {
            match r.process.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = r.process.kill();
                    break r.process.wait().ok();
                }
            }
        };
        let why = if r.killed {
            format!("killed: a request kept running {KILL_GRACE:?} after its caller gave up")
        } else {
            status.map_or_else(|| "the child process is gone".to_string(), describe)
        };
        tracing::warn!("isolated context {} (OS pid {}): {why}", self.context, r.pid);
        self.last_crash = Some(why.clone());
        Failure::ContextCrashed(why)
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        LINES.remove(&self.key);
        super::stats::ISOLATED.remove_if(&self.context, |_, _| true);
        if let Some(mut r) = self.running.take() {
            let _ = r.process.kill();
            let _ = r.process.wait();
        }
    }
}

/// How a child ended, for `{context_crashed, Why}`.
fn describe(s: std::process::ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (_, Some(sig)) => {
            let name = match sig {
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGBUS => " (SIGBUS)",
                libc::SIGFPE => " (SIGFPE)",
                libc::SIGILL => " (SIGILL)",
                _ => "",
            };
            format!("killed by signal {sig}{name}")
        }
        _ => "ended".into(),
    }
}

/// `py_child`, next to the NIF library (both installed in `priv/`).
fn child_path() -> Result<std::path::PathBuf, String> {
    // SAFETY: Dl_info is plain C data (pointers and integers): all zeroes is valid.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    // SAFETY: dladdr only reads the loader's tables; `child_path` is code of
    // the NIF library, so its address lies inside that library.
    let found = unsafe { libc::dladdr(child_path as *const libc::c_void, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return Err("cannot locate the NIF library".into());
    }
    // SAFETY: dladdr succeeded, so dli_fname is a NUL-terminated path.
    let lib = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) }.to_string_lossy().into_owned();
    let path = std::path::Path::new(&lib).with_file_name("py_child");
    if path.exists() {
        Ok(path)
    } else {
        Err(format!("{} is missing (built by scripts/build-nif)", path.display()))
    }
}

/// The reader thread: serves what Python asks the node, hands the rest to the
/// actor's thread, and reports the pipe closing.
fn read_frames(mut input: BufReader<std::process::ChildStdout>, writer: Writer, tx: mpsc::Sender<Incoming>, context: u32) {
    loop {
        let frame = match wire::recv_from_child(&mut input) {
            Ok(f) => f,
            Err(_) => {
                let _ = tx.send(Incoming::Closed);
                return;
            }
        };
        let node = bridge::erlang();
        match frame {
            ToParent::Send { to, msg } => {
                if let Some(n) = node {
                    let _ = n.send(&to, &msg);
                }
            }
            ToParent::StateSet { key, value } => {
                if let Some(n) = node {
                    n.state_set(&key, &value)
                }
            }
            ToParent::StateDelete { key } => {
                if let Some(n) = node {
                    n.state_delete(&key)
                }
            }
            ToParent::Query { id, what } => {
                let value = node.map_or(Value::None, |n| answer(n, what));
                let _ = send(&writer, &ToChild::BridgeReply { id, value });
            }
            ToParent::Log { level, logger, message, file, line, traceback } => {
                if let Some(n) = node {
                    n.log(LogRecord { level, logger, message, file, line, traceback, context: Some(context) });
                }
            }
            ToParent::Output { seq: 0, fd, text } => {
                if let Some(n) = node {
                    n.output(fd, &text)
                }
            }
            ToParent::ThreadCall { id, name, args } => {
                // Waits for a permit and for the Erlang function: on a thread
                // of its own, so this reader keeps serving the child.
                let writer = writer.clone();
                let _ = std::thread::Builder::new().name("ep-isolated-call".into()).spawn(move || {
                    let result = match node {
                        None => Err(CallError::Unavailable("erlang_python is not running".into())),
                        Some(n) => n.call_from_thread(&name, &args).and_then(|call| {
                            // Its caller accepts no nested request: only the answer comes.
                            let answer = loop {
                                match call.answers.recv() {
                                    Ok(ChainMsg::Reply(r, _)) => break r,
                                    Ok(ChainMsg::Nested(_)) => continue,
                                    Err(_) => break Err(CallError::Failed("erlang_python stopped during the call".into())),
                                }
                            };
                            drop(call.permit);
                            answer
                        }),
                    };
                    let _ = send(&writer, &ToChild::ThreadReply { id, result });
                });
            }
            other => {
                if tx.send(Incoming::Frame(other)).is_err() {
                    return;
                }
            }
        }
    }
}

/// A query's answer, as `interp::child` reads it.
fn answer(n: &dyn bridge::Erlang, what: Query) -> Value {
    let tag = |t: &str, v: Value| Value::Tuple(vec![Value::Str(t.into()), v]);
    match what {
        Query::StateGet(k) => match n.state_get(&k) {
            Some(Stored::Int(i)) => tag("int", Value::Int(i)),
            Some(Stored::Ext(b)) => tag("ext", Value::Bytes(std::sync::Arc::unwrap_or_clone(b))),
            None => Value::None,
        },
        Query::StateKeys => Value::List(n.state_keys().into_iter().map(Value::Bytes).collect()),
        Query::StateIncr(k, by) => match n.state_incr(&k, by) {
            Ok(v) => Value::Int(v),
            Err(crate::state::IncrError::Overflow) => Value::Str("overflow".into()),
            Err(crate::state::IncrError::NotAnInteger) => Value::Str("not_an_integer".into()),
        },
        Query::Whereis(name) => n.whereis(&name).unwrap_or(Value::None),
        Query::IsRegistered(name) => Value::Bool(n.is_registered(&name)),
    }
}
