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
    /// `asyncio.CancelledError`, only if the job is a loop step and a step of
    /// that task is what runs in it (a loop step runs many tasks' steps).
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
                    let raise = |interp, thread, exc| -> bool {
                        if interp == 0 {
                            // A process-isolated context (`thread` is its
                            // child's key); it steps its loops in its child.
                            if matches!(exc, Raise::InTask { .. }) {
                                return false;
                            }
                            super::isolated::interrupt(thread, exc);
                            return true;
                        }
                        // SAFETY: this thread holds no Python thread state, and the
                        // token's lock keeps the job (hence its interpreter) alive
                        // until this returns.
                        unsafe { crate::interp::interrupt::raise(interp, thread, exc) }
                    };
                    match (why, token.stepped_loop()) {
                        (Why::GaveUp, _) => token.interrupt(|i, t| {
                            raise(i, t, Raise::Timeout);
                        }),
                        // A loop step: only in a task's step, never in the
                        // loop's own code (a handle it had taken would be lost).
                        (Why::Asked, Some(key)) => token.interrupt_running_if(|i, t| raise(i, t, Raise::InTask { key, task: None })),
                        (Why::Asked, None) => token.interrupt_running(|i, t| {
                            raise(i, t, Raise::KeyboardInterrupt);
                        }),
                        // The loop ends with its context: raised wherever it is.
                        (Why::Stopping, _) => token.stop_running(|i, t| {
                            raise(i, t, Raise::KeyboardInterrupt);
                        }),
                        (Why::Closing, _) => token.interrupt_running(|i, t| {
                            raise(i, t, Raise::Closing);
                        }),
                        (Why::Task(tid), Some(key)) => {
                            token.interrupt_running_if(|i, t| raise(i, t, Raise::InTask { key, task: Some(tid) }))
                        }
                        // Not a loop step: the task does not run there.
                        (Why::Task(_), None) => false,
                    };
                }
            })
            .expect("cannot start the interrupt thread");
        tx
    });
    let _ = tx.send((token, why));
}
