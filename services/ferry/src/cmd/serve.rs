//! `ferry serve`: the side's long-running services until SIGINT or SIGTERM.

use std::path::Path;

use anyhow::{Context, Result};
use ferry_core::Config;

/// `ferry serve --config CFG`.
pub async fn serve_cmd(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)
        .with_context(|| format!("loading configuration {}", config_path.display()))?;
    ferry_serve::run(config, wait_for_signal()).await?;
    Ok(())
}

/// `ferry worker --config CFG`.
pub async fn worker_cmd(config_path: &Path) -> Result<()> {
    let config = ferry_core::config::WorkerSideConfig::load(config_path)
        .with_context(|| format!("loading worker configuration {}", config_path.display()))?;
    ferry_serve::workers::run_worker(config, wait_for_signal()).await?;
    Ok(())
}

/// Returns on SIGINT or SIGTERM.
pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
