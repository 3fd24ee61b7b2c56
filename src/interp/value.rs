//! What crosses between the rooms: Python values as plain Rust data, the
//! requests the interpreters run, and why a request failed.
//!
//! `src/interp/` converts Python objects to and from [`Value`] (see
//! [`super::types`]) with its interpreter's GIL held; `src/nif/types/` encodes and
//! decodes the same values as Erlang terms, with no GIL. So Python code never
//! sees a term, an Erlang environment never sees a Python object, and the GIL is
//! held only while Python objects are touched.

use num_bigint::BigInt;

/// A value on its way between Erlang and Python (SPEC.md's type table).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Python `None`; the atoms `none`, `nil` and `undefined`.
    None,
    /// Python `bool`; the atoms `true` and `false`.
    Bool(bool),
    /// An integer that fits 64 bits.
    Int(i64),
    /// Any other integer.
    BigInt(BigInt),
    /// A float; NaN and the infinities are the atoms `nan`, `infinity`,
    /// `neg_infinity` on the Erlang side.
    Float(f64),
    /// Python `str`; a UTF-8 binary or an atom's name.
    Str(String),
    /// Python `bytes`/`bytearray`; a binary coming back, `{'$bytes', Bin}` going.
    Bytes(Vec<u8>),
    /// A large binary from Erlang, bound to be a `str` or `bytes`: lent, not
    /// copied on its way (see [`Blob`]).
    Blob(Blob),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    /// A dict or a map, in iteration order.
    Map(Vec<(Value, Value)>),
    /// A process: its external term format, and how Erlang prints it.
    Pid {
        ext: Vec<u8>,
        text: String,
    },
    /// A Python object kept by reference in context `key` (0: the main
    /// interpreter) under `id` (see `interp::refs`).
    Ref {
        key: u32,
        id: u64,
        hold: RefHold,
    },
    /// A channel from Erlang into Python (see `actors::channel`), and a hold
    /// on it.
    Channel(ChannelHold),
}

/// A large binary's bytes, shared rather than copied on their way between the
/// rooms. From Erlang, its bytes stay where the BEAM keeps them (a
/// reference-counted binary, held by `keep`) and are copied once, into the
/// Python object, on the serving thread. To Erlang, they are the one copy
/// taken of the Python object, and the binary made of them shares the buffer
/// (a resource binary). Each extra copy cost a fresh buffer per call, page
/// faults included: about half of a 1 MB argument's 0.85 ms round trip.
/// Made for binaries of at least [`Blob::MIN`] bytes; `keep` is opaque here.
#[derive(Clone)]
pub struct Blob {
    ptr: *const u8,
    len: usize,
    text: bool,
    /// Held, never read: the bytes live while it does.
    _keep: std::sync::Arc<dyn std::any::Any + Send + Sync>,
}

// SAFETY: the bytes a `Blob` points at are never written while `keep` lives
// (`Blob::new`'s contract), so reading them from any thread is sound.
unsafe impl Send for Blob {}
// SAFETY: as for `Send`: shared access only ever reads.
unsafe impl Sync for Blob {}

impl Blob {
    /// The smallest binary lent rather than copied: below it, a copy costs
    /// less than keeping the binary (an environment per binary).
    pub const MIN: usize = 64 * 1024;

    /// A lent binary of `len` bytes at `ptr`, valid UTF-8 if `text`.
    ///
    /// # Safety
    /// `ptr..ptr + len` must stay valid and unchanged while `keep` lives, and
    /// be UTF-8 if `text` is set.
    pub unsafe fn new(ptr: *const u8, len: usize, text: bool, keep: std::sync::Arc<dyn std::any::Any + Send + Sync>) -> Blob {
        Blob { ptr, len, text, _keep: keep }
    }

    /// `bytes` (UTF-8 if `text`) as a blob: going to Erlang, the binary made
    /// of it shares the buffer rather than copying it.
    pub fn owned(bytes: Vec<u8>, text: bool) -> Value {
        debug_assert!(!text || std::str::from_utf8(&bytes).is_ok());
        let (ptr, len) = (bytes.as_ptr(), bytes.len());
        // SAFETY: a `Vec`'s buffer does not move when the `Vec` does, and
        // nothing writes it once it is in the `Arc`; `text` only for UTF-8
        // (copied from a Python `str`'s UTF-8).
        Value::Blob(unsafe { Blob::new(ptr, len, text, std::sync::Arc::new(bytes)) })
    }

    /// Its bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: valid and unchanged while `self._keep` lives (`Blob::new`).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Its text, if it is bound to be a `str`.
    pub fn text(&self) -> Option<&str> {
        // SAFETY: `text` is set only for UTF-8 bytes (`Blob::new`).
        self.text.then(|| unsafe { std::str::from_utf8_unchecked(self.bytes()) })
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blob({} bytes{})", self.len, if self.text { ", text" } else { "" })
    }
}

impl PartialEq for Blob {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.bytes() == other.bytes()
    }
}

/// A channel's id and a hold on the channel itself.
///
/// A channel lives while anything can still use it: its Erlang copies, the
/// requests and stored values carrying it, and the `erlang.Channel` objects
/// made from them (each keeps the hold in a capsule). So a channel closed
/// with terms queued stays to be drained by Python while Python holds it, even
/// when it is closed before the request carrying it has reached Python, and is
/// freed, queue and all, once nothing holds it. The hold is opaque here:
/// `actors::channel` owns what it holds.
#[derive(Clone)]
pub struct ChannelHold {
    pub id: u64,
    pub hold: std::sync::Arc<dyn std::any::Any + Send + Sync>,
}

impl std::fmt::Debug for ChannelHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Channel({})", self.id)
    }
}

impl PartialEq for ChannelHold {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

/// A hold on a ref's Erlang handle, carried by the request the ref travels in:
/// while the request lives, the object's release (when the handle's last copy
/// is collected) cannot run, even when the caller's copies are collected before
/// the request is served. None for refs decoded from a frame (a
/// process-isolated context's child: its parent holds them). Opaque here:
/// `actors::refs` owns what it holds.
#[derive(Clone, Default)]
pub struct RefHold(pub Option<std::sync::Arc<dyn std::any::Any + Send + Sync>>);

impl std::fmt::Debug for RefHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "RefHold" } else { "RefHold(none)" })
    }
}

/// Holds do not make refs differ: the key and id name the object.
impl PartialEq for RefHold {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A map key as Python sees it as a dict key: keys that Erlang tells apart
/// but Python does not (`a` and `<<"a">>` are both `'a'`; `1`, `1.0` and
/// `true` are equal; `none`, `nil` and `undefined` are all `None`).
#[derive(Hash, PartialEq, Eq)]
enum PyKey {
    None,
    Int(i128),
    Big(String),
    Float(u64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<PyKey>),
    /// Compared by identity (pids, refs, channels; lists and maps cannot be
    /// dict keys at all): never equal to another key.
    Unique(usize),
}

impl PyKey {
    fn of(v: &Value, n: usize) -> PyKey {
        match v {
            Value::None => PyKey::None,
            Value::Bool(b) => PyKey::Int(*b as i128),
            Value::Int(i) => PyKey::Int(*i as i128),
            Value::BigInt(b) => PyKey::Big(b.to_string()),
            // An integral float equals the integer of its value (1.0e19 is
            // 10**19): within 64 bits as an Int, beyond as a BigInt's digits.
            Value::Float(f) if f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(f) => {
                PyKey::Int(*f as i128)
            }
            Value::Float(f) if f.fract() == 0.0 => PyKey::Big(format!("{f:.0}")),
            Value::Float(f) => PyKey::Float(f.to_bits()),
            Value::Str(s) => PyKey::Str(s.clone()),
            Value::Bytes(b) => PyKey::Bytes(b.clone()),
            Value::Blob(b) => match b.text() {
                Some(t) => PyKey::Str(t.to_owned()),
                None => PyKey::Bytes(b.bytes().to_vec()),
            },
            Value::Tuple(items) => PyKey::Tuple(items.iter().map(|i| PyKey::of(i, n)).collect()),
            _ => PyKey::Unique(n),
        }
    }

    /// Roughly as Python's `repr` shows the key.
    fn show(&self) -> String {
        match self {
            PyKey::None => "None".into(),
            PyKey::Int(i) => i.to_string(),
            PyKey::Big(b) => b.clone(),
            PyKey::Float(f) => f64::from_bits(*f).to_string(),
            PyKey::Str(s) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
            PyKey::Bytes(b) => format!("b{:?}", String::from_utf8_lossy(b)),
            PyKey::Tuple(items) => format!("({})", items.iter().map(PyKey::show).collect::<Vec<_>>().join(", ")),
            PyKey::Unique(_) => "?".into(),
        }
    }
}

/// The first of `keys` (distinct as Erlang terms) that is the same dict key
/// in Python as an earlier one, as Python would show it. Only worth calling
/// when the keys' kinds can meet (an atom and a binary, numbers of two kinds,
/// two of `none`/`nil`/`undefined`, tuples): see `nif::types::map`.
pub fn same_python_key<'a>(keys: impl Iterator<Item = &'a Value>) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    for (n, k) in keys.enumerate() {
        let key = PyKey::of(k, n);
        if seen.contains(&key) {
            return Some(key.show());
        }
        seen.insert(key);
    }
    None
}

/// What an interpreter is asked to run (the operation says what becomes of the
/// result).
#[derive(Debug)]
pub enum Request {
    /// `Module.Function(*args, **kwargs)`; `Function` may be dotted.
    Call { module: Name, function: Name, args: Args, kwargs: Vec<(String, Value)> },
    /// An expression, with extra local names (none: the globals are the locals).
    Eval { code: Vec<u8>, locals: Vec<(Value, Value)> },
    /// Statements, run in the globals.
    Exec { code: Vec<u8> },
    /// Work on the object kept under `id` (`py:getattr/2`, `py:call_method/3,4`,
    /// `py:to_term/1`).
    OnRef { id: u64, op: RefOp, hold: RefHold },
}

/// The positional arguments of a call. Most calls have one or two: they are
/// kept inline, so a request allocates nothing for them (an allocation made on
/// the caller's scheduler and freed on the serving thread is among the dearest
/// steps of a trivial call).
pub type Args = smallvec::SmallVec<[Value; 2]>;

/// A module or function name of a call.
///
/// Programs call a few functions of a few modules over and over. A name is
/// kept once, for good, in a bounded table, and requests carry it as a
/// `&'static str`: no allocation, and no shared reference count. A shared count
/// would be incremented on the caller's scheduler and decremented on the
/// serving thread, moving its cache line between two cores twice per name and
/// per call. Names beyond the table's bound (or long ones) are allocated per
/// request. `interp::exec::Names` keys its interned Python strings by a kept
/// name's address.
#[derive(Clone, Debug)]
pub enum Name {
    Kept(&'static str),
    Own(Box<str>),
}

/// Names kept at most (a program that makes up names, say one per call, gets
/// the rest allocated).
const MAX_KEPT_NAMES: usize = 4096;
/// Longer names are not kept.
const MAX_KEPT_LEN: usize = 256;
/// Names a thread saw last, looked at before the table ([`Recent`]).
pub const RECENT_NAMES: usize = 8;

/// The last few things a thread saw, most recent first: a caller making the
/// same call back to back finds them with a few short compares, no hash and
/// no lock. Both name caches use it: kept names by text ([`Name::new`]) and by
/// atom word (the NIF's request decoder).
pub struct Recent<T, const N: usize>(Vec<T>);

impl<T: Copy, const N: usize> Default for Recent<T, N> {
    fn default() -> Self {
        Recent::new()
    }
}

impl<T: Copy, const N: usize> Recent<T, N> {
    pub const fn new() -> Self {
        Recent(Vec::new())
    }

    /// The most recent entry that `hit` accepts.
    pub fn find(&self, hit: impl Fn(&T) -> bool) -> Option<T> {
        self.0.iter().find(|t| hit(t)).copied()
    }

    /// `t` is now the most recent; the oldest of `N` goes.
    pub fn remember(&mut self, t: T) {
        if self.0.len() == N {
            self.0.pop();
        }
        self.0.insert(0, t);
    }
}

impl Name {
    /// `name`, kept if it was kept before or there is room to keep it.
    pub fn new(name: &str) -> Name {
        use std::cell::RefCell;
        use std::sync::LazyLock;
        static KEPT: LazyLock<dashmap::DashMap<&'static str, ()>> = LazyLock::new(dashmap::DashMap::new);
        thread_local! {
            static RECENT: RefCell<Recent<&'static str, RECENT_NAMES>> = const { RefCell::new(Recent::new()) };
        }
        if let Some(n) = RECENT.with(|r| r.borrow().find(|n| *n == name)) {
            return Name::Kept(n);
        }
        let kept = match KEPT.get(name) {
            Some(e) => *e.key(),
            None if name.len() <= MAX_KEPT_LEN && KEPT.len() < MAX_KEPT_NAMES => {
                // Two threads may both miss and keep the same name: the entry
                // API keeps the first, the other copy is a few bytes kept once.
                let leaked: &'static str = Box::leak(name.into());
                *KEPT.entry(leaked).or_insert(()).key()
            }
            None => return Name::Own(name.into()),
        };
        RECENT.with(|r| r.borrow_mut().remember(kept));
        Name::Kept(kept)
    }

    /// The address and length identifying a kept name (`None` for an
    /// allocated one). Kept names are never freed, so no two different names
    /// share both.
    pub fn key(&self) -> Option<(usize, usize)> {
        match self {
            Name::Kept(s) => Some((s.as_ptr() as usize, s.len())),
            Name::Own(_) => None,
        }
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Name::Kept(s) => s,
            Name::Own(s) => s,
        }
    }
}

/// What is done with an object kept by reference.
#[derive(Debug)]
pub enum RefOp {
    GetAttr(String),
    Method {
        name: String,
        args: Vec<Value>,
        kwargs: Vec<(String, Value)>,
    },
    /// The object itself, converted.
    ToTerm,
}

impl Request {
    /// The module a `Call` names.
    pub fn module(&self) -> Option<&str> {
        match self {
            Request::Call { module, .. } => Some(module),
            _ => None,
        }
    }

    /// Module and function (`""` and the start of the code for `eval`/`exec`),
    /// for traces.
    pub fn describe(&self) -> (String, String) {
        let start = |code: &[u8]| String::from_utf8_lossy(&code[..code.len().min(80)]).into_owned();
        match self {
            Request::Call { module, function, .. } => (module.to_string(), function.to_string()),
            Request::Eval { code, .. } | Request::Exec { code } => (String::new(), start(code)),
            Request::OnRef { op: RefOp::GetAttr(name), .. } => ("<ref>".into(), name.clone()),
            Request::OnRef { op: RefOp::Method { name, .. }, .. } => ("<ref>".into(), name.clone()),
            Request::OnRef { op: RefOp::ToTerm, .. } => ("<ref>".into(), String::new()),
        }
    }
}

/// Why a request failed: what its caller's `{error, Reason}` says.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Python raised: the exception's class name, its message and the formatted
    /// traceback.
    Python { name: String, message: String, traceback: String },
    /// A request or argument Python cannot take (`{bad_argument, Message}`).
    BadArgument(String),
    /// A result of a type with no Erlang counterpart (`{unsupported_type, Name}`).
    UnsupportedType(String),
    /// A result that cannot cross otherwise (`{bad_result, Message}`).
    BadResult(String),
    /// A stream's value is not iterable (`{not_iterable, TypeName}`).
    NotIterable(String),
    /// An async call's value is not awaitable (`{not_awaitable, TypeName}`).
    NotAwaitable(String),
    /// An async stream's value is not an async iterable
    /// (`{not_async_iterable, TypeName}`).
    NotAsyncIterable(String),
    /// An asyncio task was cancelled (`cancelled`).
    Cancelled,
    /// The object a ref names went with its context (`context_stopped`).
    ContextStopped,
    /// The child OS process of a process-isolated context died with the
    /// request in flight (`{context_crashed, Why}`).
    ContextCrashed(String),
}

impl From<super::conv_error::ConvError> for Failure {
    /// A result that could not become a [`Value`].
    fn from(e: super::conv_error::ConvError) -> Self {
        match e {
            super::conv_error::ConvError::Unsupported(t) => Failure::UnsupportedType(t),
            super::conv_error::ConvError::Invalid(m) => Failure::BadResult(m),
            e @ super::conv_error::ConvError::TooMany(_) => Failure::BadResult(e.message()),
        }
    }
}
