//! A pinned actor: a ractor thread-local actor on its own OS thread that owns an
//! interpreter ([`Host`]) for its whole life and drains its lane. One actor, two
//! roles:
//!
//! * an **executor** holds a thread state of the main interpreter. Executors
//!   take turns on the main GIL and serve the main interpreter's `__main__`
//!   (`py:context(main)`) and, in `multi_executor` mode, every context (each a
//!   globals dict on the main interpreter);
//! * a **context** owns its interpreter: one OWN_GIL sub-interpreter
//!   (`subinterp`, its `__main__` is the context's namespace), or on a
//!   free-threaded build a thread state of the GIL-less main interpreter with a
//!   globals dict of its own. Contexts run Python truly in parallel;
//! * an **isolated** context drives a child OS process that owns its
//!   interpreter (`actors::isolated`): a crash there ends only that process.

use super::engine::Engine;
use super::isolated::Isolated;
use super::job::{Job, Target};
use super::lane::{Lane, Wake, Worker};
use crate::interp::bridge::Place;
use crate::interp::host::Host;
use ractor::thread_local::ThreadLocalActor;
use ractor::{ActorProcessingErr, ActorRef};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// What a pinned actor serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Executor,
    Context(u32),
    /// A process-isolated context: its interpreter runs in a child OS process
    /// (with this address-space limit, in bytes).
    Isolated(u32, Option<u64>),
}

/// The pinned actor (its state lives on its thread).
#[derive(Default)]
pub struct Pinned;

/// Owned by the actor's thread.
pub struct PinnedState {
    role: Role,
    lane: Arc<Lane>,
    rx: Receiver<Job>,
    host: Engine,
}

impl Drop for PinnedState {
    fn drop(&mut self) {
        // A context's asyncio loop driver goes with it.
        if let Role::Context(id) = self.role {
            super::looper::stop(Target::Context(id), self.host.ids().0);
        }
    }
}

impl ThreadLocalActor for Pinned {
    type Msg = Wake;
    type State = Worker<PinnedState>;
    type Arguments = (Role, Arc<Lane>, Receiver<Job>);

    async fn pre_start(&self, me: ActorRef<Wake>, (role, lane, rx): Self::Arguments) -> Result<Worker<PinnedState>, ActorProcessingErr> {
        // On the actor's own thread, before its interpreter is made.
        super::affinity::enter(me.get_name().as_deref().unwrap_or("actor"), !matches!(role, Role::Isolated(..)));
        let host = match role {
            Role::Executor => Engine::Local(Host::executor()),
            Role::Context(id) => Engine::Local(Host::context(id).map_err(|e| format!("context {id}: {e}"))?),
            Role::Isolated(id, limit) => Engine::Child(Isolated::start(id, limit).map_err(|e| format!("context {id}: {e}"))?),
        };
        Ok(Worker::new(me.get_name(), PinnedState { role, lane, rx, host }, drain))
    }

    async fn handle(&self, _me: ActorRef<Wake>, _wake: Wake, worker: &mut Worker<PinnedState>) -> Result<(), ActorProcessingErr> {
        worker.run().await;
        Ok(())
    }

    async fn post_stop(&self, _me: ActorRef<Wake>, worker: &mut Worker<PinnedState>) -> Result<(), ActorProcessingErr> {
        worker.shutdown().await;
        Ok(())
    }
}

/// Serves everything in the lane, each job in the globals its target names.
fn drain(s: &mut PinnedState) {
    let PinnedState { role, lane, rx, host } = s;
    lane.drain(rx, |job| {
        let place = match (*role, job.target) {
            (Role::Context(_) | Role::Isolated(..), _) => Place::Own,
            (Role::Executor, Target::Main) => Place::Main,
            (Role::Executor, Target::Context(id)) => {
                if !super::router::context_lives(id, job.life) {
                    // stopped while the job waited: dropped, it is answered
                    // `context_stopped`
                    return;
                }
                Place::Shared(id)
            }
        };
        job.serve(host, place);
    });
}
