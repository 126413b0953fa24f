//! `ferry console`: the owner's review console in a browser (the ferry-console crate), until SIGINT or SIGTERM.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::{Context as _, Result};
use ferry_console::{Console, Options};

use crate::cli::KeyArg;

/// `ferry console --config CFG [--key FILE] [--listen ADDR]`: prints the one-time sign-in URL on stdout.
pub async fn console_cmd(config: &Path, key: &KeyArg, listen: SocketAddr) -> Result<()> {
    let shutdown = super::serve::shutdown_signal()?;
    let key = super::review::load_key(key).context("loading the reviewer key (--key)")?;
    let console = Console::bind(Options {
        config: config.to_path_buf(),
        key,
        actor: super::review::owner_actor(),
        listen,
    })
    .await
    .context("starting the review console")?;
    let mut out = std::io::stdout();
    writeln!(
        out,
        "review console: open {}\n(the link signs in one browser, once; Ctrl-C stops the console)",
        console.url()
    )?;
    out.flush()?;
    console.serve(shutdown).await?;
    Ok(())
}
