//! The tokio runtime that spawns and supervises actors.
//!
//! ractor's spawn and timers call `tokio::spawn`, which panics on a thread with no
//! runtime (a BEAM scheduler is one), so lifecycle work is handed to this runtime
//! and answered by message. The actors themselves run on their own pinned threads.

use std::sync::OnceLock;
use tokio::runtime::Runtime;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// The node's actor runtime, created on first use.
pub fn get() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            // Few blocking tasks (Python initialisation, releasing shared globals);
            // their threads stay parked instead of coming and going.
            .max_blocking_threads(1)
            .thread_keep_alive(std::time::Duration::from_secs(24 * 3600))
            .thread_name("ep-runtime")
            .enable_all()
            .build()
            .expect("cannot build the actor runtime")
    })
}
