//! JSON messages on the low-side broker, and the names of the exchanges and queues that carry them.
//!
//! Each message type has a JSON Schema under `schemas/`; a test keeps the two in step. Researchers may use any
//! AMQP client: these types are the contract, the `ferry` CLI is one client among others.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::IntakePolicy;
use crate::names;

/// Exchange researchers publish to (direct, durable).
pub const REQUESTS_EXCHANGE: &str = "ferry.requests";
/// Routing key of job requests on [`REQUESTS_EXCHANGE`].
pub const JOB_ROUTING_KEY: &str = "job";
/// Routing key of researcher calls (catalog, mock, status, cancel) on [`REQUESTS_EXCHANGE`].
pub const CALL_ROUTING_KEY: &str = "call";
/// Durable queue holding job requests for intake.
pub const REQUESTS_QUEUE: &str = "ferry.requests";
/// Queue holding researcher calls; replies go to the call's `reply_to` (direct reply-to).
pub const CALLS_QUEUE: &str = "ferry.calls";
/// Exchange for requests that could not even be parsed (fanout, durable).
pub const DEAD_LETTER_EXCHANGE: &str = "ferry.dead";
/// Queue bound to [`DEAD_LETTER_EXCHANGE`], for the operators.
pub const DEAD_LETTER_QUEUE: &str = "ferry.requests.dead";
/// Exchange for job updates to researchers (direct, durable; routing key = researcher name).
pub const RESULTS_EXCHANGE: &str = "ferry.results";
/// High side: the prefix of the workers' durable job queues, one per runtime ([`high_jobs_queue`]).
pub const HIGH_JOBS_QUEUE_PREFIX: &str = "ferry.jobs.";
/// High side: where a job queue dead-letters a message no worker can handle (through [`DEAD_LETTER_EXCHANGE`]),
/// for the operators.
pub const HIGH_JOBS_DEAD_QUEUE: &str = "ferry.jobs.dead";
/// High side: the durable queue on which workers report to `ferry serve` ([`WorkerReport`]), which commits.
pub const HIGH_WORKER_RESULTS_QUEUE: &str = "ferry.worker.results";
/// High side: the fanout exchange on which `ferry serve` tells every worker to stop a job ([`CancelJob`]).
pub const HIGH_CANCEL_EXCHANGE: &str = "ferry.cancel";
/// The most bytes of a file one [`WorkerReport::Chunk`] carries (before base64).
pub const CHUNK_BYTES: usize = 768 * 1024;

/// The durable queue of jobs for `runtime` (default exchange, routing key = the queue's name): only workers that
/// have that runtime consume it.
pub fn high_jobs_queue(runtime: &str) -> String {
    format!("{HIGH_JOBS_QUEUE_PREFIX}{runtime}")
}

/// A message on a [`high_jobs_queue`]: everything a worker needs to run the job, so that it never opens the high
/// side's state store (`schemas/high-job.schema.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HighJob {
    /// The job, as stored on the high side.
    pub job_id: String,
    /// Which attempt this is (`ferry review retry` makes another): reports of another attempt are ignored.
    pub attempt: u32,
    /// The interpreter's name; the worker uses its own runtime of that name.
    pub runtime: String,
    /// The script.
    pub code: String,
    /// The assets it reads, each `inputs/<name>`.
    pub assets: Vec<HighJobAsset>,
    /// The sandbox's limits for this job (the side's defaults with what the job asked for, checked).
    pub limits: HighJobLimits,
}

/// An asset of a [`HighJob`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HighJobAsset {
    /// Its name (`inputs/NAME`).
    pub name: String,
    /// The private file's path in the asset store, as registered; a worker reads it only inside its own
    /// `assets` directory.
    pub path: String,
    /// Its content hash when registered (for the run receipt).
    pub version: String,
}

/// The limits of a [`HighJob`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HighJobLimits {
    /// Wall clock, seconds.
    pub wall_secs: u64,
    /// CPU seconds per process.
    pub cpu_secs: u64,
    /// Address space per process, MiB.
    pub memory_mb: u64,
    /// Processes at once.
    pub max_processes: u64,
    /// Open files per process.
    pub max_open_files: u64,
    /// Bytes the job may write into `outputs/`.
    pub max_output_bytes: u64,
    /// Bytes kept of each of stdout and stderr.
    pub max_stdio_bytes: u64,
    /// CPUs it is bound to; none: every CPU.
    pub cpus: Option<u32>,
}

/// A message on [`HIGH_CANCEL_EXCHANGE`]: stop `job_id` if you are running it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelJob {
    /// The job.
    pub job_id: String,
}

/// Which run of which job a [`WorkerReport`] is about: a run id is new each time a worker takes the job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunKey {
    /// The job.
    pub job_id: String,
    /// Its attempt, from the [`HighJob`].
    pub attempt: u32,
    /// This run (a UUID).
    pub run_id: String,
}

/// A file (an output, or stdout/stderr) sent in [`WorkerReport::Chunk`]s.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportedFile {
    /// `outputs/NAME`, `stdout` or `stderr`.
    pub file: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// How many chunks carry it (0 for an empty file).
    pub chunks: u32,
}

/// What a worker reports on [`HIGH_WORKER_RESULTS_QUEUE`] (`schemas/worker-report.schema.json`); `ferry serve`
/// applies each once (keyed by job, attempt and run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum WorkerReport {
    /// The worker took the job and is running it.
    Started {
        /// The run.
        run: RunKey,
        /// The worker's name.
        worker: String,
        /// Whether the broker had delivered the job before (another worker stopped mid-run).
        redelivered: bool,
    },
    /// One piece of a file of the run's result.
    Chunk {
        /// The run.
        run: RunKey,
        /// Which file.
        file: String,
        /// Its position, from 0.
        index: u32,
        /// The bytes, base64.
        data: String,
    },
    /// The job ran to its end (whatever its exit); every chunk was published before.
    Finished {
        /// The run.
        run: RunKey,
        /// The worker's name.
        worker: String,
        /// Its exit code, when it exited.
        exit_code: Option<i32>,
        /// One line on how it ended.
        summary: String,
        /// Whether stdout was cut at the limit.
        stdout_truncated: bool,
        /// Whether stderr was cut at the limit.
        stderr_truncated: bool,
        /// Whether it ran without the sandbox.
        unsandboxed: bool,
        /// stdout, stderr and every output, sent as chunks.
        files: Vec<ReportedFile>,
        /// The run's facts for the receipt.
        facts: Box<crate::receipt::RunFacts>,
    },
    /// The job was stopped on a [`CancelJob`].
    Cancelled {
        /// The run.
        run: RunKey,
        /// The worker's name.
        worker: String,
    },
    /// The worker could not run the job (a fault of the high side: retryable).
    Failed {
        /// The run.
        run: RunKey,
        /// The worker's name.
        worker: String,
        /// Why.
        reason: String,
    },
}

impl WorkerReport {
    /// The run the report is about.
    pub fn run(&self) -> &RunKey {
        match self {
            WorkerReport::Started { run, .. }
            | WorkerReport::Chunk { run, .. }
            | WorkerReport::Finished { run, .. }
            | WorkerReport::Cancelled { run, .. }
            | WorkerReport::Failed { run, .. } => run,
        }
    }
}

/// The results queue of `researcher`: only they may read it.
pub fn results_queue(researcher: &str) -> String {
    format!("ferry.results.{researcher}")
}

/// A job request (`schemas/job-request.schema.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRequest {
    /// Chosen by the client; the idempotency key.
    pub job_id: Uuid,
    /// A short title for the reviewers.
    #[serde(default)]
    pub title: String,
    /// What the job does and why, for the reviewers.
    #[serde(default)]
    pub description: String,
    /// The interpreter, e.g. `python`.
    pub runtime: String,
    /// The script.
    pub code: String,
    /// Names of the assets the job reads, seen as `inputs/<name>`.
    pub assets: Vec<String>,
    /// The job (one of the researcher's own) this one is a new version of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revises: Option<Uuid>,
    /// What the job asks for beyond the side's defaults, up to the owner's caps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
}

/// What a job asks for instead of the side's `[worker]` defaults; each at most the owner's cap
/// (`[worker] max_memory_mb`, `max_wall_time_secs`, `max_cpus`). Crosses in bundles (postcard), so no field is
/// ever skipped when serialized: an absent one is `null` in JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Address space per process, in MiB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Wall-clock time, in seconds (and as many CPU seconds).
    #[serde(default)]
    pub wall_secs: Option<u64>,
    /// CPUs the job may use.
    #[serde(default)]
    pub cpus: Option<u32>,
}

impl Resources {
    /// Checks each request against `worker`'s caps; `Err` names the first one passed and its cap.
    pub fn check(&self, worker: &crate::config::WorkerConfig) -> Result<(), String> {
        let over = |what: &str, asked: u64, cap: u64, key: &str| {
            Err(format!(
                "the job asks for {what} {asked}; this side allows at most {cap} ([worker] {key})"
            ))
        };
        if let Some(m) = self.memory_mb {
            if m == 0 {
                return Err("memory_mb must be at least 1".into());
            }
            if m > worker.max_memory_mb {
                return over("memory_mb", m, worker.max_memory_mb, "max_memory_mb");
            }
        }
        if let Some(w) = self.wall_secs {
            if w == 0 {
                return Err("wall_secs must be at least 1".into());
            }
            if w > worker.max_wall_time_secs {
                return over(
                    "wall_secs",
                    w,
                    worker.max_wall_time_secs,
                    "max_wall_time_secs",
                );
            }
        }
        if let Some(c) = self.cpus {
            if c == 0 {
                return Err("cpus must be at least 1".into());
            }
            let cap = worker.cpu_cap();
            if u64::from(c) > cap {
                return over("cpus", u64::from(c), cap, "max_cpus");
            }
        }
        Ok(())
    }
}

/// Why a job request was refused, and the job id when one could be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The request's `job_id`, if it had a readable one.
    pub job_id: Option<String>,
    /// What is wrong, for the researcher.
    pub reason: String,
    /// True when the message could not even be parsed as JSON: it is dead-lettered besides.
    pub unparsable: bool,
}

/// Largest `title` accepted, in bytes.
pub const MAX_TITLE_BYTES: usize = 200;
/// Largest `description` accepted, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 8 * 1024;

impl JobRequest {
    /// Parses and checks a request body against the schema's rules and `policy`. Whether the assets exist and
    /// the runtime is configured is for the caller, who knows the catalog.
    pub fn parse(body: &[u8], policy: &IntakePolicy) -> Result<JobRequest, Refusal> {
        if body.len() > policy.max_message_bytes {
            return Err(Refusal {
                job_id: None,
                reason: format!(
                    "request is {} bytes, over the limit of {} bytes",
                    body.len(),
                    policy.max_message_bytes
                ),
                unparsable: false,
            });
        }
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| Refusal {
            job_id: None,
            reason: format!("request is not valid JSON: {e}"),
            unparsable: true,
        })?;
        let job_id = value
            .get("job_id")
            .and_then(|v| v.as_str())
            .map(|s| s.chars().take(64).collect::<String>());
        let refuse = |reason: String| Refusal {
            job_id: job_id.clone(),
            reason,
            unparsable: false,
        };
        let request: JobRequest = serde_json::from_value(value).map_err(|e| {
            refuse(format!(
                "request does not match the job-request schema: {e}"
            ))
        })?;
        if request.code.len() > policy.max_code_bytes {
            return Err(refuse(format!(
                "code is {} bytes, over the limit of {} bytes",
                request.code.len(),
                policy.max_code_bytes
            )));
        }
        if request.code.trim().is_empty() {
            return Err(refuse("code is empty".into()));
        }
        if request.title.len() > MAX_TITLE_BYTES {
            return Err(refuse(format!("title is over {MAX_TITLE_BYTES} bytes")));
        }
        if request.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(refuse(format!(
                "description is over {MAX_DESCRIPTION_BYTES} bytes"
            )));
        }
        if request.assets.is_empty() {
            return Err(refuse("assets is empty: name at least one asset".into()));
        }
        if request.assets.len() > policy.max_assets {
            return Err(refuse(format!(
                "{} assets named, over the limit of {}",
                request.assets.len(),
                policy.max_assets
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for asset in &request.assets {
            names::asset(asset).map_err(|e| refuse(e.to_string()))?;
            if !seen.insert(asset) {
                return Err(refuse(format!("asset {asset:?} is named twice")));
            }
        }
        Ok(request)
    }

    /// SHA-256 over the fields that make a request what it is; a repeated `job_id` with another digest is a
    /// conflict, with the same digest a harmless retry.
    pub fn digest(&self) -> String {
        let canonical = serde_json::to_vec(self).expect("request serializes");
        crate::sha256_hex(&canonical)
    }
}

/// A researcher's call on [`CALL_ROUTING_KEY`] (`schemas/call.schema.json`), answered on `reply_to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Call {
    /// The asset catalog.
    Assets,
    /// One asset's mock: the whole of it (up to 64 MiB), or with `offset` the piece of at most
    /// [`MOCK_CHUNK_BYTES`] that starts there, for a mock of any size.
    Mock {
        /// The asset's name.
        asset: String,
        /// Where the piece starts; absent: the whole mock.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<u64>,
    },
    /// One of the caller's jobs, with its result once delivered.
    Status {
        /// The job.
        job_id: Uuid,
    },
    /// All of the caller's jobs.
    Jobs,
    /// Cancel one of the caller's jobs.
    Cancel {
        /// The job.
        job_id: Uuid,
    },
    /// The runtimes jobs may name, with what each offers.
    Runtimes,
}

/// A runtime as researchers see it (`ferry runtimes`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// The name jobs give as their `runtime`.
    pub name: String,
    /// The owner's description.
    pub description: String,
    /// The interpreter's version (`3.11.2`); empty for a runtime configured in `ferry.toml`, which the high side
    /// does not describe.
    pub python: String,
    /// Installed distributions.
    pub packages: Vec<PackageInfo>,
    /// The environment's tree hash, hex (empty for a configured runtime): its version.
    pub sha256: String,
    /// Device nodes the sandbox passes in.
    pub devices: Vec<String>,
    /// `registered` (by the owner with `ferry runtime add`) or `configured` (`[runtimes.NAME]`).
    pub origin: String,
}

/// One installed distribution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageInfo {
    /// Its name, as its metadata spells it.
    pub name: String,
    /// Its version.
    pub version: String,
}

impl RuntimeInfo {
    /// A runtime of `[runtimes.NAME]`: only its name is known here.
    pub fn configured(name: &str) -> RuntimeInfo {
        RuntimeInfo {
            name: name.to_string(),
            description: if name == "python" {
                "the lab's default Python 3 (standard library only)".into()
            } else {
                String::new()
            },
            python: String::new(),
            packages: Vec::new(),
            sha256: String::new(),
            devices: Vec::new(),
            origin: "configured".into(),
        }
    }
}

impl From<crate::records::RuntimeTransfer> for RuntimeInfo {
    fn from(r: crate::records::RuntimeTransfer) -> RuntimeInfo {
        RuntimeInfo {
            name: r.name,
            description: r.description,
            python: r.python,
            packages: r
                .packages
                .into_iter()
                .map(|(name, version)| PackageInfo { name, version })
                .collect(),
            sha256: r.sha256,
            devices: r.devices,
            origin: "registered".into(),
        }
    }
}

/// One catalog entry as researchers see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetInfo {
    /// The name jobs use.
    pub name: String,
    /// The owner's description.
    pub description: String,
    /// Size of the mock in bytes.
    pub mock_size: u64,
    /// SHA-256 of the mock, hex.
    pub mock_sha256: String,
    /// When the owner last changed it (RFC 3339).
    pub updated_at: String,
    /// The mock (and the private asset) is a directory: a job sees `inputs/NAME` as a read-only tree.
    #[serde(default)]
    pub mock_tree: bool,
}

/// The largest piece of a mock one `mock` call with an `offset` returns.
pub const MOCK_CHUNK_BYTES: u64 = 4 * 1024 * 1024;

/// A mock file, base64 in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MockData {
    /// The asset's name.
    pub asset: String,
    /// SHA-256 of the content, hex (of the whole mock, also when this is a piece of it).
    pub sha256: String,
    /// The content (or the piece asked for), standard base64.
    pub data_base64: String,
    /// Where the piece starts (0 for the whole).
    #[serde(default)]
    pub offset: u64,
    /// The whole mock's size in bytes.
    #[serde(default)]
    pub size: u64,
    /// The mock is a directory, sent as its tar archive (unpack it to get the tree a job sees).
    #[serde(default)]
    pub tree: bool,
}

/// The answer to a [`Call`] (`schemas/call-reply.schema.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallReply {
    /// False when the call failed; `error` says why.
    pub ok: bool,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For `assets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assets: Option<Vec<AssetInfo>>,
    /// For `assets`: the runtimes a job may name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtimes: Option<Vec<String>>,
    /// For `runtimes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_details: Option<Vec<RuntimeInfo>>,
    /// For `mock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock: Option<MockData>,
    /// For `status`, `jobs` and `cancel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs: Option<Vec<JobUpdate>>,
}

impl CallReply {
    /// A failed call.
    pub fn error(message: impl Into<String>) -> CallReply {
        CallReply {
            ok: false,
            error: Some(message.into()),
            ..CallReply::default()
        }
    }
}

/// A result file, base64 in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFileData {
    /// Path under `outputs/`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// The content, standard base64.
    pub data_base64: String,
}

/// What a released job produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobResult {
    /// The process's exit code, when it exited.
    pub exit_code: Option<i32>,
    /// One line: how the job ended.
    pub summary: String,
    /// Captured stdout (lossy UTF-8), up to the side's cap.
    pub stdout: String,
    /// Captured stderr (lossy UTF-8), up to the side's cap.
    pub stderr: String,
    /// True when stdout was cut at the cap.
    pub stdout_truncated: bool,
    /// True when stderr was cut at the cap.
    pub stderr_truncated: bool,
    /// Files the job wrote into `outputs/`.
    pub outputs: Vec<OutputFileData>,
    /// What the owner withheld from the release (`stdout`, `stderr` or `outputs/<name>`), with the reason; a
    /// withheld file is not among `outputs`, and a withheld stdout or stderr is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withheld: Vec<crate::records::Withheld>,
    /// The reviewers whose signed approvals let the job run (or, with no reviewers registered, the owner who
    /// approved it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<String>,
    /// The reviewers whose signed releases let the result out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub released_by: Vec<String>,
    /// The high side's signed run receipt (`docs/receipts.md`): what the result came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<crate::receipt::SignedReceipt>,
}

/// Where a job stands, sent to the researcher's results queue on every change
/// (`schemas/job-update.schema.json`) and returned by status calls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobUpdate {
    /// The job, or the raw id of a refused request (absent when none could be read).
    pub job_id: Option<String>,
    /// The job's title.
    #[serde(default)]
    pub title: String,
    /// One of the contract's job states.
    pub state: String,
    /// The owner's reason for a rejection or withholding, or why a request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the job reached this state (RFC 3339).
    pub updated_at: String,
    /// The released result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<JobResult>,
    /// The owners' comments on the job, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<crate::store::Comment>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_high_job_schema_names_every_field_of_the_job_message() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../schemas/high-job.schema.json")).unwrap();
        let job = HighJob {
            job_id: "3f1c".into(),
            attempt: 0,
            runtime: "python".into(),
            code: "print(1)".into(),
            assets: vec![HighJobAsset {
                name: "a.csv".into(),
                path: "/srv/a.csv".into(),
                version: "ab".into(),
            }],
            limits: HighJobLimits {
                wall_secs: 1,
                cpu_secs: 1,
                memory_mb: 1,
                max_processes: 1,
                max_open_files: 1,
                max_output_bytes: 0,
                max_stdio_bytes: 0,
                cpus: None,
            },
        };
        let v = serde_json::to_value(&job).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let required = |s: &serde_json::Value| -> Vec<String> {
            let mut k: Vec<String> = s["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect();
            k.sort();
            k
        };
        assert_eq!(keys(&v), required(&schema));
        assert_eq!(keys(&v), keys(&schema["properties"]));
        assert_eq!(
            keys(&v["limits"]),
            required(&schema["properties"]["limits"])
        );
        assert_eq!(
            keys(&v["assets"][0]),
            required(&schema["properties"]["assets"]["items"])
        );
        let report = WorkerReport::Started {
            run: RunKey {
                job_id: "j".into(),
                attempt: 0,
                run_id: "r".into(),
            },
            worker: "w".into(),
            redelivered: false,
        };
        let v = serde_json::to_value(&report).unwrap();
        let reports: serde_json::Value =
            serde_json::from_str(include_str!("../../../schemas/worker-report.schema.json"))
                .unwrap();
        assert_eq!(keys(&v), required(&reports["oneOf"][0]));
        assert_eq!(v["kind"], "started");
    }

    use super::*;

    #[test]
    fn resources_above_a_cap_are_refused_naming_it() {
        let worker = crate::config::WorkerConfig {
            max_memory_mb: 4096,
            max_wall_time_secs: 600,
            max_cpus: 2,
            ..Default::default()
        };
        let ask = |memory_mb, wall_secs, cpus| Resources {
            memory_mb,
            wall_secs,
            cpus,
        };
        assert_eq!(ask(Some(4096), Some(600), Some(2)).check(&worker), Ok(()));
        assert_eq!(ask(None, None, None).check(&worker), Ok(()));
        let err = ask(Some(4097), None, None).check(&worker).unwrap_err();
        assert!(
            err.contains("memory_mb 4097") && err.contains("max_memory_mb"),
            "{err}"
        );
        let err = ask(None, Some(601), None).check(&worker).unwrap_err();
        assert!(err.contains("max_wall_time_secs"), "{err}");
        let err = ask(None, None, Some(3)).check(&worker).unwrap_err();
        assert!(err.contains("at most 2 ([worker] max_cpus)"), "{err}");
        assert!(ask(None, None, Some(0)).check(&worker).is_err());
        // A request naming something else is not a request.
        assert!(serde_json::from_str::<Resources>(r#"{"gpus": 1}"#).is_err());
    }

    fn policy() -> IntakePolicy {
        IntakePolicy::default()
    }

    #[test]
    fn a_good_request_parses() {
        let body = br#"{"job_id":"6f1c2a52-8f0e-4b3a-9a59-2b1f0c9f4a11","title":"t","description":"d","runtime":"python","code":"print(1)","assets":["data.csv"]}"#;
        let req = JobRequest::parse(body, &policy()).unwrap();
        assert_eq!(req.assets, vec!["data.csv"]);
    }

    #[test]
    fn refusals_name_the_problem_and_keep_the_job_id() {
        let id = "6f1c2a52-8f0e-4b3a-9a59-2b1f0c9f4a11";
        let bad_json = JobRequest::parse(b"{nope", &policy()).unwrap_err();
        assert!(bad_json.unparsable);
        assert!(bad_json.reason.contains("not valid JSON"));

        let unknown_field = format!(
            r#"{{"job_id":"{id}","runtime":"python","code":"x","assets":["a"],"sudo":true}}"#
        );
        let r = JobRequest::parse(unknown_field.as_bytes(), &policy()).unwrap_err();
        assert_eq!(r.job_id.as_deref(), Some(id));
        assert!(r.reason.contains("sudo"), "{}", r.reason);

        let big = format!(
            r#"{{"job_id":"{id}","runtime":"python","code":"{}","assets":["a"]}}"#,
            "x".repeat(300 * 1024)
        );
        let r = JobRequest::parse(big.as_bytes(), &policy()).unwrap_err();
        assert!(r.reason.contains("code is"), "{}", r.reason);

        let traversal =
            format!(r#"{{"job_id":"{id}","runtime":"python","code":"x","assets":["../keys"]}}"#);
        let r = JobRequest::parse(traversal.as_bytes(), &policy()).unwrap_err();
        assert!(r.reason.contains("asset name"), "{}", r.reason);
    }

    #[test]
    fn digest_ignores_nothing_that_matters() {
        let a = JobRequest {
            job_id: Uuid::nil(),
            title: "t".into(),
            description: String::new(),
            runtime: "python".into(),
            code: "print(1)".into(),
            assets: vec!["a".into()],
            revises: None,
            resources: None,
        };
        let mut b = a.clone();
        assert_eq!(a.digest(), b.digest());
        b.code.push(' ');
        assert_ne!(a.digest(), b.digest());
    }
}
