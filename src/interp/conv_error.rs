//! Why a value could not cross between Erlang and Python, and how deep
//! conversion goes. Its own file, free of rustler, so the decoders that do not
//! need a BEAM (`etf`) can be tested outside one (tests/etf_fuzz.rs).

/// Deepest nesting of containers converted in either direction.
pub const MAX_DEPTH: usize = 500;

/// Why a value could not cross.
#[derive(Debug)]
pub enum ConvError {
    /// A Python value of a type with no Erlang counterpart (its type name).
    Unsupported(String),
    /// Anything else, as a message for the user.
    Invalid(String),
    /// More terms than the conversion may make ([`count`]'s limit): a huge
    /// value, or one that shares a container many times over (`{A, A}`
    /// nested, `[l, l]` in Python), which each side would write out in full.
    TooMany(usize),
}

/// The most terms one conversion makes, in either direction, by default
/// (the `max_terms` application setting changes it). A binary or a string
/// counts one term per KiB besides its own.
pub const DEFAULT_MAX_TERMS: usize = 10_000_000;

static MAX_TERMS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(DEFAULT_MAX_TERMS);

/// Sets the limit of every conversion from now on (`max_terms`).
pub fn set_max_terms(n: usize) {
    MAX_TERMS.store(n.max(1), std::sync::atomic::Ordering::Relaxed);
}

/// The limit of a conversion (`max_terms`).
pub fn max_terms() -> usize {
    MAX_TERMS.load(std::sync::atomic::Ordering::Relaxed)
}

/// No conversion is counted on this thread.
const UNCOUNTED: usize = usize::MAX;

thread_local! {
    /// Terms the conversion under way on this thread may still make, and
    /// its limit.
    static LEFT: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((UNCOUNTED, 0)) };
    /// Whether the conversion under way went past its limit.
    static OVER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Bytes of binaries the conversion under way may still copy on this
    /// thread ([`copy_budget`]; `usize::MAX`: no bound).
    static BYTES_LEFT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// A bound on the bytes of binaries copied, until dropped.
pub struct CopyBudget(usize);

/// Bounds the bytes of binaries the conversions on this thread copy to
/// `bytes` until the guard drops (a NIF on a normal scheduler: copying a
/// binary costs about 0.5 µs per KiB here, page faults of the new buffer
/// included, far more than its term count says). Past it, [`spend_bytes`]
/// fails as if the terms were too many, and the conversion [`over`].
pub fn copy_budget(bytes: usize) -> CopyBudget {
    CopyBudget(BYTES_LEFT.with(|b| b.replace(bytes)))
}

impl Drop for CopyBudget {
    fn drop(&mut self) {
        BYTES_LEFT.with(|b| b.set(self.0));
    }
}

/// A binary or string of `len` bytes is copied: counted as terms
/// ([`bytes_cost`]) and against the copy budget, if one is set.
#[inline]
pub fn spend_bytes(len: usize) -> Result<(), ConvError> {
    spend(bytes_cost(len))?;
    BYTES_LEFT.with(|b| {
        let left = b.get();
        if left == usize::MAX {
            return Ok(());
        }
        match left.checked_sub(len) {
            Some(rest) => {
                b.set(rest);
                Ok(())
            }
            None => {
                b.set(0);
                OVER.with(|o| o.set(true));
                Err(ConvError::TooMany(LEFT.with(|l| l.get().1)))
            }
        }
    })
}

/// The counting of one conversion, until dropped.
pub struct Counted(bool);

/// Counts the terms of a conversion from here, at most `limit`; a conversion
/// started inside one already counted (a value converted while another is)
/// shares its count.
pub fn count(limit: usize) -> Counted {
    LEFT.with(|l| {
        if l.get().0 == UNCOUNTED {
            l.set((limit, limit));
            OVER.with(|o| o.set(false));
            Counted(true)
        } else {
            Counted(false)
        }
    })
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.0 {
            LEFT.with(|l| l.set((UNCOUNTED, 0)));
        }
    }
}

/// `n` more terms made; `TooMany` past the limit.
#[inline]
pub fn spend(n: usize) -> Result<(), ConvError> {
    LEFT.with(|l| {
        let (left, limit) = l.get();
        if left == UNCOUNTED {
            return Ok(());
        }
        match left.checked_sub(n) {
            Some(rest) => {
                l.set((rest, limit));
                Ok(())
            }
            None => {
                l.set((0, limit));
                OVER.with(|o| o.set(true));
                Err(ConvError::TooMany(limit))
            }
        }
    })
}

/// Whether the conversion counted now on this thread went past its limit
/// (whatever its error became on the way out).
pub fn over() -> bool {
    OVER.with(|o| o.get())
}

/// Terms a binary or a string of `len` bytes counts.
#[inline]
pub fn bytes_cost(len: usize) -> usize {
    1 + len / 1024
}

impl ConvError {
    /// Nesting beyond [`MAX_DEPTH`].
    pub fn deep() -> Self {
        ConvError::Invalid(format!("nested deeper than {MAX_DEPTH} levels"))
    }
    /// The message text, for errors about arguments.
    pub fn message(&self) -> String {
        match self {
            ConvError::Unsupported(t) => format!("unsupported Python type: {t}"),
            ConvError::Invalid(m) => m.clone(),
            ConvError::TooMany(limit) => format!("more than {limit} terms (the max_terms setting)"),
        }
    }
}
