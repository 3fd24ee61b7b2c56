//! An executor: a ractor actor pinned to its own OS thread holding a thread state
//! of the main interpreter. Executors take turns on the main GIL and serve the
//! main interpreter's `__main__` (`py:context(main)`) and, in `multi_executor`
//! mode, every context (each a globals dict on the main interpreter).

use super::job::{Job, Target};
use super::lane::{Lane, Wake, Worker};
use crate::interp::exec::{CodeCache, Globals};
use crate::interp::thread::PinnedInterp;
use ractor::thread_local::ThreadLocalActor;
use ractor::{ActorProcessingErr, ActorRef};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// The executor actor (its state lives on its thread).
#[derive(Default)]
pub struct Executor;

/// Owned by the executor's thread.
pub struct ExecutorState {
    lane: Arc<Lane>,
    rx: Receiver<Job>,
    cache: CodeCache,
    // Declared last: dropped after the cache has released its objects.
    interp: PinnedInterp,
}

impl Drop for ExecutorState {
    fn drop(&mut self) {
        let cache = &mut self.cache;
        self.interp.run(|py| cache.release(py));
    }
}

impl ThreadLocalActor for Executor {
    type Msg = Wake;
    type State = Worker<ExecutorState>;
    type Arguments = (Arc<Lane>, Receiver<Job>);

    async fn pre_start(&self, me: ActorRef<Wake>, (lane, rx): Self::Arguments) -> Result<Worker<ExecutorState>, ActorProcessingErr> {
        let state = ExecutorState { lane, rx, cache: CodeCache::default(), interp: PinnedInterp::main() };
        Ok(Worker::new(me.get_name(), state, drain))
    }

    async fn handle(&self, _me: ActorRef<Wake>, _wake: Wake, worker: &mut Worker<ExecutorState>) -> Result<(), ActorProcessingErr> {
        worker.run().await;
        Ok(())
    }

    async fn post_stop(&self, _me: ActorRef<Wake>, worker: &mut Worker<ExecutorState>) -> Result<(), ActorProcessingErr> {
        worker.shutdown().await;
        Ok(())
    }
}

/// Serves everything in the lane: main-interpreter jobs and, in
/// `multi_executor` mode, those of the contexts this executor serves.
fn drain(s: &mut ExecutorState) {
    let ExecutorState { lane, rx, cache, interp } = s;
    lane.drain(rx, |job| {
        let globals = match job.target {
            Target::Main => Globals::Main,
            Target::Context(id) => Globals::Shared(id),
        };
        job.serve(interp, cache, globals);
    });
}
