//! Routing: which context a request goes to.
//!
//! The router actor owns the groups of contexts (the default group, one per pool)
//! and the modules learned to need the main interpreter; it changes them only
//! while handling its mailbox and publishes them as an immutable [`Routes`]
//! snapshot that the NIF reads lock-free. What is per Erlang process (the context
//! it is bound to, the context each group placed it on) lives in one concurrent
//! map keyed by pid: written by the process itself on its first call, removed by a
//! process monitor (see `nif::routing`) when it exits. So a call costs one map
//! lookup and no message, and short-lived callers leave nothing behind.
//!
//! Strategies, in order:
//! 1. **bound**: `bind_context/1` wins (a context, `main`, or a pool).
//! 2. **learned main**: an unbound `call` naming a module that refused to load in a
//!    sub-interpreter goes to the main interpreter.
//! 3. **sticky placement**: otherwise the process's placement in the group; the
//!    first one is the least loaded context (processes placed there plus jobs in
//!    flight), ties broken round-robin, so many new processes spread over all
//!    contexts whatever scheduler they run on. A placement is kept until the
//!    group's membership changes (its generation), so `exec` then `call` from one
//!    process meet.

use super::job::Target;
use super::stats::SlotStats;
use dashmap::DashMap;
use rustler::LocalPid;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};

/// A context's load as placement sees it.
#[derive(Clone, Default)]
pub struct Load {
    /// Processes placed on it (decremented when they exit or move).
    pub placed: Arc<AtomicUsize>,
    /// Its actor's figures (none when the executors serve it).
    pub stats: Option<Arc<SlotStats>>,
}

impl Load {
    fn value(&self) -> usize {
        self.placed.load(Ordering::Relaxed) + self.stats.as_ref().map_or(0, |s| s.active())
    }
}

/// Contexts that unbound routing (or a pool) spreads processes over.
pub struct Group {
    /// Context ids, and each one's load.
    pub members: Vec<(u32, Load)>,
    /// Changes whenever the members change: older placements are made again.
    pub gen: u64,
    cursor: AtomicUsize,
}

impl Group {
    pub fn new(members: Vec<(u32, Load)>, gen: u64) -> Group {
        Group { members, gen, cursor: AtomicUsize::new(0) }
    }

    /// The least loaded member, starting the scan one further each time.
    fn pick(&self) -> Option<&(u32, Load)> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
        (0..n).map(|i| &self.members[(start + i) % n]).min_by_key(|(_, l)| l.value())
    }
}

/// What the router publishes for routing.
#[derive(Default)]
pub struct Routes {
    pub default: Option<Group>,
    pub pools: HashMap<String, Group>,
    /// Modules that refused to load in a sub-interpreter: unbound calls naming
    /// them run on the main interpreter.
    pub main_modules: HashSet<String>,
}

/// What a request asks for.
pub enum Want<'a> {
    /// The caller's context: bound, else learned, else placed.
    Auto { module: Option<&'a str> },
    /// This context, or the main interpreter.
    Exactly(Target),
    /// A context of this pool, placed per process.
    Pool(&'a str),
}

/// Why a request has no context.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteError {
    NoPool(String),
}

/// A binding: where every unbound request of the process goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Binding {
    Target(Target),
    Pool(String),
}

/// One placement of a process in a group (None: the default group).
struct Place {
    group: Option<String>,
    gen: u64,
    id: u32,
    placed: Arc<AtomicUsize>,
}

impl Drop for Place {
    fn drop(&mut self) {
        self.placed.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Entry {
    bound: Option<Binding>,
    places: Vec<Place>,
}

impl Entry {
    fn place(&self, group: Option<&str>, gen: u64) -> Option<u32> {
        self.places.iter().find(|p| p.group.as_deref() == group && p.gen == gen).map(|p| p.id)
    }
}

static PROCESSES: LazyLock<DashMap<LocalPid, Entry, PidHash>> = LazyLock::new(|| DashMap::with_hasher(PidHash));

/// Hashes a pid for [`PROCESSES`], read on every unbound call. A local pid is
/// one word the VM made unique, so it needs mixing, not SipHash's resistance
/// to chosen keys (callers cannot choose their pids): one multiplication
/// spreads it over the high bits dashmap picks its shard with.
#[derive(Clone, Copy, Default)]
struct PidHash;

impl std::hash::BuildHasher for PidHash {
    type Hasher = PidHasher;
    fn build_hasher(&self) -> PidHasher {
        PidHasher(0)
    }
}

struct PidHasher(u64);

impl std::hash::Hasher for PidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Where a request goes, and whether the process is new to the map (its caller
/// must then monitor it, so the entry goes when the process does).
pub struct Routed {
    pub target: Target,
    pub watch: bool,
}

/// Bumped after every change of what routing reads: a binding, a placement,
/// a process forgotten, new routes published ([`changed`]).
static EPOCH: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The last unbound route this scheduler thread resolved: the process,
    /// the epoch it was resolved in, and where it went. A process calling back
    /// to back is routed by one atomic load and a compare.
    static LAST: Cell<Option<(LocalPid, u64, Target)>> = const { Cell::new(None) };
}

/// What routing reads changed: every thread's last route is stale. Call after
/// the change is visible.
pub fn changed() {
    EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// The epoch now: read it before the routes and the map that
/// [`resolve`] is then given or reads, so a change made meanwhile leaves
/// nothing stale behind.
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// The route this thread remembers for `pid` in `epoch`, for an unbound
/// request (see [`LAST`]). A route is remembered only while no module is
/// learned to need main, and every new routes table bumps the epoch after it
/// is published: a hit needs no routes table loaded at all.
pub fn remembered(pid: LocalPid, want: &Want<'_>, epoch: u64) -> Option<Target> {
    if !matches!(want, Want::Auto { .. }) {
        return None;
    }
    LAST.get().filter(|(p, e, _)| *p == pid && *e == epoch).map(|(_, _, target)| target)
}

/// Routes a request of process `pid` that [`remembered`] did not, with
/// `routes` loaded after `epoch` was read ([`epoch`]); an unbound route is
/// remembered for the next call.
pub fn resolve(routes: &Routes, pid: LocalPid, want: Want<'_>, epoch: u64) -> Result<Routed, RouteError> {
    // Modules learned to need the main interpreter make a route depend on the
    // module too: then nothing is kept.
    if !matches!(want, Want::Auto { .. }) || !routes.main_modules.is_empty() {
        return resolve_now(routes, pid, want);
    }
    let routed = resolve_now(routes, pid, want)?;
    // A first placement changed the map (and the epoch) already.
    if !routed.watch {
        LAST.set(Some((pid, epoch, routed.target)));
    }
    Ok(routed)
}

fn resolve_now(routes: &Routes, pid: LocalPid, want: Want<'_>) -> Result<Routed, RouteError> {
    let (group_name, group) = match want {
        Want::Exactly(t) => return Ok(Routed { target: t, watch: false }),
        Want::Pool(name) => (Some(name), routes.pools.get(name).ok_or_else(|| RouteError::NoPool(name.into()))?),
        Want::Auto { module } => {
            // One lookup serves the binding and the default group's placement
            // (the common case: a process calling again). The read guard is
            // gone before the entry is written below (same shard).
            let placed = match PROCESSES.get(&pid) {
                Some(e) => match &e.bound {
                    Some(Binding::Target(t)) => return Ok(Routed { target: *t, watch: false }),
                    Some(Binding::Pool(p)) => {
                        let p = p.clone();
                        drop(e);
                        return resolve_now(routes, pid, Want::Pool(&p));
                    }
                    None => routes.default.as_ref().and_then(|g| e.place(None, g.gen)),
                },
                None => None,
            };
            if let Some(m) = module.filter(|_| !routes.main_modules.is_empty()) {
                if routes.main_modules.contains(top_level(m)) {
                    return Ok(Routed { target: Target::Main, watch: false });
                }
            }
            match &routes.default {
                Some(g) if !g.members.is_empty() => {
                    if let Some(id) = placed {
                        return Ok(Routed { target: Target::Context(id), watch: false });
                    }
                    (None, g)
                }
                _ => return Ok(Routed { target: Target::Main, watch: false }),
            }
        }
    };
    if let Some(id) = PROCESSES.get(&pid).and_then(|e| e.place(group_name, group.gen)) {
        return Ok(Routed { target: Target::Context(id), watch: false });
    }
    let Some((id, load)) = group.pick() else {
        return Err(RouteError::NoPool(group_name.unwrap_or_default().into()));
    };
    let mut watch = false;
    let mut e = PROCESSES.entry(pid).or_insert_with(|| {
        watch = true;
        Entry::default()
    });
    e.places.retain(|p| p.group.as_deref() != group_name);
    load.placed.fetch_add(1, Ordering::Relaxed);
    e.places.push(Place { group: group_name.map(str::to_owned), gen: group.gen, id: *id, placed: load.placed.clone() });
    drop(e);
    changed();
    Ok(Routed { target: Target::Context(*id), watch })
}

/// Binds `pid` (or unbinds it, `None`); true if the process is new to the map.
pub fn bind(pid: LocalPid, binding: Option<Binding>) -> bool {
    let mut watch = false;
    match binding {
        Some(b) => {
            PROCESSES
                .entry(pid)
                .or_insert_with(|| {
                    watch = true;
                    Entry::default()
                })
                .bound = Some(b)
        }
        None => {
            if let Some(mut e) = PROCESSES.get_mut(&pid) {
                e.bound = None;
            }
        }
    }
    changed();
    watch
}

/// The binding of `pid`, if any.
pub fn binding(pid: LocalPid) -> Option<Binding> {
    PROCESSES.get(&pid).and_then(|e| e.bound.clone())
}

/// The process exited: its binding and placements go.
pub fn forget(pid: LocalPid) {
    PROCESSES.remove(&pid);
    changed();
}

/// Processes with a binding or a placement.
pub fn tracked() -> usize {
    PROCESSES.len()
}

/// `k` contexts of the default group for a batch of calls, least loaded first,
/// each used once before any is used twice; the main interpreter when there are
/// no contexts.
pub fn spread(routes: &Routes, k: usize) -> Vec<Target> {
    let Some(g) = routes.default.as_ref().filter(|g| !g.members.is_empty()) else {
        return vec![Target::Main; k];
    };
    let n = g.members.len();
    let start = g.cursor.fetch_add(1, Ordering::Relaxed) % n;
    let mut order: Vec<usize> = (0..n).map(|i| (start + i) % n).collect();
    order.sort_by_key(|&i| g.members[i].1.stats.as_ref().map_or(0, |s| s.active()));
    (0..k).map(|i| Target::Context(g.members[order[i % n]].0)).collect()
}

/// `numpy.linalg` → `numpy`: a refusal is learned for the whole package.
pub fn top_level(module: &str) -> &str {
    module.split('.').next().unwrap_or(module)
}
