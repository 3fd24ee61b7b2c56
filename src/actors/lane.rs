//! The request lane of a pinned actor: a lock-free queue the NIF pushes jobs
//! into, drained in batches by the actor's own thread, which polls for more
//! for a short while after each batch (`interp::spin`) before parking again.
//!
//! Waking a parked thread costs far more than the Python call it runs (see
//! `docs/benchmarks.md`), so the actor's ractor mailbox only carries a [`Wake`]
//! when the thread is not already spinning on the lane. Back-to-back callers then
//! find it awake and pay no wake-up at all.
//!
//! Protocol: the NIF pushes, then reads `spinning`; the actor clears `spinning`,
//! then looks at the queue once more. With sequentially consistent ordering on
//! both sides, either the actor sees the job or the NIF sees `spinning == false`
//! and sends a wake (an extra wake is harmless). At most one wake waits in the
//! mailbox at a time (`woken`, cleared by the actor before it looks at the
//! queue), so a burst of pushes while the thread serves leaves one wake behind,
//! not one per job.

use super::job::Job;
use ractor::ActorRef;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The only message in a pinned actor's ractor mailbox: "look at your lane".
#[derive(Debug)]
pub struct Wake;

/// How long a thread keeps polling its lane after a batch before parking.
const SPIN: Duration = Duration::from_micros(40);

/// The producer side, shared by the NIF and the router.
pub struct Lane {
    tx: Sender<Job>,
    spinning: AtomicBool,
    /// A wake-up is in the actor's mailbox and not yet taken: pushes meanwhile
    /// send none (a burst of pushes while the thread serves would otherwise
    /// leave one wake-up per job behind, each costing a drain and a spin).
    woken: AtomicBool,
    /// The actor is stopping: it serves no job from now on (each is
    /// answered `context_stopped` as it is dropped).
    closed: AtomicBool,
    actor: OnceLock<ActorRef<Wake>>,
}

impl Lane {
    /// A new lane and the receiver its actor drains.
    pub fn new() -> (Arc<Lane>, Receiver<Job>) {
        let (tx, rx) = mpsc::channel();
        (
            Arc::new(Lane {
                tx,
                spinning: AtomicBool::new(false),
                woken: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                actor: OnceLock::new(),
            }),
            rx,
        )
    }

    /// Connects the lane to the actor that drains it (once, right after spawning).
    pub fn attach(&self, actor: ActorRef<Wake>) {
        let _ = self.actor.set(actor);
    }

    /// Queues `job`; gives it back if the actor is gone.
    pub fn push(&self, job: Job) -> Result<(), Job> {
        self.tx.send(job).map_err(|mpsc::SendError(j)| j)?;
        if !self.spinning.load(Ordering::SeqCst) && !self.woken.swap(true, Ordering::SeqCst) {
            if let Some(a) = self.actor.get() {
                let _ = a.cast(Wake);
            }
        }
        Ok(())
    }

    /// No job in the lane is served from now on, not even one taken already:
    /// the actor is stopping. Jobs left are answered `context_stopped` as
    /// they are dropped, on the actor's thread.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Serves everything in the lane, then spins for more for a short while; returns
    /// when the lane stayed empty. Runs on the actor's thread.
    pub fn drain(&self, rx: &Receiver<Job>, mut serve: impl FnMut(Job)) {
        // The wake-up that brought us here is taken: a push from now on sends
        // a new one unless we are spinning (we look at the queue after this).
        self.woken.store(false, Ordering::SeqCst);
        let closed = &self.closed;
        let mut serve = |job: Job| {
            if closed.load(Ordering::SeqCst) {
                // dropped here: answered `context_stopped`
                return;
            }
            super::affinity::serving(job.caller_cpu);
            serve(job)
        };
        loop {
            while let Ok(job) = rx.try_recv() {
                serve(job);
            }
            self.spinning.store(true, Ordering::SeqCst);
            let next = crate::interp::spin::spin(SPIN, || rx.try_recv().ok());
            self.spinning.store(false, Ordering::SeqCst);
            match next.or_else(|| rx.try_recv().ok()) {
                Some(job) => serve(job),
                None => {
                    super::affinity::parking();
                    return;
                }
            }
        }
    }
}

/// What a pinned actor owns and how it drains its lane. In the default build the
/// actor runs `work` inline. In console builds the state lives in one local task
/// named after the actor (`context-3`, `executor-1`), on the same thread, so
/// tokio-console shows each actor's own busy and idle time: ractor 0.16 spawns a
/// thread-local actor's processing loop unnamed. Either way a panic in `work`
/// fails the actor, and [`Worker::shutdown`] drops the state on the actor's
/// thread before the actor is reported stopped.
pub struct Worker<S: 'static> {
    #[cfg(not(feature = "console"))]
    state: Option<S>,
    #[cfg(feature = "console")]
    wake: Option<tokio::sync::mpsc::UnboundedSender<tokio::sync::oneshot::Sender<()>>>,
    #[cfg(feature = "console")]
    task: Option<tokio::task::JoinHandle<()>>,
    #[cfg(not(feature = "console"))]
    work: fn(&mut S),
    /// (The console build's task holds the state and `work`.)
    #[cfg(feature = "console")]
    _state: std::marker::PhantomData<fn(&mut S)>,
}

impl<S: 'static> Worker<S> {
    /// Takes the actor's state; call on the actor's thread (its `pre_start`).
    pub fn new(name: Option<String>, state: S, work: fn(&mut S)) -> Self {
        #[cfg(not(feature = "console"))]
        {
            let _ = name;
            Worker { state: Some(state), work }
        }
        #[cfg(feature = "console")]
        {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<tokio::sync::oneshot::Sender<()>>();
            let mut builder = tokio::task::Builder::new();
            if let Some(n) = name.as_deref() {
                builder = builder.name(n);
            }
            let mut state = state;
            let task = builder
                .spawn_local(async move {
                    while let Some(done) = rx.recv().await {
                        work(&mut state);
                        let _ = done.send(());
                    }
                })
                .expect("cannot spawn an actor's task");
            Worker { wake: Some(tx), task: Some(task), _state: std::marker::PhantomData }
        }
    }

    /// Drains once (the actor's mailbox said so).
    pub async fn run(&mut self) {
        #[cfg(not(feature = "console"))]
        if let Some(s) = self.state.as_mut() {
            (self.work)(s);
        }
        #[cfg(feature = "console")]
        {
            let (done, finished) = tokio::sync::oneshot::channel();
            let sent = self.wake.as_ref().is_some_and(|w| w.send(done).is_ok());
            if !sent || finished.await.is_err() {
                // The task is gone: it panicked; fail the actor with its panic.
                self.rethrow().await;
            }
        }
    }

    /// Drops the state, on the actor's thread, and waits until it is gone.
    pub async fn shutdown(&mut self) {
        #[cfg(not(feature = "console"))]
        drop(self.state.take());
        #[cfg(feature = "console")]
        {
            self.wake = None;
            self.rethrow().await;
        }
    }

    #[cfg(feature = "console")]
    async fn rethrow(&mut self) {
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
            }
        }
    }
}
