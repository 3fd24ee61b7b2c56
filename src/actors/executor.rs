//! An executor: a ractor actor pinned to its own OS thread that owns one
//! interpreter thread state and answers jobs from its mailbox.
//!
//! In `multi_executor` mode every executor holds a thread state of the main
//! interpreter and they take turns on its GIL; the NIF spreads jobs round-robin.

use super::job::{Job, Work};
use crate::atoms;
use crate::interp::exec::{self, Namespace};
use crate::interp::thread::PinnedInterp;
use ractor::thread_local::ThreadLocalActor;
use ractor::{ActorProcessingErr, ActorRef};
use rustler::{Encoder, Env, LocalPid, Term};

/// The executor actor (stateless itself; its state lives on its thread).
#[derive(Default)]
pub struct Executor;

/// Start-up arguments: which executor this is.
pub struct ExecutorArgs {
    pub index: usize,
}

/// Owned by the executor's thread: its interpreter and the globals it serves.
pub struct ExecutorState {
    interp: PinnedInterp,
    namespace: Option<Namespace>,
}

impl ThreadLocalActor for Executor {
    type Msg = Job;
    type State = ExecutorState;
    type Arguments = ExecutorArgs;

    async fn pre_start(&self, _me: ActorRef<Job>, args: ExecutorArgs) -> Result<ExecutorState, ActorProcessingErr> {
        let interp = PinnedInterp::main();
        let namespace = interp
            .run(Namespace::main)
            .map_err(|e| format!("executor {}: {e}", args.index))?;
        Ok(ExecutorState { interp, namespace: Some(namespace) })
    }

    async fn handle(&self, _me: ActorRef<Job>, job: Job, state: &mut ExecutorState) -> Result<(), ActorProcessingErr> {
        serve(state, job);
        Ok(())
    }

    async fn post_stop(&self, _me: ActorRef<Job>, state: &mut ExecutorState) -> Result<(), ActorProcessingErr> {
        if let Some(ns) = state.namespace.take() {
            state.interp.run(|py| ns.release(py));
        }
        Ok(())
    }
}

/// Runs one job and replies to its caller, unless the caller gave up first.
fn serve(state: &mut ExecutorState, job: Job) {
    let Job { env, work, payload, tag, reply_to, token } = job;
    if !token.start() {
        return;
    }
    match work {
        Work::Echo => env.run(|env| {
            let msg = (atoms::py_echo(), tag.load(env), payload.load(env)).encode(env);
            if token.finish() {
                send(env, &reply_to, msg);
            }
        }),
        Work::Python(op) => {
            let Some(ns) = state.namespace.as_mut() else { return };
            state.interp.run(|py| {
                env.run(|env| {
                    let tag = tag.load(env);
                    let msg = match exec::run(py, env, ns, op, payload.load(env)) {
                        Ok(value) => (atoms::py_reply(), tag, (atoms::ok(), value)).encode(env),
                        Err(f) => match f.traceback {
                            Some(tb) => (atoms::py_reply(), tag, (atoms::error(), f.reason), tb).encode(env),
                            None => (atoms::py_reply(), tag, (atoms::error(), f.reason)).encode(env),
                        },
                    };
                    if token.finish() {
                        send(env, &reply_to, msg);
                    }
                })
            });
        }
    }
}

/// Sends `msg`, built in the job's own environment, without copying it.
fn send(env: Env<'_>, to: &LocalPid, msg: Term<'_>) {
    // SAFETY: this is an actor thread, not a BEAM thread, so the caller env is NULL;
    // `env` is the process-independent environment `msg` lives in, and it is not
    // used again after enif_send (the job's OwnedEnv is dropped right after).
    unsafe {
        rustler::sys::enif_send(std::ptr::null_mut(), to.as_c_arg(), env.as_c_arg(), msg.as_c_arg());
    }
}
