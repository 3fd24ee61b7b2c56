//! An unpinned actor thread that serves many jobs in a row made on its own
//! core moves off that core, once per `MOVE_EVERY` at most, and keeps the
//! affinity it had; a pinned one never moves; parking starts the count again.

#[path = "../src/actors/affinity.rs"]
mod affinity;

/// The calling thread's affinity, as a list of cores.
fn allowed() -> Vec<usize> {
    // SAFETY: zeroed cpu_set_t is an empty set; sched_getaffinity fills at
    // most its size for pid 0 (this thread); CPU_ISSET stays inside the set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        assert_eq!(libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set), 0);
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Each test runs on a thread of its own (thread-local counts), one at a time
/// (the move counter is process-wide).
fn on_thread(f: impl FnOnce() + Send + 'static) {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    std::thread::spawn(f).join().unwrap();
}

#[test]
fn stacked_jobs_move_the_thread_once() {
    on_thread(|| {
        let before = allowed();
        if before.len() < 2 {
            return; // one core: nowhere to go
        }
        let moves = affinity::moves();
        // 15 jobs from this core: not yet
        for _ in 0..15 {
            affinity::serving(affinity::current_cpu());
        }
        assert_eq!(affinity::moves(), moves);
        // the 16th moves it, unless the kernel moved the thread between two of
        // them (the count then starts again): a few more then
        let mut calls = 0;
        while affinity::moves() == moves && calls < 10_000 {
            affinity::serving(affinity::current_cpu());
            calls += 1;
        }
        assert_eq!(affinity::moves(), moves + 1);
        assert_eq!(allowed(), before, "the affinity it had is given back");
        // at most one move per MOVE_EVERY (20 ms)
        let start = std::time::Instant::now();
        for _ in 0..64 {
            affinity::serving(affinity::current_cpu());
        }
        if start.elapsed() < std::time::Duration::from_millis(15) {
            assert_eq!(affinity::moves(), moves + 1);
        }
    });
}

#[test]
fn jobs_from_elsewhere_or_a_park_reset_the_count() {
    on_thread(|| {
        if allowed().len() < 2 {
            return;
        }
        let moves = affinity::moves();
        for _ in 0..10 {
            for _ in 0..15 {
                affinity::serving(affinity::current_cpu());
            }
            affinity::parking();
        }
        for _ in 0..10 {
            for _ in 0..15 {
                affinity::serving(affinity::current_cpu());
            }
            affinity::serving(-1); // the runtime's own job: not counted, not a reset
            affinity::serving(affinity::current_cpu() + 1); // another core's
        }
        assert_eq!(affinity::moves(), moves);
    });
}

#[test]
fn pinned_threads_stay() {
    on_thread(|| {
        if allowed().len() < 2 {
            return;
        }
        affinity::configure(true);
        let core = affinity::enter("affinity-test", true);
        affinity::configure(false);
        assert!(core.is_some());
        let moves = affinity::moves();
        for _ in 0..64 {
            affinity::serving(affinity::current_cpu());
        }
        assert_eq!(affinity::moves(), moves);
        assert_eq!(allowed(), vec![core.unwrap()]);
    });
}
