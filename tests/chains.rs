//! `interp::chains::Chains`: an isolated child's `erlang.call` answers go to the
//! call that asked, by number, and nested requests pass over calls that
//! stopped waiting.

// Compiled here on its own (the library links rustler's NIF symbols, which only
// a BEAM provides).
#[path = "../src/interp/chains.rs"]
mod chains;
use chains::Chains;
use std::sync::mpsc;

#[test]
fn a_late_answer_goes_to_the_call_that_asked() {
    let mut chains = Chains::default();
    let (tx1, rx1) = mpsc::channel();
    let first = chains.open(tx1);
    // The first call stops waiting (its caller gave up); the code calls again.
    drop(rx1);
    let (tx2, rx2) = mpsc::channel();
    let second = chains.open(tx2);
    // The first call's answer arrives late, then the second's.
    chains.answer(first, 1);
    assert_eq!(rx2.try_recv().ok(), None, "the second call took the first one's answer");
    chains.answer(second, 2);
    assert_eq!(rx2.try_recv().ok(), Some(2));
    assert!(chains.is_empty());
}

#[test]
fn answers_in_any_order() {
    let mut chains = Chains::default();
    let (tx1, rx1) = mpsc::channel();
    let (tx2, rx2) = mpsc::channel();
    let (a, b) = (chains.open(tx1), chains.open(tx2));
    chains.answer(a, "a");
    chains.answer(b, "b");
    assert_eq!((rx1.try_recv().ok(), rx2.try_recv().ok()), (Some("a"), Some("b")));
    // An unknown or repeated number is dropped.
    chains.answer(a, "again");
    assert!(chains.is_empty());
}

#[test]
fn nested_requests_pass_over_calls_that_stopped_waiting() {
    let mut chains = Chains::default();
    let (tx1, rx1) = mpsc::channel();
    chains.open(tx1);
    let (tx2, rx2) = mpsc::channel();
    chains.open(tx2);
    drop(rx2);
    assert_eq!(chains.nested(7), Ok(()));
    assert_eq!(rx1.try_recv().ok(), Some(7));
    assert_eq!(chains.len(), 1, "the call that stopped waiting is forgotten");
    drop(rx1);
    assert_eq!(chains.nested(8), Err(8), "every call stopped waiting: the chain is gone");
    assert!(chains.is_empty());
    assert_eq!(chains.nested(9), Err(9), "no call waits");
}
