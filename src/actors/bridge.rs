//! The node as Python's `erlang` module reaches it: this room's side of
//! `interp::bridge`. Messages, registered names, the shared store, calls from
//! Python's own threads and the answers of asyncio tasks, each taking and giving
//! plain values (encoded with `nif::types`). Installed at NIF load.

use super::callback::{send_callback, Accept, CallbackHandle};
use crate::interp::bridge::{CallError, ChannelEnd, Erlang, LogRecord, SendError, Stored, ThreadCall};
use crate::interp::value::{Failure, Value};
use crate::nif::types::failure;
use crate::state::{self, IncrError};
use rustler::{Encoder, LocalPid, OwnedEnv};
use std::sync::mpsc;
use std::time::Duration;

/// The node.
pub struct Node;

/// What `interp::bridge::install` is given.
pub static NODE: Node = Node;

/// How long a Python thread's `erlang.call` waits for a semaphore permit.
const THREAD_PERMIT_WAIT: Duration = Duration::from_millis(1000);

/// A value's external term format (the shared store's keys and values).
fn ext(v: &Value) -> Vec<u8> {
    OwnedEnv::new().run(|e| v.encode(e).to_binary().as_slice().to_vec())
}

/// The pid registered as `name`, if any. Call from a thread that is not a
/// BEAM scheduler.
pub(crate) fn whereis_pid(name: &str) -> Option<LocalPid> {
    OwnedEnv::new().run(|e| {
        // An atom that does not exist names no process (and is not created).
        let atom = rustler::Atom::existing_from_str(e, name).ok()?;
        let mut pid = std::mem::MaybeUninit::uninit();
        // SAFETY: interpreter threads are not BEAM threads, so the caller env is
        // NULL as enif_whereis_pid requires there; `atom` is a valid atom term.
        let found = unsafe { rustler::sys::enif_whereis_pid(std::ptr::null_mut(), atom.to_term(e).as_c_arg(), pid.as_mut_ptr()) };
        // SAFETY: initialised by the successful call.
        (found != 0).then(|| LocalPid::from_c_arg(unsafe { pid.assume_init() }))
    })
}

/// The tag of a message py_cluster relays to a pid of another node.
fn relay_atom(e: rustler::Env<'_>) -> rustler::Atom {
    rustler::Atom::from_str(e, "$py_relay").expect("a valid atom")
}

impl Erlang for Node {
    fn send(&self, to: &Value, msg: &Value) -> Result<(), SendError> {
        let Value::Pid { ext, .. } = to else { return Err(SendError::NotAPid) };
        if rustler::thread::is_scheduler_thread() {
            return Err(SendError::OnScheduler);
        }
        let mut env = OwnedEnv::new();
        let to = env.run(|e| {
            let (t, _) = e.binary_to_term(ext)?;
            match t.decode::<LocalPid>() {
                Ok(pid) => Some(Ok(pid)),
                Err(_) if t.get_type() == rustler::TermType::Pid => Some(Err(())),
                Err(_) => None,
            }
        });
        match to.ok_or(SendError::NotAPid)? {
            Ok(pid) => env.send_and_clear(&pid, |e| msg.encode(e)).map_err(|_| SendError::NotAlive),
            // A pid of another node: enif_send reaches local processes only, so
            // py_cluster's process relays it (one relay: the order of one
            // sender's messages holds).
            Err(()) => {
                let relay = whereis_pid("py_cluster").ok_or(SendError::NotAlive)?;
                env.send_and_clear(&relay, |e| {
                    let (pid, _) = e.binary_to_term(ext).expect("decoded above");
                    (relay_atom(e), pid, msg.encode(e)).encode(e)
                })
                .map_err(|_| SendError::NotAlive)
            }
        }
    }

    fn whereis(&self, name: &str) -> Option<Value> {
        let pid = whereis_pid(name)?;
        OwnedEnv::new().run(|e| {
            let t = pid.encode(e);
            Some(Value::Pid { ext: t.to_binary().as_slice().to_vec(), text: format!("{t:?}") })
        })
    }

    fn is_registered(&self, name: &str) -> bool {
        super::registry::is_registered(name)
    }

    fn state_set(&self, key: &Value, value: &Value) {
        match value {
            Value::Int(i) => state::store_int(ext(key), *i),
            v => state::store(ext(key), ext(v)),
        }
    }

    fn state_get(&self, key: &Value) -> Option<Stored> {
        state::fetch(&ext(key)).map(|v| match v {
            state::Value::Int(i) => Stored::Int(i),
            state::Value::Term(t) => Stored::Ext(t),
        })
    }

    fn state_delete(&self, key: &Value) {
        state::remove(&ext(key));
    }

    fn state_keys(&self) -> Vec<Vec<u8>> {
        state::keys()
    }

    fn state_incr(&self, key: &Value, by: i64) -> Result<i64, IncrError> {
        state::incr(&ext(key), by)
    }

    /// Nobody waits for this thread in Erlang, so the call runs in a fresh
    /// process of the application (`py_cast_sink` spawns it); it takes a
    /// semaphore permit for its duration, waiting at most a second for one
    /// (then an error naming the overload, never a hang).
    fn call_from_thread(&self, name: &Value, args: &[Value]) -> Result<ThreadCall, CallError> {
        let permit = match super::semaphore::try_acquire() {
            Ok(p) => p,
            Err(_) => {
                let (ptx, prx) = mpsc::channel();
                let id = super::semaphore::enqueue(Box::new(move |p| ptx.send(p).err().map(|mpsc::SendError(p)| p)));
                match prx.recv_timeout(THREAD_PERMIT_WAIT) {
                    Ok(p) => p,
                    Err(_) if super::semaphore::withdraw(id) => {
                        let (cur, max) = (super::semaphore::current(), super::semaphore::max());
                        return Err(CallError::Unavailable(format!(
                            "erlang_python is overloaded ({cur} of {max} requests in flight): erlang.call from a thread gave up after {} ms",
                            THREAD_PERMIT_WAIT.as_millis()
                        )));
                    }
                    // Handed one just now.
                    Err(_) => prx.recv().map_err(|_| CallError::Unavailable("erlang_python is stopping".into()))?,
                }
            }
        };
        rustler::atoms! { thread }
        let not_running = || CallError::Unavailable("erlang_python is not running".into());
        let sink = whereis_pid("py_cast_sink").ok_or_else(not_running)?;
        let (handle, answers) = CallbackHandle::open(Accept::Nothing);
        if !send_callback(&sink, |e| thread().encode(e), &handle, name, args) {
            return Err(not_running());
        }
        Ok(ThreadCall { answers, permit: Box::new(permit) })
    }

    fn task_done(&self, tid: u64, result: Result<Value, Failure>) {
        let Some(w) = super::tasks::take(tid) else { return };
        w.answer(|e, reply, tag| match &result {
            Ok(v) => (reply, tag, (crate::atoms::ok(), v)).encode(e),
            Err(f) => match failure::encode(e, f) {
                (reason, Some(tb)) => (reply, tag, (crate::atoms::error(), reason), tb).encode(e),
                (reason, None) => (reply, tag, (crate::atoms::error(), reason)).encode(e),
            },
        });
    }

    fn log(&self, r: LogRecord) {
        super::logging::forward(r);
    }

    fn output(&self, fd: u8, text: &str) {
        rustler::atoms! { py_output, thread }
        if let Some(sink) = whereis_pid("py_cast_sink") {
            let _ = OwnedEnv::new().send_and_clear(&sink, |e| (py_output(), thread(), fd, text).encode(e));
        }
    }

    fn channel_recv(&self, id: u64, timeout: Option<Duration>) -> Result<Value, ChannelEnd> {
        use super::channel::RecvError;
        let Some(ch) = super::channel::get(id) else { return Err(ChannelEnd::Closed) };
        ch.recv(timeout).map_err(|e| match e {
            RecvError::Timeout => ChannelEnd::Timeout,
            RecvError::Closed => ChannelEnd::Closed,
        })
    }

    fn answered_from(&self, core: i32, polled: bool) {
        if polled {
            super::affinity::serving(core);
        } else {
            // Woken by the answer: not stacked with its sender (as parking).
            super::affinity::parking();
        }
    }
}
