//! The child OS process of a process-isolated context (`isolation => process`):
//! the `py_child` binary runs [`main`]. It embeds this same room: one
//! interpreter (the child's main one), one [`Host`], the same `erlang` module;
//! only the far side of [`super::bridge`] differs: every `erlang.call`,
//! `erlang.send`, `state_*` and log record becomes a frame to the node
//! ([`super::wire`]) instead of a call into the BEAM.
//!
//! Threads: the main thread serves requests one at a time; a reader thread
//! takes every frame from the node and routes it (a request to the main thread,
//! or, while the main thread waits in `erlang.call`, to that wait as a nested
//! request or the call's answer; interruptions; query answers). When the node's
//! end of the pipe closes (the node stopped or died, or the pool was stopped)
//! the reader ends the process: no orphan outlives its node.
//!
//! A crash here (a segfault in a C extension, `os._exit`, the address-space
//! limit) ends this process only; the node answers the request in flight
//! `{error, {context_crashed, Why}}` and starts a new child.

use super::bridge::{self, CallError, Caller, ChainMsg, ChannelEnd, Erlang, LogRecord, Nested, Place, Run, SendError, Stored, ThreadCall};
use super::chains::Chains;
use super::exec::Op;
use super::host::Host;
use super::host::Pulled;
use super::value::{Failure, Request, Value};
use super::wire::{self, PullEnd, Query, ToChild, ToParent};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock};

/// The child's side of the node: frames out, and what waits for frames in.
struct Child {
    out: Mutex<BufWriter<File>>,
    context: u32,
    /// Answers to queries in flight, by id.
    queries: Mutex<HashMap<u64, Sender<Value>>>,
    next_query: AtomicU64,
    /// The `erlang.call`s waiting, innermost last: where answers and nested
    /// requests go.
    chains: Mutex<Chains<ChainMsg>>,
    /// The request the main thread runs, with where (interpreter, thread), and
    /// whether it was interrupted. Taken by the main thread only detached.
    running: Mutex<Option<(u64, usize, u64, bool)>>,
    /// The last request an interruption was raised in (0: none), set before
    /// raising: read by the main thread attached, so without `running`.
    interrupted: AtomicU64,
    /// Requests whose caller gave up (their `erlang.call`s end).
    gave_up: Mutex<GaveUp>,
    /// The highest request number read from the parent so far.
    last_read: AtomicU64,
    /// `erlang.call`s of Python threads waiting for their answer, by id.
    thread_calls: Mutex<HashMap<u64, Sender<ChainMsg>>>,
}

/// Requests whose caller gave up, among those that have not ended.
#[derive(Default)]
struct GaveUp {
    seqs: HashSet<u64>,
    /// Every request up to this number has ended: a timeout's interruption
    /// that arrives later is not kept (it would stay in `seqs` for good).
    ended_through: u64,
}

impl GaveUp {
    fn add(&mut self, seq: u64) {
        if seq > self.ended_through {
            self.seqs.insert(seq);
        }
    }

    /// A top-level request ended, after every request read before it (its
    /// nested ones end first, and the parent sends the next only after this
    /// one's answer): all of them are over.
    fn ended(&mut self, through: u64) {
        self.ended_through = self.ended_through.max(through);
        self.seqs.clear();
    }
}

static CHILD: OnceLock<Child> = OnceLock::new();

fn child() -> &'static Child {
    CHILD.get().expect("set before Python starts")
}

impl Child {
    /// Sends `f`, encoded before the pipe is locked (see `wire::Frame`). A
    /// frame that cannot travel (larger than 1 GiB) fails what sent it, not
    /// the child: a request's end becomes an error, an `erlang.call` or a query
    /// is answered here, a stream's batch ends failed; anything else is
    /// dropped, with a line on stderr.
    fn send(&self, f: ToParent) {
        let kind = Unsent::of(&f);
        let frame = match wire::to_parent(f) {
            Ok(frame) => frame,
            Err(e) => return self.unsent(kind, e.to_string()),
        };
        if frame.write(&mut *self.out.lock().unwrap_or_else(|e| e.into_inner())).is_err() {
            // The node's end is gone: nothing is left to serve.
            std::process::exit(0);
        }
    }

    fn unsent(&self, kind: Unsent, why: String) {
        match kind {
            Unsent::Done(seq) => self.send(ToParent::Done { seq, result: Err(Failure::BadResult(why)) }),
            Unsent::Callback(id) => {
                self.chains.lock().unwrap_or_else(|e| e.into_inner()).answer(id, ChainMsg::Reply(Err(CallError::Failed(why)), -1))
            }
            Unsent::ThreadCall(id) => {
                if let Some(tx) = self.thread_calls.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                    let _ = tx.send(ChainMsg::Reply(Err(CallError::Failed(why)), -1));
                }
            }
            Unsent::Query(id) => {
                if let Some(tx) = self.queries.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                    let _ = tx.send(Value::None);
                }
            }
            Unsent::Pulled(id) => self.send(ToParent::Pulled { id, items: vec![], end: PullEnd::Failed(Failure::BadResult(why)) }),
            Unsent::Other => eprintln!("py_child (context {}): a frame to the node was dropped: {why}", self.context),
        }
    }

    fn query(&self, what: Query) -> Value {
        let id = self.next_query.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        self.queries.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        self.send(ToParent::Query { id, what });
        rx.recv().unwrap_or(Value::None)
    }
}

/// What a frame that could not be sent was, for [`Child::unsent`].
enum Unsent {
    Done(u64),
    Callback(u64),
    ThreadCall(u64),
    Query(u64),
    Pulled(u64),
    Other,
}

impl Unsent {
    fn of(f: &ToParent) -> Unsent {
        match f {
            ToParent::Done { seq, .. } => Unsent::Done(*seq),
            ToParent::Callback { id, .. } => Unsent::Callback(*id),
            ToParent::ThreadCall { id, .. } => Unsent::ThreadCall(*id),
            ToParent::Query { id, .. } => Unsent::Query(*id),
            ToParent::Pulled { id, .. } => Unsent::Pulled(*id),
            _ => Unsent::Other,
        }
    }
}

/// The node as the child's `erlang` module reaches it.
struct Node;

static NODE: Node = Node;

impl Erlang for Node {
    fn send(&self, to: &Value, msg: &Value) -> Result<(), SendError> {
        if !matches!(to, Value::Pid { .. }) {
            return Err(SendError::NotAPid);
        }
        child().send(ToParent::Send { to: to.clone(), msg: msg.clone() });
        Ok(())
    }
    fn whereis(&self, name: &str) -> Option<Value> {
        match child().query(Query::Whereis(name.to_owned())) {
            v @ Value::Pid { .. } => Some(v),
            _ => None,
        }
    }
    fn is_registered(&self, name: &str) -> bool {
        child().query(Query::IsRegistered(name.to_owned())) == Value::Bool(true)
    }
    fn state_set(&self, key: &Value, value: &Value) {
        child().send(ToParent::StateSet { key: key.clone(), value: value.clone() });
    }
    fn state_get(&self, key: &Value) -> Option<Stored> {
        match child().query(Query::StateGet(key.clone())) {
            Value::Tuple(t) => match t.as_slice() {
                [Value::Str(tag), Value::Int(i)] if tag == "int" => Some(Stored::Int(*i)),
                [Value::Str(tag), Value::Bytes(b)] if tag == "ext" => Some(Stored::Ext(std::sync::Arc::new(b.clone()))),
                _ => None,
            },
            _ => None,
        }
    }
    fn state_delete(&self, key: &Value) {
        child().send(ToParent::StateDelete { key: key.clone() });
    }
    fn state_keys(&self) -> Vec<Vec<u8>> {
        match child().query(Query::StateKeys) {
            Value::List(keys) => keys
                .into_iter()
                .filter_map(|k| match k {
                    Value::Bytes(b) => Some(b),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }
    fn state_incr(&self, key: &Value, by: i64) -> Result<i64, crate::state::IncrError> {
        match child().query(Query::StateIncr(key.clone(), by)) {
            Value::Int(n) => Ok(n),
            Value::Str(e) if e == "overflow" => Err(crate::state::IncrError::Overflow),
            _ => Err(crate::state::IncrError::NotAnInteger),
        }
    }
    fn call_from_thread(&self, name: &Value, args: &[Value]) -> Result<ThreadCall, CallError> {
        // Run by the node in a process of the application, holding a permit
        // there (see `actors::isolated`); the answer comes back by frame.
        let c = child();
        let id = c.next_query.fetch_add(1, Ordering::Relaxed);
        let (tx, answers) = mpsc::channel();
        c.thread_calls.lock().unwrap_or_else(|e| e.into_inner()).insert(id, tx);
        c.send(ToParent::ThreadCall { id, name: name.clone(), args: args.to_vec() });
        Ok(ThreadCall { answers, permit: Box::new(()) })
    }
    fn task_done(&self, _tid: u64, _result: Result<Value, super::value::Failure>) {}
    fn log(&self, r: LogRecord) {
        child().send(ToParent::Log {
            level: r.level,
            logger: r.logger,
            message: r.message,
            file: r.file,
            line: r.line,
            traceback: r.traceback,
        });
    }
    fn output(&self, fd: u8, text: &str) {
        child().send(ToParent::Output { seq: 0, fd, text: text.to_owned() });
    }
    fn channel_recv(&self, _id: u64, _timeout: Option<std::time::Duration>) -> Result<Value, ChannelEnd> {
        Err(ChannelEnd::Closed)
    }
    /// The answer crossed a pipe from another process: where it was made
    /// says nothing of this child's threads.
    fn answered_from(&self, _core: i32, _polled: bool) {}
}

/// The node's caller of request `seq`.
struct ChildCaller {
    seq: u64,
}

impl Caller for ChildCaller {
    fn callback(&self, name: &Value, args: &[Value]) -> Result<Receiver<ChainMsg>, CallError> {
        let c = child();
        let (tx, rx) = mpsc::channel();
        let id = c.chains.lock().unwrap_or_else(|e| e.into_inner()).open(tx);
        c.send(ToParent::Callback { id, name: name.clone(), args: args.to_vec() });
        Ok(rx)
    }
    fn gave_up(&self) -> bool {
        child().gave_up.lock().unwrap_or_else(|e| e.into_inner()).seqs.contains(&self.seq)
    }
    fn output(&self, fd: u8, text: &str) {
        child().send(ToParent::Output { seq: self.seq, fd, text: text.to_owned() });
    }
    fn context(&self) -> u32 {
        child().context
    }
    fn interrupted(&self) -> bool {
        child().interrupted.load(Ordering::Acquire) == self.seq
    }
    fn await_interrupt(&self) {
        // the interrupter raises holding `running`: once it is free, the
        // exception is set (called detached, as `running` must be taken)
        drop(child().running.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

/// A request of the node's callback chain, run by the thread waiting in
/// `erlang.call`.
struct ChildNested {
    seq: u64,
    op: Op,
    req: Request,
}

impl Nested for ChildNested {
    fn place(&self) -> Place {
        Place::Own
    }
    fn serve(self: Box<Self>, run: &mut Run<'_>) {
        let caller: Arc<dyn Caller> = Arc::new(ChildCaller { seq: self.seq });
        let result = run(self.op, &self.req, &caller);
        child().send(ToParent::Done { seq: self.seq, result });
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

/// What the main thread is handed.
enum Work {
    Run(u64, Op, Request),
    /// Its seq (what an interruption names), the stream, the most steps.
    Pull(u64, u64, u64),
    StreamClose(u64),
    RefRelease(u64),
}

/// Routes the node's frames (the reader thread). Ends the process when the
/// node's end closes.
/// Raises the interruptions the node asks for (the interrupter thread).
fn raise_interrupts(interrupts: Receiver<(u64, bool)>) {
    let c = child();
    for (seq, timeout) in interrupts {
        let mut running = c.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((s, interp, thread, interrupted)) = running.as_mut() {
            if *s == seq {
                c.interrupted.store(seq, Ordering::Release);
                let exc = if timeout { super::interrupt::Raise::Timeout } else { super::interrupt::Raise::KeyboardInterrupt };
                // SAFETY: this thread has no Python thread state; the
                // `running` lock keeps the request (and the interpreter, the
                // child's main one, never finalised) from ending meanwhile:
                // the main thread clears it only detached.
                unsafe { super::interrupt::raise(*interp, *thread, exc) };
                *interrupted = true;
            }
        }
    }
}

fn read_frames(mut input: BufReader<File>, requests: Sender<Work>, interrupts: Sender<(u64, bool)>) {
    let c = child();
    loop {
        let frame = match wire::recv_from_parent(&mut input) {
            Ok(f) => f,
            Err(_) => std::process::exit(0),
        };
        match frame {
            ToChild::Run { seq, op, req } => {
                c.last_read.fetch_max(seq, Ordering::AcqRel);
                let mut chains = c.chains.lock().unwrap_or_else(|e| e.into_inner());
                if chains.is_empty() {
                    // No erlang.call waits: a top-level request.
                    drop(chains);
                    let _ = requests.send(Work::Run(seq, op, req));
                } else if chains.nested(ChainMsg::Nested(Box::new(ChildNested { seq, op, req }))).is_err() {
                    // Its chain's `erlang.call` stopped waiting (the caller
                    // gave up): the thread that made it has moved on, and the
                    // node waits for this request's end. It ends here.
                    drop(chains);
                    c.send(ToParent::Done { seq, result: Err(Failure::Cancelled) });
                }
            }
            ToChild::Interrupt { seq, timeout } => {
                if timeout {
                    c.gave_up.lock().unwrap_or_else(|e| e.into_inner()).add(seq);
                }
                // Raised by the interrupter: raising takes the GIL, which the
                // request may hold while it waits for an answer only this
                // thread can read (`Child::query`).
                let _ = interrupts.send((seq, timeout));
            }
            ToChild::CallbackReply { id, result } => {
                c.chains.lock().unwrap_or_else(|e| e.into_inner()).answer(id, ChainMsg::Reply(result, -1));
            }
            ToChild::BridgeReply { id, value } => {
                if let Some(tx) = c.queries.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                    let _ = tx.send(value);
                }
            }
            ToChild::Pull { seq, id, max } => {
                let _ = requests.send(Work::Pull(seq, id, max));
            }
            ToChild::StreamClose { id } => {
                let _ = requests.send(Work::StreamClose(id));
            }
            ToChild::RefRelease { id } => {
                let _ = requests.send(Work::RefRelease(id));
            }
            ToChild::ThreadReply { id, result } => {
                if let Some(tx) = c.thread_calls.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
                    let _ = tx.send(ChainMsg::Reply(result, -1));
                }
            }
            ToChild::Setup { .. } => {}
        }
    }
}

/// The `py_child` binary: set up from the first frame, then serve until the
/// node's end closes.
pub fn main() -> ! {
    // SAFETY: fds 0 and 1 are the pipes the node opened for this process. They
    // are kept as new fds for the frames; 0 and 1 then become /dev/null and
    // stderr, so a C library writing to stdout cannot corrupt a frame.
    let (input, output) = unsafe {
        let input = libc::dup(0);
        let output = libc::dup(1);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if input < 0 || output < 0 || null < 0 {
            std::process::exit(2);
        }
        libc::dup2(null, 0);
        libc::close(null);
        libc::dup2(2, 1);
        (File::from_raw_fd(input), File::from_raw_fd(output))
    };
    let mut input = BufReader::new(input);
    let out = BufWriter::new(output);
    let Ok(ToChild::Setup { context, generation, paths, imports, preload, venv }) = wire::recv_from_parent(&mut input) else {
        std::process::exit(2);
    };
    // Refs of earlier children of this context never name an object here.
    super::refs::first_id((generation + 1) << 40);
    let _ = CHILD.set(Child {
        out: Mutex::new(out),
        context,
        queries: Mutex::default(),
        next_query: AtomicU64::new(1),
        chains: Mutex::default(),
        running: Mutex::default(),
        interrupted: AtomicU64::new(0),
        gave_up: Mutex::default(),
        last_read: AtomicU64::new(0),
        thread_calls: Mutex::default(),
    });
    super::setup::configure(super::setup::Setup { paths, imports, preload });
    super::setup::configure_venv(venv);
    super::guards::set_isolated();
    bridge::install(&NODE);
    let c = child();
    let started = super::runtime::ensure_initialized().and_then(|_| super::runtime::apply_setup_to_main());
    if let Err(e) = started {
        c.send(ToParent::SetupFailed(e));
        let _ = c.out.lock().map(|mut o| o.flush());
        std::process::exit(1);
    }
    let mut host = Host::executor();
    let (requests, queue) = mpsc::channel();
    let (interrupts, to_raise) = mpsc::channel();
    std::thread::Builder::new()
        .name("py-child-intr".into())
        .spawn(move || raise_interrupts(to_raise))
        .unwrap_or_else(|_| std::process::exit(2));
    std::thread::Builder::new()
        .name("py-child-reader".into())
        .spawn(move || read_frames(input, requests, interrupts))
        .unwrap_or_else(|_| std::process::exit(2));
    c.send(ToParent::Ready { pid: std::process::id() });
    let (interp, thread) = host.ids();
    // Polled briefly before sleeping: a caller making requests back to back
    // finds this thread awake.
    while let Ok(work) = wire::recv_spinning(&queue, std::time::Duration::from_micros(50)) {
        match work {
            Work::Run(seq, op, req) => {
                *c.running.lock().unwrap_or_else(|e| e.into_inner()) = Some((seq, interp, thread, false));
                let result = host.serve(Place::Own, op, &req, Arc::new(ChildCaller { seq }));
                let ended = c.running.lock().unwrap_or_else(|e| e.into_inner()).take();
                if matches!(ended, Some((_, _, _, true))) {
                    host.clear_pending_interrupt();
                }
                c.gave_up.lock().unwrap_or_else(|e| e.into_inner()).ended(c.last_read.load(Ordering::Acquire).max(seq));
                c.send(ToParent::Done { seq, result });
            }
            Work::Pull(seq, id, max) => {
                // Registered as a request is, so that `py:interrupt/1` (and a
                // stop) reach the generator.
                *c.running.lock().unwrap_or_else(|e| e.into_inner()) = Some((seq, interp, thread, false));
                let mut items = Vec::new();
                let mut end = PullEnd::More;
                host.pull(Place::Own, id, max, |step| {
                    match step {
                        Pulled::Item(v) => items.push(v),
                        Pulled::End => end = PullEnd::End,
                        Pulled::Gone => end = PullEnd::Gone,
                        Pulled::Failed(f) => end = PullEnd::Failed(f),
                    }
                    true
                });
                let ended = c.running.lock().unwrap_or_else(|e| e.into_inner()).take();
                if matches!(ended, Some((_, _, _, true))) {
                    // Raised, maybe not delivered: the node ends the stream
                    // with it all the same (its token says it was raised).
                    host.clear_pending_interrupt();
                }
                c.send(ToParent::Pulled { id, items, end });
            }
            Work::StreamClose(id) => host.stream_close(id),
            Work::RefRelease(id) => host.release_ref(Place::Own, id),
        }
    }
    std::process::exit(0)
}
