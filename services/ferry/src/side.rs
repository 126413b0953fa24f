//! A side's directory opened for a command: configuration, keys, pinned peer and state store.

use std::path::Path;

use anyhow::{Context, Result};
use ferry_bundle::{Channel, PublicIdentity, SideKeys};
use ferry_core::{Config, Side, Store};

/// Everything a side's owner or ops command needs.
pub struct SideDir {
    /// The configuration.
    pub config: Config,
    /// The state store.
    pub store: Store,
}

impl SideDir {
    /// Loads the configuration and opens the state store.
    pub fn open(config_path: &Path) -> Result<SideDir> {
        let config = ferry_core::Config::load(config_path)
            .with_context(|| format!("loading configuration {}", config_path.display()))?;
        let store = Store::open(&config.state_db())
            .with_context(|| format!("opening {}", config.state_db().display()))?;
        Ok(SideDir { config, store })
    }

    /// Fails unless this is the `want` side.
    pub fn require(&self, want: Side, what: &str) -> Result<()> {
        if self.config.side != want {
            anyhow::bail!(
                "{what} is a {}-side command, but {} is the {} side's configuration",
                want.as_str(),
                self.config.dir.join("ferry.toml").display(),
                self.config.side.as_str()
            );
        }
        Ok(())
    }

    /// This side's secret keys.
    pub fn keys(&self) -> Result<SideKeys> {
        SideKeys::load(&self.config.keys_dir())
            .with_context(|| format!("loading keys from {}", self.config.keys_dir().display()))
    }

    /// The other side's pinned identity.
    pub fn peer(&self) -> Result<PublicIdentity> {
        let path = self.config.peer_file();
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "reading the pinned peer identity {} (pin it with `ferry trust add`)",
                path.display()
            )
        })?;
        PublicIdentity::parse(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The channel this side sends on.
    pub fn outgoing(&self) -> Channel {
        outgoing_channel(self.config.side)
    }

    /// The channel this side receives on.
    pub fn incoming(&self) -> Channel {
        outgoing_channel(self.config.side.peer())
    }

    /// Resolves a job id or unique prefix.
    pub fn resolve_job(&self, id: &str) -> Result<String> {
        if let Some(job) = self.store.job(id)? {
            return Ok(job.job_id);
        }
        let matches: Vec<String> = self
            .store
            .jobs(None, None)?
            .into_iter()
            .map(|j| j.job_id)
            .filter(|j| j.starts_with(id))
            .collect();
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one match")),
            0 => anyhow::bail!("no job {id:?} on the {} side", self.config.side.as_str()),
            n => anyhow::bail!("{n} jobs start with {id:?}: give more of the id"),
        }
    }
}

/// The channel `side` sends on (and the other side receives on).
pub fn outgoing_channel(side: Side) -> Channel {
    match side {
        Side::Low => Channel::LowToHigh,
        Side::High => Channel::HighToLow,
    }
}

/// Who is acting, for the audit trail: `owner:<login>`.
pub fn owner_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("owner:{user}")
}

/// A second line for errors whose fix is known.
pub fn hint_for(err: &anyhow::Error) -> Option<&'static str> {
    let text = format!("{err:#}");
    if text.contains("Connection refused") || text.contains("connecting to the broker") {
        Some("is RabbitMQ running? `rabbitmq-server -detached` starts it; check the URL's credentials and vhost")
    } else if text.contains("ACCESS_REFUSED") {
        Some("the broker refused this account: check the user name, password and its permissions on the vhost")
    } else if text.contains("is it running?") {
        Some("start the low side's services with `ferry serve --config LOW/ferry.toml`")
    } else {
        None
    }
}
