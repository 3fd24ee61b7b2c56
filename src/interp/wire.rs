//! The frames between a node and the child OS process of a process-isolated
//! context (`isolation => process`): each frame is a 4-byte big-endian length
//! and one term in external term format ([`super::etf`]), over the child's stdin
//! (to the child) and stdout (from it). No new serialisation: frames are
//! [`Value`] trees with a string tag first, encoded and decoded in plain Rust on
//! both sides, so neither side needs a BEAM to read them.
//!
//! Requests, results and failures travel as the same values the in-process
//! path hands between rooms ([`Request`], [`Outcome`], [`Failure`]).

use super::bridge::CallError;
use super::etf::{self, Borrowed};
use super::exec::{Op, Outcome};
use super::value::{Failure, Name, RefOp, Request, Value};
use std::io::{self, Read, Write};

/// Why a request is not sent to a child.
const ASYNCIO_REFUSED: &str = "asyncio calls are not supported by process-isolated contexts";

/// The largest frame either side accepts (a request or result of 1 GiB).
/// Test builds (`test-hooks`) take 64 MiB, so a test can cross the bound.
#[cfg(not(feature = "test-hooks"))]
const MAX_FRAME: usize = 1 << 30;
#[cfg(feature = "test-hooks")]
const MAX_FRAME: usize = 64 << 20;

/// Why a frame past [`MAX_FRAME`] is refused.
fn too_large() -> String {
    format!("a frame larger than {} MiB cannot cross to or from a process-isolated context", MAX_FRAME >> 20)
}

/// Parent → child.
#[derive(Debug)]
pub enum ToChild {
    /// First frame: the context's id, how many children it had before this
    /// one (refs of an earlier child never name an object of this one), and
    /// the application's settings.
    Setup { context: u32, generation: u64, paths: Vec<String>, imports: Vec<String>, preload: Vec<u8>, venv: Vec<String> },
    /// Run request `seq` (a nested one while the child waits in `erlang.call`).
    Run { seq: u64, op: Op, req: Request },
    /// Interrupt request `seq` if it still runs (`timeout`: its caller gave up).
    Interrupt { seq: u64, timeout: bool },
    /// The answer to the child's `erlang.call` number `id`.
    CallbackReply { id: u64, result: Result<Value, CallError> },
    /// The answer to bridge query `id`.
    BridgeReply { id: u64, value: Value },
    /// Up to `max` steps of stream `id`, answered by [`ToParent::Pulled`];
    /// `seq` names the pull for an interruption, as a request's does.
    Pull { seq: u64, id: u64, max: u64 },
    /// Close stream `id` (its generator's `finally` runs).
    StreamClose { id: u64 },
    /// Forget the object kept by reference under `id`.
    RefRelease { id: u64 },
    /// The answer to [`ToParent::ThreadCall`] `id`.
    ThreadReply { id: u64, result: Result<Value, CallError> },
}

/// How a batch of stream steps ended.
#[derive(Debug)]
pub enum PullEnd {
    /// Not yet: more may be pulled.
    More,
    /// Exhausted.
    End,
    /// No such stream (a new child since).
    Gone,
    Failed(Failure),
}

/// Child → parent.
#[derive(Debug)]
pub enum ToParent {
    /// Set up: the child's OS pid.
    Ready {
        pid: u32,
    },
    /// Setting up failed (a bad `preload_code`, an import that fails).
    SetupFailed(String),
    /// Request `seq` ended.
    Done {
        seq: u64,
        result: Result<Outcome, Failure>,
    },
    /// The running request's Python code called `erlang.call(name, *args)`;
    /// `id` numbers the call, and its answer names it back.
    Callback {
        id: u64,
        name: Value,
        args: Vec<Value>,
    },
    /// Text request `seq` printed (`seq` 0: no request: for the logger).
    Output {
        seq: u64,
        fd: u8,
        text: String,
    },
    /// `erlang.send`.
    Send {
        to: Value,
        msg: Value,
    },
    /// A query of the node (`state_get`, `whereis`, …) answered by `BridgeReply`.
    Query {
        id: u64,
        what: Query,
    },
    /// State changes that need no answer.
    StateSet {
        key: Value,
        value: Value,
    },
    StateDelete {
        key: Value,
    },
    /// A Python `logging` record.
    Log {
        level: i32,
        logger: String,
        message: String,
        file: String,
        line: u32,
        traceback: Option<String>,
    },
    /// Steps of stream `id`: its items, then how the batch ended.
    Pulled {
        id: u64,
        items: Vec<Value>,
        end: PullEnd,
    },
    /// `erlang.call` from a Python thread that serves no request.
    ThreadCall {
        id: u64,
        name: Value,
        args: Vec<Value>,
    },
}

/// What a child asks the node, answered by a [`ToChild::BridgeReply`].
#[derive(Debug)]
pub enum Query {
    StateGet(Value),
    StateKeys,
    StateIncr(Value, i64),
    Whereis(String),
    IsRegistered(String),
}

fn s(t: &str) -> Value {
    Value::Str(t.to_owned())
}

fn int(v: &Value) -> io::Result<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        _ => Err(malformed("an integer")),
    }
}

fn u64_of(v: &Value) -> io::Result<u64> {
    u64::try_from(int(v)?).map_err(|_| malformed("a non-negative integer"))
}

fn text(v: &Value) -> io::Result<String> {
    match v {
        Value::Str(t) => Ok(t.clone()),
        _ => Err(malformed("a string")),
    }
}

fn bytes(v: &Value) -> io::Result<Vec<u8>> {
    match v {
        Value::Bytes(b) => Ok(b.clone()),
        Value::Str(t) => Ok(t.as_bytes().to_vec()),
        _ => Err(malformed("bytes")),
    }
}

fn list(v: &Value) -> io::Result<&[Value]> {
    match v {
        Value::List(l) => Ok(l),
        _ => Err(malformed("a list")),
    }
}

fn name(v: &Value) -> io::Result<Name> {
    match v {
        Value::Str(t) => Ok(Name::new(t)),
        _ => Err(malformed("a name")),
    }
}

fn texts(v: &Value) -> io::Result<Vec<String>> {
    list(v)?.iter().map(text).collect()
}

fn strs(l: &[String]) -> Value {
    Value::List(l.iter().map(|t| s(t)).collect())
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("malformed frame: expected {what}"))
}

fn kwargs(v: &Value) -> io::Result<Vec<(String, Value)>> {
    match v {
        Value::Map(pairs) => pairs.iter().map(|(k, v)| Ok((text(k)?, v.clone()))).collect(),
        _ => Err(malformed("keyword arguments")),
    }
}

/// An op as it travels; `None` for the ones a process-isolated context does
/// not run (asyncio), refused before sending.
pub fn op_value(op: Op) -> Option<Value> {
    Some(match op {
        Op::Call => s("call"),
        Op::Eval => s("eval"),
        Op::Exec => s("exec"),
        Op::StreamCall => s("stream_call"),
        Op::StreamEval => s("stream_eval"),
        Op::CallRef => s("call_ref"),
        Op::EvalRef => s("eval_ref"),
        Op::OnRef => s("on_ref"),
        Op::StreamStart(id) => Value::Tuple(vec![s("stream_start"), Value::Int(id as i64)]),
        Op::AsyncCall { .. } | Op::AsyncStream { .. } => return None,
    })
}

fn op_of(v: &Value) -> io::Result<Op> {
    if let Value::Tuple(t) = v {
        return match t.as_slice() {
            [Value::Str(tag), id] if tag == "stream_start" => Ok(Op::StreamStart(u64_of(id)?)),
            _ => Err(malformed("an op")),
        };
    }
    Ok(match text(v)?.as_str() {
        "call" => Op::Call,
        "eval" => Op::Eval,
        "exec" => Op::Exec,
        "stream_call" => Op::StreamCall,
        "stream_eval" => Op::StreamEval,
        "call_ref" => Op::CallRef,
        "eval_ref" => Op::EvalRef,
        "on_ref" => Op::OnRef,
        _ => return Err(malformed("an op")),
    })
}

/// A request as it travels, its arguments, code and locals borrowed.
fn request_term(r: &Request) -> Borrowed<'_> {
    match r {
        Request::Call { module, function, args, kwargs } => Borrowed::Tuple(vec![
            Borrowed::Str("call"),
            Borrowed::Str(module),
            Borrowed::Str(function),
            Borrowed::List(args),
            Borrowed::Named(kwargs),
        ]),
        Request::Eval { code, locals } => Borrowed::Tuple(vec![Borrowed::Str("eval"), Borrowed::Bytes(code), Borrowed::Map(locals)]),
        Request::Exec { code } => Borrowed::Tuple(vec![Borrowed::Str("exec"), Borrowed::Bytes(code)]),
        Request::OnRef { id, op, .. } => {
            let op = match op {
                RefOp::GetAttr(name) => Borrowed::Tuple(vec![Borrowed::Str("getattr"), Borrowed::Str(name)]),
                RefOp::Method { name, args, kwargs } => {
                    Borrowed::Tuple(vec![Borrowed::Str("method"), Borrowed::Str(name), Borrowed::List(args), Borrowed::Named(kwargs)])
                }
                RefOp::ToTerm => Borrowed::Tuple(vec![Borrowed::Str("to_term")]),
            };
            Borrowed::Tuple(vec![Borrowed::Str("on_ref"), Borrowed::Owned(Value::Int(*id as i64)), op])
        }
    }
}

/// A list's items, taken (not copied) out of the frame.
fn take_list(v: Value) -> io::Result<Vec<Value>> {
    match v {
        Value::List(l) => Ok(l),
        _ => Err(malformed("a list")),
    }
}

fn request_of(v: Value) -> io::Result<Request> {
    let Value::Tuple(mut t) = v else { return Err(malformed("a request")) };
    match (t.first().map(text).transpose()?.as_deref(), t.len()) {
        (Some("call"), 5) => Ok(Request::Call {
            module: name(&t[1])?,
            function: name(&t[2])?,
            kwargs: kwargs(&t[4])?,
            args: take_list(std::mem::replace(&mut t[3], Value::None))?.into(),
        }),
        (Some("eval"), 3) => match std::mem::replace(&mut t[2], Value::None) {
            Value::Map(locals) => Ok(Request::Eval { code: bytes(&t[1])?, locals }),
            _ => Err(malformed("locals")),
        },
        (Some("exec"), 2) => Ok(Request::Exec { code: bytes(&t[1])? }),
        (Some("on_ref"), 3) => {
            let Value::Tuple(op) = &t[2] else { return Err(malformed("a ref op")) };
            let op = match (op.first().map(text).transpose()?.as_deref(), op.len()) {
                (Some("getattr"), 2) => RefOp::GetAttr(text(&op[1])?),
                (Some("method"), 4) => RefOp::Method { name: text(&op[1])?, args: list(&op[2])?.to_vec(), kwargs: kwargs(&op[3])? },
                (Some("to_term"), 1) => RefOp::ToTerm,
                _ => return Err(malformed("a ref op")),
            };
            Ok(Request::OnRef { id: u64_of(&t[1])?, op, hold: Default::default() })
        }
        _ => Err(malformed("a request")),
    }
}

fn result_value(r: Result<Outcome, Failure>) -> Value {
    match r {
        Ok(Outcome::Value(v)) => Value::Tuple(vec![s("value"), v]),
        Ok(Outcome::Ref(id)) => Value::Tuple(vec![s("ref"), Value::Int(id as i64)]),
        Ok(Outcome::Started) => Value::Tuple(vec![s("started")]),
        Ok(Outcome::Done | Outcome::Scheduled) => Value::Tuple(vec![s("done")]),
        Err(f) => failure_value(&f),
    }
}

fn result_of(v: Value) -> io::Result<Result<Outcome, Failure>> {
    let Value::Tuple(mut t) = v else { return Err(malformed("a result")) };
    match (t.first().map(text).transpose()?.as_deref(), t.len()) {
        (Some("value"), 2) => Ok(Ok(Outcome::Value(t.pop().unwrap_or(Value::None)))),
        (Some("done"), 1) => Ok(Ok(Outcome::Done)),
        (Some("started"), 1) => Ok(Ok(Outcome::Started)),
        (Some("ref"), 2) => Ok(Ok(Outcome::Ref(u64_of(&t[1])?))),
        _ => Ok(Err(failure_of(&t)?)),
    }
}

fn failure_value(f: &Failure) -> Value {
    let pair = |tag: &str, m: &str| Value::Tuple(vec![s(tag), s(m)]);
    match f {
        Failure::Python { name, message, traceback } => Value::Tuple(vec![s("python"), s(name), s(message), s(traceback)]),
        Failure::BadArgument(m) => pair("bad_argument", m),
        Failure::UnsupportedType(m) => pair("unsupported_type", m),
        Failure::BadResult(m) => pair("bad_result", m),
        Failure::NotIterable(m) => pair("not_iterable", m),
        Failure::NotAwaitable(m) => pair("not_awaitable", m),
        Failure::NotAsyncIterable(m) => pair("not_async_iterable", m),
        Failure::ContextCrashed(m) => pair("context_crashed", m),
        Failure::Cancelled => Value::Tuple(vec![s("cancelled")]),
        Failure::ContextStopped => Value::Tuple(vec![s("context_stopped")]),
    }
}

fn failure_of(t: &[Value]) -> io::Result<Failure> {
    let tag = t.first().map(text).transpose()?;
    let arg = |i: usize| t.get(i).map(text).transpose()?.ok_or_else(|| malformed("a failure"));
    Ok(match tag.as_deref() {
        Some("python") => Failure::Python { name: arg(1)?, message: arg(2)?, traceback: arg(3)? },
        Some("bad_argument") => Failure::BadArgument(arg(1)?),
        Some("unsupported_type") => Failure::UnsupportedType(arg(1)?),
        Some("bad_result") => Failure::BadResult(arg(1)?),
        Some("not_iterable") => Failure::NotIterable(arg(1)?),
        Some("not_awaitable") => Failure::NotAwaitable(arg(1)?),
        Some("not_async_iterable") => Failure::NotAsyncIterable(arg(1)?),
        Some("context_crashed") => Failure::ContextCrashed(arg(1)?),
        Some("cancelled") => Failure::Cancelled,
        Some("context_stopped") => Failure::ContextStopped,
        _ => return Err(malformed("a failure")),
    })
}

fn callback_value(r: &Result<Value, CallError>) -> Value {
    let err = |kind: &str, m: &str| Value::Tuple(vec![s("error"), s(kind), s(m)]);
    match r {
        Ok(v) => Value::Tuple(vec![s("ok"), v.clone()]),
        Err(CallError::UnknownFunction(m)) => err("unknown_function", m),
        Err(CallError::Failed(m)) => err("failed", m),
        Err(CallError::Unavailable(m)) => err("unavailable", m),
        Err(CallError::BadValue(m)) => err("bad_value", m),
    }
}

fn callback_of(v: &Value) -> io::Result<Result<Value, CallError>> {
    let Value::Tuple(t) = v else { return Err(malformed("a callback result")) };
    match (t.first().map(text).transpose()?.as_deref(), t.len()) {
        (Some("ok"), 2) => Ok(Ok(t[1].clone())),
        (Some("error"), 3) => {
            let m = text(&t[2])?;
            Ok(Err(match text(&t[1])?.as_str() {
                "unknown_function" => CallError::UnknownFunction(m),
                "unavailable" => CallError::Unavailable(m),
                "bad_value" => CallError::BadValue(m),
                _ => CallError::Failed(m),
            }))
        }
        _ => Err(malformed("a callback result")),
    }
}

impl ToChild {
    fn value(&self) -> Option<Value> {
        Some(match self {
            ToChild::Setup { context, generation, paths, imports, preload, venv } => Value::Tuple(vec![
                s("setup"),
                Value::Int(*context as i64),
                Value::Int(*generation as i64),
                strs(paths),
                strs(imports),
                Value::Bytes(preload.clone()),
                strs(venv),
            ]),
            // Encoded with its request borrowed: `run_frame`.
            ToChild::Run { .. } => return None,
            ToChild::Pull { seq, id, max } => {
                Value::Tuple(vec![s("pull"), Value::Int(*seq as i64), Value::Int(*id as i64), Value::Int(*max as i64)])
            }
            ToChild::StreamClose { id } => Value::Tuple(vec![s("stream_close"), Value::Int(*id as i64)]),
            ToChild::RefRelease { id } => Value::Tuple(vec![s("ref_release"), Value::Int(*id as i64)]),
            ToChild::ThreadReply { id, result } => Value::Tuple(vec![s("thread_reply"), Value::Int(*id as i64), callback_value(result)]),
            ToChild::Interrupt { seq, timeout } => Value::Tuple(vec![s("interrupt"), Value::Int(*seq as i64), Value::Bool(*timeout)]),
            ToChild::CallbackReply { id, result } => {
                Value::Tuple(vec![s("callback_reply"), Value::Int(*id as i64), callback_value(result)])
            }
            ToChild::BridgeReply { id, value } => Value::Tuple(vec![s("bridge_reply"), Value::Int(*id as i64), value.clone()]),
        })
    }

    fn of(v: Value) -> io::Result<ToChild> {
        let Value::Tuple(mut t) = v else { return Err(malformed("a frame")) };
        let tag = t.first().map(text).transpose()?;
        Ok(match (tag.as_deref(), t.len()) {
            (Some("setup"), 7) => ToChild::Setup {
                context: u32::try_from(int(&t[1])?).map_err(|_| malformed("a context id"))?,
                generation: u64_of(&t[2])?,
                paths: texts(&t[3])?,
                imports: texts(&t[4])?,
                preload: bytes(&t[5])?,
                venv: texts(&t[6])?,
            },
            (Some("run"), 4) => {
                ToChild::Run { seq: u64_of(&t[1])?, op: op_of(&t[2])?, req: request_of(std::mem::replace(&mut t[3], Value::None))? }
            }
            (Some("pull"), 4) => ToChild::Pull { seq: u64_of(&t[1])?, id: u64_of(&t[2])?, max: u64_of(&t[3])? },
            (Some("stream_close"), 2) => ToChild::StreamClose { id: u64_of(&t[1])? },
            (Some("ref_release"), 2) => ToChild::RefRelease { id: u64_of(&t[1])? },
            (Some("thread_reply"), 3) => ToChild::ThreadReply { id: u64_of(&t[1])?, result: callback_of(&t[2])? },
            (Some("interrupt"), 3) => ToChild::Interrupt { seq: u64_of(&t[1])?, timeout: t[2] == Value::Bool(true) },
            (Some("callback_reply"), 3) => ToChild::CallbackReply { id: u64_of(&t[1])?, result: callback_of(&t[2])? },
            (Some("bridge_reply"), 3) => ToChild::BridgeReply { id: u64_of(&t[1])?, value: t[2].clone() },
            _ => return Err(malformed("a frame to the child")),
        })
    }
}

impl ToParent {
    fn into_value(self) -> Value {
        let opt = |o: Option<String>| o.map_or(Value::None, Value::Str);
        match self {
            ToParent::Ready { pid } => Value::Tuple(vec![s("ready"), Value::Int(pid as i64)]),
            ToParent::SetupFailed(m) => Value::Tuple(vec![s("setup_failed"), Value::Str(m)]),
            ToParent::Done { seq, result } => Value::Tuple(vec![s("done"), Value::Int(seq as i64), result_value(result)]),
            ToParent::Callback { id, name, args } => Value::Tuple(vec![s("callback"), Value::Int(id as i64), name, Value::List(args)]),
            ToParent::Output { seq, fd, text } => {
                Value::Tuple(vec![s("output"), Value::Int(seq as i64), Value::Int(fd as i64), Value::Str(text)])
            }
            ToParent::Send { to, msg } => Value::Tuple(vec![s("send"), to, msg]),
            ToParent::Query { id, what } => {
                let what = match what {
                    Query::StateGet(k) => Value::Tuple(vec![s("state_get"), k]),
                    Query::StateKeys => Value::Tuple(vec![s("state_keys")]),
                    Query::StateIncr(k, by) => Value::Tuple(vec![s("state_incr"), k, Value::Int(by)]),
                    Query::Whereis(n) => Value::Tuple(vec![s("whereis"), Value::Str(n)]),
                    Query::IsRegistered(n) => Value::Tuple(vec![s("is_registered"), Value::Str(n)]),
                };
                Value::Tuple(vec![s("query"), Value::Int(id as i64), what])
            }
            ToParent::StateSet { key, value } => Value::Tuple(vec![s("state_set"), key, value]),
            ToParent::StateDelete { key } => Value::Tuple(vec![s("state_delete"), key]),
            ToParent::ThreadCall { id, name, args } => Value::Tuple(vec![s("thread_call"), Value::Int(id as i64), name, Value::List(args)]),
            ToParent::Pulled { id, items, end } => {
                let end = match end {
                    PullEnd::More => s("more"),
                    PullEnd::End => s("end"),
                    PullEnd::Gone => s("gone"),
                    PullEnd::Failed(f) => failure_value(&f),
                };
                Value::Tuple(vec![s("pulled"), Value::Int(id as i64), Value::List(items), end])
            }
            ToParent::Log { level, logger, message, file, line, traceback } => Value::Tuple(vec![
                s("log"),
                Value::Int(level as i64),
                Value::Str(logger),
                Value::Str(message),
                Value::Str(file),
                Value::Int(line as i64),
                opt(traceback),
            ]),
        }
    }

    fn of(v: Value) -> io::Result<ToParent> {
        let Value::Tuple(mut t) = v else { return Err(malformed("a frame")) };
        let tag = t.first().map(text).transpose()?;
        Ok(match (tag.as_deref(), t.len()) {
            (Some("ready"), 2) => ToParent::Ready { pid: u32::try_from(int(&t[1])?).map_err(|_| malformed("a pid"))? },
            (Some("setup_failed"), 2) => ToParent::SetupFailed(text(&t[1])?),
            (Some("done"), 3) => ToParent::Done { seq: u64_of(&t[1])?, result: result_of(std::mem::replace(&mut t[2], Value::None))? },
            (Some("callback"), 4) => ToParent::Callback {
                id: u64_of(&t[1])?,
                args: take_list(std::mem::replace(&mut t[3], Value::None))?,
                name: std::mem::replace(&mut t[2], Value::None),
            },
            (Some("output"), 4) => {
                ToParent::Output { seq: u64_of(&t[1])?, fd: u8::try_from(int(&t[2])?).map_err(|_| malformed("an fd"))?, text: text(&t[3])? }
            }
            (Some("send"), 3) => ToParent::Send { to: t[1].clone(), msg: t[2].clone() },
            (Some("query"), 3) => {
                let Value::Tuple(q) = &t[2] else { return Err(malformed("a query")) };
                let what = match (q.first().map(text).transpose()?.as_deref(), q.len()) {
                    (Some("state_get"), 2) => Query::StateGet(q[1].clone()),
                    (Some("state_keys"), 1) => Query::StateKeys,
                    (Some("state_incr"), 3) => Query::StateIncr(q[1].clone(), int(&q[2])?),
                    (Some("whereis"), 2) => Query::Whereis(text(&q[1])?),
                    (Some("is_registered"), 2) => Query::IsRegistered(text(&q[1])?),
                    _ => return Err(malformed("a query")),
                };
                ToParent::Query { id: u64_of(&t[1])?, what }
            }
            (Some("thread_call"), 4) => ToParent::ThreadCall { id: u64_of(&t[1])?, name: t[2].clone(), args: list(&t[3])?.to_vec() },
            (Some("pulled"), 4) => ToParent::Pulled {
                id: u64_of(&t[1])?,
                items: list(&t[2])?.to_vec(),
                end: match &t[3] {
                    Value::Str(e) if e == "more" => PullEnd::More,
                    Value::Str(e) if e == "end" => PullEnd::End,
                    Value::Str(e) if e == "gone" => PullEnd::Gone,
                    Value::Tuple(f) => PullEnd::Failed(failure_of(f)?),
                    _ => return Err(malformed("a pull's end")),
                },
            },
            (Some("state_set"), 3) => ToParent::StateSet { key: t[1].clone(), value: t[2].clone() },
            (Some("state_delete"), 2) => ToParent::StateDelete { key: t[1].clone() },
            (Some("log"), 7) => ToParent::Log {
                level: int(&t[1])? as i32,
                logger: text(&t[2])?,
                message: text(&t[3])?,
                file: text(&t[4])?,
                line: u32::try_from(int(&t[5])?).unwrap_or(0),
                traceback: match &t[6] {
                    Value::None => None,
                    v => Some(text(v)?),
                },
            },
            _ => return Err(malformed("a frame to the parent")),
        })
    }
}

/// One frame, encoded and checked, ready to be written. Frames are encoded
/// before the writer's lock is taken, so a large one does not hold up the
/// threads that share the pipe (an interruption, a log line) while it is
/// encoded.
pub struct Frame(Vec<u8>);

impl Frame {
    /// A value that cannot be encoded (a ref, a channel) or a body larger than
    /// [`MAX_FRAME`] is an `InvalidInput` error, and there is nothing to write.
    fn of(body: Result<Vec<u8>, super::conv_error::ConvError>) -> io::Result<Frame> {
        let body = body.map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.message()))?;
        if body.len() > MAX_FRAME {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, too_large()));
        }
        Ok(Frame(body))
    }

    /// Writes the frame (its length, then its body) and flushes.
    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        w.write_all(&(self.0.len() as u32).to_be_bytes())?;
        w.write_all(&self.0)?;
        w.flush()
    }
}

/// Reads one frame's value; `UnexpectedEof` when the other side closed.
fn read_value(r: &mut impl Read) -> io::Result<Value> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, too_large()));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    etf::decode(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.message()))
}

/// `rx.try_recv()` as a poll of [`super::spin::spin`]: `None` while empty.
fn polled<T>(rx: &std::sync::mpsc::Receiver<T>) -> Option<Result<T, ()>> {
    match rx.try_recv() {
        Ok(v) => Some(Ok(v)),
        Err(std::sync::mpsc::TryRecvError::Disconnected) => Some(Err(())),
        Err(std::sync::mpsc::TryRecvError::Empty) => None,
    }
}

/// `rx.recv()`, polling for up to `spin` first ([`super::spin`]): a thread
/// handed work often within microseconds is not put to sleep and woken for each.
pub fn recv_spinning<T>(rx: &std::sync::mpsc::Receiver<T>, spin: std::time::Duration) -> Result<T, std::sync::mpsc::RecvError> {
    match super::spin::spin(spin, || polled(rx)) {
        Some(got) => got.map_err(|()| std::sync::mpsc::RecvError),
        None => rx.recv(),
    }
}

/// [`recv_spinning`], giving up after `timeout` of sleep.
pub fn recv_spinning_timeout<T>(
    rx: &std::sync::mpsc::Receiver<T>,
    spin: std::time::Duration,
    timeout: std::time::Duration,
) -> Result<T, std::sync::mpsc::RecvTimeoutError> {
    recv_polled_timeout(rx, spin, timeout).0
}

/// [`recv_spinning_timeout`], and whether what it got came while polling
/// (true) or after sleeping.
pub fn recv_polled_timeout<T>(
    rx: &std::sync::mpsc::Receiver<T>,
    spin: std::time::Duration,
    timeout: std::time::Duration,
) -> (Result<T, std::sync::mpsc::RecvTimeoutError>, bool) {
    match super::spin::spin(spin, || polled(rx)) {
        Some(got) => (got.map_err(|()| std::sync::mpsc::RecvTimeoutError::Disconnected), true),
        None => (rx.recv_timeout(timeout), false),
    }
}

/// A frame to the child. A request that cannot travel (an op or a value only
/// this node's interpreters take, or one past the size bound) is `InvalidInput`.
pub fn to_child(f: &ToChild) -> io::Result<Frame> {
    match (f, f.value()) {
        (ToChild::Run { seq, op, req }, _) => run_frame(*seq, *op, req),
        (_, Some(v)) => Frame::of(etf::encode(&v)),
        (_, None) => Err(io::Error::new(io::ErrorKind::InvalidInput, "a frame that does not travel")),
    }
}

/// Request `seq` as it travels; `None` for an op the child does not run.
fn run_term(seq: u64, op: Op, req: &Request) -> Option<Borrowed<'_>> {
    Some(Borrowed::Tuple(vec![
        Borrowed::Str("run"),
        Borrowed::Owned(Value::Int(seq as i64)),
        Borrowed::Owned(op_value(op)?),
        request_term(req),
    ]))
}

/// Request `seq`'s frame to the child (as [`ToChild::Run`], without taking the
/// request); an op it does not run (asyncio) is `InvalidInput`.
pub fn run_frame(seq: u64, op: Op, req: &Request) -> io::Result<Frame> {
    let t = run_term(seq, op, req).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, ASYNCIO_REFUSED))?;
    Frame::of(etf::encode_borrowed(&t))
}

pub fn recv_from_parent(r: &mut impl Read) -> io::Result<ToChild> {
    ToChild::of(read_value(r)?)
}

/// A frame to the parent ([`Frame::of`] for what cannot travel).
pub fn to_parent(f: ToParent) -> io::Result<Frame> {
    Frame::of(etf::encode(&f.into_value()))
}

pub fn recv_from_child(r: &mut impl Read) -> io::Result<ToParent> {
    ToParent::of(read_value(r)?)
}
