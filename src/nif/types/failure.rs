//! A [`Failure`] as its caller sees it: the `Reason` of `{error, Reason}`, and
//! the traceback of a Python exception (kept for `py:last_traceback/0`).

use crate::atoms;
use crate::interp::value::Failure;
use rustler::{Atom, Encoder, Env, Term};

/// `Reason`, and the traceback as a binary when Python raised.
pub fn encode<'a>(env: Env<'a>, f: &Failure) -> (Term<'a>, Option<Term<'a>>) {
    rustler::atoms! { not_iterable, not_awaitable, cancelled, context_crashed }
    match f {
        Failure::Python { name, message, traceback } => {
            let class = Atom::from_str(env, name).unwrap_or_else(|_| atoms::error());
            ((class, message.as_str()).encode(env), Some(traceback.as_str().encode(env)))
        }
        Failure::BadArgument(m) => ((atoms::bad_argument(), m.as_str()).encode(env), None),
        Failure::UnsupportedType(t) => ((atoms::unsupported_type(), t.as_str()).encode(env), None),
        Failure::BadResult(m) => ((atoms::bad_result(), m.as_str()).encode(env), None),
        Failure::NotIterable(t) => ((not_iterable(), t.as_str()).encode(env), None),
        Failure::NotAwaitable(t) => ((not_awaitable(), t.as_str()).encode(env), None),
        Failure::Cancelled => (cancelled().encode(env), None),
        Failure::ContextStopped => (atoms::context_stopped().encode(env), None),
        Failure::ContextCrashed(why) => ((context_crashed(), why.as_str()).encode(env), None),
    }
}
