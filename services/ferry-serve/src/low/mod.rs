//! Low-side services: request intake, researcher calls, notifications to results queues, inbox watching.

mod calls;
mod intake;
mod notifier;

use std::sync::Arc;

use ferry_broker::{topology, Session};
use ferry_core::wire::{CALLS_QUEUE, REQUESTS_QUEUE};
use ferry_core::{Config, Store};
use tokio::sync::watch;

use crate::error::{Result, ServeError};

pub(crate) async fn run(config: Config, shutdown: watch::Receiver<bool>) -> Result<()> {
    let session = Session::connect(&config.amqp_url).await?;
    topology::declare_low(&session, config.broker.queue_type)
        .await
        .map_err(|source| ServeError::Topology {
            side: "low",
            source: Box::new(source),
        })?;
    let session = Arc::new(session);
    tracing::info!("low side serving: intake on {REQUESTS_QUEUE}, calls on {CALLS_QUEUE}");
    let result = crate::supervise::supervise(shutdown, |services| {
        let (s, c) = (session.clone(), config.clone());
        services.spawn("intake", move |stop| intake::intake(s, c, stop));
        let (s, c) = (session.clone(), config.clone());
        services.spawn("calls", move |stop| calls::calls(s, c, stop));
        let (s, c) = (session.clone(), config.clone());
        services.spawn("notifier", move |stop| notifier::notifier(s, c, stop));
        let c = config.clone();
        services.spawn("inbox watcher", move |stop| crate::inbox::watcher(c, stop));
    })
    .await;
    session.close().await;
    result
}

fn open_store(config: &Config) -> Result<Store> {
    Ok(Store::open(
        &ferry_transfer::Layout::new(&config.dir).state_db(),
    )?)
}
