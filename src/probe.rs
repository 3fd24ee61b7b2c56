//! Cycle counts of the steps of one request, for `scripts/stage-probe`.
//!
//! callgrind cannot run the BEAM here (OTP 25's JIT), so the NIF's and the
//! serving thread's share of a trivial call is measured from the inside: the
//! time-stamp counter is read between the steps, each thread adds up what its
//! steps took, and every [`EVERY`] requests prints the averages to standard
//! error. Only in builds with the `stage-probe` feature; in every other build
//! these functions are empty and vanish.

/// A step of a request.
#[derive(Clone, Copy)]
pub enum Stage {
    /// On the caller's scheduler: the payload decoded into a request.
    Decode = 0,
    /// Which context or executor serves it.
    Route,
    /// The job made (its environment, the tag saved there, its token).
    Job,
    /// A permit taken, the job pushed into the lane, the caller's handle made.
    Queue,
    /// The whole NIF call.
    Submit,
    /// On the serving thread: from taking the job to running its code (counters,
    /// token, clock, trace span).
    Start,
    /// The `erlang.call` handle made.
    Caller,
    /// The Python code run, in its interpreter (attach, call, convert, detach).
    Python,
    /// The reply encoded and the permit given back.
    Encode,
    /// `enif_send` of the reply.
    Send,
}

#[cfg(feature = "stage-probe")]
const STAGES: usize = 10;

/// Requests between two printed lines (per thread).
pub const EVERY: u64 = 200_000;

/// The time-stamp counter (0 without the feature).
#[inline(always)]
pub fn now() -> u64 {
    #[cfg(all(feature = "stage-probe", target_arch = "x86_64"))]
    // SAFETY: rdtsc has no preconditions; it only reads the counter.
    unsafe {
        std::arch::x86_64::_rdtsc()
    }
    #[cfg(not(all(feature = "stage-probe", target_arch = "x86_64")))]
    0
}

#[cfg(feature = "stage-probe")]
thread_local! {
    static SUMS: std::cell::RefCell<(u64, [u64; STAGES])> = const { std::cell::RefCell::new((0, [0; STAGES])) };
}

/// `stage` took from `since` (a [`now`]) until now.
#[inline(always)]
pub fn add(stage: Stage, since: u64) {
    #[cfg(feature = "stage-probe")]
    {
        let d = now().saturating_sub(since);
        SUMS.with(|s| s.borrow_mut().1[stage as usize] += d);
    }
    #[cfg(not(feature = "stage-probe"))]
    let _ = (stage, since);
}

/// One more request on this thread; every [`EVERY`], the averages so far.
#[inline(always)]
pub fn done(side: &'static str) {
    #[cfg(feature = "stage-probe")]
    SUMS.with(|s| {
        let mut s = s.borrow_mut();
        s.0 += 1;
        if s.0 == EVERY {
            let avg: Vec<u64> = s.1.iter().map(|c| c / EVERY).collect();
            eprintln!("stage-probe {side} {avg:?}");
            *s = (0, [0; STAGES]);
        }
    });
    #[cfg(not(feature = "stage-probe"))]
    let _ = side;
}
