//! The `erlang.call`s of a process-isolated context's Python code that wait
//! for their answer, innermost last, each under its own number.
//!
//! The number goes to the node with the call (`ToParent::Callback`) and comes
//! back with its answer (`ToChild::CallbackReply`), so an answer reaches the
//! call that asked for it. A call whose caller gave up stops waiting before its
//! answer comes. Had answers gone to the innermost call, a later `erlang.call`
//! of the same code would have taken that late answer as its own. Plain std,
//! generic over the message, so `tests/chains.rs` compiles it on its own.

use std::sync::mpsc::{SendError, Sender};

/// The waiting calls: each call's number and where its answer (or a request of
/// its chain) goes, innermost last.
pub struct Chains<M> {
    last_id: u64,
    open: Vec<(u64, Sender<M>)>,
}

impl<M> Default for Chains<M> {
    fn default() -> Self {
        Chains { last_id: 0, open: Vec::new() }
    }
}

impl<M> Chains<M> {
    /// A call begins to wait on `tx`: its number.
    pub fn open(&mut self, tx: Sender<M>) -> u64 {
        self.last_id += 1;
        self.open.push((self.last_id, tx));
        self.last_id
    }

    /// Call `id`'s answer: to it if it still waits (a call that stopped
    /// waiting leaves the answer unread).
    pub fn answer(&mut self, id: u64, answer: M) {
        if let Some(i) = self.open.iter().rposition(|(open, _)| *open == id) {
            let (_, tx) = self.open.remove(i);
            let _ = tx.send(answer);
        }
    }

    /// A request of the innermost waiting call's chain, to the thread waiting
    /// in it; calls that stopped waiting are passed over and forgotten. `Err`:
    /// no call waits any more (the request's chain is gone).
    pub fn nested(&mut self, mut msg: M) -> Result<(), M> {
        while let Some((_, tx)) = self.open.last() {
            match tx.send(msg) {
                Ok(()) => return Ok(()),
                Err(SendError(back)) => {
                    msg = back;
                    self.open.pop();
                }
            }
        }
        Err(msg)
    }

    /// Calls waiting (or whose answer has not come yet).
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// No call waits.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}
