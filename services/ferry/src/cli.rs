//! The command line, as CONTRACT.md gives it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `ferry --version`: the crate's version and the commit it was built from.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("FERRY_COMMIT"), ")");

/// Ferry carries evaluation jobs into an air-gapped lab and reviewed results back out.
#[derive(Debug, Parser)]
#[command(name = "ferry", version = VERSION, about, propagate_version = true)]
pub struct Cli {
    /// No progress on the terminal (it is never drawn when stderr is not a terminal).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// `--config`, for owner and ops commands.
#[derive(Debug, Args, Clone)]
pub struct ConfigArg {
    /// The side's ferry.toml.
    #[arg(long, env = "FERRY_CONFIG", value_name = "FILE")]
    pub config: PathBuf,
}

/// `--key`, for decisions on a side with registered reviewers.
#[derive(Debug, Args, Clone)]
pub struct KeyArg {
    /// Your reviewer key (`ferry reviewer keygen`); required where the side has registered reviewers.
    #[arg(long = "key", env = "FERRY_REVIEWER_KEY", value_name = "FILE")]
    pub key: Option<PathBuf>,
}

/// `--amqp`, for researcher commands.
#[derive(Debug, Args, Clone)]
pub struct AmqpArg {
    /// The low-side broker with your own credentials, e.g. amqp://alice:PASSWORD@host:5672/%2f
    #[arg(
        long,
        env = "FERRY_AMQP_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub amqp: String,
}

/// What `ferry init` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitSide {
    /// The side researchers reach.
    Low,
    /// The side inside the lab.
    High,
    /// A stateless worker for the high side.
    Worker,
}

/// Every command.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a ready side in DIR: configuration, keys, directories and state database; or with --side worker,
    /// a stateless worker's configuration (no keys, no state database).
    Init {
        /// low, high, or worker.
        #[arg(long)]
        side: InitSide,
        /// Where to create it.
        #[arg(long)]
        dir: PathBuf,
        /// This side's broker, with the service's own account and the side's own vhost (default:
        /// amqp://guest:guest@127.0.0.1:5672/ferry-SIDE, so that two sides on one broker do not collide).
        #[arg(long, value_name = "URL")]
        amqp: Option<String>,
        /// Also create the URL's vhost and account on the broker, with every permission on that vhost, through
        /// `rabbitmqctl` (run as root); what exists already is left as it is. On the low side the account also
        /// gets the `administrator` tag: it manages researcher accounts through the management API. On a side
        /// made before, provisions its ferry.toml's broker.
        #[arg(long)]
        provision: bool,
        /// With --side worker: the asset store, shared storage mounted read-only at the paths the high side
        /// registered its assets under; the worker reads no asset outside it.
        #[arg(long, value_name = "DIR")]
        assets: Option<PathBuf>,
    },
    /// Run a stateless worker until SIGINT or SIGTERM: jobs from the high side's broker for the runtimes it has,
    /// results back to the high side's `ferry serve`. Needs only the broker and read access to the asset store.
    Worker {
        /// The worker's ferry.toml (`ferry init --side worker`).
        #[command(flatten)]
        config: ConfigArg,
        /// Serve Prometheus metrics at http://ADDR/metrics (an IP address and port; port 0 picks one).
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
    },
    /// Pin the other side's public identity.
    Trust {
        /// What to do.
        #[command(subcommand)]
        action: TrustAction,
    },
    /// Manage researcher accounts (low side).
    Researcher {
        /// What to do.
        #[command(subcommand)]
        action: ResearcherAction,
    },
    /// Register assets (high side).
    Asset {
        /// What to do.
        #[command(subcommand)]
        action: AssetAction,
    },
    /// Runtimes: register interpreters jobs may use (owner, high side); install one locally (researcher).
    Runtime {
        /// What to do.
        #[command(subcommand)]
        action: RuntimeAction,
    },
    /// List the runtimes you can name in a job, with their Python version and packages.
    Runtimes {
        /// Your broker account.
        #[command(flatten)]
        amqp: AmqpArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The owner's reviews: code on the low side, results on the high side.
    Review {
        /// What to do.
        #[command(subcommand)]
        action: ReviewAction,
    },
    /// Check a side: configuration, directories and permissions, keys and the pinned peer, the state store,
    /// runtimes and the sandbox, free disk, the clock, the broker and its topology. Exit 1 naming each problem,
    /// with a hint.
    Doctor {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) for ferry on stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print ferry's man page (roff) on stdout: `ferry manpage > ferry.1`.
    Manpage,
    /// Reviewers' keys: make one, register, list, remove.
    Reviewer {
        /// What to do.
        #[command(subcommand)]
        action: ReviewerAction,
    },
    /// The side's tamper-evident audit log.
    Audit {
        /// What to do.
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Write one signed, encrypted bundle with everything pending for the other side into outbox/.
    Export {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Rebuild bundle SEQ, which the other side reports missing: same content and sequence number, signed
        /// anew with a fresh id and expiry.
        #[arg(long, value_name = "SEQ")]
        resend: Option<u64>,
        /// Split the bundle into parts no larger than SIZE for removable media: dvd, bluray, fat32 (4 GiB - 1), or
        /// a size such as 700M or 2GiB.
        #[arg(long, value_name = "SIZE", value_parser = ferry_bundle::parse_part_size)]
        max_part_size: Option<u64>,
        /// When a bundle is written, write its size and how long it took to FILE in the Prometheus text format
        /// (replaced whole), for node_exporter's textfile collector: FILE ending in .prom in its directory.
        #[arg(long, value_name = "FILE")]
        metrics_file: Option<PathBuf>,
    },
    /// Import bundles from inbox/ (or the files named).
    Import {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Bundle files; default: every complete bundle in inbox/.
        files: Vec<PathBuf>,
        /// Accept a jump in sequence numbers past bundle.max_seq_gap (the owner, after reviewing the quarantined
        /// bundle); only with named files.
        #[arg(long)]
        accept_gap: bool,
    },
    /// Run the side's services until SIGINT or SIGTERM.
    Serve {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Serve Prometheus metrics at http://ADDR/metrics (ADDR: IP:PORT, like 127.0.0.1:9464; port 0 picks a
        /// free one, logged as "metrics on http://ADDR/metrics"). Off unless given.
        #[arg(long, value_name = "ADDR")]
        metrics: Option<String>,
    },
    /// Serve the owner's review console in a browser, on loopback, until SIGINT or SIGTERM: prints a sign-in URL
    /// that works once. Decisions are signed with --key, as `ferry review` signs them. One console per side.
    Console {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The reviewer's key.
        #[command(flatten)]
        key: KeyArg,
        /// Where to listen: a loopback address; port 0 picks a free one.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// Manage this side's keys.
    Keys {
        /// What to do.
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Copy bundles to and from a mounted medium, with read-back verification.
    Media {
        /// What to do.
        #[command(subcommand)]
        action: MediaAction,
    },
    /// Look at a bundle without importing it.
    Bundle {
        /// What to do.
        #[command(subcommand)]
        action: BundleAction,
    },
    /// With --config: the side's jobs by state, channels and pending export. With JOB: where your job is.
    Status {
        /// Your job's id (researchers).
        job: Option<String>,
        /// The side's ferry.toml (owners and ops).
        #[arg(long, env = "FERRY_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Your low-side broker URL (researchers).
        #[arg(
            long,
            env = "FERRY_AMQP_URL",
            value_name = "URL",
            hide_env_values = true
        )]
        amqp: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the assets you can name in a job, with their mocks' sizes.
    Assets {
        /// Your broker account.
        #[command(flatten)]
        amqp: AmqpArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Fetch an asset's mock.
    Mock {
        /// What to do.
        #[command(subcommand)]
        action: MockAction,
    },
    /// Run a script locally against the mocks, exactly as the high side will run it against the private assets.
    Run {
        /// Run against the mocks (the only mode researchers have).
        #[arg(long, required = true)]
        mock: bool,
        /// An asset the script reads as inputs/NAME; repeat for several.
        #[arg(long = "asset", required = true, value_name = "NAME")]
        assets: Vec<String>,
        /// The runtime (`ferry runtimes` lists them); one other than `python` must be installed here first
        /// (`ferry runtime install NAME`), unless --python names an interpreter.
        #[arg(long, default_value = "python")]
        runtime: String,
        /// Run under this interpreter of your own (a virtualenv's bin/python) instead; warns where it differs
        /// from the lab's runtime.
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
        /// Where to write the files the script leaves in outputs/.
        #[arg(long, default_value = "mock-outputs")]
        out: PathBuf,
        /// Run without the sandbox (development only; says so loudly).
        #[arg(long)]
        no_sandbox: bool,
        /// Your broker account.
        #[command(flatten)]
        amqp: AmqpArg,
        /// The script.
        script: PathBuf,
    },
    /// Submit a script for review; prints the job id.
    Submit {
        /// An asset the script reads as inputs/NAME; repeat for several.
        #[arg(long = "asset", required = true, value_name = "NAME")]
        assets: Vec<String>,
        /// A short title for the reviewers.
        #[arg(long, default_value = "")]
        title: String,
        /// What the job does and why.
        #[arg(long, default_value = "")]
        description: String,
        /// The runtime.
        #[arg(long, default_value = "python")]
        runtime: String,
        /// This job is a new version of JOB (one of yours), e.g. after the owner returned it.
        #[arg(long, value_name = "JOB")]
        revises: Option<String>,
        /// Memory the job may use (MiB, per process) instead of the side's default, up to its cap.
        #[arg(long, value_name = "MIB")]
        memory_mb: Option<u64>,
        /// Wall-clock seconds (and CPU seconds) instead of the side's default, up to its cap.
        #[arg(long, value_name = "SECS")]
        wall_secs: Option<u64>,
        /// CPUs the job may use, up to the side's cap.
        #[arg(long, value_name = "N")]
        cpus: Option<u32>,
        /// Your broker account.
        #[command(flatten)]
        amqp: AmqpArg,
        /// The script.
        script: PathBuf,
    },
    /// Your jobs' results: state, exit code, stdout; output files go into --out.
    ///
    /// With JOB, the exit code says how it stands: 0 its result is here, 3 still pending, 4 failed, 5 rejected,
    /// 6 withheld, 7 cancelled, 8 returned (1: the call itself failed).
    Results {
        /// One job; default: all of yours.
        job: Option<String>,
        /// Wait until the job reaches a final state.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Where to write output files (DIR/JOB_ID/...).
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Your broker account.
        #[command(flatten)]
        amqp: AmqpArg,
    },
    /// Cancel one of your jobs.
    Cancel {
        /// The job.
        job: String,
        /// Your broker account.
        #[command(flatten)]
        amqp: AmqpArg,
    },
}

/// `ferry trust ...`
#[derive(Debug, Subcommand)]
pub enum TrustAction {
    /// Pin the other side's public.txt.
    Add {
        /// This side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The other side's public.txt.
        peer_public_txt: PathBuf,
    },
}

/// `ferry researcher ...`
#[derive(Debug, Subcommand)]
pub enum ResearcherAction {
    /// Create NAME's broker account (password on stdin) and results queue, through the broker's management
    /// API; a failure part-way undoes what was made. An existing user is refused.
    Add {
        /// The low side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The researcher's name (lower case letters, digits, '-', '_').
        name: String,
    },
    /// List the researchers on the low side's vhost, with the results waiting in their queues.
    List {
        /// The low side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove NAME's broker account and results queue (results not yet read go with it); their jobs stay in
    /// the state store.
    Remove {
        /// The low side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The researcher's name.
        name: String,
    },
    /// Give NAME a new password, read from stdin.
    Password {
        /// The low side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The researcher's name.
        name: String,
    },
}

/// `ferry asset ...`
#[derive(Debug, Subcommand)]
pub enum AssetAction {
    /// Register an asset and its mock (high side).
    Add {
        /// The high side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The name jobs use (inputs/NAME).
        name: String,
        /// The private file; it never leaves the high side.
        #[arg(long)]
        private: PathBuf,
        /// The mock: fake data of the same shape; it travels to the low side.
        #[arg(long)]
        mock: PathBuf,
        /// What the asset is, for researchers.
        #[arg(long, default_value = "")]
        description: String,
        /// A string planted in the private file whose appearance in any output is a `canary` finding (at least 8
        /// bytes; give it several times for several). Canaries never leave the high side.
        #[arg(long, value_name = "TEXT")]
        canary: Vec<String>,
    },
    /// Remove an asset (high side): the next export carries the catalog without it; jobs naming it fail, saying
    /// so. Its mock stays in the mock stores (they are kept by content hash).
    Remove {
        /// The high side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The asset.
        name: String,
    },
    /// List registered assets.
    List {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `ferry runtime ...`
#[derive(Debug, Subcommand)]
pub enum RuntimeAction {
    /// Register a Python environment as a runtime (high side): inspects it, test-starts it in the sandbox and
    /// records its packages and content hash; it reaches the low side with the next export.
    Add {
        /// The high side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The name jobs give as --runtime (lower case letters, digits, '-', '_', '.').
        name: String,
        /// The interpreter: a virtualenv's bin/python, or an installation's python3.
        #[arg(long, value_name = "PATH")]
        python: PathBuf,
        /// What it offers, for researchers.
        #[arg(long, default_value = "")]
        description: String,
        /// A device node to pass into the sandbox (a GPU's /dev/nvidia0, ...); repeat for several.
        #[arg(long = "device", value_name = "PATH")]
        devices: Vec<PathBuf>,
    },
    /// List the configured and registered runtimes.
    List {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a registered runtime (high side).
    Remove {
        /// The high side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The runtime.
        name: String,
    },
    /// Make a local virtualenv with the same package versions as the lab's runtime NAME (researchers), for
    /// `ferry run --mock --runtime NAME`.
    Install {
        /// The runtime (`ferry runtimes` lists them).
        name: String,
        /// Where to make it (default: $XDG_DATA_HOME/ferry/runtimes/NAME).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Your broker account.
        #[command(flatten)]
        amqp: AmqpArg,
    },
}

/// `ferry review ...`
#[derive(Debug, Subcommand)]
pub enum ReviewAction {
    /// What awaits review: submitted requests (low) or finished jobs (high).
    List {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Every job, whatever its state.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One job in full.
    Show {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Job id (a unique prefix is enough).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write exactly the bytes a release would carry: DIR/outputs/<name>, DIR/stdout, DIR/stderr.
    Extract {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Job id (a unique prefix is enough).
        id: String,
        /// Directory to write (must not exist, or be empty).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Approve a submitted request's code (low side).
    Approve {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The reviewer's key.
        #[command(flatten)]
        key: KeyArg,
        /// Job ids (a unique prefix is enough); each is decided on its own.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Reject a submitted request (low side); the researcher sees the reason.
    Reject {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The reviewer's key.
        #[command(flatten)]
        key: KeyArg,
        /// Job ids (a unique prefix is enough); each is decided on its own.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Why, for the researcher.
        #[arg(long)]
        reason: String,
    },
    /// Release a finished job's result (high side): exactly the bytes shown, less any file withheld.
    Release {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The reviewer's key.
        #[command(flatten)]
        key: KeyArg,
        /// Job ids (a unique prefix is enough); each is decided on its own.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Withhold this file and release the rest: `stdout`, `stderr` or an output's name (`outputs/NAME` or
        /// `NAME`); give it several times for several. Needs --reason.
        #[arg(long, value_name = "FILE")]
        withhold: Vec<String>,
        /// Why the files are withheld, for the researcher.
        #[arg(long, requires = "withhold")]
        reason: Option<String>,
        /// Release despite findings that `[review] block_on` makes blocking, for this reason (recorded in the
        /// audit trail).
        #[arg(long = "override", value_name = "REASON")]
        override_reason: Option<String>,
    },
    /// Withhold a finished job's result (high side); the researcher sees the reason.
    Withhold {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The reviewer's key.
        #[command(flatten)]
        key: KeyArg,
        /// Job ids (a unique prefix is enough); each is decided on its own.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Why, for the researcher.
        #[arg(long)]
        reason: String,
    },
    /// Ask for changes (either side: a submitted job's code, or a finished job's result); the researcher sees the
    /// reason and submits a revision with `ferry submit --revises JOB`.
    Return {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The reviewer's key.
        #[command(flatten)]
        key: KeyArg,
        /// Job id (a unique prefix is enough).
        id: String,
        /// What to change, for the researcher.
        #[arg(long)]
        reason: String,
    },
    /// Comment on a job; the researcher sees it (from the high side, once the next bundle crosses).
    Comment {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Job id (a unique prefix is enough).
        id: String,
        /// The comment.
        text: String,
    },
    /// Queue again a job that failed for a reason not its own (sandbox or runtime unavailable), without new
    /// approvals (high side).
    Retry {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Job id (a unique prefix is enough).
        id: String,
    },
}

/// `ferry reviewer ...`
#[derive(Debug, Subcommand)]
pub enum ReviewerAction {
    /// Make a reviewer key (run by the reviewer, on their own account): writes the secret to FILE (mode 0600)
    /// and prints the public key line for `ferry reviewer add`.
    Keygen {
        /// Where to write the secret key (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Register a reviewer's public key on this side.
    Add {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The reviewer's name (lower case letters, digits, '-', '_').
        name: String,
        /// The public key line `ferry reviewer keygen` printed, or a file holding it.
        public: String,
    },
    /// The side's reviewers.
    List {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a reviewer: their decisions no longer count, here or on the other side.
    Remove {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The reviewer's name.
        name: String,
    },
}

/// `ferry audit ...`
#[derive(Debug, Subcommand)]
pub enum AuditAction {
    /// Check this side's audit log (its hash chain, and that the audit trail and decisions agree with it); with
    /// --peer, check the other side's exported log against the heads its bundles carried.
    Verify {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The other side's log, as `ferry audit export --json` wrote it.
        #[arg(long, value_name = "FILE")]
        peer: Option<PathBuf>,
    },
    /// Print the audit log.
    Export {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON (what `ferry audit verify --peer` reads).
        #[arg(long)]
        json: bool,
        /// Only entries from this time on (RFC 3339, or unix seconds).
        #[arg(long, value_name = "T")]
        since: Option<String>,
    },
}

/// `ferry bundle ...`
#[derive(Debug, Subcommand)]
pub enum BundleAction {
    /// Print the signed header without decrypting or verifying.
    Inspect {
        /// The bundle.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the signature against the pinned peer key and the payload hash, without importing.
    Verify {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The bundle.
        file: PathBuf,
    },
}

/// `ferry mock ...`
#[derive(Debug, Subcommand)]
pub enum MockAction {
    /// Download an asset's mock.
    Fetch {
        /// The asset.
        name: String,
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// Your broker account.
        #[command(flatten)]
        amqp: AmqpArg,
    },
}

/// `ferry media ...`
#[derive(Debug, Subcommand)]
pub enum MediaAction {
    /// Copy everything in outbox/ onto the medium at DIR, verify it, and move the originals to outbox/sent/.
    Write {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The mounted medium's directory.
        dir: PathBuf,
    },
    /// Copy the bundles on the medium at DIR into inbox/, joining parts; names missing or foreign parts.
    Read {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
        /// The mounted medium's directory.
        dir: PathBuf,
    },
}

/// `ferry keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Replace this side's keys: writes a bundle whose rotation statement is signed by the old and the new key.
    Rotate {
        /// The side's configuration.
        #[command(flatten)]
        config: ConfigArg,
    },
}
