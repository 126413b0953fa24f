//! Ferry's long-running services, in the shape of mini-redis's server: [`run`] takes a side's configuration and
//! a shutdown future, starts the side's services and returns once each has finished the work in hand.
//!
//! - Low side ([`low`]): request intake (`ferry.requests` → state store, acked only after commit), researcher
//!   calls (request/reply over direct reply-to), the notifier (the state store's outbox → each researcher's
//!   results queue, with publisher confirms) and the inbox watcher.
//! - High side ([`high`]): the dispatcher (imported jobs → `ferry.jobs`), the workers (one job at a time in the
//!   sandbox, via [`jobrun`]) and the inbox watcher.
//! - [`supervise`]: runs a set of services, stops all when one fails or when told to.
//!
//! **Architecture Invariant:** a message is acked only after its effect is committed to the state store; a
//! change a researcher must hear of is committed with its notification in one transaction.

mod error;
mod high;
mod inbox;
pub mod jobrun;
mod low;
pub mod supervise;

use std::future::Future;
use std::time::Duration;

use ferry_core::{Config, Side};
use tokio::sync::watch;

pub use error::{Result, ServeError};

/// How often the inbox is looked at.
pub const INBOX_POLL: Duration = Duration::from_secs(2);
/// How often the transactional outboxes (notifications, dispatch) are looked at.
pub const OUTBOX_POLL: Duration = Duration::from_millis(200);

/// Runs the side's services until `shutdown` completes, then lets each finish the message in hand.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let url = ferry_core::config::redact_url(&config.amqp_url);
    tracing::info!(side = config.side.as_str(), broker = %url, "starting");
    let (tx, rx) = watch::channel(false);
    let services = async move {
        match config.side {
            Side::Low => low::run(config, rx).await,
            Side::High => high::run(config, rx).await,
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
