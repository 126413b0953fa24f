//! High-side services: the dispatcher, the workers and the inbox watcher.

mod dispatcher;
mod worker;

use std::sync::Arc;

use ferry_broker::{topology, Session};
use ferry_core::wire::HIGH_JOBS_QUEUE;
use ferry_core::{Config, Store};
use tokio::sync::watch;

use crate::error::{Result, ServeError};
use crate::jobrun;

pub(crate) async fn run(config: Config, shutdown: watch::Receiver<bool>) -> Result<()> {
    if matches!(
        jobrun::isolation(&config.worker),
        ferry_sandbox::Isolation::Unsandboxed
    ) {
        tracing::warn!("worker.sandbox = \"off\": jobs run WITHOUT isolation; development only");
    } else {
        // Refuse to start rather than take jobs only to fail each one: the self-check runs every runtime's
        // interpreter inside the sandbox once.
        for (name, rt) in &config.runtimes {
            ferry_sandbox::check_available(&jobrun::runtime(name, rt))?;
        }
    }
    let session = Arc::new(Session::connect(&config.amqp_url).await?);
    topology::declare_high(&session, config.broker.queue_type)
        .await
        .map_err(|source| ServeError::Topology {
            side: "high",
            source: Box::new(source),
        })?;
    tracing::info!(
        workers = config.worker.count,
        "high side serving: workers on {HIGH_JOBS_QUEUE}"
    );
    let result = crate::supervise::supervise(shutdown, |services| {
        let (s, c) = (session.clone(), config.clone());
        services.spawn("dispatcher", move |stop| dispatcher::dispatcher(s, c, stop));
        for n in 0..config.worker.count {
            let (s, c) = (session.clone(), config.clone());
            services.spawn("worker", move |stop| worker::worker(n, s, c, stop));
        }
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
