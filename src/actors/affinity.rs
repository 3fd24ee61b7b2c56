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

use std::sync::Mutex;

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
