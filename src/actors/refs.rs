//! The Erlang side of a Python object kept by reference: a NIF resource naming
//! the context that keeps it and its id there (`interp::refs`). When the last
//! Erlang copy is collected, a job releases the object in its context, on that
//! context's thread. A request a ref travels in holds the handle too
//! (`interp::value::RefHold`): the release cannot overtake it, though the
//! main interpreter's executors take jobs in any order. No Python here.

use super::job::{Job, Target, Work};
use rustler::{LocalPid, Resource};

/// What `py:call(…, #{return => ref})` returns (as an opaque term).
pub struct RefHandle {
    pub target: Target,
    pub id: u64,
    /// The process the ref was made for (its release job names it; nobody is
    /// answered).
    pub owner: LocalPid,
}

impl Resource for RefHandle {}

impl Drop for RefHandle {
    fn drop(&mut self) {
        // Pushed to the owning context's lane (no Python, no lock, no waiting):
        // fine wherever the last hold goes, the scheduler thread that collected
        // the last copy or a serving thread dropping a request that carried
        // it, with an interpreter's GIL held or not. A context that is gone
        // took the object with it.
        let _ = super::router::submit(Job::loop_work(Work::RefDrop(self.id), self.target, self.owner));
    }
}
