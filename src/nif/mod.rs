//! The NIF layer: term in, mailbox message out, `{ok, Handle}` back at once.
//! Terms are decoded into plain values here (`types`), and what the actors send
//! back is encoded with the same module.
//!
//! Nothing here runs Python or waits for it. Replies reach callers by `enif_send`
//! from actor threads.

pub mod calls;
pub mod channels;
#[cfg(feature = "test-hooks")]
pub mod floors;
pub mod lifecycle;
pub mod routing;
pub mod state;
pub mod streams;
pub mod types;

use rustler::{Env, Term};

/// NIF load hook: registers resource types and sets the stack size for the
/// threads this library spawns (Python code recursing deeply needs more than
/// Rust's 2 MiB default).
pub fn load(env: Env, _info: Term) -> bool {
    if std::env::var_os("RUST_MIN_STACK").is_none() {
        // SAFETY: set before this library spawns any thread; the BEAM's own
        // threads do not read RUST_MIN_STACK.
        unsafe { std::env::set_var("RUST_MIN_STACK", (16 * 1024 * 1024).to_string()) };
    }
    crate::interp::bridge::install(&crate::actors::bridge::NODE);
    env.register::<calls::CallHandle>().is_ok()
        && env.register::<crate::actors::callback::CallbackHandle>().is_ok()
        && env.register::<streams::StreamHandle>().is_ok()
        && env.register::<channels::ChannelHandle>().is_ok()
        && env.register::<crate::actors::refs::RefHandle>().is_ok()
        && env.register::<types::blob::Lent>().is_ok()
}
