//! `ferry serve`: the side's long-running services until SIGINT or SIGTERM.

use std::path::Path;

use anyhow::{Context, Result};
use ferry_core::Config;
use ferry_serve::metrics;

/// `ferry serve --config CFG [--metrics ADDR]`.
pub async fn serve_cmd(config_path: &Path, metrics_addr: Option<&str>) -> Result<()> {
    let config = Config::load(config_path)
        .with_context(|| format!("loading configuration {}", config_path.display()))?;
    // Bound before anything starts, so that a bad or busy address fails the command at once.
    let metrics_server = match metrics_addr {
        Some(addr) => {
            let listener = metrics::bind(addr).await?;
            tracing::info!("metrics on http://{}/metrics", listener.local_addr());
            let registry = metrics::Registry::new(config.side.as_str())
                .with_store(&ferry_transfer::Layout::new(&config.dir).state_db())
                .with_queues(
                    &config.amqp_url,
                    ferry_broker::topology::side_queues(config.side),
                );
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(metrics::serve(listener, registry, async {
                let _ = stopped.await;
            }));
            Some((stop, task))
        }
        None => None,
    };
    let served = ferry_serve::run(config, wait_for_signal()).await;
    if let Some((stop, task)) = metrics_server {
        let _ = stop.send(());
        task.await.context("the metrics server failed")??;
    }
    served?;
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
