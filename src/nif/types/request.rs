//! A request's payload, as `py.erl` builds it, decoded into a [`Request`]:
//! `{Module, Function, Args, Kwargs}` for calls (and streams and async calls),
//! `{Code, Locals}` for `eval`, `{Code}` for `exec`.

use super::{atom_name, decode as decode_value};
use crate::interp::exec::Op;
use crate::interp::value::{Args, Name, RefOp, Request, Value};
use rustler::sys::ErlNifTerm;
use rustler::{Binary, Term};

/// The request `payload` carries for `op`, or the `{bad_argument, Message}` text.
pub fn decode(op: Op, payload: Term<'_>) -> Result<Request, String> {
    // Counted as one conversion (unless the caller counts it already).
    let _counted = crate::interp::conv_error::count(crate::interp::conv_error::max_terms());
    let mut buf = [payload; MAX_FIELDS];
    let fields = fields(payload, &mut buf).ok_or_else(|| "malformed request".to_string())?;
    match (op, fields) {
        (
            Op::Call | Op::CallRef | Op::StreamCall | Op::StreamStart(_) | Op::AsyncCall { .. } | Op::AsyncStream { .. },
            [module, function, args, kwargs],
        ) => Ok(Request::Call {
            module: call_name(*module).ok_or("module name must be text")?,
            function: call_name(*function).ok_or("function name must be text")?,
            args: decode_args(*args)?,
            kwargs: decode_kwargs(*kwargs)?,
        }),
        (Op::Eval | Op::EvalRef | Op::StreamEval, [code, locals]) => {
            let code = code.decode::<Binary>().map_err(|_| "code must be text".to_string())?;
            let locals = match decode_value(*locals, 0).map_err(|e| e.message())? {
                Value::Map(pairs) => pairs,
                _ => Vec::new(),
            };
            // Each becomes a name the code can use: text only.
            if locals.iter().any(|(k, _)| !(matches!(k, Value::Str(_)) || matches!(k, Value::Blob(b) if b.text().is_some()))) {
                return Err("local names must be atoms or binaries".into());
            }
            Ok(Request::Eval { code: code.as_slice().to_vec(), locals })
        }
        (Op::Exec, [code]) => {
            let code = code.decode::<Binary>().map_err(|_| "code must be text".to_string())?;
            Ok(Request::Exec { code: code.as_slice().to_vec() })
        }
        (Op::OnRef, [r, what, rest @ ..]) => {
            let Value::Ref { id, hold, .. } = super::decode(*r, 0).map_err(|e| e.message())? else {
                return Err("not a ref".into());
            };
            let what = what.atom_to_string().map_err(|_| "malformed request".to_string())?;
            let op = match (what.as_str(), rest) {
                ("getattr", [name]) => RefOp::GetAttr(name_text(*name).ok_or("attribute name must be text")?),
                ("call_method", [name, args, kwargs]) => RefOp::Method {
                    name: name_text(*name).ok_or("method name must be text")?,
                    args: decode_args(*args)?.into_vec(),
                    kwargs: decode_kwargs(*kwargs)?,
                },
                ("to_term", []) => RefOp::ToTerm,
                _ => return Err("malformed request".into()),
            };
            Ok(Request::OnRef { id, op, hold })
        }
        _ => Err("malformed request".into()),
    }
}

/// The most elements a request tuple has.
const MAX_FIELDS: usize = 5;

/// The elements of tuple `t`, copied into `buf` (rustler's `get_tuple` makes a
/// `Vec` of them: an allocation per request).
fn fields<'a, 'b>(t: Term<'a>, buf: &'b mut [Term<'a>; MAX_FIELDS]) -> Option<&'b [Term<'a>]> {
    let mut arity: std::ffi::c_int = 0;
    let mut array: *const ErlNifTerm = std::ptr::null();
    // SAFETY: `t` is a term of the live environment `t.get_env()`; on success
    // enif_get_tuple points `array` at the tuple's `arity` elements, which
    // live as long as the term does (they are read right here).
    let elements = unsafe {
        if rustler::sys::enif_get_tuple(t.get_env().as_c_arg(), t.as_c_arg(), &mut arity, &mut array) == 0 {
            return None;
        }
        std::slice::from_raw_parts(array, usize::try_from(arity).ok()?)
    };
    if elements.len() > MAX_FIELDS {
        return None;
    }
    for (slot, e) in buf.iter_mut().zip(elements) {
        // SAFETY: each element is a term of `t`'s environment.
        *slot = unsafe { Term::new(t.get_env(), *e) };
    }
    Some(&buf[..elements.len()])
}

/// A name given as a binary or an atom.
fn name_text(term: Term<'_>) -> Option<String> {
    if term.is_atom() {
        atom_name(term).ok()
    } else {
        text(term).map(str::to_owned)
    }
}

/// A module or function name, given as an atom (what `py.erl` passes on for
/// an atom) or a binary.
///
/// An atom is one word for the whole life of the node, so each scheduler
/// thread keeps the names of the last few atoms it saw by that word: the
/// common call finds both names without reading any text.
fn call_name(term: Term<'_>) -> Option<Name> {
    use crate::interp::value::{Recent, RECENT_NAMES};
    use rustler::sys::ErlNifTerm;
    use std::cell::RefCell;
    thread_local! {
        static ATOMS: RefCell<Recent<(ErlNifTerm, &'static str), RECENT_NAMES>> = const { RefCell::new(Recent::new()) };
    }
    if !term.is_atom() {
        return text(term).map(Name::new);
    }
    let word = term.as_c_arg();
    if let Some((_, name)) = ATOMS.with(|a| a.borrow().find(|(w, _)| *w == word)) {
        return Some(Name::Kept(name));
    }
    let name = Name::new(&atom_name(term).ok()?);
    if let Name::Kept(kept) = name {
        ATOMS.with(|a| a.borrow_mut().remember((word, kept)));
    }
    Some(name)
}

fn text<'a>(term: Term<'a>) -> Option<&'a str> {
    let bin: Binary = term.decode().ok()?;
    std::str::from_utf8(bin.as_slice()).ok()
}

fn decode_args(args: Term<'_>) -> Result<Args, String> {
    if !args.is_list() {
        return Err("arguments must be a list".into());
    }
    let mut items = Args::new();
    super::list::decode_into(args, 0, &mut items).map_err(|e| e.message())?;
    Ok(items)
}

fn decode_kwargs(kwargs: Term<'_>) -> Result<Vec<(String, Value)>, String> {
    if !kwargs.is_map() {
        return Err("keyword arguments must be a map".into());
    }
    let size = kwargs.map_size().unwrap_or(0);
    if size == 0 {
        // The common case: no iterator made.
        return Ok(Vec::new());
    }
    let iter = rustler::types::map::MapIterator::new(kwargs).ok_or("bad map")?;
    let mut out = Vec::with_capacity(size);
    let (mut atoms, mut binaries) = (false, false);
    for (k, v) in iter {
        let key = if k.is_atom() {
            atoms = true;
            atom_name(k).map_err(|e| e.message())?
        } else if let Some(s) = text(k) {
            binaries = true;
            s.to_string()
        } else {
            return Err("keyword argument names must be atoms or binaries".into());
        };
        out.push((key, decode_value(v, 1).map_err(|e| e.message())?));
    }
    if atoms && binaries {
        // `a` and `<<"a">>`: one keyword given twice.
        let mut seen = std::collections::HashSet::new();
        if let Some((k, _)) = out.iter().find(|(k, _)| !seen.insert(k.as_str())) {
            return Err(format!("a keyword argument is given twice ({k})"));
        }
    }
    Ok(out)
}

/// The context keeping the object of a ref request `{Ref, …}`.
pub fn ref_target(payload: Term<'_>) -> Option<crate::actors::job::Target> {
    let mut buf = [payload; MAX_FIELDS];
    let first = *fields(payload, &mut buf)?.first()?;
    first.decode::<rustler::ResourceArc<crate::actors::refs::RefHandle>>().ok().map(|r| r.target)
}
