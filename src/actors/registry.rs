//! The names of the Erlang functions registered for Python
//! (`py:register_function/2`), mirrored from `py_callback_registry` so Python's
//! `hasattr(erlang, name)` can answer without asking Erlang.

use dashmap::DashSet;
use std::sync::LazyLock;

static NAMES: LazyLock<DashSet<String>> = LazyLock::new(DashSet::new);

/// Records that `name` is registered (`true`) or not (`false`).
pub fn set(name: &str, registered: bool) {
    if registered {
        NAMES.insert(name.to_owned());
    } else {
        NAMES.remove(name);
    }
}

/// Whether `name` is registered.
pub fn is_registered(name: &str) -> bool {
    NAMES.contains(name)
}

/// Forgets every name.
pub fn clear() {
    NAMES.clear();
}
