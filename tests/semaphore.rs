//! The fair semaphore on its own: permits handed to waiters in arrival order,
//! withdrawal, and no permit lost whichever way a waiter ends.
//!
//! The semaphore is process-wide state, so everything runs in one test.

#[path = "../src/actors/semaphore.rs"]
mod semaphore;
use std::sync::{Arc, Mutex};

#[test]
fn fifo_handoff_withdraw_and_no_leak() {
    semaphore::set_max(2);
    let a = semaphore::try_acquire().expect("free");
    let b = semaphore::try_acquire().expect("free");
    assert_eq!(semaphore::try_acquire().err(), Some((2, 2)));

    // three waiters, in order; each keeps its permit in `held`
    let order = Arc::new(Mutex::new(Vec::new()));
    let held = Arc::new(Mutex::new(Vec::new()));
    let waiter = |n: u32| {
        let (order, held) = (order.clone(), held.clone());
        semaphore::enqueue(Box::new(move |p| {
            order.lock().unwrap().push(n);
            held.lock().unwrap().push(p);
            None
        }))
    };
    let w1 = waiter(1);
    let _w2 = waiter(2);
    let w3 = waiter(3);
    assert_eq!(semaphore::waiting(), 3);
    // a newcomer does not overtake them, even when a permit is free for an instant
    assert!(semaphore::try_acquire().is_err());

    // the third withdraws; the first is handed the first permit returned
    assert!(semaphore::withdraw(w3));
    assert!(!semaphore::withdraw(w3));
    drop(a);
    assert_eq!(*order.lock().unwrap(), vec![1]);
    assert!(!semaphore::withdraw(w1), "already served");
    assert_eq!(semaphore::current(), 2);

    // a waiter whose caller is gone gives its permit back to the next one
    let gone = semaphore::enqueue(Box::new(Some));
    let _ = gone;
    let _w4 = waiter(4);
    drop(b);
    assert_eq!(*order.lock().unwrap(), vec![1, 2]);
    // (dropped outside the lock: the permit goes straight to the next waiter,
    // whose grant takes that lock)
    let first = held.lock().unwrap().remove(0);
    drop(first);
    assert_eq!(*order.lock().unwrap(), vec![1, 2, 4]);
    assert_eq!(semaphore::waiting(), 0);

    // raising the limit serves waiters at once
    let _w5 = waiter(5);
    assert_eq!(semaphore::waiting(), 1);
    semaphore::set_max(3);
    assert_eq!(*order.lock().unwrap(), vec![1, 2, 4, 5]);

    // every permit comes back
    let all = std::mem::take(&mut *held.lock().unwrap());
    drop(all);
    assert_eq!(semaphore::current(), 0);
    assert_eq!(semaphore::waiting(), 0);

    // many threads against a limit of 4: never more than 4 held, none lost
    semaphore::set_max(4);
    let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (inside, most) = (inside.clone(), most.clone());
            std::thread::spawn(move || {
                for _ in 0..2000 {
                    let (tx, rx) = std::sync::mpsc::channel();
                    match semaphore::try_acquire() {
                        Ok(p) => tx.send(p).unwrap(),
                        Err(_) => {
                            semaphore::enqueue(Box::new(move |p| {
                                tx.send(p).unwrap();
                                None
                            }));
                        }
                    }
                    let p = rx.recv().unwrap();
                    let now = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                    inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                    drop(p);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 4);
    assert_eq!(semaphore::current(), 0);
    assert_eq!(semaphore::waiting(), 0);
}
