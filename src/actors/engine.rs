//! What a pinned actor's thread serves requests with: an interpreter of this
//! process ([`Host`]), or the child OS process of a process-isolated context
//! ([`Isolated`]). Jobs see one interface; asyncio calls, which the child
//! does not run, are refused with `bad_argument`.

use super::isolated::Isolated;
use crate::interp::bridge::{Caller, Place};
use crate::interp::exec::{Op, Outcome};
use crate::interp::host::{Host, Pulled};
use crate::interp::value::{Failure, Request};
use std::sync::Arc;

pub enum Engine {
    Local(Host),
    Child(Isolated),
}

impl Engine {
    /// Where its requests run, for the token (a child: interpreter 0 and its key).
    pub fn ids(&self) -> (usize, u64) {
        match self {
            Engine::Local(h) => h.ids(),
            Engine::Child(c) => c.ids(),
        }
    }

    pub fn serve(&mut self, place: Place, op: Op, req: &Request, caller: Arc<dyn Caller>) -> Result<Outcome, Failure> {
        match self {
            Engine::Local(h) => h.serve(place, op, req, caller),
            Engine::Child(c) => c.serve(op, req, caller),
        }
    }

    pub fn loop_tick(&self, place: Place, key: u32) -> Option<(f64, i32)> {
        match self {
            Engine::Local(h) => h.loop_tick(place, key),
            Engine::Child(_) => None,
        }
    }

    pub fn loop_fd(&self, key: u32) -> Option<i32> {
        match self {
            Engine::Local(h) => h.loop_fd(key),
            Engine::Child(_) => None,
        }
    }

    pub fn cancel_task(&self, tid: u64) {
        if let Engine::Local(h) = self {
            h.cancel_task(tid)
        }
    }

    pub fn stream_close(&self, id: u64) {
        match self {
            Engine::Local(h) => h.stream_close(id),
            Engine::Child(c) => c.stream_close(id),
        }
    }

    pub fn release_ref(&self, place: Place, id: u64) {
        match self {
            Engine::Local(h) => h.release_ref(place, id),
            Engine::Child(c) => c.release_ref(id),
        }
    }

    /// The child clears its own pending interruptions.
    pub fn clear_pending_interrupt(&self) {
        if let Engine::Local(h) = self {
            h.clear_pending_interrupt()
        }
    }

    pub fn pull(&mut self, place: Place, id: u64, max: u64, each: impl FnMut(Pulled) -> bool) {
        match self {
            Engine::Local(h) => h.pull(place, id, max, each),
            Engine::Child(c) => c.pull(id, max, each),
        }
    }
}
