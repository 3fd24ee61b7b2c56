//! Large binaries, shared rather than copied on their way (see [`Blob`]).
//!
//! Bound for Python, the binary term is copied into an environment of its own,
//! which for a reference-counted binary (all but the smallest) shares its
//! bytes, and the blob points at them while that environment lives: the one
//! copy left is Python's, into the `str` or `bytes`, on the serving thread.
//! Coming back, a blob becomes a resource binary that holds it: the one copy
//! was taken from the Python object.

use crate::interp::value::{Blob, Value};
use rustler::{Binary, Encoder, Env, OwnedEnv, Resource, ResourceArc, Term};

/// The environment holding a lent binary (held for its drop, never read).
struct Kept(#[allow(dead_code)] OwnedEnv);

// SAFETY: the environment is written once, by `lend`, before the `Kept` is
// shared; after that nothing reads or writes it but its drop
// (`enif_free_env`, which any thread may call).
unsafe impl Sync for Kept {}

/// `term` (a binary of [`Blob::MIN`] bytes or more) lent to Python: as a
/// `str` if `text` (the caller checked it is UTF-8), else as `bytes`.
pub fn lend(term: Term<'_>, text: bool) -> Option<Value> {
    let env = OwnedEnv::new();
    // enif_make_copy: a reference-counted binary is shared, not copied.
    let saved = env.save(term);
    let (ptr, len) = env.run(|e| {
        let bin: Binary = saved.load(e).decode().ok()?;
        Some((bin.as_slice().as_ptr(), bin.len()))
    })?;
    // SAFETY: the bytes belong to the binary `env` now holds; a binary is
    // never written once made, and `env` is neither cleared nor dropped
    // while the `Kept` in the blob lives. `text` was checked by the caller.
    Some(Value::Blob(unsafe { Blob::new(ptr, len, text, std::sync::Arc::new(Kept(env))) }))
}

/// A blob an Erlang binary is made of, held while the binary lives.
pub struct Lent(Blob);

impl Resource for Lent {}

/// A binary sharing `blob`'s bytes.
pub fn encode<'a>(env: Env<'a>, blob: &Blob) -> Term<'a> {
    let lent = ResourceArc::new(Lent(blob.clone()));
    // The bytes live as long as the `Blob` in the resource does.
    lent.make_binary(env, |l| l.0.bytes()).encode(env)
}
