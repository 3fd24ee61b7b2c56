//! Where the request path's `tracing` spans and events go.
//!
//! Every build carries a `request` span per job (op, context, caller pid,
//! module, function, duration) and a `slow call` warning past a threshold. They
//! cost one relaxed load each while nothing listens: no subscriber is installed
//! until the Erlang side asks for a level other than `none` (or a console build
//! starts its server). Then a [`ErlangLog`] layer formats our own events and
//! closed request spans and a forwarding thread sends them to the `py_trace`
//! process, which hands them to Erlang's `logger`. tokio-console, when built in,
//! is another layer on the same registry.

use rustler::{Encoder, LocalPid, OwnedEnv};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Mutex, OnceLock};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// 0 = off, then tracing's levels: 1 error, 2 warn, 3 info, 4 debug, 5 trace.
static LEVEL: AtomicU8 = AtomicU8::new(0);
/// Calls running at least this long (µs) are reported as `slow call`.
static SLOW_US: AtomicU64 = AtomicU64::new(u64::MAX);
/// Records waiting for the forwarding thread; past this many, new ones are dropped.
const BACKLOG: usize = 4096;
/// Records dropped because the backlog was full.
static DROPPED: AtomicU64 = AtomicU64::new(0);

static SINK: OnceLock<SyncSender<Entry>> = OnceLock::new();
static TO: Mutex<Option<LocalPid>> = Mutex::new(None);
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// One record for Erlang's logger.
struct Entry {
    level: u8,
    message: String,
    fields: Vec<(&'static str, Value)>,
}

enum Value {
    Str(String),
    I64(i64),
    U64(u64),
    Bool(bool),
    F64(f64),
}

#[derive(Default)]
struct Fields(Vec<(&'static str, Value)>);

impl Fields {
    fn set(&mut self, name: &'static str, v: Value) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = v,
            None => self.0.push((name, v)),
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field.name(), Value::Str(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), Value::Str(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), Value::U64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), Value::Bool(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), Value::F64(value));
    }
}

fn level_num(l: &Level) -> u8 {
    match *l {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        _ => 5,
    }
}

/// Our own spans and events (target `erlang_python…`) at or above the level asked.
fn wanted(meta: &tracing::Metadata<'_>) -> bool {
    meta.target().starts_with("erlang_python") && level_num(meta.level()) <= LEVEL.load(Ordering::Relaxed)
}

/// The layer that turns our events and closed spans into [`Entry`]s.
struct ErlangLog;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for ErlangLog {
    // Only what `wanted` let through reaches these (the layer is filtered on its
    // own, see `install`).
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut f = Fields::default();
            attrs.record(&mut f);
            span.extensions_mut().insert(f);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(f) = span.extensions_mut().get_mut::<Fields>() {
                values.record(f);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut f = Fields::default();
        event.record(&mut f);
        let message = match f.0.iter().position(|(n, _)| *n == "message") {
            Some(i) => match f.0.remove(i).1 {
                Value::Str(s) => s,
                _ => String::new(),
            },
            None => meta.name().to_owned(),
        };
        forward(Entry { level: level_num(meta.level()), message, fields: f.0 });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(&id) {
            if let Some(f) = span.extensions_mut().remove::<Fields>() {
                let meta = span.metadata();
                forward(Entry { level: level_num(meta.level()), message: meta.name().to_owned(), fields: f.0 });
            }
        }
    }
}

fn forward(e: Entry) {
    if let Some(tx) = SINK.get() {
        if let Err(TrySendError::Full(_)) = tx.try_send(e) {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The forwarding thread: sends each entry to the `py_trace` process as
/// `{py_trace, Level, Message, #{Field => Value}}`.
fn start_forwarder() {
    SINK.get_or_init(|| {
        let (tx, rx) = sync_channel::<Entry>(BACKLOG);
        std::thread::Builder::new()
            .name("ep-trace".into())
            .spawn(move || {
                let mut env = OwnedEnv::new();
                for e in rx {
                    let Some(pid) = *TO.lock().unwrap_or_else(|p| p.into_inner()) else { continue };
                    let _ = env.send_and_clear(&pid, |env| {
                        let level = match e.level {
                            1 => crate::atoms::error(),
                            2 => crate::atoms::warning(),
                            3 => crate::atoms::info(),
                            _ => crate::atoms::debug(),
                        };
                        let mut map = rustler::Term::map_new(env);
                        for (k, v) in &e.fields {
                            let key = rustler::Atom::from_str(env, k).map(|a| a.encode(env)).unwrap_or_else(|_| k.encode(env));
                            let val = match v {
                                Value::Str(s) => s.encode(env),
                                Value::I64(i) => i.encode(env),
                                Value::U64(u) => u.encode(env),
                                Value::Bool(b) => b.encode(env),
                                Value::F64(x) => x.encode(env),
                            };
                            map = map.map_put(key, val).unwrap_or(map);
                        }
                        (crate::atoms::py_trace(), level, e.message.as_str(), map).encode(env)
                    });
                }
            })
            .expect("cannot start the trace forwarding thread");
        tx
    });
}

/// Installs the node's subscriber once: the Erlang logger layer, plus the
/// tokio-console layer when `console` names an address (console builds only).
fn install(console: Option<&str>) -> Result<(), String> {
    INSTALLED
        .get_or_init(|| {
            start_forwarder();
            let console_layer = match console {
                Some(addr) => Some(super::console::layer(addr)?),
                None => None,
            };
            tracing_subscriber::registry()
                .with(console_layer)
                // Filtered per layer: callsites nobody wants stay disabled for the
                // whole registry, and the console layer keeps its own filter.
                .with(ErlangLog.with_filter(tracing_subscriber::filter::filter_fn(wanted)))
                .try_init()
                .map_err(|e| e.to_string())
        })
        .clone()
}

/// Starts the tokio-console server on `addr` (console builds; else `not_built`).
pub fn start_console(addr: &str) -> Result<(), String> {
    if !super::console::BUILT {
        return Err("not_built".into());
    }
    install(Some(addr))
}

/// Sets where entries go, the level (0 = off … 5 = trace) and the slow-call
/// threshold in µs (`u64::MAX` = never).
pub fn configure(to: LocalPid, level: u8, slow_us: u64) -> Result<(), String> {
    *TO.lock().unwrap_or_else(|p| p.into_inner()) = Some(to);
    LEVEL.store(level.min(5), Ordering::Relaxed);
    SLOW_US.store(slow_us, Ordering::Relaxed);
    if level > 0 {
        install(None)?;
    }
    tracing::callsite::rebuild_interest_cache();
    Ok(())
}

/// Whether a call that took `us` microseconds is reported as slow (and the
/// level lets warnings through).
pub fn is_slow(us: u64) -> bool {
    us >= SLOW_US.load(Ordering::Relaxed) && LEVEL.load(Ordering::Relaxed) >= 2
}

/// Whether slow calls are being watched (a threshold is set and warnings pass).
pub fn watching_slow() -> bool {
    SLOW_US.load(Ordering::Relaxed) != u64::MAX && LEVEL.load(Ordering::Relaxed) >= 2
}

/// Entries dropped because Erlang did not keep up.
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}
