//! A request in flight: what the NIF enqueues and an actor answers.
//!
//! The caller keeps a [`CallToken`] (inside a NIF resource) and the job keeps
//! another reference to it. Exactly one side wins the race between "the reply is
//! being sent" and "the caller gave up" (timeout, or the caller died and its
//! resource was collected), so a late reply never lands in a mailbox that stopped
//! waiting for it, and a job whose caller is gone is skipped without running.
//!
//! A job dropped without an answer (its actor stopped or failed with the job in
//! its mailbox) answers `{error, context_stopped | context_failed}` from its
//! destructor: no caller waits for a reply that cannot come.
//!
//! The job carries its request as plain data (decoded by the NIF), hands it to
//! its thread's [`Engine`] and encodes what comes back (`nif::types`) into the reply:
//! no Python object is touched here.

use super::callback::{Accept, JobCaller, JobTag};
use super::engine::Engine;
use crate::atoms;
use crate::interp::bridge::{Caller, Nested, Place, Run, RunMark};
use crate::interp::exec::{Op, Outcome};
use crate::interp::host::Pulled;
use crate::interp::value::{Failure, Request};
use crate::nif::types::failure;
use crate::probe::{self, Stage};
use rustler::env::SavedTerm;
use rustler::{Encoder, Env, LocalPid, OwnedEnv, Term};
use std::sync::Arc;

use super::semaphore::Permit;
use super::stats::SlotStats;
use super::stream::{After, Stream};
pub use super::token::CallToken;
use super::token::RunGuard;

/// What the actor does with a job.
#[derive(Clone, Copy, Debug)]
pub enum Work {
    /// Run Python.
    Python(Op),
    /// Send the payload straight back: the floor of the mailbox round trip.
    Echo,
    /// Fail the actor serving it (fault injection for supervision tests; only in
    /// builds with the `test-hooks` feature).
    #[cfg(feature = "test-hooks")]
    Crash,
    /// Send the next batch of the job's stream.
    StreamPull,
    /// Close the job's stream in its interpreter.
    StreamClose,
    /// Step the target's asyncio loop once (queued by its driver).
    LoopTick,
    /// Cancel asyncio task N (its caller gave up).
    TaskCancel(u64),
    /// Release the object kept by reference under this id (its last Erlang
    /// copy was collected).
    RefDrop(u64),
}

/// Which globals a job runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// The main interpreter's `__main__`, served by the executors.
    Main,
    /// Context `n` (1-based).
    Context(u32),
}

impl Target {
    /// 0 for the main interpreter, N for context N.
    pub fn key(self) -> u32 {
        match self {
            Target::Main => 0,
            Target::Context(n) => n,
        }
    }
}

/// What a job carries besides its tag.
pub enum Payload {
    /// What Python is asked to run.
    Request(Request),
    /// A term sent straight back (`Work::Echo`).
    Echo(SavedTerm),
    /// Nothing (the runtime's own jobs: stream pulls, loop ticks).
    None,
}

/// One request, self-contained: its tag lives in its own environment, which also
/// carries the reply.
pub struct Job {
    /// Back to the pool (`actors::envs`) when the job is dropped.
    env: super::envs::Pooled,
    work: Work,
    payload: Payload,
    tag: SavedTerm,
    reply_to: LocalPid,
    token: Arc<CallToken>,
    pub target: Target,
    /// The load figures of the mailbox this job was put in.
    pub stats: Option<Arc<SlotStats>>,
    settled: std::sync::atomic::AtomicBool,
    /// When the serving thread took the job: its busy time is counted when the
    /// job settles, before the reply leaves, so a caller that got its answer
    /// finds the time already in the load figures.
    started_at: Option<std::time::Instant>,
    /// A cast: a successful result is dropped, not sent (errors still are,
    /// to the cast sink that `reply_to` then names).
    quiet_ok: bool,
    /// The stream a `StreamStart` call registers, or a pull or close job serves.
    stream: Option<Arc<Stream>>,
    /// An async call whose task now answers its caller: the job itself must
    /// not (not even from its destructor).
    handed_over: std::cell::Cell<bool>,
    /// A job of a callback chain: where it runs on the suspended thread, and what
    /// that thread accepts (set by `CallbackHandle::offer`).
    pub(crate) chain: Option<(Place, Accept)>,
    /// The core the job was made on (its caller's scheduler, for a request;
    /// -1 for the runtime's own): see `affinity::serving`.
    pub caller_cpu: i32,
    /// The life of its context it was queued for, when that context is a
    /// namespace of the executors (stamped by `router::submit`; 0 otherwise).
    pub life: u64,
    /// The `erlang.call`s of its Python code go to the cast sink, not to
    /// `reply_to`: a `spawn_call`'s, since its caller waits on it only once it
    /// awaits. (A flag, not the sink's pid: the job stays within the cache
    /// lines it had, and a restarted sink is found by name.)
    callbacks_to_sink: bool,
}

impl Job {
    /// Copies `tag` (and an echo's term) into an environment of the pool; returns the
    /// job and the caller's half of its token.
    pub fn new(work: Work, target: Target, payload: Result<Request, Term<'_>>, tag: Term<'_>, reply_to: LocalPid) -> (Job, Arc<CallToken>) {
        let env = super::envs::Pooled::default();
        let payload = match payload {
            Ok(r) => Payload::Request(r),
            Err(t) => Payload::Echo(env.save(t)),
        };
        let tag = env.save(tag);
        let token = Arc::new(CallToken::default());
        let job = Job {
            env,
            work,
            payload,
            tag,
            reply_to,
            token: token.clone(),
            target,
            stats: None,
            settled: Default::default(),
            started_at: None,
            quiet_ok: false,
            stream: None,
            handed_over: Default::default(),
            chain: None,
            caller_cpu: super::affinity::current_cpu(),
            life: 0,
            callbacks_to_sink: false,
        };
        (job, token)
    }

    /// The job as a cast: errors (and the Erlang calls its Python code makes) go
    /// to `sink`; a successful result is dropped.
    pub fn cast(mut self, sink: LocalPid) -> Job {
        self.reply_to = sink;
        self.quiet_ok = true;
        self
    }

    /// The job as the start of `stream` (its op is `StreamStart`): once it has
    /// answered `started`, pulls follow.
    pub fn starting(mut self, stream: Arc<Stream>) -> Job {
        self.stream = Some(stream);
        self
    }

    /// A pull or close job of `stream`, served where the stream lives.
    pub fn for_stream(work: Work, stream: Arc<Stream>) -> Job {
        Job::internal(work, stream.target, stream.owner, Some(stream))
    }

    /// A tick or a task cancel for `target`'s asyncio loop (answers nobody;
    /// `owner` only fills the field).
    pub fn loop_work(work: Work, target: Target, owner: LocalPid) -> Job {
        Job::internal(work, target, owner, None)
    }

    /// A job the runtime makes for itself: no payload, no permit, no caller
    /// waiting on its token.
    fn internal(work: Work, target: Target, owner: LocalPid, stream: Option<Arc<Stream>>) -> Job {
        let env = super::envs::Pooled::default();
        let tag = env.run(|e| env.save(atoms::ok().to_term(e)));
        Job {
            env,
            work,
            payload: Payload::None,
            tag,
            reply_to: owner,
            token: Arc::default(),
            target,
            stats: None,
            settled: Default::default(),
            started_at: None,
            quiet_ok: false,
            stream,
            handed_over: Default::default(),
            chain: None,
            caller_cpu: -1,
            life: 0,
            callbacks_to_sink: false,
        }
    }

    /// The module a call names (for routing and traces).
    pub fn request(&self) -> Option<&Request> {
        match &self.payload {
            Payload::Request(r) => Some(r),
            _ => None,
        }
    }

    /// Jobs of an asyncio loop on the main interpreter all go to its first
    /// executor, so its loop is never stepped from two threads at once.
    pub fn pinned_to_first_executor(&self) -> bool {
        matches!(self.work, Work::LoopTick | Work::TaskCancel(_) | Work::Python(Op::AsyncCall { .. } | Op::AsyncStream { .. }))
    }

    /// Promises the job's caller, which waits for it with no timer, a reply or
    /// a `{py_late, Tag}` nudge (`actors::late`); `tag` is its integer tag.
    pub(super) fn promise(&self, tag: i64) -> super::late::Promise {
        self.token.promise();
        super::late::Promise::new(self.token.clone(), self.reply_to, tag)
    }

    /// Whether `p` is this job's promise.
    pub(super) fn is_promised_by(&self, p: &super::late::Promise) -> bool {
        Arc::ptr_eq(&self.token, &p.token)
    }

    /// The job with its permit (see `semaphore::enqueue`), kept by its token
    /// (see [`CallToken::hold`]): returned just before the reply is sent, when
    /// the job is dropped however it ends, or when its caller gives up before
    /// it starts. Calls made inside a callback chain hold none (the chain does).
    pub fn with_permit(self, permit: Permit) -> Job {
        self.token.hold(permit);
        self
    }

    /// Gives the job's permit back now (it could not be queued): the next
    /// waiter, if any, is handed one.
    pub fn give_back_permit(&self) {
        self.token.release_permit();
    }

    /// Whether the caller gave up (timed out, died) before the job ran.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Answers a job that waited for a permit but cannot be queued now (the
    /// application stopped, or its context is gone after a restart):
    /// `{error, not_started | {no_context, N} | context_stopped}`. From a BEAM scheduler thread (a
    /// permit may be handed on there) the answer is sent from the actor runtime:
    /// a scheduler thread cannot send from a job's environment.
    pub fn refuse(self, why: super::router::SubmitError) {
        if rustler::thread::is_scheduler_thread() {
            super::runtime::get().spawn(async move { self.refuse(why) });
            return;
        }
        if !self.token.claim() {
            return;
        }
        self.release_permit();
        self.env.run(|env| {
            let msg = (atoms::py_reply(), self.tag.load(env), (atoms::error(), why.reason(env))).encode(env);
            send(env, &self.reply_to, msg);
        });
    }

    /// Drops a job that never reached a mailbox, without replying (the NIF tells
    /// its caller directly; a BEAM thread may not send from a process-less env).
    pub fn abandon(self) {
        self.token.cancel();
    }

    /// Runs the job on `host`, in the globals `place` names, and replies, unless
    /// the caller gave up.
    pub fn serve(mut self, host: &mut Engine, place: Place) {
        let taken = probe::now();
        if let Some(s) = &self.stats {
            s.started();
        }
        if !self.token.start() {
            return;
        }
        let t0 = std::time::Instant::now();
        self.started_at = Some(t0);
        match self.work {
            Work::Echo => {
                probe::add(Stage::Start, taken);
                self.echo();
                probe::done("serve echo");
            }
            #[cfg(feature = "test-hooks")]
            Work::Crash => panic!("crash requested for a supervision test"),
            Work::StreamPull => self.pull(host, place),
            Work::LoopTick => {
                let key = self.target.key();
                // Tasks whose callers gave up are cancelled before the step
                // can resume them (see `tasks::to_cancel`).
                for tid in super::tasks::to_cancel(key) {
                    host.cancel_task(tid);
                }
                // Registered as what runs here, as a call is: a task's step
                // that never awaits is reached by `py:interrupt/1` and by a
                // stop (the task ends with `KeyboardInterrupt`).
                self.token.steps_loop(key);
                let ticked = self.registered(host, |host| host.loop_tick(place, key)).and_then(|(t, _)| t);
                if let Some((sleep, fd)) = ticked {
                    super::looper::arm(self.target, host.ids().0, fd, self.reply_to, super::looper::Sleep::from_secs(sleep), true);
                }
                self.token.finish();
            }
            Work::TaskCancel(tid) => {
                // Unless a loop step cancelled it first (and stepped it).
                if super::tasks::cancelled(tid) {
                    host.cancel_task(tid);
                    // The cancellation is delivered by the loop's next step.
                    if let Some(fd) = host.loop_fd(self.target.key()) {
                        super::looper::arm(self.target, host.ids().0, fd, self.reply_to, super::looper::Sleep::None, false);
                    }
                }
                self.token.finish();
            }
            Work::StreamClose => {
                if let Some(s) = &self.stream {
                    host.stream_close(s.id);
                }
                self.token.finish();
                self.release_permit();
            }
            Work::RefDrop(id) => {
                host.release_ref(place, id);
                self.token.finish();
            }
            Work::Python(op) => {
                let span = tracing::debug_span!(target: "erlang_python::request", "request",
                    op = ?op, context = ?self.target, caller = tracing::field::Empty,
                    module = tracing::field::Empty, function = tracing::field::Empty,
                    duration_us = tracing::field::Empty);
                // Described before running: the reply's enif_send invalidates the
                // job's terms.
                let desc = (!span.is_disabled() || super::trace::watching_slow()).then(|| self.describe());
                if let (false, Some((caller, module, function))) = (span.is_disabled(), &desc) {
                    span.record("caller", caller.as_str());
                    span.record("module", module.as_str());
                    span.record("function", function.as_str());
                }
                let _entered = span.enter();
                probe::add(Stage::Start, taken);
                // Not run if the caller gave up while the job waited for its
                // interpreter.
                self.registered(host, |host| self.serve_python(host, place, op));
                probe::done("serve call");
                let us = t0.elapsed().as_micros() as u64;
                span.record("duration_us", us);
                if let (true, Some((caller, module, function))) = (super::trace::is_slow(us), &desc) {
                    tracing::warn!(target: "erlang_python::slow", op = ?op, context = ?self.target,
                        caller = caller.as_str(), module = module.as_str(), function = function.as_str(),
                        duration_us = us, "slow call");
                }
            }
        }
    }

    /// The job's `erlang.call`s go to the cast sink, which runs each in a
    /// process of its own; its reply still goes to its caller.
    pub fn callbacks_to_sink(mut self) -> Job {
        self.callbacks_to_sink = true;
        self
    }

    /// The caller (as `<0.N.0>`), module and function of a request, for traces:
    /// for `eval`/`exec` the module is empty and the function is the start of the code.
    fn describe(&self) -> (String, String, String) {
        let caller = self.env.run(|env| format!("{:?}", self.reply_to.encode(env)));
        let (module, function) = self.request().map(Request::describe).unwrap_or_default();
        (caller, module, function)
    }

    /// The Erlang side of this job, for the `erlang.call`s of its Python code:
    /// make it on the serving thread, and retire it when the code has returned.
    fn caller(&self, accept: Accept) -> Arc<JobCaller> {
        let caller = JobCaller::new(self.reply_to, JobTag::new(&self.env, &self.tag), self.token.clone(), accept, self.target);
        Arc::new(if self.callbacks_to_sink { caller.callbacks_to_sink() } else { caller })
    }

    /// What the job's Python code failing with `f` is answered: the context
    /// stopping, if that is what interrupted it (calls and streams alike).
    fn failure(&self, f: Failure) -> Failure {
        if self.token.was_stopped() {
            Failure::ContextStopped
        } else {
            f
        }
    }

    /// Runs `body` registered as what runs on `host`'s thread now, so that an
    /// interruption (a timeout, `py:interrupt/1`) can aim at it: `None` if
    /// the caller gave up before it ran, else its result and whether an
    /// interruption was raised. One Python did not deliver before `body`
    /// ended is cleared, so that it does not reach the next job.
    fn registered<R>(&self, host: &mut Engine, body: impl FnOnce(&mut Engine) -> R) -> Option<(R, bool)> {
        // Marks the run ended however it ends, a panic included, so no
        // interruption aims at a job (or an interpreter) that is gone.
        let run = RunGuard::new(&self.token);
        let (i, t) = host.ids();
        if !self.token.running_on(i, t) {
            return None;
        }
        if let Some(s) = &self.stats {
            s.set_current(Some((self.target.key(), self.token.clone())));
        }
        let out = body(host);
        if let Some(s) = &self.stats {
            s.set_current(None);
        }
        let interrupted = run.finish();
        if interrupted {
            host.clear_pending_interrupt();
        }
        Some((out, interrupted))
    }

    fn serve_python(&self, host: &mut Engine, place: Place, op: Op) {
        let accept = match place {
            Place::Own => Accept::Same(self.target),
            Place::Main | Place::Shared(_) => {
                Accept::MainInterp { shared_contexts: crate::interp::runtime::mode() == Some(crate::interp::runtime::Mode::MultiExecutor) }
            }
        };
        let Payload::Request(req) = &self.payload else {
            self.answer(op, Err(Failure::BadArgument("malformed request".into())), Some(host));
            return;
        };
        let t = probe::now();
        let caller = self.caller(accept);
        probe::add(Stage::Caller, t);
        let t = probe::now();
        let result = {
            let _retire = caller.retiring();
            host.serve(place, op, req, caller.clone())
        };
        probe::add(Stage::Python, t);
        self.answer(op, result, Some(host));
        // Freed once the reply is on its way, not before it.
        drop(caller);
    }

    fn echo(&self) {
        let t = probe::now();
        self.env.run(|env| {
            let payload = match &self.payload {
                Payload::Echo(t) => t.load(env),
                _ => atoms::undefined().encode(env),
            };
            let msg = (atoms::py_echo(), self.tag.load(env), payload).encode(env);
            if self.token.finish() {
                self.release_permit();
                probe::add(Stage::Encode, t);
                let t = probe::now();
                send(env, &self.reply_to, msg);
                probe::add(Stage::Send, t);
            }
        })
    }

    /// The job's work is over: its permit goes back and its mailbox counts it
    /// done, once, just before the reply is sent (so a caller that got its answer
    /// finds both already returned) or when the job is dropped.
    fn release_permit(&self) {
        if self.settled.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        self.token.release_permit();
        if let Some(s) = &self.stats {
            if let Some(t0) = self.started_at {
                s.busy(t0.elapsed());
            }
            s.done();
        }
    }

    /// Answers the caller with what Python gave: `{py_reply, Tag, {ok, V}}`,
    /// `{py_reply, Tag, {error, Reason}}` or, when Python raised,
    /// `{py_reply, Tag, {error, Reason}, Traceback}`. An async call's task
    /// answers later instead; a stream's start is followed by its pulls.
    fn answer(&self, op: Op, result: Result<Outcome, Failure>, host: Option<&Engine>) {
        let t = probe::now();
        let result = result.map_err(|f| self.failure(f));
        if let (Ok(Outcome::Scheduled), Op::AsyncCall { task, key } | Op::AsyncStream { task, key }) = (&result, op) {
            self.hand_over(host, task, key);
            return;
        }
        if result.is_ok() && self.quiet_ok {
            if self.token.finish() {
                self.release_permit();
            }
            return;
        }
        let started = matches!(result, Ok(Outcome::Started));
        self.env.run(|env| {
            let tag = self.tag.load(env);
            let msg = match &result {
                Ok(outcome) => (atoms::py_reply(), tag, (atoms::ok(), outcome_term(env, outcome, self.target, self.reply_to))).encode(env),
                Err(f) => match failure::encode(env, f) {
                    (reason, Some(tb)) => (atoms::py_reply(), tag, (atoms::error(), reason), tb).encode(env),
                    (reason, None) => (atoms::py_reply(), tag, (atoms::error(), reason)).encode(env),
                },
            };
            if self.token.finish() {
                self.release_permit();
                probe::add(Stage::Encode, t);
                let t = probe::now();
                send(env, &self.reply_to, msg);
                probe::add(Stage::Send, t);
                if let (true, Some(s)) = (started, &self.stream) {
                    if s.flow.started() {
                        queue_pull(s.clone());
                    }
                }
            }
        })
    }

    /// The job's coroutine is now asyncio task `task` on loop `key`: the task
    /// answers the caller when done (`Erlang::task_done`); the job gives back its
    /// permit and has the loop stepped.
    fn hand_over(&self, host: Option<&Engine>, task: u64, key: u32) {
        self.handed_over.set(true);
        let tag = self.env.run(|env| self.tag.load(env).to_binary().as_slice().to_vec());
        super::tasks::register(task, super::tasks::Waiter { owner: self.reply_to, tag, token: self.token.clone(), target: self.target });
        let cancel = self.token.is_cancelled() && super::tasks::take(task).is_some();
        self.release_permit();
        match host {
            Some(host) => {
                if cancel {
                    host.cancel_task(task);
                }
                if let Some(fd) = host.loop_fd(key) {
                    super::looper::arm(self.target, host.ids().0, fd, self.reply_to, super::looper::Sleep::None, false);
                }
            }
            // Scheduled from inside a callback chain: the loop's own thread steps it.
            None => {
                let work = if cancel {
                    super::tasks::given_up(task, key);
                    Work::TaskCancel(task)
                } else {
                    Work::LoopTick
                };
                let _ = super::router::submit(Job::loop_work(work, self.target, self.reply_to));
            }
        }
    }

    /// Sends the next batch of this pull job's stream, then queues the next
    /// pull, pauses (`{py_passive, Ref}`) or stops.
    fn pull(&self, host: &mut Engine, place: Place) {
        rustler::atoms! { py_chunk, py_end, py_error, py_passive }
        /// Items per pull job at most (a batch also ends after
        /// `interp::stream::PULL_TIME`): other requests of the context run
        /// between batches.
        const BATCH: u64 = 64;
        self.token.start();
        let Some(s) = self.stream.clone() else { return };
        let reference = |e| stream_ref(e, &s.tag);
        let mut out = OwnedEnv::new();
        let mut stopped = false;
        // Registered as what runs here, as a call is, so that
        // `py:interrupt/1` reaches the generator: it ends with the
        // exception, sent as `{py_error, Ref, {'KeyboardInterrupt', _}}`.
        // Each item is sent unless the stream was cancelled meanwhile (or its
        // consumer died): then the batch stops at once, and the close queued
        // by the cancel runs the generator's `finally` next.
        s.pulling(Some(self.token.clone()));
        let ran = self.registered(host, |host| {
            host.pull(place, s.id, s.flow.batch(BATCH), |step| match step {
                Pulled::Item(v) => s.flow.send_item(|| {
                    let _ = out.send_and_clear(&s.owner, |e| (py_chunk(), reference(e), v.encode(e)).encode(e));
                }),
                Pulled::End => {
                    stopped = true;
                    s.flow.send_last(|| {
                        let _ = out.send_and_clear(&s.owner, |e| (py_end(), reference(e)).encode(e));
                    })
                }
                Pulled::Failed(f) => {
                    stopped = true;
                    let f = self.failure(f);
                    s.flow.send_last(|| {
                        let _ = out.send_and_clear(&s.owner, |e| (py_error(), reference(e), failure::encode(e, &f).0).encode(e));
                    })
                }
                Pulled::Gone => {
                    stopped = true;
                    s.flow.send_last(|| {
                        let _ = out.send_and_clear(&s.owner, |e| stream_stopped_message(e, &s));
                    })
                }
            })
        });
        s.pulling(None);
        if let Some(((), true)) = ran {
            // Raised, but not delivered before the batch ended (raising
            // waits for the GIL, which a batch may keep to its end): cleared,
            // and the stream ends with it all the same, its generator closed.
            if !stopped {
                stopped = true;
                host.stream_close(s.id);
                let f =
                    self.failure(Failure::Python { name: "KeyboardInterrupt".into(), message: String::new(), traceback: String::new() });
                s.flow.send_last(|| {
                    let _ = out.send_and_clear(&s.owner, |e| (py_error(), reference(e), failure::encode(e, &f).0).encode(e));
                });
            }
        }
        let after = if stopped {
            After::Stop
        } else {
            s.flow.after_batch(|| {
                let _ = out.send_and_clear(&s.owner, |e| (py_passive(), reference(e)).encode(e));
            })
        };
        self.token.finish();
        if after == After::Continue {
            queue_pull(s);
        }
    }
}

/// What `{ok, _}` carries for each outcome.
fn outcome_term<'a>(env: Env<'a>, outcome: &Outcome, target: Target, owner: LocalPid) -> Term<'a> {
    rustler::atoms! { started, scheduled }
    match outcome {
        Outcome::Value(v) => v.encode(env),
        Outcome::Done => atoms::ok().encode(env),
        Outcome::Started => started().encode(env),
        Outcome::Scheduled => scheduled().encode(env),
        Outcome::Ref(id) => rustler::ResourceArc::new(super::refs::RefHandle { target, id: *id, owner }).encode(env),
    }
}

/// A job of a callback chain, run by the thread suspended in the chain's
/// `erlang.call`, already attached to its interpreter.
impl Nested for Job {
    fn place(&self) -> Place {
        self.chain.map_or(Place::Own, |(p, _)| p)
    }

    fn mark(&self) -> Option<Arc<dyn RunMark>> {
        Some(self.token.clone())
    }

    fn serve(self: Box<Self>, run: &mut Run<'_>) {
        if !self.token.start() {
            return;
        }
        match self.work {
            Work::Echo => self.echo(),
            #[cfg(feature = "test-hooks")]
            Work::Crash => panic!("crash requested for a supervision test"),
            // Stream, loop and release jobs never belong to a callback chain.
            Work::StreamPull | Work::StreamClose | Work::LoopTick | Work::TaskCancel(_) | Work::RefDrop(_) => {}
            Work::Python(op) => {
                let accept = self.chain.map_or(Accept::Same(self.target), |(_, a)| a);
                let result = match &self.payload {
                    Payload::Request(req) => {
                        let caller = self.caller(accept);
                        let _retire = caller.retiring();
                        run(op, req, &(caller.clone() as Arc<dyn Caller>))
                    }
                    _ => Err(Failure::BadArgument("malformed request".into())),
                };
                self.answer(op, result, None);
            }
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.release_permit();
        if self.handed_over.get() || matches!(self.work, Work::LoopTick | Work::TaskCancel(_) | Work::RefDrop(_)) {
            return;
        }
        if let (Work::StreamPull | Work::StreamClose, Some(s)) = (self.work, &self.stream) {
            // A pull dropped unserved (its context stopped): the stream is over.
            if matches!(self.work, Work::StreamPull) && !rustler::thread::is_scheduler_thread() && self.token.claim() {
                stream_stopped(s);
            }
            return;
        }
        if rustler::thread::is_scheduler_thread() || !self.token.claim() {
            return;
        }
        self.release_permit();
        let reason = if std::thread::panicking() { atoms::context_failed() } else { atoms::context_stopped() };
        self.env.run(|env| {
            let msg = (atoms::py_reply(), self.tag.load(env), (atoms::error(), reason)).encode(env);
            send(env, &self.reply_to, msg);
        });
    }
}

/// A nested request's token, as the interpreter room sees it.
impl RunMark for super::token::CallToken {
    fn running_on(&self, interp: usize, thread: u64) -> bool {
        super::token::CallToken::running_on(self, interp, thread)
    }
    fn ran(&self) -> bool {
        super::token::CallToken::ran(self)
    }
}

/// Queues the next pull of `s` where it lives; if it cannot be queued (its
/// context is gone) the consumer gets `{py_error, Ref, context_stopped}`.
fn queue_pull(s: Arc<Stream>) {
    if let Err((job, _)) = super::router::submit(Job::for_stream(Work::StreamPull, s.clone())) {
        job.token.claim();
        drop(job);
        stream_stopped(&s);
    }
}

/// A stream's reference (as the consumer holds it) in `e`.
fn stream_ref<'a>(e: Env<'a>, tag: &[u8]) -> Term<'a> {
    e.binary_to_term(tag).map(|(t, _)| t).unwrap_or_else(|| atoms::undefined().to_term(e))
}

/// `{py_error, Ref, context_stopped}`, once, unless the stream is over.
fn stream_stopped(s: &Stream) {
    s.flow.send_last(|| {
        let _ = OwnedEnv::new().send_and_clear(&s.owner, |e| stream_stopped_message(e, s));
    });
}

/// What a stream's consumer gets when the stream's context is gone:
/// `{py_error, Ref, context_stopped}`.
pub fn stream_stopped_message<'a>(e: Env<'a>, s: &Stream) -> Term<'a> {
    rustler::atoms! { py_error }
    (py_error(), stream_ref(e, &s.tag), atoms::context_stopped()).encode(e)
}

/// Sends `msg`, built in the job's own environment, without copying it.
fn send(env: Env<'_>, to: &LocalPid, msg: Term<'_>) {
    // SAFETY: actor threads are not BEAM threads, so the caller env is NULL; `env`
    // is the process-independent environment `msg` lives in, and no term of it is
    // used after enif_send (the job is answered exactly once, by its token).
    unsafe {
        rustler::sys::enif_send(std::ptr::null_mut(), to.as_c_arg(), env.as_c_arg(), msg.as_c_arg());
    }
}
