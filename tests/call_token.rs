//! The race between a reply and a caller giving up: exactly one side wins.

#[path = "../src/actors/token.rs"]
mod token;
use token::CallToken;
use std::sync::Arc;


#[test]
fn reply_wins_then_cancel_fails() {
    let t = CallToken::default();
    assert!(t.start());
    assert!(t.finish());
    assert!(!t.cancel());
}

#[test]
fn cancel_before_start_skips_the_job() {
    let t = CallToken::default();
    assert!(t.cancel());
    assert!(!t.start());
}

#[test]
fn cancel_while_running_suppresses_the_reply() {
    let t = CallToken::default();
    assert!(t.start());
    assert!(t.cancel());
    assert!(!t.finish());
    assert!(t.cancel());
}

#[test]
fn exactly_one_side_wins_under_contention() {
    for _ in 0..2000 {
        let t = Arc::new(CallToken::default());
        assert!(t.start());
        let t2 = t.clone();
        let h = std::thread::spawn(move || t2.cancel());
        let replied = t.finish();
        let cancelled = h.join().unwrap();
        assert!(replied != cancelled, "replied={replied} cancelled={cancelled}");
    }
}
