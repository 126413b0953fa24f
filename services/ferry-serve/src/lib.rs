//! Ferry's long-running services, in the shape of mini-redis's server: [`run`] takes a side's configuration and
//! a shutdown future, starts the side's services and returns once each has finished the work in hand.
//!
//! - Low side ([`low`]): request intake (`ferry.requests` → state store, acked only after commit), researcher
//!   calls (request/reply over direct reply-to), the notifier (the state store's outbox → each researcher's
//!   results queue, with publisher confirms) and the inbox watcher.
//! - High side ([`high`]): the dispatcher (imported jobs → `ferry.jobs`), the workers (one job at a time in the
//!   sandbox, via [`jobrun`]) and the inbox watcher.
//! - [`supervise`]: runs a set of services, stops all when one fails or when told to.
//! - [`metrics`]: the process's Prometheus counters and the `/metrics` server of `--metrics ADDR`.
//!
//! **Architecture Invariant:** a message is acked only after its effect is committed to the state store; a
//! change a researcher must hear of is committed with its notification in one transaction.

mod error;
mod high;
mod inbox;
pub mod jobrun;
mod low;
pub mod metrics;
pub mod supervise;
pub mod workers;

use std::future::Future;
use std::time::Duration;

use ferry_core::{Config, Side};
use tokio::sync::watch;

pub use error::{Result, ServeError};

/// How often the inbox is looked at.
pub const INBOX_POLL: Duration = Duration::from_secs(2);
/// How often the transactional outboxes (notifications, dispatch) are looked at.
pub const OUTBOX_POLL: Duration = Duration::from_millis(200);

/// The first wait before connecting again after the broker went away; it doubles up to [`RECONNECT_MAX`].
pub const RECONNECT_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between two attempts to reach the broker.
pub const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// Runs the side's services until `shutdown` completes, then lets each finish the message in hand.
///
/// When the broker cannot be reached, or the connection drops, the services stop and start again on a new
/// connection after a capped, doubling wait, until `shutdown`: nothing is lost, since a message is acked only
/// after its effect is committed, and the broker redelivers what was not. Any other failure is returned.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let url = ferry_core::config::redact_url(&config.amqp_url);
    tracing::info!(side = config.side.as_str(), broker = %url, "starting");
    let workers = match config.side {
        Side::Low => None,
        Side::High => high::workers_setup(&config)?,
    };
    reconnecting(&config.amqp_url.clone(), shutdown, move |rx| {
        let (config, workers) = (config.clone(), workers.clone());
        async move {
            match config.side {
                Side::Low => low::run(config, rx).await,
                Side::High => high::run(config, workers, rx).await,
            }
        }
    })
    .await
}

/// Runs `services` (given the stop signal) until `shutdown`, starting them again with a growing pause while the
/// broker at `url` is unreachable or goes away.
pub(crate) async fn reconnecting<F, Fut>(
    url: &str,
    shutdown: impl Future<Output = ()>,
    services: F,
) -> Result<()>
where
    F: Fn(watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let url = ferry_core::config::redact_url(url);
    let (tx, rx) = watch::channel(false);
    let services = async move {
        let mut wait = RECONNECT_FIRST;
        let mut reconnects = 0u64;
        loop {
            let started = std::time::Instant::now();
            let result = services(rx.clone()).await;
            let stopping = *rx.borrow();
            match result {
                Err(e) if !stopping && e.is_broker_outage() => {
                    if started.elapsed() > RECONNECT_MAX {
                        wait = RECONNECT_FIRST;
                    }
                    reconnects += 1;
                    metrics::BROKER_RECONNECTS.inc();
                    tracing::warn!(
                        reconnects,
                        "the broker at {url} is unreachable or went away ({e}); connecting again in {:.1} s",
                        wait.as_secs_f64()
                    );
                    let mut stop = rx.clone();
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = supervise::stopped(&mut stop) => return Ok(()),
                    }
                    wait = (wait * 2).min(RECONNECT_MAX);
                }
                other => return other,
            }
        }
    };
    tokio::pin!(services);
    tokio::pin!(shutdown);
    tokio::select! {
        result = &mut services => return result,
        () = &mut shutdown => {
            tracing::info!("shutting down: finishing the work in hand");
            let _ = tx.send(true);
        }
    }
    services.await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Started while no broker answers, the services keep trying (rather than exit) until told to stop.
    #[tokio::test]
    async fn a_side_started_while_the_broker_is_down_waits_for_it_until_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        // Nothing listens on port 1 of the loopback address: every attempt is refused at once.
        let config = Config::new(Side::Low, dir.path(), "amqp://guest:guest@127.0.0.1:1/%2f");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(run(config, async {
            let _ = stop_rx.await;
        }));
        tokio::time::sleep(RECONNECT_FIRST * 3).await;
        assert!(
            !run.is_finished(),
            "the side gave up instead of waiting for the broker"
        );
        stop_tx.send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("shutdown ends the waiting")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
    }
}
