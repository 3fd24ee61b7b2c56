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
        }
    }
}
