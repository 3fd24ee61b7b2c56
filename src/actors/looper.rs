//! Event-loop drivers: each context's asyncio loop is stepped by the context's
//! own thread, one tick job at a time; a small driver thread per loop only
//! waits, without the GIL and without polling, for the loop to have work (its
//! selector's epoll fd is readable, or its next timer is due) and then queues a
//! tick job in the context's lane. After each tick the context thread tells
//! the driver how long the loop may sleep. An idle loop parks its driver on an
//! eventfd: no CPU.
//!
//! No Python here: the loop's fd and sleep come from `interp::asyncio`.

use super::job::{Job, Target, Work};
use dashmap::DashMap;
use rustler::LocalPid;
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::Duration;

/// How long a loop may sleep before its next tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sleep {
    /// Work is ready: tick now.
    None,
    /// Until the next timer, or the selector, whichever comes first.
    For(Duration),
    /// Until the selector is ready (sockets, or a thread-safe call).
    UntilReady,
    /// No task: nothing to wait for.
    Idle,
}

impl Sleep {
    /// From `erlang._tick`'s answer.
    pub fn from_secs(s: f64) -> Sleep {
        if s == 0.0 {
            Sleep::None
        } else if s > 0.0 {
            Sleep::For(Duration::from_secs_f64(s.min(3600.0)))
        } else if s == -2.0 {
            Sleep::UntilReady
        } else {
            Sleep::Idle
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Arm {
    /// A tick job is queued or running: wait for its answer. `again`: work was
    /// added meanwhile (a task scheduled or cancelled), so tick once more after
    /// it; never a second tick in the lane, however many tasks come.
    Ticking {
        again: bool,
    },
    Wait(Sleep),
    Stop,
}

struct Driver {
    state: Mutex<Arm>,
    changed: Condvar,
    /// Wakes the driver's poll when `state` changes.
    wake: i32,
    /// The loop's selector fd it watches.
    loop_fd: i32,
}

/// Drivers by (target key, interpreter address).
static DRIVERS: LazyLock<DashMap<(u32, usize), Arc<Driver>>> = LazyLock::new(DashMap::new);

/// Sets how long the loop of `target` in interpreter `interp` may sleep (from
/// its context thread: `after_tick` after a tick, else after scheduling or
/// cancelling a task); starts its driver on first use. `loop_fd` is the loop's
/// selector fd; `owner` any pid (tick jobs answer nobody).
pub fn arm(target: Target, interp: usize, loop_fd: i32, owner: LocalPid, sleep: Sleep, after_tick: bool) {
    let driver = {
        let mut entry = DRIVERS.entry((target.key(), interp)).or_insert_with(|| start(target, loop_fd, owner));
        if entry.loop_fd != loop_fd {
            // Another loop under the same key (its context was replaced): a
            // driver of its own; the old one stops.
            let old = std::mem::replace(&mut *entry, start(target, loop_fd, owner));
            halt(&old);
        }
        entry.clone()
    };
    {
        let mut st = driver.state.lock().unwrap_or_else(|e| e.into_inner());
        if *st == Arm::Stop {
            return;
        }
        *st = match (*st, after_tick) {
            // The tick in flight will look again: just say so.
            (Arm::Ticking { .. }, false) => Arm::Ticking { again: true },
            (Arm::Ticking { again: true }, true) => Arm::Wait(Sleep::None),
            // An earlier arm is replaced.
            _ => Arm::Wait(sleep),
        };
    }
    driver.changed.notify_one();
    poke(driver.wake);
}

/// Stops the driver of `target`'s loop in interpreter `interp` (its context
/// is ending), if it has one.
pub fn stop(target: Target, interp: usize) {
    if let Some((_, d)) = DRIVERS.remove(&(target.key(), interp)) {
        halt(&d);
    }
}

fn halt(d: &Driver) {
    *d.state.lock().unwrap_or_else(|e| e.into_inner()) = Arm::Stop;
    d.changed.notify_one();
    poke(d.wake);
}

/// Stops the drivers of `target`'s loops in every interpreter: a context of
/// `multi_executor` mode has no thread of its own to stop its driver when it
/// ends (see `router`), and its loop was stepped by any executor.
pub fn stop_everywhere(target: Target) {
    let keys: Vec<(u32, usize)> = DRIVERS.iter().map(|e| *e.key()).filter(|(k, _)| *k == target.key()).collect();
    for (_, interp) in keys {
        stop(target, interp);
    }
}

fn poke(fd: i32) {
    let one: u64 = 1;
    // SAFETY: `fd` is the driver's eventfd, open for the driver's life; an
    // eventfd write of 8 bytes only adds to its counter.
    unsafe {
        libc::write(fd, (&one as *const u64).cast(), 8);
    }
}

fn start(target: Target, loop_fd: i32, owner: LocalPid) -> Arc<Driver> {
    // SAFETY: eventfd creates a new descriptor (or fails with -1).
    let wake = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    let d = Arc::new(Driver { state: Mutex::new(Arm::Wait(Sleep::Idle)), changed: Condvar::new(), wake, loop_fd });
    let me = d.clone();
    let name = format!("ep-loop-{}", target.key());
    let spawned = std::thread::Builder::new().name(name).spawn(move || drive(me, target, loop_fd, owner));
    if spawned.is_err() {
        *d.state.lock().unwrap_or_else(|e| e.into_inner()) = Arm::Stop;
    }
    d
}

fn drive(d: Arc<Driver>, target: Target, loop_fd: i32, owner: LocalPid) {
    loop {
        let sleep = {
            let mut st = d.state.lock().unwrap_or_else(|e| e.into_inner());
            loop {
                match *st {
                    Arm::Stop => {
                        drop(st);
                        // SAFETY: our own eventfd, closed once, by its only user.
                        unsafe { libc::close(d.wake) };
                        return;
                    }
                    Arm::Wait(Sleep::Idle) | Arm::Ticking { .. } => {
                        st = d.changed.wait(st).unwrap_or_else(|e| e.into_inner());
                    }
                    Arm::Wait(s) => break s,
                }
            }
        };
        let due = match sleep {
            Sleep::None => true,
            Sleep::For(t) => wait_ready(d.wake, loop_fd, t.as_millis().min(i32::MAX as u128) as i32 + 1),
            Sleep::UntilReady => wait_ready(d.wake, loop_fd, -1),
            Sleep::Idle => false,
        };
        if !due {
            // Woken by a new arm (or a stop): look at the state again.
            continue;
        }
        {
            let mut st = d.state.lock().unwrap_or_else(|e| e.into_inner());
            if *st == Arm::Stop {
                continue;
            }
            *st = Arm::Ticking { again: false };
        }
        if super::router::submit(Job::loop_work(Work::LoopTick, target, owner)).is_err() {
            // The context is gone.
            *d.state.lock().unwrap_or_else(|e| e.into_inner()) = Arm::Stop;
        }
    }
}

/// Waits until the loop's fd is readable or `ms` pass (true: tick), or the
/// driver's eventfd is poked (false: the state changed).
fn wait_ready(wake: i32, loop_fd: i32, ms: i32) -> bool {
    let mut fds =
        [libc::pollfd { fd: wake, events: libc::POLLIN, revents: 0 }, libc::pollfd { fd: loop_fd, events: libc::POLLIN, revents: 0 }];
    // SAFETY: two valid pollfd entries; poll only writes their `revents`.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n > 0 && fds[0].revents != 0 {
        let mut buf = 0u64;
        // SAFETY: reads the eventfd's 8-byte counter into `buf` (nonblocking).
        unsafe { libc::read(wake, (&mut buf as *mut u64).cast(), 8) };
        return fds[1].revents != 0;
    }
    true
}
