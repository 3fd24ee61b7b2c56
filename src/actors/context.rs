//! A context: a ractor actor pinned to its own OS thread that owns its
//! interpreter state for its whole life, so contexts run Python truly in parallel.
//!
//! * `subinterp` mode: one OWN_GIL sub-interpreter, created when the context
//!   starts and ended on the same thread when it stops; its `__main__` is the
//!   context's namespace.
//! * `free_threaded` mode: a thread state of the (GIL-less) main interpreter and a
//!   fresh globals dict of its own; no executor hop, no GIL to take turns on.

use super::job::Job;
use super::lane::{Lane, Wake, Worker};
use crate::interp::exec::{self, CodeCache, Globals};
use crate::interp::thread::{Kind, PinnedInterp};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use ractor::thread_local::ThreadLocalActor;
use ractor::{ActorProcessingErr, ActorRef};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// The context actor (its state lives on its thread).
#[derive(Default)]
pub struct Context;

/// Owned by the context's thread: its sub-interpreter and that interpreter's
/// `__main__` globals.
pub struct ContextState {
    id: u32,
    lane: Arc<Lane>,
    rx: Receiver<Job>,
    cache: CodeCache,
    globals: Option<Py<PyDict>>,
    // Declared last: ended after the objects above were released.
    interp: PinnedInterp,
}

impl Drop for ContextState {
    fn drop(&mut self) {
        let globals = self.globals.take();
        let cache = &mut self.cache;
        let target = super::job::Target::Context(self.id);
        self.interp.run(|py| {
            // Its asyncio loop's driver goes with it.
            super::looper::stop(target, crate::interp::interrupt::here(py).0);
            cache.release(py);
            drop(globals);
        });
    }
}

impl ThreadLocalActor for Context {
    type Msg = Wake;
    type State = Worker<ContextState>;
    type Arguments = (u32, Arc<Lane>, Receiver<Job>);

    async fn pre_start(&self, me: ActorRef<Wake>, (id, lane, rx): Self::Arguments) -> Result<Worker<ContextState>, ActorProcessingErr> {
        let interp = new_interp().map_err(|e| format!("context {id}: {e}"))?;
        let globals = interp
            .run(|py| match interp.kind() {
                Kind::Sub => exec::main_globals(py).map(|g| g.unbind()),
                Kind::Main => exec::fresh_globals(py).map(|g| g.unbind()),
            })
            .map_err(|e| format!("context {id}: {e}"))?;
        let state = ContextState { id, lane, rx, cache: CodeCache::default(), globals: Some(globals), interp };
        Ok(Worker::new(me.get_name(), state, drain))
    }

    async fn handle(&self, _me: ActorRef<Wake>, _wake: Wake, worker: &mut Worker<ContextState>) -> Result<(), ActorProcessingErr> {
        worker.run().await;
        Ok(())
    }

    async fn post_stop(&self, _me: ActorRef<Wake>, worker: &mut Worker<ContextState>) -> Result<(), ActorProcessingErr> {
        worker.shutdown().await;
        Ok(())
    }
}

/// Serves everything in the lane, in this context's globals.
fn drain(s: &mut ContextState) {
    let ContextState { lane, rx, cache, globals, interp, .. } = s;
    lane.drain(rx, |job| match globals.as_ref() {
        Some(g) => job.serve(interp, cache, Globals::Owned(g)),
        None => drop(job),
    });
}

#[cfg(all(Py_3_12, not(Py_GIL_DISABLED)))]
fn new_interp() -> Result<PinnedInterp, String> {
    PinnedInterp::new_subinterpreter()
}

#[cfg(Py_GIL_DISABLED)]
fn new_interp() -> Result<PinnedInterp, String> {
    Ok(PinnedInterp::main())
}

#[cfg(not(any(Py_3_12, Py_GIL_DISABLED)))]
fn new_interp() -> Result<PinnedInterp, String> {
    Err("contexts of this Python share the main interpreter and have no actor".into())
}
