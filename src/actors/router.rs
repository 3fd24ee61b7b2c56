//! The router: owns the lifecycle of executors and contexts, supervises them, and
//! publishes the table the NIF reads to put a job in the right mailbox.
//!
//! The router is a ractor actor on the actor runtime. Executors and contexts are
//! spawned linked to it: when one fails, the router replaces it at the same slot
//! (jobs that were in its mailbox are answered `{error, context_failed}` by their
//! destructors) and republishes the table. Lookups by the NIF are a lock-free load
//! and an index, never a message to the router.
//!
//! The router also owns routing: the groups of contexts (the default one and
//! each pool) and the modules learned to need the main interpreter. It publishes
//! them with the mailboxes; [`route`] reads them and the per-process placements
//! of [`routing`], with no message to the router.

use super::job::{Job, Target};
use super::lane::{Lane, Wake};
use super::pinned::{Pinned, Role};
use super::routing::{self, Group, Load, Routed, Routes, Want};
use super::stats::{SlotStats, Snapshot};
use crate::interp::runtime::{self as py_runtime, Mode};
use crate::interp::shared_contexts;
use arc_swap::ArcSwapOption;
use ractor::concurrency::JoinHandle;
use ractor::thread_local::{ThreadLocalActor, ThreadLocalActorSpawner};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The most interpreters (contexts) and executor threads a node may run.
pub const MAX_CONTEXTS: usize = 64;
pub const MAX_EXECUTORS: usize = 64;

/// How long a stop waits for an actor busy in Python before leaving its thread to
/// finish on its own.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often a stop looks again for a job to interrupt while it waits.
const STOP_POLL: Duration = Duration::from_millis(10);

/// A mailbox and the figures of the actor draining it.
type Mailbox = (Arc<Lane>, Arc<SlotStats>);

/// What the NIF reads: the mailboxes of the running actors and the routes.
#[derive(Default)]
pub struct Table {
    executors: Vec<Mailbox>,
    /// By context id - 1 (`None`: no such context). A context's mailbox is its
    /// actor's, or `None` when it is a namespace served by the executors; and
    /// its life, the number it was started under (a context stopped and
    /// started again under the same id is another life).
    contexts: Vec<Option<(Option<Mailbox>, u64)>>,
    routes: Routes,
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
#[derive(Clone, Debug)]
pub enum SubmitError {
    /// The application is not running.
    NotStarted,
    /// There is no context with this number.
    NoContext(u32),
    /// The actor serving the target has just stopped (contexts are restarting).
    Stopped,
    /// No pool has this name.
    NoPool(String),
    /// The term given as a context names none (not a `py:context/1` or
    /// `py:pool/1` result).
    BadTarget,
}

impl SubmitError {
    /// The reason its caller gets: `not_started | {no_context, N} |
    /// context_stopped | {no_pool, Name} | {bad_argument, Message}`.
    pub fn reason(self, env: rustler::Env<'_>) -> rustler::Term<'_> {
        use rustler::Encoder;
        match self {
            SubmitError::BadTarget => {
                (crate::atoms::bad_argument(), "not a context: use py:context/1, py:context/0 or py:pool/1").encode(env)
            }
            SubmitError::NotStarted => crate::atoms::not_started().encode(env),
            SubmitError::Stopped => crate::atoms::context_stopped().encode(env),
            SubmitError::NoContext(n) => (crate::atoms::no_context(), n).encode(env),
            SubmitError::NoPool(name) => match rustler::Atom::from_str(env, &name) {
                Ok(a) => (crate::atoms::no_pool(), a).encode(env),
                Err(_) => (crate::atoms::no_pool(), name).encode(env),
            },
        }
    }
}

/// Routes a request of `pid` (see [`routing`]).
pub fn route(pid: rustler::LocalPid, want: Want<'_>) -> Result<Routed, SubmitError> {
    let epoch = routing::epoch();
    // A back-to-back caller: routed before the routes table is even loaded
    // (router::submit checks the table the job then goes through). This is
    // the only place a remembered route is looked at.
    if let Some(target) = routing::remembered(pid, &want, epoch) {
        return Ok(Routed { target, watch: false });
    }
    let guard = TABLE.load();
    let Some(t) = guard.as_ref() else { return Err(SubmitError::NotStarted) };
    routing::resolve(&t.routes, pid, want, epoch).map_err(|routing::RouteError::NoPool(p)| SubmitError::NoPool(p))
}

/// Targets for a batch of `k` calls spread over the default contexts.
pub fn spread(k: usize) -> Vec<Target> {
    table().map_or_else(|| vec![Target::Main; k], |t| routing::spread(&t.routes, k))
}

/// What routing spreads over now, for `py:info/0` and the pools API.
#[derive(Default)]
pub struct Groups {
    /// The default group's context ids.
    pub default: Vec<u32>,
    /// Each pool's name and context ids, by name.
    pub pools: Vec<(String, Vec<u32>)>,
    /// Modules whose unbound calls run on the main interpreter, sorted.
    pub main_modules: Vec<String>,
}

/// Contexts of the default group, and of each pool; modules routed to main.
pub fn groups() -> Groups {
    let Some(t) = table() else { return Groups::default() };
    let ids = |g: &routing::Group| g.members.iter().map(|(id, _)| *id).collect::<Vec<_>>();
    let mut pools: Vec<_> = t.routes.pools.iter().map(|(n, g)| (n.clone(), ids(g))).collect();
    pools.sort();
    let mut mains: Vec<_> = t.routes.main_modules.iter().cloned().collect();
    mains.sort();
    Groups { default: t.routes.default.as_ref().map(ids).unwrap_or_default(), pools, main_modules: mains }
}

/// Whether `target` names something `t` serves (shared by submit, check,
/// interrupt), and the context's own mailbox if it has one.
fn valid(t: &Table, target: Target) -> Result<Option<&Mailbox>, SubmitError> {
    let own = match target {
        Target::Context(id) => match t.contexts.get((id as usize).wrapping_sub(1)) {
            Some(Some((own, _))) => own.as_ref(),
            _ => return Err(SubmitError::NoContext(id)),
        },
        Target::Main => None,
    };
    if own.is_none() && t.executors.is_empty() {
        return Err(SubmitError::NotStarted);
    }
    Ok(own)
}

/// Puts `job` in the mailbox that serves its target. A job that cannot be queued
/// comes back with the reason, so that its caller can answer it.
pub fn submit(job: Job) -> Result<(), (Job, SubmitError)> {
    submit_promising(job, None).map(|_| ())
}

/// [`submit`], for a synchronous caller that can wait with no timer when
/// `promise` (its integer tag) is given: if the job finds its mailbox idle,
/// the caller is promised (see `actors::late`) a reply or a `{py_late, Tag}`
/// nudge. True if promised.
pub fn submit_promising(mut job: Job, promise: Option<i64>) -> Result<bool, (Job, SubmitError)> {
    let guard = TABLE.load();
    let Some(t) = guard.as_ref() else {
        return Err((job, SubmitError::NotStarted));
    };
    let mailbox = match valid(t, job.target) {
        Err(e) => return Err((job, e)),
        Ok(Some(own)) => own,
        // A context sharing the main interpreter is served by one executor, so it
        // runs one request at a time like a context actor (and a callback chain
        // suspended in it keeps it to itself).
        Ok(None) => match job.target {
            Target::Context(id) => {
                // Stamped with the context's life: an executor answers a job
                // of a life that ended instead of running it in the next one.
                // (A job submitted after a restart for something of the old
                // life, a stream's pull or a ref's release, gets the new life:
                // it then finds nothing of the old one in the new namespace.)
                job.life = t.contexts[id as usize - 1].as_ref().map_or(0, |c| c.1);
                &t.executors[(id as usize - 1) % t.executors.len()]
            }
            // The main interpreter: an idle executor, starting with the one used
            // last (a back-to-back caller finds it still awake: no wake-up to
            // pay); idle ones are taken atomically, so concurrent callers spread
            // out. When all are busy, round-robin.
            Target::Main if job.pinned_to_first_executor() => &t.executors[0],
            Target::Main => {
                let n = t.executors.len();
                let last = t.last.load(Ordering::Relaxed);
                let idle = (0..n).map(|i| (last + i) % n).find(|&k| t.executors[k].1.try_reserve_idle());
                let (k, idle) = match idle {
                    Some(k) => {
                        t.last.store(k, Ordering::Relaxed);
                        (k, true)
                    }
                    None => {
                        let k = t.next.fetch_add(1, Ordering::Relaxed) % n;
                        (k, t.executors[k].1.reserve())
                    }
                };
                return push(&t.executors[k], job, promise.filter(|_| idle));
            }
        },
    };
    let idle = mailbox.1.reserve();
    push(mailbox, job, promise.filter(|_| idle))
}

/// Queues `job` (reserved already) in `mailbox`, promising its caller with
/// the integer tag `promise`: kept before the job is queued, so it is watched
/// from the start (the promise it replaces is dropped after).
fn push((lane, stats): &Mailbox, mut job: Job, promise: Option<i64>) -> Result<bool, (Job, SubmitError)> {
    stats.submitted();
    job.stats = Some(stats.clone());
    // Only while the watch runs: it is what keeps a promise.
    let promise = promise.filter(|_| super::late::running());
    let replaced = promise.map(|tag| stats.keep_promise(job.promise(tag)));
    if let Err(job) = lane.push(job) {
        // Not queued: its caller is told so at once, and no nudge may follow.
        if promise.is_some() {
            stats.forget_promise(&job);
        }
        return Err((job, SubmitError::Stopped));
    }
    if promise.is_some() {
        super::late::wake();
    }
    // The promise it replaced (answered already) goes once the job is queued.
    drop(replaced);
    Ok(promise.is_some())
}

/// Interrupts, with `KeyboardInterrupt`, the Python code running now for
/// `target` (`py:interrupt/1`); nothing running is no error.
pub fn interrupt(target: Target) -> Result<(), SubmitError> {
    interrupt_as(target, super::interrupt::Why::Asked)
}

/// Cancels asyncio task `tid` of `target`'s loop now if a step of it runs
/// (its caller gave up): a task that never awaits would not see the
/// cancellation queued for its loop's next step, and would hold its context.
pub fn interrupt_task(target: Target, tid: u64) {
    let _ = interrupt_as(target, super::interrupt::Why::Task(tid));
}

fn interrupt_as(target: Target, why: super::interrupt::Why) -> Result<(), SubmitError> {
    let Some(t) = table() else { return Err(SubmitError::NotStarted) };
    let slots: Vec<&Arc<SlotStats>> = match (valid(&t, target)?, target) {
        (Some(own), _) => vec![&own.1],
        (None, Target::Context(id)) => vec![&t.executors[(id as usize - 1) % t.executors.len()].1],
        (None, Target::Main) => t.executors.iter().map(|(_, s)| s).collect(),
    };
    for s in slots {
        if let Some(token) = s.current_for(target.key()) {
            super::interrupt::request(token, why);
        }
    }
    Ok(())
}

/// Whether context `id` still runs the life `life` a job was queued for (an
/// executor checks before serving a job queued for a context that is one of
/// its namespaces: one stopped since, even if started again under the same
/// id, is answered `context_stopped`, not run in a namespace made afresh).
pub fn context_lives(id: u32, life: u64) -> bool {
    let guard = TABLE.load();
    guard.as_ref().is_some_and(|t| matches!(t.contexts.get((id as usize).wrapping_sub(1)), Some(Some((_, l))) if *l == life))
}

/// Whether a job for `target` could be queued now (before it waits for a permit).
pub fn check(target: Target) -> Result<(), SubmitError> {
    let Some(t) = table() else { return Err(SubmitError::NotStarted) };
    valid(&t, target).map(|_| ())
}

/// Load figures of every executor, and of every context actor by id.
pub fn load() -> (Vec<Snapshot>, Vec<(u32, Snapshot)>) {
    table().map_or((vec![], vec![]), |t| {
        let contexts = t.contexts.iter().enumerate();
        (
            t.executors.iter().map(|(_, s)| s.snapshot()).collect(),
            contexts.filter_map(|(i, c)| Some((i as u32 + 1, c.as_ref()?.0.as_ref()?.1.snapshot()))).collect(),
        )
    })
}

/// Executors, and contexts of the default group, running now.
pub fn sizes() -> (usize, usize) {
    table().map_or((0, 0), |t| (t.executors.len(), t.routes.default.as_ref().map_or(0, |g| g.members.len())))
}

/// Messages the router handles.
pub enum RouterMsg {
    /// Start executors (if not running) and `contexts` contexts.
    Start { executors: usize, contexts: usize, reply: RpcReplyPort<Result<(), String>> },
    /// Replace the default contexts by `n` new ones (pools stay).
    StartContexts { n: usize, reply: RpcReplyPort<Result<(), String>> },
    /// Stop every context, pools included.
    StopContexts { reply: RpcReplyPort<()> },
    /// Stop contexts and executors.
    StopAll { reply: RpcReplyPort<()> },
    /// Start `n` contexts reserved for pool `name`; answers their ids.
    StartPool { name: String, n: usize, isolation: Isolation, reply: RpcReplyPort<Result<Vec<u32>, String>> },
    /// Stop the contexts of pool `name` (no such pool: nothing to do).
    StopPool { name: String, reply: RpcReplyPort<()> },
    /// Unbound calls naming `module` go to the main interpreter from now on.
    RouteToMain { module: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Slot {
    Executor(usize),
    /// By context id.
    Context(u32),
    /// A process-isolated context, by id, with its child's address-space limit.
    Isolated(u32, Option<u64>),
}

/// Where a pool's interpreters run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// In this process (sub-interpreters, or namespaces of the main one).
    None,
    /// Each in a child OS process of its own, with an optional address-space
    /// limit in bytes (`isolation => process`, `memory_limit`).
    Process(Option<u64>),
}

struct Running {
    actor: ActorRef<Wake>,
    lane: Arc<Lane>,
    handle: JoinHandle<()>,
    stats: Arc<SlotStats>,
}

/// A context: its actor (none when it is a namespace the executors serve) and
/// how many processes are placed on it.
struct Ctx {
    running: Option<Running>,
    placed: Arc<std::sync::atomic::AtomicUsize>,
    /// The number it was started under (see `Table::contexts`).
    life: u64,
}

/// The router's state: running actors, and the groups routing spreads over.
#[derive(Default)]
pub struct RouterState {
    executors: Vec<Running>,
    contexts: BTreeMap<u32, Ctx>,
    /// The default group's ids and generation.
    default: (Vec<u32>, u64),
    pools: HashMap<String, (Vec<u32>, u64)>,
    main_modules: HashSet<String>,
    generation: u64,
    by_id: HashMap<ractor::ActorId, Slot>,
}

/// Pool contexts are numbered from here, so restarting the default contexts
/// with another count never renumbers a pool's.
pub const FIRST_POOL_ID: u32 = MAX_CONTEXTS as u32 + 1;

impl RouterState {
    fn next_gen(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    fn group(&self, (ids, gen): &(Vec<u32>, u64)) -> Group {
        let members = ids
            .iter()
            .filter_map(|id| {
                let c = self.contexts.get(id)?;
                Some((*id, Load { placed: c.placed.clone(), stats: c.running.as_ref().map(|r| r.stats.clone()) }))
            })
            .collect();
        Group::new(members, *gen)
    }

    fn publish(&self) {
        let max = self.contexts.keys().next_back().copied().unwrap_or(0) as usize;
        let mut contexts = vec![None; max];
        for (id, c) in &self.contexts {
            contexts[*id as usize - 1] = Some((c.running.as_ref().map(|r| (r.lane.clone(), r.stats.clone())), c.life));
        }
        let routes = Routes {
            default: Some(self.group(&self.default)),
            pools: self.pools.iter().map(|(n, g)| (n.clone(), self.group(g))).collect(),
            main_modules: self.main_modules.clone(),
        };
        let t = Table {
            executors: self.executors.iter().map(|r| (r.lane.clone(), r.stats.clone())).collect(),
            contexts,
            routes,
            next: AtomicUsize::new(0),
            last: AtomicUsize::new(0),
        };
        TABLE.store(Some(Arc::new(t)));
        routing::changed();
    }

    /// Starts contexts with these ids (actors, or namespaces of the executors;
    /// process-isolated ones are always actors).
    async fn start_ids(&mut self, me: &ActorCell, ids: &[u32], isolation: Isolation) -> Result<(), String> {
        forgotten(ids).await;
        let slot = |id: u32| match isolation {
            Isolation::None => Slot::Context(id),
            Isolation::Process(limit) => Slot::Isolated(id, limit),
        };
        if actor_contexts() || isolation != Isolation::None {
            let running = spawn_many(me, ids.iter().map(|id| slot(*id))).await?;
            for (id, r) in ids.iter().zip(running) {
                self.by_id.insert(r.actor.get_id(), slot(*id));
                let life = self.next_gen();
                self.contexts.insert(*id, Ctx { running: Some(r), placed: Arc::default(), life });
            }
        } else {
            for id in ids {
                let life = self.next_gen();
                self.contexts.insert(*id, Ctx { running: None, placed: Arc::default(), life });
            }
        }
        Ok(())
    }

    /// Stops the contexts with these ids; the table is republished first, so no
    /// new job reaches them. `how`: interrupt what runs there (a stop), or
    /// let it finish (a replacement).
    async fn stop_ids(&mut self, ids: &[u32], how: Stop) {
        let mut running = Vec::new();
        for id in ids {
            if let Some(Ctx { running: Some(r), .. }) = self.contexts.remove(id) {
                self.by_id.remove(&r.actor.get_id());
                running.push(r);
            }
        }
        self.publish();
        // Contexts that are namespaces of the executors: what runs there for
        // them is interrupted as an actor's job would be (what is queued for
        // them is answered by the executor, see `pinned::drain`).
        if how == Stop::Interrupt {
            for e in &self.executors {
                for id in ids {
                    if let Some(token) = e.stats.current_for(*id) {
                        super::interrupt::request(token, super::interrupt::Why::Stopping);
                    }
                }
            }
        }
        stop_all(running, how).await;
        super::tasks::stopped(ids, crate::atoms::context_stopped());
        // Contexts with globals or asyncio loops on the main interpreter
        // (not sub-interpreters: theirs went with them).
        if py_runtime::mode() != Some(Mode::Subinterp) {
            forget_shared(ids).await;
        }
    }
}

/// Takes the globals and asyncio loops of stopped contexts `ids` out of the
/// main interpreter's tables before anything starts under these ids again;
/// their tasks end in the background (a task's `finally' may block), with
/// their globals. Taking the loops needs the main interpreter's GIL, which
/// code of a stopped context may hold for as long as it runs (a C function
/// that does not return to Python): waited for at most STOP_GRACE; a start
/// under these ids then waits for it instead (`start_ids`).
async fn forget_shared(ids: &[u32]) {
    let (taken_tx, mut taken) = tokio::sync::watch::channel(false);
    let forgotten = ids.to_vec();
    let ending = tokio::task::spawn_blocking(move || {
        shared_contexts::forget(&forgotten, move || {
            let _ = taken_tx.send(true);
        })
    });
    let in_time = tokio::time::timeout(STOP_GRACE, taken.wait_for(|t| *t)).await.is_ok();
    // Contexts that are namespaces of the executors have no thread whose end
    // stops their loops' drivers: stopped here, once no step can find their
    // loops (a late one finds none, and arms nothing); if the loops are not
    // taken yet, once they are (a step already waiting for the GIL may
    // restart a driver meanwhile).
    let namespaces = py_runtime::mode() == Some(Mode::MultiExecutor);
    let stop_drivers = |ids: &[u32]| {
        for id in ids {
            super::looper::stop_everywhere(Target::Context(*id));
        }
    };
    if namespaces {
        stop_drivers(ids);
    }
    if in_time {
        // Waited for at most as long as a context's stop.
        let _ = tokio::time::timeout(STOP_GRACE, ending).await;
        return;
    }
    tracing::warn!(contexts = ?ids, "stopped contexts: code holding the main interpreter's GIL runs on; their asyncio loops are forgotten when it lets go");
    forgetting().push((ids.to_vec(), taken.clone()));
    if namespaces {
        let ids = ids.to_vec();
        tokio::spawn(async move {
            let _ = taken.wait_for(|t| *t).await;
            stop_drivers(&ids);
        });
    }
}

/// Stopped contexts whose asyncio loops were not yet taken out of their
/// table when their stop stopped waiting (see `stop_ids`): their ids, and a
/// flag that turns true once taken. Kept across application restarts.
type Forgetting = Vec<(Vec<u32>, tokio::sync::watch::Receiver<bool>)>;

fn forgetting() -> std::sync::MutexGuard<'static, Forgetting> {
    static FORGETTING: std::sync::Mutex<Forgetting> = std::sync::Mutex::new(Vec::new());
    FORGETTING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits until the loops of stopped contexts with any of `ids` are taken,
/// so that a context started under one of them never finds its
/// predecessor's loop.
async fn forgotten(ids: &[u32]) {
    let pending: Vec<_> = forgetting().iter().filter(|(i, _)| i.iter().any(|x| ids.contains(x))).map(|(_, r)| r.clone()).collect();
    for mut r in pending {
        let _ = r.wait_for(|t| *t).await;
    }
    // Taken, or never to be (the forgetting thread ended without saying so).
    forgetting().retain(|(_, r)| !*r.borrow() && r.has_changed().is_ok());
}

/// The router actor.
pub struct Router;

/// Whether each context is an actor with its own thread (sub-interpreters, or a
/// GIL-less main interpreter), rather than a namespace served by the executors.
fn actor_contexts() -> bool {
    matches!(py_runtime::mode(), Some(Mode::Subinterp | Mode::FreeThreaded))
}

/// A readable, unique actor name for tracing and tokio-console: `context-3`, and
/// `context-3.2`, `context-3.3`… for its replacements (ractor names are unique).
fn actor_name(slot: Slot) -> String {
    static USES: std::sync::LazyLock<dashmap::DashMap<Slot, u64>> = std::sync::LazyLock::new(dashmap::DashMap::new);
    let base = match slot {
        Slot::Executor(i) => format!("executor-{}", i + 1),
        Slot::Context(id) => format!("context-{id}"),
        Slot::Isolated(id, _) => format!("isolated-{id}"),
    };
    let mut n = USES.entry(slot).or_insert(0);
    *n += 1;
    if *n == 1 {
        base
    } else {
        format!("{base}.{}", *n)
    }
}

async fn spawn_slot(slot: Slot, me: &ActorCell) -> Result<Running, String> {
    let spawner = ThreadLocalActorSpawner::new();
    let (lane, rx) = Lane::new();
    let name = Some(actor_name(slot));
    let spawned = match slot {
        Slot::Executor(_) => Pinned::spawn_linked(name, (Role::Executor, lane.clone(), rx), me.clone(), spawner).await,
        Slot::Context(id) => Pinned::spawn_linked(name, (Role::Context(id), lane.clone(), rx), me.clone(), spawner).await,
        Slot::Isolated(id, limit) => Pinned::spawn_linked(name, (Role::Isolated(id, limit), lane.clone(), rx), me.clone(), spawner).await,
    };
    let (actor, handle) = spawned.map_err(|e| format!("starting {slot:?}: {e}"))?;
    lane.attach(actor.clone());
    let stats = Arc::default();
    super::late::register(&stats);
    Ok(Running { actor, lane, handle, stats })
}

/// How actors stop.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The job in hand has its Python code interrupted (`KeyboardInterrupt`;
    /// its caller is answered `{error, context_stopped}`), and jobs still
    /// queued are answered the same, unserved: `stop_pool`, `stop_contexts`,
    /// the application's stop.
    Interrupt,
    /// What runs is not interrupted (what is queued may still be answered
    /// `context_stopped`): contexts replaced by `start_contexts`, actors that
    /// started with others that failed.
    Finish,
}

/// Stops actors, as `how` says. Code that does not stop (a C function that
/// never returns to Python, an `except` that swallows the interruption) is
/// waited for at most `STOP_GRACE` in all, then left to its thread.
async fn stop_all(running: Vec<Running>, how: Stop) {
    // The job each actor was asked to interrupt (once each: a second
    // interruption could land in the first one's `finally`).
    let mut asked: Vec<Option<Arc<super::token::CallToken>>> = vec![None; running.len()];
    let interrupt = |r: &Running, asked: &mut Option<Arc<super::token::CallToken>>| {
        if let Some(token) = r.stats.current() {
            if !asked.as_ref().is_some_and(|a| Arc::ptr_eq(a, &token)) {
                super::interrupt::request(token.clone(), super::interrupt::Why::Stopping);
                *asked = Some(token);
            }
        }
    };
    for (r, asked) in running.iter().zip(asked.iter_mut()) {
        if how == Stop::Interrupt {
            r.lane.close();
            interrupt(r, asked);
        }
        r.actor.stop(None);
    }
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    for (mut r, mut asked) in running.into_iter().zip(asked) {
        loop {
            let next = (tokio::time::Instant::now() + STOP_POLL).min(deadline);
            if tokio::time::timeout_at(next, &mut r.handle).await.is_ok() || next >= deadline {
                break;
            }
            // A job its thread had taken just before the lane closed was not
            // running yet when looked for above.
            if how == Stop::Interrupt {
                interrupt(&r, &mut asked);
            }
        }
    }
}

/// Spawns an actor per slot; if one fails to start, stops those already started
/// and returns the error.
async fn spawn_many(me: &ActorCell, slots: impl Iterator<Item = Slot>) -> Result<Vec<Running>, String> {
    let mut started = Vec::new();
    for slot in slots {
        match spawn_slot(slot, me).await {
            Ok(r) => started.push(r),
            Err(e) => {
                stop_all(started, Stop::Finish).await;
                return Err(e);
            }
        }
    }
    Ok(started)
}

impl Router {
    async fn start_contexts(me: &ActorCell, st: &mut RouterState, n: usize) -> Result<(), String> {
        if n == 0 || n > MAX_CONTEXTS {
            return Err(format!("contexts must be between 1 and {MAX_CONTEXTS}, got {n}"));
        }
        let old = std::mem::take(&mut st.default.0);
        st.stop_ids(&old, Stop::Finish).await;
        let ids: Vec<u32> = (1..=n as u32).collect();
        st.start_ids(me, &ids, Isolation::None).await?;
        st.default = (ids, st.next_gen());
        st.publish();
        Ok(())
    }

    async fn stop_contexts(st: &mut RouterState) {
        let mut ids = std::mem::take(&mut st.default.0);
        for (_, (pool, _)) in st.pools.drain() {
            ids.extend(pool);
        }
        st.stop_ids(&ids, Stop::Interrupt).await;
    }

    async fn start_pool(me: &ActorCell, st: &mut RouterState, name: String, n: usize, isolation: Isolation) -> Result<Vec<u32>, String> {
        if st.pools.contains_key(&name) {
            return Err(format!("pool {name} is running"));
        }
        let in_pools: usize = st.pools.values().map(|(ids, _)| ids.len()).sum();
        if n == 0 || in_pools + n > MAX_CONTEXTS {
            return Err(format!("pools may have from 1 to {MAX_CONTEXTS} contexts in all; {in_pools} run, {n} asked"));
        }
        if st.executors.is_empty() {
            return Err("the application is not running".into());
        }
        let ids: Vec<u32> = (FIRST_POOL_ID..).filter(|id| !st.contexts.contains_key(id)).take(n).collect();
        st.start_ids(me, &ids, isolation).await?;
        let gen = st.next_gen();
        st.pools.insert(name, (ids.clone(), gen));
        st.publish();
        Ok(ids)
    }

    async fn stop_pool(st: &mut RouterState, name: &str) {
        if let Some((ids, _)) = st.pools.remove(name) {
            st.stop_ids(&ids, Stop::Interrupt).await;
        }
    }

    async fn start_executors(me: &ActorCell, st: &mut RouterState, n: usize) -> Result<(), String> {
        if !st.executors.is_empty() {
            return Ok(());
        }
        if n == 0 || n > MAX_EXECUTORS {
            return Err(format!("num_executors must be between 1 and {MAX_EXECUTORS}, got {n}"));
        }
        let running = spawn_many(me, (0..n).map(Slot::Executor)).await?;
        for (i, r) in running.iter().enumerate() {
            st.by_id.insert(r.actor.get_id(), Slot::Executor(i));
        }
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
        stop_all(running, Stop::Interrupt).await;
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
                st.main_modules.clear();
                TABLE.store(None);
                routing::changed();
                let _ = reply.send(());
            }
            RouterMsg::StartPool { name, n, isolation, reply } => {
                let _ = reply.send(Self::start_pool(&cell, st, name, n, isolation).await);
            }
            RouterMsg::StopPool { name, reply } => {
                Self::stop_pool(st, &name).await;
                let _ = reply.send(());
            }
            RouterMsg::RouteToMain { module } => {
                let module = routing::top_level(&module).to_owned();
                if st.main_modules.insert(module.clone()) {
                    tracing::warn!(
                        "module {module} cannot load in a sub-interpreter: unbound calls naming it now run on the main interpreter"
                    );
                    if !st.executors.is_empty() {
                        st.publish();
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        me: ActorRef<RouterMsg>,
        evt: SupervisionEvent,
        st: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        let who = match &evt {
            SupervisionEvent::ActorFailed(who, _) | SupervisionEvent::ActorTerminated(who, _, _) => who.get_id(),
            _ => return Ok(()),
        };
        // Only actors still in a slot are replaced; stopped ones were removed first.
        let Some(slot) = st.by_id.remove(&who) else { return Ok(()) };
        if let SupervisionEvent::ActorFailed(_, err) = &evt {
            tracing::warn!("{slot:?} failed ({err}); replacing it");
        }
        if let Slot::Context(id) | Slot::Isolated(id, _) = slot {
            super::tasks::stopped(&[id], crate::atoms::context_failed());
        }
        let cell = me.get_cell();
        match spawn_slot(slot, &cell).await {
            Ok(r) => {
                st.by_id.insert(r.actor.get_id(), slot);
                match slot {
                    Slot::Executor(i) => st.executors[i] = r,
                    Slot::Context(id) | Slot::Isolated(id, _) => {
                        if let Some(c) = st.contexts.get_mut(&id) {
                            c.running = Some(r);
                        }
                    }
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
