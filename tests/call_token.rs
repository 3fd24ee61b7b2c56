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

#[test]
fn claim_answers_an_unanswered_job_once() {
    let t = CallToken::default();
    assert!(t.claim());
    assert!(!t.claim());
    assert!(!t.start());
    assert!(!t.cancel());
    let t = CallToken::default();
    assert!(t.start());
    assert!(t.claim());
    assert!(!t.finish());
}

#[test]
fn claim_loses_to_cancel_and_to_a_reply() {
    let t = CallToken::default();
    assert!(t.cancel());
    assert!(!t.claim());
    let t = CallToken::default();
    assert!(t.start());
    assert!(t.finish());
    assert!(!t.claim());
}
