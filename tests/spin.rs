//! `interp::spin::spin`, the poll-then-yield wait every hand-off uses: it
//! returns what the poll gives, and gives up once its budget has passed.

// Compiled here on its own (the library links rustler's NIF symbols, which only
// a BEAM provides).
#[path = "../src/interp/spin.rs"]
mod spin;
use spin::{spin, POLLS_PER_CLOCK_READ};
use std::time::{Duration, Instant};

#[test]
fn returns_what_the_poll_gives() {
    let mut n = 0;
    let got = spin(Duration::from_secs(5), || {
        n += 1;
        (n == 100).then_some(n)
    });
    assert_eq!(got, Some(100));
}

#[test]
fn gives_up_after_the_budget_having_polled_in_both_phases() {
    let t0 = Instant::now();
    let mut polls = 0u64;
    let got: Option<()> = spin(Duration::from_millis(20), || {
        polls += 1;
        None
    });
    assert_eq!(got, None);
    assert!(t0.elapsed() >= Duration::from_millis(20));
    assert!(polls > u64::from(POLLS_PER_CLOCK_READ));
}

#[test]
fn a_budget_shorter_than_the_hot_phase_is_kept() {
    let mut polls = 0u32;
    let got: Option<()> = spin(Duration::ZERO, || {
        polls += 1;
        None
    });
    assert_eq!(got, None);
    // no hot phase: it gives up at its first look at the clock
    assert_eq!(polls, POLLS_PER_CLOCK_READ);
}
