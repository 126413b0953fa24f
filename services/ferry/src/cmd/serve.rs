//! `ferry serve`: the side's long-running services until SIGINT or SIGTERM.

use std::path::Path;

use anyhow::{Context, Result};
use ferry_core::Config;
use ferry_serve::metrics;

/// `ferry serve --config CFG [--metrics ADDR]`.
pub async fn serve_cmd(config_path: &Path, metrics_addr: Option<&str>) -> Result<()> {
    let shutdown = shutdown_signal()?;
    let config = Config::load(config_path)
        .with_context(|| format!("loading configuration {}", config_path.display()))?;
    // Bound before anything starts, so that a bad or busy address fails the command at once.
    let mut queues: Vec<String> = ferry_broker::topology::side_queues(config.side)
        .iter()
        .map(|q| q.to_string())
        .collect();
    if config.side == ferry_core::Side::High {
        queues.extend(
            config
                .runtimes
                .keys()
                .map(|r| ferry_core::wire::high_jobs_queue(r)),
        );
    }
    let metrics_server = start_metrics(
        metrics_addr,
        metrics::Registry::new(config.side.as_str())
            .with_store(&ferry_transfer::Layout::new(&config.dir).state_db()),
        &config.amqp_url,
        &queues,
    )
    .await?;
    let served = ferry_serve::run(config, shutdown).await;
    stop_metrics(metrics_server).await?;
    served?;
    Ok(())
}

type MetricsServer = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::result::Result<(), ferry_serve::ServeError>>,
);

/// Binds `addr` (when given) and serves `registry` there, with the depths of `queues`.
async fn start_metrics(
    addr: Option<&str>,
    registry: metrics::Registry,
    amqp_url: &str,
    queues: &[String],
) -> Result<Option<MetricsServer>> {
    let Some(addr) = addr else { return Ok(None) };
    let listener = metrics::bind(addr).await?;
    tracing::info!("metrics on http://{}/metrics", listener.local_addr());
    let names: Vec<&str> = queues.iter().map(String::as_str).collect();
    let registry = registry.with_queues(amqp_url, &names);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(metrics::serve(listener, registry, async {
        let _ = stopped.await;
    }));
    Ok(Some((stop, task)))
}

async fn stop_metrics(server: Option<MetricsServer>) -> Result<()> {
    if let Some((stop, task)) = server {
        let _ = stop.send(());
        task.await.context("the metrics server failed")??;
    }
    Ok(())
}

/// `ferry worker --config CFG [--metrics ADDR]`.
pub async fn worker_cmd(config_path: &Path, metrics_addr: Option<&str>) -> Result<()> {
    let shutdown = shutdown_signal()?;
    let config = ferry_core::config::WorkerSideConfig::load(config_path)
        .with_context(|| format!("loading worker configuration {}", config_path.display()))?;
    let queues: Vec<String> = config
        .runtimes
        .keys()
        .map(|r| ferry_core::wire::high_jobs_queue(r))
        .collect();
    let metrics_server = start_metrics(
        metrics_addr,
        metrics::Registry::new("worker"),
        &config.amqp_url,
        &queues,
    )
    .await?;
    let worked = ferry_serve::workers::run_worker(config, shutdown).await;
    stop_metrics(metrics_server).await?;
    worked?;
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now, and returns a future that completes on either.
///
/// The handlers are installed before the future is first polled: a service still opening its store or
/// its broker connection when a signal arrives shuts down cleanly instead of dying of the signal.
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}
