//! tokio-console support: with the `console` feature (built with
//! `--cfg tokio_unstable`, see `scripts/build-nif`), a console server on a
//! loopback address shows every actor as a named task (`router`, `executor-1`,
//! `context-3`, …). Without the feature nothing here is compiled in but a stub.

#[cfg(all(feature = "console", not(tokio_unstable)))]
compile_error!("the console feature needs RUSTFLAGS=\"--cfg tokio_unstable\" (scripts/build-nif sets it)");

/// Whether this build carries the console.
pub const BUILT: bool = cfg!(feature = "console");

/// The console's layer, boxed: it sits right on the registry.
pub type ConsoleLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// The console layer, its gRPC server started on `addr` (its own thread).
#[cfg(feature = "console")]
pub fn layer(addr: &str) -> Result<ConsoleLayer, String> {
    let addr: std::net::SocketAddr = addr.parse().map_err(|e| format!("console address {addr}: {e}"))?;
    // Finished tasks stay listed for a minute, not the default hour.
    Ok(Box::new(console_subscriber::ConsoleLayer::builder().server_addr(addr).retention(std::time::Duration::from_secs(60)).spawn()))
}

/// Without the feature there is no console to start.
#[cfg(not(feature = "console"))]
pub fn layer(_addr: &str) -> Result<ConsoleLayer, String> {
    Err("not_built".into())
}
