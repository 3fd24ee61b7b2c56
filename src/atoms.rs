//! Atoms shared by the NIF and the interpreter layers.

rustler::atoms! {
    ok,
    error,
    true_ = "true",
    false_ = "false",
    none,
    nil,
    undefined,
    nan,
    infinity,
    neg_infinity,
    py_reply,
    py_started,
    py_echo,
    bytes = "$bytes",
    bad_argument,
    bad_result,
    unsupported_type,
    not_started,
    noproc,
}
