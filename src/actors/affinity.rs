//! Where a pinned actor's OS thread runs: its name, as `top -H`, `perf` and
//! `/proc` show it (`ep-context-3`, `ep-executor-1`), and, with the `pin_threads`
//! application setting, the one core it is bound to.
//!
//! Pinning deals the cores the node may use to the actor threads in turn, as
//! they start (executors and contexts alike). A context's thread then never
//! migrates between cores, at the price of never moving off a core a BEAM
//! scheduler also wants. Off by default: `docs/benchmarks.md` has the two ways
//! measured. Threads a context's Python code starts inherit its core. A
//! process-isolated context's actor thread is not pinned: its child process
//! would inherit the core, and share it with the actor that waits for it.
//!
//! Unpinned, an actor thread serving one caller back to back keeps off that
//! caller's core ([`serving`]). The caller's BEAM scheduler waits for each
//! reply spinning, and sleeps when the reply is late; the kernel may wake it
//! on the core of the thread that sent the reply. The two then take turns on
//! one core while the other idles, every hand-off a context switch: a call
//! took about 20 µs instead of 2.5 µs on this 2-core machine, for hundreds of
//! milliseconds at a time, until the kernel's balancer moved one of them
//! (`docs/benchmarks.md`, "Sixth look"). So an actor thread that finds many
//! jobs in a row made on its own core moves itself off that core. A thread
//! waiting in `erlang.call` does the same with the answers it takes (a Python
//! thread of the user's included): the Erlang function runs on a scheduler,
//! and the waiting thread polls for its answer.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The cores to deal (read when pinning was turned on; empty: pinning is off)
/// and the index of the next one.
static DEAL: Mutex<(Vec<usize>, usize)> = Mutex::new((Vec::new(), 0));

/// Turns pinning on or off for actor threads started from now on; dealing
/// starts again at the first core the calling thread may use.
pub fn configure(on: bool) {
    let cores = if on { allowed_cores() } else { Vec::new() };
    *DEAL.lock().unwrap_or_else(|e| e.into_inner()) = (cores, 0);
}

/// Names the calling thread after its actor and, with pinning on and `pin`,
/// binds it to the next core: the core, if it was bound.
pub fn enter(actor: &str, pin: bool) -> Option<usize> {
    set_name(&format!("ep-{actor}"));
    if !pin {
        return None;
    }
    let core = bind_next();
    PINNED.with(|p| p.set(core.is_some()));
    core
}

/// Binds the calling thread to the next core of the deal.
fn bind_next() -> Option<usize> {
    let core = {
        let mut deal = DEAL.lock().unwrap_or_else(|e| e.into_inner());
        let (cores, next) = &mut *deal;
        if cores.is_empty() {
            return None;
        }
        *next += 1;
        cores[(*next - 1) % cores.len()]
    };
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET writes inside it
    // (core < CPU_SETSIZE, as allowed_cores only returns such); pid 0 is the
    // calling thread, and the size passed is the set's own.
    let bound = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    bound.then_some(core)
}

/// Jobs in a row made on the serving thread's own core before it moves off.
const STACKED_JOBS: u32 = 16;
/// A thread moves itself at most this often.
const MOVE_EVERY: Duration = Duration::from_millis(20);

thread_local! {
    /// This actor thread is bound to a core (`pin_threads`): it stays there.
    static PINNED: Cell<bool> = const { Cell::new(false) };
    /// Jobs in a row, since this thread last parked, made on its own core.
    static STACKED: Cell<u32> = const { Cell::new(0) };
    /// When this thread last moved itself.
    static MOVED: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Times an actor thread moved itself off its caller's core (for tests).
static MOVES: AtomicU64 = AtomicU64::new(0);

/// Times an actor thread moved itself off its caller's core.
pub fn moves() -> u64 {
    MOVES.load(Ordering::Relaxed)
}

/// The core the calling thread runs on (-1 if unknown). glibc reads it from
/// the thread's restartable-sequences area: a load, no syscall.
pub fn current_cpu() -> i32 {
    // SAFETY: sched_getcpu takes no arguments and only reads the calling
    // thread's own state.
    unsafe { libc::sched_getcpu() }
}

/// Called by an actor thread before it serves a job made on core
/// `caller_cpu`, and by a thread that polled for an `erlang.call`'s answer
/// and took it (the answer's core: `Erlang::answered_from`). After [`STACKED_JOBS`] jobs in a row made on the core this
/// thread runs on, without parking between them, the thread moves itself off
/// that core (at most every [`MOVE_EVERY`]); pinned threads never move. Jobs
/// from several callers come from several cores and reset the count, as does
/// parking: a lone caller whose job woke this thread on its core is not
/// stacked with it (its scheduler has nothing else to run).
pub fn serving(caller_cpu: i32) {
    if caller_cpu < 0 || PINNED.with(Cell::get) {
        return;
    }
    if current_cpu() != caller_cpu {
        STACKED.with(|s| s.set(0));
        return;
    }
    let n = STACKED.with(|s| {
        s.set(s.get() + 1);
        s.get()
    });
    if n < STACKED_JOBS {
        return;
    }
    STACKED.with(|s| s.set(0));
    let now = Instant::now();
    if MOVED.with(Cell::get).is_some_and(|t| now.duration_since(t) < MOVE_EVERY) {
        return;
    }
    MOVED.with(|m| m.set(Some(now)));
    move_off(caller_cpu as usize);
}

/// The calling actor thread is about to park: jobs after it start a new count.
pub fn parking() {
    STACKED.with(|s| s.set(0));
}

/// Moves the calling thread off `core`: narrowing its affinity to the other
/// cores it may use makes the kernel migrate it at once; the affinity it had is
/// then given back (a running thread is not moved by that), so the kernel stays
/// free to place it later, and threads it starts inherit the full set.
fn move_off(core: usize) {
    // SAFETY: zeroed cpu_set_t values are empty sets; sched_getaffinity and
    // sched_setaffinity read or fill at most the size passed (the sets' own)
    // for pid 0, the calling thread; CPU_ISSET/CPU_CLR stay inside the set
    // (core < CPU_SETSIZE is checked).
    unsafe {
        if core >= libc::CPU_SETSIZE as usize {
            return;
        }
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut had: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut had) != 0 || !libc::CPU_ISSET(core, &had) {
            return;
        }
        let mut others = had;
        libc::CPU_CLR(core, &mut others);
        if libc::CPU_COUNT(&others) == 0 {
            return;
        }
        if libc::sched_setaffinity(0, size, &others) == 0 {
            MOVES.fetch_add(1, Ordering::Relaxed);
            libc::sched_setaffinity(0, size, &had);
        }
    }
}

/// The cores the calling thread may run on.
fn allowed_cores() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is an empty set; sched_getaffinity fills at
    // most the size passed (the set's own) for pid 0, the calling thread;
    // CPU_ISSET reads inside the set (c < CPU_SETSIZE).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// The calling thread's name (Linux keeps the first 15 bytes).
fn set_name(name: &str) {
    let mut bytes: Vec<u8> = name.bytes().filter(|&b| b != 0).take(15).collect();
    bytes.push(0);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes
    // from the pointer, which `bytes` is for the duration of the call.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, bytes.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}
