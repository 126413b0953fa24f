//! `ferry serve`: the side's long-running services, until SIGINT or SIGTERM.
//!
//! Each service is a task that takes a shutdown receiver, finishes the message in hand and returns. Low side:
//! request intake, researcher calls, the notification publisher and the inbox watcher. High side: the
//! dispatcher (imported jobs to the workers' queue), the workers and the inbox watcher.

mod high;
mod low;

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use ferry_core::{Config, Side};
use tokio::sync::watch;

use crate::side::SideDir;

/// How often the inbox is looked at.
const INBOX_POLL: Duration = Duration::from_secs(2);
/// How often the transactional outboxes (notifications, dispatch) are looked at.
const OUTBOX_POLL: Duration = Duration::from_millis(200);

/// `ferry serve --config CFG`.
pub async fn run_cmd(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)
        .with_context(|| format!("loading configuration {}", config_path.display()))?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: finishing the work in hand");
        let _ = tx.send(true);
    });
    run(config_path, config, rx).await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs the side's services until `shutdown` turns true.
pub async fn run(
    config_path: &Path,
    config: Config,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let url = ferry_core::config::redact_url(&config.amqp_url);
    tracing::info!(side = config.side.as_str(), broker = %url, "starting");
    match config.side {
        Side::Low => low::run(config_path, config, shutdown).await,
        Side::High => high::run(config_path, config, shutdown).await,
    }
}

/// The side's services, each a named task that returns when told to stop.
pub(crate) type Services = tokio::task::JoinSet<(&'static str, Result<()>)>;

/// Runs the services `start` spawns until `external` says stop, or until one of them ends on its own: then the
/// others are told to stop too, and the failure is returned so that `ferry serve` exits non-zero rather than run
/// on with intake or the workers dead.
pub(crate) async fn supervise(
    mut external: watch::Receiver<bool>,
    start: impl FnOnce(watch::Receiver<bool>, &mut Services),
) -> Result<()> {
    let (stop, stopping) = watch::channel(false);
    let mut services = Services::new();
    start(stopping, &mut services);
    let mut failure: Option<anyhow::Error> = None;
    loop {
        let stopped = *stop.borrow();
        tokio::select! {
            _ = external.changed(), if !stopped => {
                let _ = stop.send(true);
            }
            joined = services.join_next() => {
                let Some(joined) = joined else { break };
                let error = match joined {
                    Ok((_, Ok(()))) if stopped => None,
                    Ok((name, Ok(()))) => Some(anyhow!("the {name} service stopped on its own")),
                    Ok((name, Err(e))) => Some(e.context(format!("the {name} service failed"))),
                    Err(e) => Some(anyhow!("a service panicked: {e}")),
                };
                if let Some(e) = error {
                    tracing::error!("{e:#}; stopping the other services");
                    failure.get_or_insert(e);
                    let _ = stop.send(true);
                }
            }
        }
    }
    failure.map_or(Ok(()), Err)
}

/// Imports settled bundles from the inbox every few seconds.
pub(crate) async fn inbox_watcher(
    config_path: std::path::PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut warned = false;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(INBOX_POLL) => {}
        }
        let path = config_path.clone();
        let result = tokio::task::spawn_blocking(move || -> Result<usize> {
            let mut side = SideDir::open(&path)?;
            let files = crate::transfer::inbox_files(&side, true)?;
            if files.is_empty() {
                return Ok(0);
            }
            let results = crate::transfer::import_files(&mut side, &files, false)?;
            Ok(results.len())
        })
        .await;
        match result {
            Ok(Ok(_)) => warned = false,
            Ok(Err(e)) if !warned => {
                tracing::error!("inbox watcher: {e:#}");
                warned = true;
            }
            Ok(Err(_)) => {}
            Err(e) => tracing::error!("inbox watcher failed: {e}"),
        }
    }
}
