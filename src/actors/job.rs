//! A request in flight: what the NIF enqueues and an actor answers.
//!
//! The caller keeps a [`CallToken`] (inside a NIF resource) and the job keeps
//! another reference to it. Exactly one side wins the race between "the reply is
//! being sent" and "the caller gave up" (timeout, or the caller died and its
//! resource was collected), so a late reply never lands in a mailbox that stopped
//! waiting for it, and a job whose caller is gone is skipped without running.

use crate::interp::exec::Op;
use rustler::env::SavedTerm;
use rustler::{LocalPid, OwnedEnv};
use std::sync::Arc;

pub use super::token::CallToken;

/// What the actor does with a job.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// Run Python.
    Python(Op),
    /// Send the payload straight back: the floor of the mailbox round trip.
    Echo,
}

/// One request, self-contained: its terms live in its own environment, which also
/// carries the reply.
pub struct Job {
    pub env: OwnedEnv,
    pub work: Work,
    pub payload: SavedTerm,
    pub tag: SavedTerm,
    pub reply_to: LocalPid,
    pub token: Arc<CallToken>,
}
