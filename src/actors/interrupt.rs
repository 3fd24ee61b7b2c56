//! The thread that interrupts running Python code: code whose caller gave up
//! (timed out or died) gets `TimeoutError`, code named by `py:interrupt/1` gets
//! `KeyboardInterrupt`, and so does code whose context stops. It owns no Python thread state between requests, so it
//! may take one of whichever interpreter the job runs in; it waits for that
//! interpreter's GIL (at most a switch interval while Python runs), never a BEAM
//! scheduler.

use super::token::CallToken;
use crate::interp::interrupt::Raise;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, OnceLock};

/// Why a job is interrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Its caller gave up: only if the token says so, with `TimeoutError`.
    GaveUp,
    /// `py:interrupt/1`: whatever runs, with `KeyboardInterrupt`.
    Asked,
    /// Its context stops: whatever runs, with `KeyboardInterrupt`, and its
    /// caller is answered `context_stopped`.
    Stopping,
    /// Its stream was cancelled (`py:stream_cancel/1`, the consumer's exit)
    /// while this pull runs: `GeneratorExit`, as a generator's `close()`
    /// raises (`KeyboardInterrupt` in a process-isolated context).
    Closing,
    /// The caller of asyncio task `.0` gave up: the task, with
    /// `asyncio.CancelledError`, only if a step of it is what runs (a loop
    /// step runs many tasks' steps).
    Task(u64),
}

static TX: OnceLock<Sender<(Arc<CallToken>, Why)>> = OnceLock::new();

/// Asks for `token`'s job to be interrupted if its Python code is running.
pub fn request(token: Arc<CallToken>, why: Why) {
    let tx = TX.get_or_init(|| {
        let (tx, rx) = channel::<(Arc<CallToken>, Why)>();
        std::thread::Builder::new()
            .name("ep-interrupt".into())
            .spawn(move || {
                for (token, why) in rx {
                    let raise = |interp, thread, exc| {
                        if interp == 0 {
                            // A process-isolated context: `thread` is its child's key.
                            super::isolated::interrupt(thread, exc);
                            return;
                        }
                        // SAFETY: this thread holds no Python thread state, and the
                        // token's lock keeps the job (hence its interpreter) alive
                        // until this returns.
                        unsafe { crate::interp::interrupt::raise(interp, thread, exc) }
                    };
                    match why {
                        Why::GaveUp => token.interrupt(|i, t| raise(i, t, Raise::Timeout)),
                        Why::Asked => token.interrupt_running(|i, t| raise(i, t, Raise::KeyboardInterrupt)),
                        Why::Stopping => token.stop_running(|i, t| raise(i, t, Raise::KeyboardInterrupt)),
                        Why::Closing => token.interrupt_running(|i, t| raise(i, t, Raise::Closing)),
                        // A process-isolated context steps its loops in its child.
                        Why::Task(tid) => token.interrupt_running(|i, t| {
                            if i != 0 {
                                raise(i, t, Raise::Task(tid))
                            }
                        }),
                    };
                }
            })
            .expect("cannot start the interrupt thread");
        tx
    });
    let _ = tx.send((token, why));
}
