//! The running executors, and how a job reaches one.
//!
//! Started and stopped from the actor runtime; read lock-free-ish (an `RwLock`
//! read of an `Arc`) by the NIF to pick a mailbox round-robin.

use super::executor::{Executor, ExecutorArgs};
use super::job::Job;
use ractor::concurrency::JoinHandle;
use ractor::thread_local::{ThreadLocalActor, ThreadLocalActorSpawner};
use ractor::ActorRef;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// The most executor threads a node may run.
pub const MAX_EXECUTORS: usize = 64;

struct Executors {
    refs: Vec<ActorRef<Job>>,
    next: AtomicUsize,
}

static EXECUTORS: RwLock<Option<Arc<Executors>>> = RwLock::new(None);
static HANDLES: std::sync::Mutex<Vec<JoinHandle<()>>> = std::sync::Mutex::new(Vec::new());

/// Why a job could not be enqueued.
pub enum SubmitError {
    NotStarted(Job),
}

/// Puts `job` in the next executor's mailbox.
pub fn submit(job: Job) -> Result<(), SubmitError> {
    let guard = EXECUTORS.read().unwrap_or_else(|e| e.into_inner());
    let Some(pool) = guard.as_ref() else {
        return Err(SubmitError::NotStarted(job));
    };
    let i = pool.next.fetch_add(1, Ordering::Relaxed) % pool.refs.len();
    pool.refs[i].cast(job).map_err(|e| match e {
        ractor::MessagingErr::SendErr(job) => SubmitError::NotStarted(job),
        _ => unreachable!("cast only fails with SendErr for a local actor"),
    })
}

/// How many executors are running.
pub fn size() -> usize {
    EXECUTORS.read().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |p| p.refs.len())
}

/// Starts `n` executors, each on its own pinned thread. Runs on the actor runtime.
pub async fn start(n: usize) -> Result<(), String> {
    if n == 0 || n > MAX_EXECUTORS {
        return Err(format!("num_executors must be between 1 and {MAX_EXECUTORS}, got {n}"));
    }
    if size() > 0 {
        return Ok(());
    }
    let mut refs = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for index in 0..n {
        let spawner = ThreadLocalActorSpawner::new();
        let name = format!("executor-{}", index + 1);
        match Executor::spawn(Some(name), ExecutorArgs { index }, spawner).await {
            Ok((r, h)) => {
                refs.push(r);
                handles.push(h);
            }
            Err(e) => {
                for r in &refs {
                    r.stop(None);
                }
                for h in handles {
                    let _ = h.await;
                }
                return Err(format!("starting executor {}: {e}", index + 1));
            }
        }
    }
    *EXECUTORS.write().unwrap_or_else(|e| e.into_inner()) =
        Some(Arc::new(Executors { refs, next: AtomicUsize::new(0) }));
    HANDLES.lock().unwrap_or_else(|e| e.into_inner()).extend(handles);
    Ok(())
}

/// Stops every executor after it finishes the job in hand and waits for their
/// threads' actors to end. Jobs still queued are dropped (their callers' tokens
/// are never answered, so callers see `{error, not_started}` only for new calls).
pub async fn stop() {
    let pool = EXECUTORS.write().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(pool) = pool {
        for r in &pool.refs {
            r.drain().ok();
        }
    }
    let handles: Vec<_> = std::mem::take(&mut *HANDLES.lock().unwrap_or_else(|e| e.into_inner()));
    for h in handles {
        let _ = h.await;
    }
}
