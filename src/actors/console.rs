//! tokio-console support: with the `console` feature (built with
//! `--cfg tokio_unstable`, see `scripts/build-nif`), a console server on a
//! loopback address shows every actor as a named task (`router`, `executor-1`,
//! `context-3`, …). Without the feature nothing here costs anything.

/// Starts the console server on `addr` (once per node).
#[cfg(feature = "console")]
pub fn start(addr: &str) -> Result<(), String> {
    use std::sync::OnceLock;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            let addr: std::net::SocketAddr = addr.parse().map_err(|e| format!("console address {addr}: {e}"))?;
            let layer = console_subscriber::ConsoleLayer::builder().server_addr(addr).spawn();
            tracing_subscriber::registry().with(layer).try_init().map_err(|e| e.to_string())
        })
        .clone()
}

/// Without the feature: says how to get it.
#[cfg(not(feature = "console"))]
pub fn start(_addr: &str) -> Result<(), String> {
    Err("not_built".into())
}
