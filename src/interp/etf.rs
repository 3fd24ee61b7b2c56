//! Erlang external term format → [`Value`]s, in plain Rust.
//!
//! Stored state is kept as external term format. Reading it back into an
//! environment with `enif_binary_to_term` would build large maps with the
//! emulator's hash-map code, which crashes the node (in `erts_qsort`, OTP 25) on
//! a thread that is not a scheduler, as every interpreter thread is. So Python
//! reads decode the bytes here, following the same table as `nif::types`. No
//! Python and no BEAM needed: tests/etf_fuzz.rs feeds it arbitrary bytes.

use super::conv_error::{ConvError, MAX_DEPTH};
use super::value::Value;
use num_bigint::{BigInt, Sign};

type R = Result<Value, ConvError>;

struct Reader<'b> {
    buf: &'b [u8],
    pos: usize,
}

fn bad(what: &str) -> ConvError {
    ConvError::Invalid(format!("stored term: {what}"))
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], ConvError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| bad("truncated"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ConvError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, ConvError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u32(&mut self) -> Result<usize, ConvError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
}

/// Decodes one term in external format (with its leading version byte).
pub fn decode(bytes: &[u8]) -> R {
    let mut r = Reader { buf: bytes, pos: 0 };
    if r.u8()? != 131 {
        return Err(bad("not external term format"));
    }
    term(&mut r, 0)
}

fn atom(name: &[u8]) -> R {
    Ok(match name {
        b"true" => Value::Bool(true),
        b"false" => Value::Bool(false),
        b"none" | b"nil" | b"undefined" => Value::None,
        _ => Value::Str(std::str::from_utf8(name).map_err(|_| bad("atom is not UTF-8"))?.to_owned()),
    })
}

fn atom_name<'b>(r: &mut Reader<'b>) -> Result<&'b [u8], ConvError> {
    match r.u8()? {
        118 | 100 => {
            let n = r.u16()?;
            r.take(n)
        }
        119 | 115 => {
            let n = r.u8()? as usize;
            r.take(n)
        }
        _ => Err(bad("expected an atom")),
    }
}

fn big(r: &mut Reader<'_>, n: usize) -> R {
    let sign = if r.u8()? == 0 { Sign::Plus } else { Sign::Minus };
    let big = BigInt::from_bytes_le(sign, r.take(n)?);
    Ok(match i64::try_from(&big) {
        Ok(i) => Value::Int(i),
        Err(_) => Value::BigInt(big),
    })
}

fn term(r: &mut Reader<'_>, depth: usize) -> R {
    if depth > MAX_DEPTH {
        return Err(ConvError::Invalid(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    let start = r.pos;
    match r.u8()? {
        97 => Ok(Value::Int(r.u8()? as i64)),
        98 => {
            let b = r.take(4)?;
            Ok(Value::Int(i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as i64))
        }
        70 => {
            let b = r.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(Value::Float(f64::from_be_bytes(a)))
        }
        118 | 100 | 119 | 115 => {
            r.pos = start;
            atom(atom_name(r)?)
        }
        104 | 105 => {
            let n = if r.buf[start] == 104 { r.u8()? as usize } else { r.u32()? };
            let mut items = Vec::with_capacity(n.min(1 << 16));
            let first = r.pos;
            // {'$bytes', Bin}
            if n == 2 && matches!(r.buf.get(first), Some(118 | 100 | 119 | 115)) {
                let name = atom_name(r)?;
                if name == b"$bytes" && r.buf.get(r.pos) == Some(&109) {
                    r.u8()?;
                    let len = r.u32()?;
                    return Ok(Value::Bytes(r.take(len)?.to_vec()));
                }
                items.push(atom(name)?);
            }
            while items.len() < n {
                items.push(term(r, depth + 1)?);
            }
            Ok(Value::Tuple(items))
        }
        106 => Ok(Value::List(Vec::new())),
        107 => {
            let n = r.u16()?;
            Ok(Value::List(r.take(n)?.iter().map(|&b| Value::Int(b as i64)).collect()))
        }
        108 => {
            let n = r.u32()?;
            let mut items = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                items.push(term(r, depth + 1)?);
            }
            if r.u8()? != 106 {
                return Err(ConvError::Invalid("improper lists cannot cross".into()));
            }
            Ok(Value::List(items))
        }
        109 => {
            let n = r.u32()?;
            let b = r.take(n)?;
            match std::str::from_utf8(b) {
                Ok(s) => Ok(Value::Str(s.to_owned())),
                Err(_) => Err(ConvError::Invalid("binary is not valid UTF-8; store {'$bytes', Bin} for Python bytes".into())),
            }
        }
        110 => {
            let n = r.u8()? as usize;
            big(r, n)
        }
        111 => {
            let n = r.u32()?;
            big(r, n)
        }
        116 => {
            let n = r.u32()?;
            let mut pairs = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let k = term(r, depth + 1)?;
                let v = term(r, depth + 1)?;
                pairs.push((k, v));
            }
            Ok(Value::Map(pairs))
        }
        88 | 103 => {
            let _node = atom_name(r)?;
            let id = r.u32()?;
            let serial = r.u32()?;
            let _creation = if r.buf[start] == 88 { r.take(4)? } else { r.take(1)? };
            let mut ext = Vec::with_capacity(1 + r.pos - start);
            ext.push(131);
            ext.extend_from_slice(&r.buf[start..r.pos]);
            Ok(Value::Pid { ext, text: format!("<0.{id}.{serial}>") })
        }
        90 => {
            // A ref of a process-isolated context, as `encode` writes it; any
            // other reference cannot cross.
            let words = r.u16()?;
            let node = atom_name(r)?;
            let _creation = r.take(4)?;
            let w = r.take(words.checked_mul(4).ok_or_else(|| bad("reference"))?)?;
            let word = |i: usize| u32::from_be_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]]);
            if node == REF_NODE.as_bytes() && words == 3 {
                Ok(Value::Ref { key: word(0), id: (u64::from(word(1)) << 32) | u64::from(word(2)), hold: Default::default() })
            } else {
                Err(ConvError::Invalid("references cannot cross to Python".into()))
            }
        }
        114 | 101 => Err(ConvError::Invalid("references cannot cross to Python".into())),
        89 | 102 | 120 | 121 => Err(ConvError::Invalid("ports cannot cross to Python".into())),
        112 | 113 | 117 => Err(ConvError::Invalid("funs cannot cross to Python".into())),
        77 => Err(ConvError::Invalid("bitstrings that are not binaries cannot cross".into())),
        t => Err(bad(&format!("unsupported tag {t}"))),
    }
}

/// The node name of refs (`Value::Ref`) in frames.
const REF_NODE: &str = "$py_ref";

/// Encodes a value in external term format (with the version byte), as the
/// table above reads it back: `str` as a UTF-8 binary, `bytes` as
/// `{'$bytes', Bin}`, `None`/`True`/`False` as atoms, a pid as its own
/// encoding, a ref as a reference of the node `'$py_ref'` (read back as the
/// same ref). Channels belong to this node's process: `Err`.
/// (The frames of process-isolated contexts, `interp::wire`, use it.)
pub fn encode(v: &Value) -> Result<Vec<u8>, ConvError> {
    let mut out = vec![131];
    put(&mut out, v, 0)?;
    Ok(out)
}

/// A term to encode whose large parts are borrowed, so that a request's
/// arguments, code and locals go into a frame without first being copied into
/// a [`Value`] tree. Encodes as the `Value` of the same shape would.
pub enum Borrowed<'a> {
    Value(&'a Value),
    /// A small value of the frame's own (a sequence number, an op).
    Owned(Value),
    /// As `Value::Str`.
    Str(&'a str),
    /// As `Value::Bytes`.
    Bytes(&'a [u8]),
    Tuple(Vec<Borrowed<'a>>),
    /// As `Value::List`.
    List(&'a [Value]),
    /// As `Value::Map`.
    Map(&'a [(Value, Value)]),
    /// As `Value::Map` with `Value::Str` keys (keyword arguments).
    Named(&'a [(String, Value)]),
}

/// Encodes `t` as [`encode`] would the `Value` of the same shape.
pub fn encode_borrowed(t: &Borrowed<'_>) -> Result<Vec<u8>, ConvError> {
    let mut out = vec![131];
    put_borrowed(&mut out, t, 0)?;
    Ok(out)
}

fn put_borrowed(out: &mut Vec<u8>, t: &Borrowed<'_>, depth: usize) -> Result<(), ConvError> {
    match t {
        Borrowed::Value(v) => put(out, v, depth),
        Borrowed::Owned(v) => put(out, v, depth),
        Borrowed::Str(s) => put_str(out, s),
        Borrowed::Bytes(b) => put_bytes(out, b),
        Borrowed::Tuple(items) => {
            put_tuple_header(out, items.len())?;
            items.iter().try_for_each(|i| put_borrowed(out, i, depth + 1))
        }
        Borrowed::List(items) => put_list(out, items, depth),
        Borrowed::Map(pairs) => {
            put_map_header(out, pairs.len())?;
            pairs.iter().try_for_each(|(k, v)| {
                put(out, k, depth + 1)?;
                put(out, v, depth + 1)
            })
        }
        Borrowed::Named(pairs) => {
            put_map_header(out, pairs.len())?;
            pairs.iter().try_for_each(|(k, v)| {
                put_str(out, k)?;
                put(out, v, depth + 1)
            })
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), ConvError> {
    out.push(109);
    put_len(out, s.len())?;
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), ConvError> {
    out.extend_from_slice(&[104, 2]);
    put_atom(out, "$bytes");
    out.push(109);
    put_len(out, b.len())?;
    out.extend_from_slice(b);
    Ok(())
}

fn put_list(out: &mut Vec<u8>, items: &[Value], depth: usize) -> Result<(), ConvError> {
    if !items.is_empty() {
        out.push(108);
        put_len(out, items.len())?;
        for i in items {
            put(out, i, depth + 1)?;
        }
    }
    out.push(106);
    Ok(())
}

fn put_tuple_header(out: &mut Vec<u8>, n: usize) -> Result<(), ConvError> {
    match u8::try_from(n) {
        Ok(n) => out.extend_from_slice(&[104, n]),
        Err(_) => {
            out.push(105);
            put_len(out, n)?;
        }
    }
    Ok(())
}

fn put_map_header(out: &mut Vec<u8>, n: usize) -> Result<(), ConvError> {
    out.push(116);
    put_len(out, n)
}

fn put_atom(out: &mut Vec<u8>, name: &str) {
    // SMALL_ATOM_UTF8_EXT: names here are ours and short.
    out.push(119);
    out.push(name.len() as u8);
    out.extend_from_slice(name.as_bytes());
}

fn put_len(out: &mut Vec<u8>, n: usize) -> Result<(), ConvError> {
    let n = u32::try_from(n).map_err(|_| ConvError::Invalid("too large to encode".into()))?;
    out.extend_from_slice(&n.to_be_bytes());
    Ok(())
}

fn put(out: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), ConvError> {
    if depth > MAX_DEPTH {
        return Err(ConvError::Invalid(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    match v {
        Value::None => put_atom(out, "none"),
        Value::Bool(b) => put_atom(out, if *b { "true" } else { "false" }),
        Value::Int(i) => match i32::try_from(*i) {
            Ok(small) => {
                out.push(98);
                out.extend_from_slice(&small.to_be_bytes());
            }
            Err(_) => put_big(out, &BigInt::from(*i))?,
        },
        Value::BigInt(b) => put_big(out, b)?,
        Value::Float(f) => {
            out.push(70);
            out.extend_from_slice(&f.to_be_bytes());
        }
        Value::Str(s) => put_str(out, s)?,
        Value::Bytes(b) => put_bytes(out, b)?,
        Value::Blob(b) => match b.text() {
            Some(t) => put_str(out, t)?,
            None => put_bytes(out, b.bytes())?,
        },
        Value::List(items) => put_list(out, items, depth)?,
        Value::Tuple(items) => {
            put_tuple_header(out, items.len())?;
            for i in items {
                put(out, i, depth + 1)?;
            }
        }
        Value::Map(pairs) => {
            put_map_header(out, pairs.len())?;
            for (k, v) in pairs {
                put(out, k, depth + 1)?;
                put(out, v, depth + 1)?;
            }
        }
        Value::Pid { ext, .. } => match ext.split_first() {
            Some((131, rest)) => out.extend_from_slice(rest),
            _ => return Err(ConvError::Invalid("a pid without its encoding".into())),
        },
        Value::Ref { key, id, .. } => {
            // NEWER_REFERENCE_EXT on a node name no node has (no '@'): context
            // key, then the id's two halves.
            out.extend_from_slice(&[90, 0, 3]);
            put_atom(out, REF_NODE);
            out.extend_from_slice(&[0, 0, 0, 0]);
            for w in [*key, (*id >> 32) as u32, *id as u32] {
                out.extend_from_slice(&w.to_be_bytes());
            }
        }
        Value::Channel(_) => return Err(ConvError::Invalid("channels belong to their node's process".into())),
    }
    Ok(())
}

fn put_big(out: &mut Vec<u8>, b: &BigInt) -> Result<(), ConvError> {
    let (sign, bytes) = b.to_bytes_le();
    match u8::try_from(bytes.len()) {
        Ok(n) => out.extend_from_slice(&[110, n]),
        Err(_) => {
            out.push(111);
            put_len(out, bytes.len())?;
        }
    }
    out.push(u8::from(sign == Sign::Minus));
    out.extend_from_slice(&bytes);
    Ok(())
}
