//! High-side services: the dispatcher, the committer of the workers' reports, the canceller, the in-process
//! workers (`[worker] count`, 0 for none) and the inbox watcher.

mod committer;
mod dispatcher;

use std::sync::Arc;

use ferry_broker::{topology, Session};
use ferry_core::wire::{HIGH_JOBS_QUEUE_PREFIX, HIGH_WORKER_RESULTS_QUEUE};
use ferry_core::{Config, Store};
use tokio::sync::watch;

use crate::error::{Result, ServeError};
use crate::jobrun;
use crate::workers::{WorkerRuntime, WorkerSetup};

/// The in-process workers' setup (`None` with `[worker] count = 0`), made and checked once when serve starts, not
/// on every reconnection: the self-check runs every configured runtime's interpreter inside the sandbox, refusing
/// to start rather than take jobs only to fail each one.
pub(crate) fn workers_setup(config: &Config) -> Result<Option<Arc<WorkerSetup>>> {
    if config.worker.count == 0 {
        return Ok(None);
    }
    let setup = in_process_setup(config)?;
    setup.check_sandbox(config.runtimes.keys())?;
    setup.sweep_work_root();
    Ok(Some(Arc::new(setup)))
}

pub(crate) async fn run(
    config: Config,
    setup: Option<Arc<WorkerSetup>>,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let session = Arc::new(Session::connect(&config.amqp_url).await?);
    topology::declare_high(&session, config.broker.queue_type)
        .await
        .map_err(|source| ServeError::Topology {
            side: "high",
            source: Box::new(source),
        })?;
    tracing::info!(
        workers = config.worker.count,
        "high side serving: jobs on {HIGH_JOBS_QUEUE_PREFIX}RUNTIME, reports on {HIGH_WORKER_RESULTS_QUEUE}"
    );
    let result = crate::supervise::supervise(shutdown, |services| {
        let (s, c) = (session.clone(), config.clone());
        services.spawn("dispatcher", move |stop| dispatcher::dispatcher(s, c, stop));
        let (s, c) = (session.clone(), config.clone());
        services.spawn("canceller", move |stop| dispatcher::canceller(s, c, stop));
        let (s, c) = (session.clone(), config.clone());
        services.spawn("committer", move |stop| committer::committer(s, c, stop));
        if let Some(setup) = &setup {
            for n in 0..config.worker.count {
                let (s, st) = (session.clone(), setup.clone());
                services.spawn("worker", move |stop| crate::workers::worker(n, st, s, stop));
            }
        }
        let c = config.clone();
        services.spawn("inbox watcher", move |stop| crate::inbox::watcher(c, stop));
    })
    .await;
    session.close().await;
    result
}

/// The workers inside `ferry serve`: every runtime the side has (configured, or registered when serve started),
/// assets wherever they were registered.
fn in_process_setup(config: &Config) -> Result<WorkerSetup> {
    let store = open_store(config)?;
    let mut runtimes = std::collections::BTreeMap::new();
    for name in jobrun::runtime_names(config, &store)? {
        let (runtime, sha256) = match config.runtimes.get(&name) {
            Some(rt) => jobrun::configured_runtime(&name, rt),
            None => match jobrun::runtime_named(config, &store, &name)? {
                Some(runtime) => (runtime, jobrun::runtime_sha256(config, &store, &name)?),
                None => continue,
            },
        };
        runtimes.insert(name, WorkerRuntime { runtime, sha256 });
    }
    Ok(WorkerSetup {
        name: std::process::id().to_string(),
        runtimes,
        assets_root: "/".into(),
        isolation: jobrun::isolation(&config.worker),
        work_root: ferry_transfer::Layout::new(&config.dir).work_dir(),
        queue_type: config.broker.queue_type,
    })
}

fn open_store(config: &Config) -> Result<Store> {
    Ok(Store::open(
        &ferry_transfer::Layout::new(&config.dir).state_db(),
    )?)
}
