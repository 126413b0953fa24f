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
            if files.is_empty() {
                return Ok(0);
            }
            Ok(import::import_files(&mut side, &files, ImportOptions::default())?.len())
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
