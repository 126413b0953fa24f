//! The inbox watcher: imports settled bundles from `inbox/` every few seconds, on a blocking thread.

use ferry_core::Config;
use ferry_transfer::import::{self, ImportOptions};
use ferry_transfer::SideDir;
use tokio::sync::watch;

use crate::error::Result;
use crate::supervise::stopped;

/// Runs until `stop`.
pub async fn watcher(config: Config, mut stop: watch::Receiver<bool>) -> Result<()> {
    let mut warned = false;
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return Ok(()),
            () = tokio::time::sleep(crate::INBOX_POLL) => {}
        }
        let c = config.clone();
        let result = tokio::task::spawn_blocking(move || -> ferry_transfer::Result<usize> {
            let mut side = SideDir::from_config(c)?;
            let files = import::inbox_files(&side, true)?;
            // One file at a time, so that each bundle's import is timed for the metrics.
            let mut done = 0;
            for file in &files {
                let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
                let started = std::time::Instant::now();
                let outcomes = import::import_files(
                    &mut side,
                    std::slice::from_ref(file),
                    ImportOptions::default(),
                )?;
                crate::metrics::record_import(started, bytes, outcomes.iter().map(|(_, o)| o));
                done += outcomes.len();
            }
            Ok(done)
        })
        .await;
        match result {
            Ok(Ok(_)) => warned = false,
            Ok(Err(e)) if !warned => {
                tracing::error!("inbox watcher: {e}");
                warned = true;
            }
            Ok(Err(_)) => {}
            Err(e) => tracing::error!("inbox watcher failed: {e}"),
        }
    }
}
