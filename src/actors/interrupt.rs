//! The thread that interrupts Python code whose caller gave up (timed out or
//! died). It owns no Python thread state between requests, so it may take one of
//! whichever interpreter the job runs in; it waits for that interpreter's GIL
//! (at most a switch interval while Python runs), never a BEAM scheduler.

use super::token::CallToken;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, OnceLock};

static TX: OnceLock<Sender<Arc<CallToken>>> = OnceLock::new();

/// Asks for `token`'s job to be interrupted if its Python code is running.
pub fn request(token: Arc<CallToken>) {
    let tx = TX.get_or_init(|| {
        let (tx, rx) = channel::<Arc<CallToken>>();
        std::thread::Builder::new()
            .name("ep-interrupt".into())
            .spawn(move || {
                for token in rx {
                    token.interrupt(|interp, thread| {
                        // SAFETY: this thread holds no Python thread state, and the
                        // token's lock keeps the job (hence its interpreter) alive
                        // until this returns.
                        unsafe { crate::interp::interrupt::raise_timeout(interp, thread) }
                    });
                }
            })
            .expect("cannot start the interrupt thread");
        tx
    });
    let _ = tx.send(token);
}
