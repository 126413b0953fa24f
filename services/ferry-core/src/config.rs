//! A side's configuration, `ferry.toml`, and the directory layout around it.
//!
//! Relative paths in the file are taken from the directory that holds the file, so a side's directory can be
//! moved or mounted elsewhere whole.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::channel::Channel;

/// Which side of the gap a directory belongs to. With the `clap` feature it is a `clap::ValueEnum` too, named as in
/// [`Side::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// Reached by researchers; holds only mocks.
    Low,
    /// Inside the lab; holds the private assets and runs the jobs.
    High,
}

impl Side {
    /// "low" or "high".
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Low => "low",
            Side::High => "high",
        }
    }

    /// The other side.
    pub fn peer(self) -> Side {
        match self {
            Side::Low => Side::High,
            Side::High => Side::Low,
        }
    }

    /// The channel this side sends on.
    pub fn outgoing(self) -> Channel {
        match self {
            Side::Low => Channel::LowToHigh,
            Side::High => Channel::HighToLow,
        }
    }

    /// The channel this side receives on: the other side's outgoing one.
    pub fn incoming(self) -> Channel {
        self.peer().outgoing()
    }
}

/// A configuration that can't be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A value is out of its range.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Bundle policy: lifetimes and how far a receiver lets the sequence jump.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BundlePolicy {
    /// How long a bundle stays importable after it was made, in hours.
    pub expiry_hours: u64,
    /// How far the receiver's clock may be behind or ahead of the sender's, in seconds.
    pub clock_slack_secs: u64,
    /// The largest forward jump in sequence numbers accepted without the owner; bigger jumps are quarantined.
    pub max_seq_gap: u64,
    /// The most a bundle's payload may hold, in MiB.
    pub max_bundle_mb: u64,
    /// The most `quarantine/` keeps, in MiB; past it a refused bundle is recorded (reason, size, SHA-256) but its
    /// bytes are not kept.
    pub max_quarantine_mb: u64,
}

impl Default for BundlePolicy {
    fn default() -> Self {
        BundlePolicy {
            expiry_hours: 24 * 14,
            clock_slack_secs: 600,
            max_seq_gap: 16,
            max_bundle_mb: 4096,
            max_quarantine_mb: 16384,
        }
    }
}

/// Limits on what researchers may submit (low side).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IntakePolicy {
    /// Largest accepted job code, in bytes.
    pub max_code_bytes: usize,
    /// Most assets one job may name.
    pub max_assets: usize,
    /// Largest accepted request message, in bytes.
    pub max_message_bytes: usize,
}

impl Default for IntakePolicy {
    fn default() -> Self {
        IntakePolicy {
            max_code_bytes: 256 * 1024,
            max_assets: 16,
            max_message_bytes: 1024 * 1024,
        }
    }
}

/// How jobs run (both sides: the low side for `ferry run --mock`, the high side for the workers).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerConfig {
    /// Workers per `ferry serve` process (high side; 0: serve only coordinates, `ferry worker` processes run the
    /// jobs), or per `ferry worker` process (at least 1).
    pub count: usize,
    /// `"on"` (default) or `"off"`; off runs jobs without isolation and is for development only.
    pub sandbox: String,
    /// Wall-clock limit per job, in seconds.
    pub wall_time_secs: u64,
    /// CPU-time limit per job, in seconds.
    pub cpu_secs: u64,
    /// Address-space limit per job, in MiB.
    pub memory_mb: u64,
    /// Most processes a job may have at once.
    pub max_processes: u64,
    /// Most open files per process.
    pub max_open_files: u64,
    /// Most bytes a job may write into `outputs/`, in MiB.
    pub max_output_mb: u64,
    /// Most bytes kept of each of stdout and stderr, in KiB.
    pub max_stdio_kb: u64,
    /// The most memory (MiB) a job may ask for (`ferry submit --memory-mb`); `memory_mb` is what it gets unasked.
    pub max_memory_mb: u64,
    /// The most wall-clock seconds a job may ask for (`--wall-secs`); it gets as many CPU seconds.
    pub max_wall_time_secs: u64,
    /// The most CPUs a job may ask for (`--cpus`); 0: every CPU of the machine. A job that asks is bound to that
    /// many.
    pub max_cpus: u32,
}

impl WorkerConfig {
    /// The CPU cap in force: `max_cpus`, or the machine's CPUs when it is 0.
    pub fn cpu_cap(&self) -> u64 {
        match self.max_cpus {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            n => u64::from(n),
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            count: 1,
            sandbox: "on".into(),
            wall_time_secs: 300,
            cpu_secs: 300,
            memory_mb: 2048,
            max_processes: 64,
            max_open_files: 256,
            max_output_mb: 64,
            max_stdio_kb: 1024,
            max_memory_mb: 8192,
            max_wall_time_secs: 3600,
            max_cpus: 0,
        }
    }
}

/// One interpreter jobs may name as their `runtime`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// The interpreter's absolute path.
    pub program: PathBuf,
    /// Arguments placed before the script's path.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables the job sees besides `FERRY_JOB_ID`.
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
}

/// The whole of `ferry.toml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which side this directory is.
    pub side: Side,
    /// This side's broker, with the service's own credentials.
    pub amqp_url: String,
    /// The broker's management HTTP API, for researcher accounts (low side).
    #[serde(default, skip_serializing_if = "BrokerConfig::is_default")]
    pub broker: BrokerConfig,
    /// Bundle lifetimes and sequence policy.
    #[serde(default)]
    pub bundle: BundlePolicy,
    /// Researcher request limits.
    #[serde(default)]
    pub intake: IntakePolicy,
    /// Job execution.
    #[serde(default)]
    pub worker: WorkerConfig,
    /// Output review (high side): the disclosure checks' thresholds and which findings block a release.
    #[serde(default)]
    pub review: ferry_review::checks::ReviewPolicy,
    /// Interpreters by runtime name; `python` is always present.
    #[serde(default = "default_runtimes")]
    pub runtimes: std::collections::BTreeMap<String, RuntimeConfig>,
    /// The directory holding this file; set when loading.
    #[serde(skip)]
    pub dir: PathBuf,
}

fn default_runtimes() -> std::collections::BTreeMap<String, RuntimeConfig> {
    let mut map = std::collections::BTreeMap::new();
    map.insert(
        "python".to_string(),
        RuntimeConfig {
            program: "/usr/bin/python3".into(),
            args: vec!["-I".into(), "-B".into()],
            env: Default::default(),
        },
    );
    map
}

/// `[broker]`: how `ferry researcher add|list|remove|password` reach RabbitMQ's management HTTP API.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// The management API's base URL, e.g. `http://127.0.0.1:15672`. Its account is `amqp_url`'s unless the
    /// URL names one (`http://USER:PASSWORD@host:15672`). Unset: `http://HOST:15672` when `amqp_url`'s host is
    /// this machine (127.0.0.1, localhost, ::1); a broker on another host needs it set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_url: Option<String>,
    /// The type of the durable queues `ferry serve` declares: `classic` (the default) or `quorum` (replicated on
    /// a cluster, with a delivery limit on the requests and jobs queues). RabbitMQ cannot change the type of a
    /// queue that exists: switching needs the queues deleted while empty, or a new vhost (deploy/README.md).
    #[serde(default, skip_serializing_if = "QueueType::is_classic")]
    pub queue_type: QueueType,
}

/// `[broker] queue_type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// RabbitMQ's classic queues: one node holds each.
    #[default]
    Classic,
    /// Quorum queues (Raft-replicated across a cluster's nodes; `x-queue-type: quorum`).
    Quorum,
}

impl QueueType {
    /// Its name in ferry.toml and in `x-queue-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }

    fn is_classic(&self) -> bool {
        *self == QueueType::Classic
    }
}

impl BrokerConfig {
    fn is_default(&self) -> bool {
        self == &BrokerConfig::default()
    }
}

/// The host `url` (an AMQP URL) names, without brackets or port; None when there is none.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then_some(host)
}

impl Config {
    /// The management API URL researcher accounts are managed through: `[broker] management_url`, or when that
    /// is unset and `amqp_url` names this machine, `http://HOST:15672` on the same host. None: neither.
    pub fn management_url(&self) -> Option<String> {
        if let Some(url) = &self.broker.management_url {
            return Some(url.clone());
        }
        match url_host(&self.amqp_url)? {
            h @ ("127.0.0.1" | "localhost") => Some(format!("http://{h}:15672")),
            "::1" => Some("http://[::1]:15672".to_string()),
            _ => None,
        }
    }
}

/// The default broker URL of `ferry init`.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

impl Config {
    /// A fresh configuration for `side` living in `dir`.
    pub fn new(side: Side, dir: &Path, amqp_url: &str) -> Config {
        Config {
            side,
            amqp_url: amqp_url.to_string(),
            broker: BrokerConfig::default(),
            bundle: BundlePolicy::default(),
            intake: IntakePolicy::default(),
            worker: WorkerConfig::default(),
            review: Default::default(),
            runtimes: default_runtimes(),
            dir: dir.to_path_buf(),
        }
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        if side_of(&text).as_deref() == Some("worker") {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message:
                    "this is a stateless worker's configuration (side = \"worker\"): run it with \
                          `ferry worker --config`, not as a side"
                        .into(),
            });
        }
        let mut config: Config = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        // Every path of the side is made absolute here, once: a side opened as `--config high/ferry.toml` must
        // not hand relative paths to a sandbox or a worker that runs elsewhere.
        config.dir = config_dir(path)?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        check_amqp_url(&self.amqp_url).map_err(invalid)?;
        if let Some(url) = &self.broker.management_url {
            if !url.starts_with("http://") {
                return Err(invalid(format!(
                    "broker.management_url must start with http:// (https is not built in: reach a remote \
                     broker's API through a tunnel or a local TLS proxy), found {:?}",
                    redact_url(url)
                )));
            }
        }
        check_sandbox(&self.worker).map_err(invalid)?;
        if self.worker.count > 64 {
            return Err(invalid(
                "worker.count must be 0 (serve coordinates only; `ferry worker` runs the jobs) to 64".into(),
            ));
        }
        if self.worker.max_memory_mb < self.worker.memory_mb
            || self.worker.max_wall_time_secs < self.worker.wall_time_secs
        {
            return Err(invalid(
                "worker.max_memory_mb and worker.max_wall_time_secs must be at least worker.memory_mb and \
                 worker.wall_time_secs: a cap below the default would refuse what a job gets unasked"
                    .into(),
            ));
        }
        if self.bundle.expiry_hours == 0 {
            return Err(invalid("bundle.expiry_hours must be at least 1".into()));
        }
        self.review
            .validate()
            .map_err(|e| invalid(format!("[review]: {e}")))?;
        if !self.runtimes.contains_key("python") {
            return Err(invalid("runtimes.python is missing".into()));
        }
        check_runtimes(&self.runtimes).map_err(invalid)?;
        Ok(())
    }

    /// The TOML text of this configuration.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configuration serializes")
    }
}

/// The `side` of a stateless worker's `ferry.toml`: always `"worker"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerTag {
    /// A stateless worker (`ferry worker`).
    Worker,
}

/// The `ferry.toml` of a stateless worker (`ferry init --side worker`, `ferry worker`): the high side's broker,
/// the asset store it may read, how jobs run and the runtimes it has. Nothing else: a worker never opens the high
/// side's state store or keys.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSideConfig {
    /// Always `"worker"`.
    pub side: WorkerTag,
    /// The high side's broker, with the worker's own credentials.
    pub amqp_url: String,
    /// The asset store (shared storage, mounted read-only at the paths the high side registered assets under):
    /// the worker reads no asset outside it.
    pub assets: PathBuf,
    /// The worker's name in job histories and receipts (default: the host name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `[broker] queue_type`: must be the high side's, since both declare the job queues.
    #[serde(default, skip_serializing_if = "BrokerConfig::is_default")]
    pub broker: BrokerConfig,
    /// Job execution: `count` jobs at once, the sandbox and its limits (the high side sends each job's limits).
    #[serde(default)]
    pub worker: WorkerConfig,
    /// The interpreters this worker has: it takes only jobs for these runtimes.
    #[serde(default = "default_runtimes")]
    pub runtimes: std::collections::BTreeMap<String, RuntimeConfig>,
    /// The directory holding this file; set when loading.
    #[serde(skip)]
    pub dir: PathBuf,
}

impl WorkerSideConfig {
    /// A fresh worker configuration living in `dir`.
    pub fn new(dir: &Path, amqp_url: &str, assets: &Path) -> WorkerSideConfig {
        WorkerSideConfig {
            side: WorkerTag::Worker,
            amqp_url: amqp_url.to_string(),
            assets: assets.to_path_buf(),
            name: None,
            broker: BrokerConfig::default(),
            worker: WorkerConfig::default(),
            runtimes: default_runtimes(),
            dir: dir.to_path_buf(),
        }
    }

    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<WorkerSideConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config: WorkerSideConfig =
            toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.to_path_buf(),
                message: if matches!(side_of(&text).as_deref(), Some("high" | "low")) {
                    format!("{e} (this is a side's configuration: `ferry worker` needs one made by `ferry init --side worker`)")
                } else {
                    e.to_string()
                },
            })?;
        config.dir = config_dir(path)?;
        if config.assets.is_relative() {
            config.assets = config.dir.join(&config.assets);
        }
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        check_amqp_url(&config.amqp_url).map_err(invalid)?;
        config.assets = config.assets.canonicalize().map_err(|e| {
            invalid(format!(
                "assets = {:?}: the asset store cannot be opened ({e})",
                config.assets.display().to_string()
            ))
        })?;
        check_sandbox(&config.worker).map_err(invalid)?;
        if config.worker.count == 0 || config.worker.count > 64 {
            return Err(invalid("worker.count must be 1 to 64".into()));
        }
        if config.runtimes.is_empty() {
            return Err(invalid(
                "[runtimes] is empty: a worker with no runtime takes no job".into(),
            ));
        }
        check_runtimes(&config.runtimes).map_err(invalid)?;
        Ok(config)
    }

    /// The TOML text of this configuration.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("configuration serializes")
    }
}

/// `url` with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            let user = userinfo.split(':').next().unwrap_or("");
            return format!("{scheme}://{user}:***@{host}");
        }
    }
    url.to_string()
}

/// The `side` a configuration's text names, when it parses as TOML and names one: what tells a side's file from a
/// worker's before either is parsed whole.
fn side_of(text: &str) -> Option<String> {
    match toml::from_str::<toml::Value>(text).ok()? {
        toml::Value::Table(t) => t.get("side")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The directory holding the configuration file `path`, absolute: every path of a side or a worker is made absolute
/// once, here, so that none handed to a sandbox or a worker elsewhere is relative.
fn config_dir(path: &Path) -> Result<PathBuf, ConfigError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    dir.canonicalize().map_err(|source| ConfigError::Read {
        path: dir.to_path_buf(),
        source,
    })
}

fn check_amqp_url(url: &str) -> Result<(), String> {
    if url.starts_with("amqp://") || url.starts_with("amqps://") {
        return Ok(());
    }
    Err(format!(
        "amqp_url must start with amqp:// or amqps://, found {:?}",
        redact_url(url)
    ))
}

fn check_sandbox(worker: &WorkerConfig) -> Result<(), String> {
    if worker.sandbox == "on" || worker.sandbox == "off" {
        return Ok(());
    }
    Err(format!(
        "worker.sandbox must be \"on\" or \"off\", found {:?}",
        worker.sandbox
    ))
}

/// Each configured runtime's name follows the runtime-name rule, and its program is an absolute path.
fn check_runtimes(
    runtimes: &std::collections::BTreeMap<String, RuntimeConfig>,
) -> Result<(), String> {
    for (name, rt) in runtimes {
        crate::names::runtime(name).map_err(|e| format!("[runtimes.{name}]: {e}"))?;
        if !rt.program.is_absolute() {
            return Err(format!("runtimes.{name}.program must be an absolute path"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// However its `side` is spelled, a side's file is told from a worker's before either is parsed whole.
    #[test]
    fn the_side_a_configuration_names_is_read_as_toml() {
        use super::side_of;
        assert_eq!(side_of("side = \"high\"\n").as_deref(), Some("high"));
        assert_eq!(side_of("side='low'\n").as_deref(), Some("low"));
        assert_eq!(side_of("dir = \"/x\"\n"), None);
        assert_eq!(side_of("not toml ["), None);
    }

    /// `[broker] queue_type` reads `classic` or `quorum`, is classic when left out (and then not written), and
    /// refuses anything else naming the key.
    #[test]
    fn broker_queue_type_is_classic_unless_set_to_quorum() {
        use super::{BrokerConfig, QueueType};
        let read = |text: &str| toml::from_str::<BrokerConfig>(text);
        assert_eq!(read("").unwrap().queue_type, QueueType::Classic);
        assert_eq!(
            read("queue_type = \"quorum\"").unwrap().queue_type,
            QueueType::Quorum
        );
        let err = read("queue_type = \"stream\"").unwrap_err().to_string();
        assert!(
            err.contains("queue_type") || err.contains("classic"),
            "{err}"
        );
        assert!(toml::to_string(&BrokerConfig::default())
            .unwrap()
            .is_empty());
    }

    use super::*;

    #[test]
    fn the_management_url_defaults_to_the_amqp_host_only_on_this_machine() {
        let dir = Path::new("/tmp");
        let local = Config::new(Side::Low, dir, "amqp://u:p@127.0.0.1:5672/v");
        assert_eq!(
            local.management_url().as_deref(),
            Some("http://127.0.0.1:15672")
        );
        let v6 = Config::new(Side::Low, dir, "amqp://u:p@[::1]:5672/v");
        assert_eq!(v6.management_url().as_deref(), Some("http://[::1]:15672"));
        let mut remote = Config::new(Side::Low, dir, "amqp://u:p@broker.example:5672/v");
        assert_eq!(remote.management_url(), None);
        remote.broker.management_url = Some("http://broker.example:15672".into());
        assert_eq!(
            remote.management_url().as_deref(),
            Some("http://broker.example:15672")
        );
        let text = "side = \"low\"\namqp_url = \"amqp://x@h/v\"\n[broker]\nmanagement_url = \"https://h:15671\"\n";
        let path = std::env::temp_dir().join(format!("ferry-cfg-{}.toml", std::process::id()));
        std::fs::write(&path, text).unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(err.contains("must start with http://"), "{err}");
    }

    #[test]
    fn the_deploy_examples_are_valid_configurations() {
        for (name, text) in [
            (
                "deploy/low.ferry.toml",
                include_str!("../../../deploy/low.ferry.toml"),
            ),
            (
                "deploy/high.ferry.toml",
                include_str!("../../../deploy/high.ferry.toml"),
            ),
        ] {
            let config: Config =
                toml::from_str(text).unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
            config
                .validate(Path::new(name))
                .unwrap_or_else(|e| panic!("{name} is not valid: {e}"));
        }
        let high: Config = toml::from_str(include_str!("../../../deploy/high.ferry.toml")).unwrap();
        assert_eq!(
            high.review.block_on,
            ferry_review::checks::default_block_on()
        );
    }

    #[test]
    fn a_relative_config_path_gives_an_absolute_side_directory() {
        let dir = tempfile::tempdir().unwrap();
        let side = dir.path().join("high");
        std::fs::create_dir(&side).unwrap();
        let config = Config::new(Side::High, &side, DEFAULT_AMQP_URL);
        std::fs::write(side.join("ferry.toml"), config.to_toml()).unwrap();
        let cwd = std::env::current_dir().unwrap();
        let relative = pathdiff(&side.join("ferry.toml"), &cwd);
        let loaded = Config::load(&relative).unwrap();
        assert!(loaded.dir.is_absolute(), "{}", loaded.dir.display());
        assert_eq!(loaded.dir, side.canonicalize().unwrap());
    }

    /// `to` as a path relative to `from` (both absolute), through `..` components.
    fn pathdiff(to: &Path, from: &Path) -> PathBuf {
        let ups = from.components().count() - 1;
        let mut p = PathBuf::new();
        for _ in 0..ups {
            p.push("..");
        }
        p.join(to.strip_prefix("/").unwrap())
    }

    #[test]
    fn round_trip_and_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new(Side::High, dir.path(), DEFAULT_AMQP_URL);
        let path = dir.path().join("ferry.toml");
        std::fs::write(&path, config.to_toml()).unwrap();
        let loaded = Config::load(&path).unwrap();
        assert_eq!(loaded.side, Side::High);
        assert_eq!(loaded.dir, dir.path());
        assert_eq!(loaded.worker.sandbox, "on");
        assert!(loaded.runtimes.contains_key("python"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ferry.toml");
        std::fs::write(
            &path,
            "side = \"low\"\namqp_url = \"amqp://x\"\nbogus = 1\n",
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
        std::fs::write(
            &path,
            "side = \"low\"\namqp_url = \"amqp://x\"\n[worker]\nsandbox = \"maybe\"\n",
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("worker.sandbox"), "{err}");
    }

    #[cfg(feature = "clap")]
    #[test]
    fn sides_on_the_command_line_are_named_as_in_the_configuration() {
        use clap::ValueEnum;
        for side in Side::value_variants() {
            let value = side.to_possible_value().expect("every side is offered");
            assert_eq!(value.get_name(), side.as_str());
            assert_eq!(Side::from_str(side.as_str(), false).unwrap(), *side);
        }
        assert_eq!(Side::value_variants(), [Side::Low, Side::High]);
        assert!(Side::from_str("middle", false).is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("amqp://alice:secret@host:5672/%2f"),
            "amqp://alice:***@host:5672/%2f"
        );
    }
}
