//! Waiting for a hand-off that usually comes within microseconds: poll, then
//! poll yielding the core, then (the caller's choice) sleep.
//!
//! Every thread that waits for another here does it this way: an actor thread
//! after its batch (`actors::lane`), a thread suspended in `erlang.call`
//! (`interp::callback`), the two ends of a process-isolated context's pipes
//! (`interp::wire`). Waking a sleeping thread costs more than the work it is
//! woken for, so the wait polls first. It polls in two phases:
//!
//! * **hot** (the first [`HOT`]): a pause instruction between polls and no
//!   syscall, so a back-to-back caller's next request is seen within
//!   nanoseconds (skipped when the process has one core: the caller could
//!   not run meanwhile);
//! * **yielding** (the rest of the budget): `sched_yield` between polls, so a
//!   BEAM scheduler (or anyone) that wants the core gets it. One yield is a
//!   syscall of about a microsecond on a virtual machine: polling only this way
//!   made every hand-off wait half of one on average.
//!
//! The clock is read once every few polls, not at each.

use std::time::{Duration, Instant};

/// How long a wait polls without yielding its core.
pub const HOT: Duration = Duration::from_micros(10);

/// Whether this process may run on one core only (a container's CPU limit, a
/// `taskset`): then whoever would hand work over can only run once this thread
/// gives the core up, and the hot phase would only delay it.
fn one_core() -> bool {
    use std::sync::OnceLock;
    static ONE: OnceLock<bool> = OnceLock::new();
    *ONE.get_or_init(|| std::thread::available_parallelism().is_ok_and(|n| n.get() == 1))
}

/// Polls between two clock reads in the hot phase.
pub const POLLS_PER_CLOCK_READ: u32 = 16;

/// Calls `poll` until it returns `Some` (the value is returned) or `budget` has
/// passed (`None`: the caller then sleeps its own way, or gives up).
pub fn spin<T>(budget: Duration, mut poll: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    let hot = if one_core() { Duration::ZERO } else { HOT.min(budget) };
    let mut polls = 0u32;
    loop {
        if let Some(v) = poll() {
            return Some(v);
        }
        polls = polls.wrapping_add(1);
        if !polls.is_multiple_of(POLLS_PER_CLOCK_READ) {
            std::hint::spin_loop();
            continue;
        }
        let waited = start.elapsed();
        if waited < hot {
            std::hint::spin_loop();
            continue;
        }
        if waited >= budget {
            return None;
        }
        std::thread::yield_now();
        // In the yielding phase every poll reads the clock: one yield already
        // costs far more than a clock read.
        polls = POLLS_PER_CLOCK_READ - 1;
    }
}
