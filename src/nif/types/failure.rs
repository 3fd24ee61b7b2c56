//! A [`Failure`] as its caller sees it: the `Reason` of `{error, Reason}`, and
//! the traceback of a Python exception (kept for `py:last_traceback/0`).

use crate::atoms;
use crate::interp::value::Failure;
use rustler::{Atom, Encoder, Env, Term};

rustler::atoms! { exception = "Exception" }

/// Atoms this node made for exception class names, at most [`NEW_CLASS_ATOMS`].
static NEW_CLASS_ATOMS_MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The most atoms made for exception class names: atoms are never freed, and
/// Python code can make classes with new names without end (the node dies
/// when its atom table is full).
const NEW_CLASS_ATOMS: usize = 10_000;

/// The atom of an exception class name: one that exists already (every name
/// an Erlang module matches on does), else a new one while fewer than
/// [`NEW_CLASS_ATOMS`] were made. `None` past that, or for a name longer than
/// an atom may be: the caller then gets `{'Exception', <<"Name: Message">>}`.
fn class_atom(env: Env<'_>, name: &str) -> Option<Atom> {
    use std::sync::atomic::Ordering;
    if let Ok(a) = Atom::existing_from_str(env, name) {
        return Some(a);
    }
    if NEW_CLASS_ATOMS_MADE.fetch_add(1, Ordering::Relaxed) >= NEW_CLASS_ATOMS {
        NEW_CLASS_ATOMS_MADE.fetch_sub(1, Ordering::Relaxed);
        return None;
    }
    let made = Atom::from_str(env, name).ok();
    if made.is_none() {
        NEW_CLASS_ATOMS_MADE.fetch_sub(1, Ordering::Relaxed);
    }
    made
}

/// `Reason`, and the traceback as a binary when Python raised.
pub fn encode<'a>(env: Env<'a>, f: &Failure) -> (Term<'a>, Option<Term<'a>>) {
    rustler::atoms! { not_iterable, not_awaitable, not_async_iterable, cancelled, context_crashed }
    match f {
        Failure::Python { name, message, traceback } => {
            let reason = match class_atom(env, name) {
                Some(class) => (class, message.as_str()).encode(env),
                // The class named in the message instead.
                None => (exception(), format!("{name}: {message}")).encode(env),
            };
            (reason, Some(traceback.as_str().encode(env)))
        }
        Failure::BadArgument(m) => ((atoms::bad_argument(), m.as_str()).encode(env), None),
        Failure::UnsupportedType(t) => ((atoms::unsupported_type(), t.as_str()).encode(env), None),
        Failure::BadResult(m) => ((atoms::bad_result(), m.as_str()).encode(env), None),
        Failure::NotIterable(t) => ((not_iterable(), t.as_str()).encode(env), None),
        Failure::NotAwaitable(t) => ((not_awaitable(), t.as_str()).encode(env), None),
        Failure::NotAsyncIterable(t) => ((not_async_iterable(), t.as_str()).encode(env), None),
        Failure::Cancelled => (cancelled().encode(env), None),
        Failure::ContextStopped => (atoms::context_stopped().encode(env), None),
        Failure::ContextCrashed(why) => ((context_crashed(), why.as_str()).encode(env), None),
    }
}
