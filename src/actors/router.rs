//! The router: owns the lifecycle of executors and contexts, supervises them, and
//! publishes the table the NIF reads to put a job in the right mailbox.
//!
//! The router is a ractor actor on the actor runtime. Executors and contexts are
//! spawned linked to it: when one fails, the router replaces it at the same slot
//! (jobs that were in its mailbox are answered `{error, context_failed}` by their
//! destructors) and republishes the table. Lookups by the NIF are a read lock and
//! an index, never a message to the router.
//!
//! Which context an unbound Erlang process uses (scheduler affinity, stickiness,
//! `bind_context`) is decided on the Erlang side, in `py_context_router`, where
//! bindings live in the process dictionary and vanish with the process.

use super::context::Context;
use super::executor::Executor;
use super::job::{Job, Target};
use super::lane::{Lane, Wake};
use super::stats::{SlotStats, Snapshot};
use crate::interp::runtime::{self as py_runtime, Mode};
use crate::interp::shared_contexts;
use ractor::concurrency::JoinHandle;
use ractor::thread_local::{ThreadLocalActor, ThreadLocalActorSpawner};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use arc_swap::ArcSwapOption;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The most interpreters (contexts) and executor threads a node may run.
pub const MAX_CONTEXTS: usize = 64;
pub const MAX_EXECUTORS: usize = 64;

/// How long a stop waits for an actor busy in Python before leaving its thread to
/// finish on its own.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What the NIF reads: the mailboxes of the running actors.
#[derive(Default)]
pub struct Table {
    executors: Vec<(Arc<Lane>, Arc<SlotStats>)>,
    /// One per context when contexts are actors; empty when they are namespaces
    /// served by the executors (then `num_contexts` says how many there are).
    contexts: Vec<(Arc<Lane>, Arc<SlotStats>)>,
    num_contexts: usize,
    next: AtomicUsize,
    /// The executor the last main-interpreter call went to (likely still awake).
    last: AtomicUsize,
}

/// Published by the router, read lock-free by the NIF. An old table is dropped
/// by whoever held it last, never under a lock: dropping it can drop jobs, and a
/// dropped job's permit may hand a waiting job to [`submit`].
static TABLE: ArcSwapOption<Table> = ArcSwapOption::const_empty();

fn table() -> Option<Arc<Table>> {
    TABLE.load_full()
}

/// Why a job could not be enqueued.
#[derive(Clone, Copy, Debug)]
pub enum SubmitError {
    /// The application is not running.
    NotStarted,
    /// There is no context with this number.
    NoContext(u32),
    /// The actor serving the target has just stopped (contexts are restarting).
    Stopped,
}

impl SubmitError {
    /// The reason its caller gets: `not_started | {no_context, N} | context_stopped`.
    pub fn reason(self, env: rustler::Env<'_>) -> rustler::Term<'_> {
        use rustler::Encoder;
        match self {
            SubmitError::NotStarted => crate::atoms::not_started().encode(env),
            SubmitError::Stopped => crate::atoms::context_stopped().encode(env),
            SubmitError::NoContext(n) => (crate::atoms::no_context(), n).encode(env),
        }
    }
}

/// Whether `target` names something `t` serves (shared by submit, check, interrupt).
fn valid(t: &Table, target: Target) -> Result<(), SubmitError> {
    match target {
        Target::Context(id) if id == 0 || id as usize > t.num_contexts => Err(SubmitError::NoContext(id)),
        Target::Context(_) if !t.contexts.is_empty() => Ok(()),
        _ if t.executors.is_empty() => Err(SubmitError::NotStarted),
        _ => Ok(()),
    }
}

/// Puts `job` in the mailbox that serves its target.
pub fn submit(mut job: Job) -> Result<(), (Job, SubmitError)> {
    let guard = TABLE.load();
    let Some(t) = guard.as_ref() else {
        return Err((job, SubmitError::NotStarted));
    };
    let mailbox = match job.target {
        Target::Context(id) if id == 0 || id as usize > t.num_contexts => {
            return Err((job, SubmitError::NoContext(id)));
        }
        Target::Context(id) if !t.contexts.is_empty() => &t.contexts[id as usize - 1],
        _ if t.executors.is_empty() => return Err((job, SubmitError::NotStarted)),
        // A context sharing the main interpreter is served by one executor, so it
        // runs one request at a time like a context actor (and a callback chain
        // suspended in it keeps it to itself).
        Target::Context(id) => &t.executors[(id as usize - 1) % t.executors.len()],
        // The main interpreter: an idle executor, starting with the one used last
        // (a back-to-back caller finds it still awake: no wake-up to pay); idle
        // ones are taken atomically, so concurrent callers spread out. When all
        // are busy, round-robin.
        Target::Main if job.pinned_to_first_executor() => &t.executors[0],
        Target::Main => {
            let n = t.executors.len();
            let last = t.last.load(Ordering::Relaxed);
            let idle = (0..n).map(|i| (last + i) % n).find(|&k| t.executors[k].1.try_reserve_idle());
            let k = match idle {
                Some(k) => {
                    t.last.store(k, Ordering::Relaxed);
                    k
                }
                None => {
                    let k = t.next.fetch_add(1, Ordering::Relaxed) % n;
                    t.executors[k].1.reserve();
                    k
                }
            };
            let (lane, stats) = &t.executors[k];
            stats.submitted();
            job.stats = Some(stats.clone());
            return lane.push(job).map_err(|job| (job, SubmitError::Stopped));
        }
    };
    let (lane, stats) = (&mailbox.0, &mailbox.1);
    stats.reserve();
    stats.submitted();
    job.stats = Some(stats.clone());
    lane.push(job).map_err(|job| (job, SubmitError::Stopped))
}

/// Interrupts, with `KeyboardInterrupt`, the Python code running now for
/// `target` (`py:interrupt/1`); nothing running is no error.
pub fn interrupt(target: Target) -> Result<(), SubmitError> {
    let Some(t) = table() else { return Err(SubmitError::NotStarted) };
    valid(&t, target)?;
    let slots: Vec<&Arc<SlotStats>> = match target {
        Target::Context(id) if !t.contexts.is_empty() => vec![&t.contexts[id as usize - 1].1],
        Target::Context(id) => vec![&t.executors[(id as usize - 1) % t.executors.len()].1],
        Target::Main => t.executors.iter().map(|(_, s)| s).collect(),
    };
    for s in slots {
        if let Some(token) = s.current_for(target.key()) {
            super::interrupt::request(token, super::interrupt::Why::Asked);
        }
    }
    Ok(())
}

/// Whether a job for `target` could be queued now (before it waits for a permit).
pub fn check(target: Target) -> Result<(), SubmitError> {
    let Some(t) = table() else { return Err(SubmitError::NotStarted) };
    valid(&t, target)
}

/// Load figures of every executor and context actor.
pub fn load() -> (Vec<Snapshot>, Vec<Snapshot>) {
    table().map_or((vec![], vec![]), |t| {
        (
            t.executors.iter().map(|(_, s)| s.snapshot()).collect(),
            t.contexts.iter().map(|(_, s)| s.snapshot()).collect(),
        )
    })
}

/// Executors and contexts running now.
pub fn sizes() -> (usize, usize) {
    table().map_or((0, 0), |t| (t.executors.len(), t.num_contexts))
}

/// Messages the router handles.
pub enum RouterMsg {
    /// Start executors (if not running) and `contexts` contexts.
    Start { executors: usize, contexts: usize, reply: RpcReplyPort<Result<(), String>> },
    /// Replace the running contexts by `n` new ones.
    StartContexts { n: usize, reply: RpcReplyPort<Result<(), String>> },
    /// Stop every context.
    StopContexts { reply: RpcReplyPort<()> },
    /// Stop contexts and executors.
    StopAll { reply: RpcReplyPort<()> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Slot {
    Executor(usize),
    Context(usize),
}

struct Running {
    actor: ActorRef<Wake>,
    lane: Arc<Lane>,
    handle: JoinHandle<()>,
    stats: Arc<SlotStats>,
}

/// The router's state: running actors by slot.
#[derive(Default)]
pub struct RouterState {
    executors: Vec<Running>,
    contexts: Vec<Running>,
    shared_contexts: usize,
    by_id: HashMap<ractor::ActorId, Slot>,
}

impl RouterState {
    fn publish(&self) {
        let t = Table {
            executors: self.executors.iter().map(|r| (r.lane.clone(), r.stats.clone())).collect(),
            contexts: self.contexts.iter().map(|r| (r.lane.clone(), r.stats.clone())).collect(),
            num_contexts: self.contexts.len().max(self.shared_contexts),
            next: AtomicUsize::new(0),
            last: AtomicUsize::new(0),
        };
        TABLE.store(Some(Arc::new(t)));
    }
}

/// The router actor.
pub struct Router;

/// Whether each context is an actor with its own thread (sub-interpreters, or a
/// GIL-less main interpreter), rather than a namespace served by the executors.
fn actor_contexts() -> bool {
    py_runtime::info().is_some_and(|i| matches!(i.mode, Mode::Subinterp | Mode::FreeThreaded))
}

/// A readable, unique actor name for tracing and tokio-console: `context-3`, and
/// `context-3.2`, `context-3.3`… for its replacements (ractor names are unique).
fn actor_name(slot: Slot) -> String {
    static USES: std::sync::LazyLock<dashmap::DashMap<Slot, u64>> = std::sync::LazyLock::new(dashmap::DashMap::new);
    let base = match slot {
        Slot::Executor(i) => format!("executor-{}", i + 1),
        Slot::Context(i) => format!("context-{}", i + 1),
    };
    let mut n = USES.entry(slot).or_insert(0);
    *n += 1;
    if *n == 1 { base } else { format!("{base}.{}", *n) }
}

async fn spawn_slot(slot: Slot, me: &ActorCell) -> Result<Running, String> {
    let spawner = ThreadLocalActorSpawner::new();
    let (lane, rx) = Lane::new();
    let name = Some(actor_name(slot));
    let spawned = match slot {
        Slot::Executor(_) => Executor::spawn_linked(name, (lane.clone(), rx), me.clone(), spawner).await,
        Slot::Context(i) => Context::spawn_linked(name, (i as u32 + 1, lane.clone(), rx), me.clone(), spawner).await,
    };
    let (actor, handle) = spawned.map_err(|e| format!("starting {slot:?}: {e}"))?;
    lane.attach(actor.clone());
    Ok(Running { actor, lane, handle, stats: Arc::default() })
}

/// Stops actors after the job in hand; jobs still queued are answered
/// `{error, context_stopped}` as the mailbox is dropped.
async fn stop_all(running: Vec<Running>) {
    for r in &running {
        r.actor.stop(None);
    }
    for r in running {
        let _ = tokio::time::timeout(STOP_GRACE, r.handle).await;
    }
}

/// Spawns `n` actors for the slots `slot(0..n)`; if one fails to start, stops
/// those already started and returns the error.
async fn spawn_many(me: &ActorCell, n: usize, slot: fn(usize) -> Slot) -> Result<Vec<Running>, String> {
    let mut started = Vec::with_capacity(n);
    for i in 0..n {
        match spawn_slot(slot(i), me).await {
            Ok(r) => started.push(r),
            Err(e) => {
                stop_all(started).await;
                return Err(e);
            }
        }
    }
    Ok(started)
}

impl RouterState {
    /// Remembers which slot each actor fills, for supervision.
    fn register(&mut self, running: &[Running], slot: fn(usize) -> Slot) {
        for (i, r) in running.iter().enumerate() {
            self.by_id.insert(r.actor.get_id(), slot(i));
        }
    }
}

impl Router {
    async fn start_contexts(me: &ActorCell, st: &mut RouterState, n: usize) -> Result<(), String> {
        if n == 0 || n > MAX_CONTEXTS {
            return Err(format!("contexts must be between 1 and {MAX_CONTEXTS}, got {n}"));
        }
        Self::stop_contexts(st).await;
        if actor_contexts() {
            let running = spawn_many(me, n, Slot::Context).await?;
            st.register(&running, Slot::Context);
            st.contexts = running;
        } else {
            st.shared_contexts = n;
        }
        st.publish();
        Ok(())
    }

    async fn stop_contexts(st: &mut RouterState) {
        let running = std::mem::take(&mut st.contexts);
        for r in &running {
            st.by_id.remove(&r.actor.get_id());
        }
        st.shared_contexts = 0;
        st.publish();
        stop_all(running).await;
        // Contexts on the main interpreter: forget their globals.
        let _ = tokio::task::spawn_blocking(|| pyo3::Python::attach(shared_contexts::reset)).await;
    }

    async fn start_executors(me: &ActorCell, st: &mut RouterState, n: usize) -> Result<(), String> {
        if !st.executors.is_empty() {
            return Ok(());
        }
        if n == 0 || n > MAX_EXECUTORS {
            return Err(format!("num_executors must be between 1 and {MAX_EXECUTORS}, got {n}"));
        }
        let running = spawn_many(me, n, Slot::Executor).await?;
        st.register(&running, Slot::Executor);
        st.executors = running;
        st.publish();
        Ok(())
    }

    async fn stop_executors(st: &mut RouterState) {
        let running = std::mem::take(&mut st.executors);
        for r in &running {
            st.by_id.remove(&r.actor.get_id());
        }
        st.publish();
        stop_all(running).await;
    }
}

impl Actor for Router {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = ();

    async fn pre_start(&self, _me: ActorRef<RouterMsg>, _: ()) -> Result<RouterState, ActorProcessingErr> {
        Ok(RouterState::default())
    }

    async fn handle(&self, me: ActorRef<RouterMsg>, msg: RouterMsg, st: &mut RouterState) -> Result<(), ActorProcessingErr> {
        let cell = me.get_cell();
        match msg {
            RouterMsg::Start { executors, contexts, reply } => {
                let mut r = Self::start_executors(&cell, st, executors).await;
                if r.is_ok() {
                    r = Self::start_contexts(&cell, st, contexts).await;
                }
                let _ = reply.send(r);
            }
            RouterMsg::StartContexts { n, reply } => {
                let r = if st.executors.is_empty() {
                    Err("the application is not running".to_string())
                } else {
                    Self::start_contexts(&cell, st, n).await
                };
                let _ = reply.send(r);
            }
            RouterMsg::StopContexts { reply } => {
                Self::stop_contexts(st).await;
                let _ = reply.send(());
            }
            RouterMsg::StopAll { reply } => {
                Self::stop_contexts(st).await;
                Self::stop_executors(st).await;
                TABLE.store(None);
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(&self, me: ActorRef<RouterMsg>, evt: SupervisionEvent, st: &mut RouterState) -> Result<(), ActorProcessingErr> {
        let who = match &evt {
            SupervisionEvent::ActorFailed(who, _) | SupervisionEvent::ActorTerminated(who, _, _) => who.get_id(),
            _ => return Ok(()),
        };
        // Only actors still in a slot are replaced; stopped ones were removed first.
        let Some(slot) = st.by_id.remove(&who) else { return Ok(()) };
        if let SupervisionEvent::ActorFailed(_, err) = &evt {
            tracing::warn!("{slot:?} failed ({err}); replacing it");
        }
        let cell = me.get_cell();
        match spawn_slot(slot, &cell).await {
            Ok(r) => {
                st.by_id.insert(r.actor.get_id(), slot);
                match slot {
                    Slot::Executor(i) => st.executors[i] = r,
                    Slot::Context(i) => st.contexts[i] = r,
                }
            }
            Err(e) => tracing::error!("cannot replace {slot:?}: {e}"),
        }
        st.publish();
        Ok(())
    }
}

static ROUTER: OnceLock<ActorRef<RouterMsg>> = OnceLock::new();

/// The router, spawned on first use. Call from the actor runtime.
pub async fn get() -> Result<ActorRef<RouterMsg>, String> {
    if let Some(r) = ROUTER.get() {
        return Ok(r.clone());
    }
    let (r, _handle) = Actor::spawn(Some("router".into()), Router, ()).await.map_err(|e| e.to_string())?;
    Ok(ROUTER.get_or_init(|| r).clone())
}
