//! The researcher's commands. They need only the researcher's own broker account: requests are published to the
//! requests exchange, and everything else is a call answered by the low side's `ferry serve`.

use ferry_review::escape;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use base64::Engine;
use ferry_broker::{Outgoing, Session};
use ferry_core::wire::{
    Call, CallReply, JobRequest, JobUpdate, CALL_ROUTING_KEY, JOB_ROUTING_KEY, REQUESTS_EXCHANGE,
};

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The broker user named in `url`, which RabbitMQ checks against `user_id`.
fn user_of(url: &str) -> String {
    url.split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(userinfo, _)| userinfo.split(':').next().unwrap_or("").to_string())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "guest".to_string())
}

pub(crate) async fn call(url: &str, call: &Call) -> Result<CallReply> {
    let session = Session::connect(url).await?;
    let reply = call_on(&session, url, call).await;
    session.close().await;
    reply
}

/// One call on an open session (several calls in a row need only one connection).
async fn call_on(session: &Session, url: &str, call: &Call) -> Result<CallReply> {
    let body = serde_json::to_vec(call).expect("call serializes");
    let reply = session
        .call(
            REQUESTS_EXCHANGE,
            CALL_ROUTING_KEY,
            &body,
            &user_of(url),
            CALL_TIMEOUT,
        )
        .await;
    let reply: CallReply =
        serde_json::from_slice(&reply?).context("the low side's reply is not valid JSON")?;
    if !reply.ok {
        bail!(
            "{}",
            reply
                .error
                .unwrap_or_else(|| "the low side refused the call".into())
        );
    }
    Ok(reply)
}

fn b64(data: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .context("bad base64 in the reply")
}

/// `ferry assets [--json]`.
pub async fn assets(url: &str, json: bool) -> Result<()> {
    let assets = call(url, &Call::Assets).await?.assets.unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&assets)?);
    } else if assets.is_empty() {
        println!("no assets yet: the high side's catalog has not arrived");
    } else {
        println!("{:<28} {:>12}  DESCRIPTION", "ASSET", "MOCK BYTES");
        for a in assets {
            println!(
                "{:<28} {:>12}  {}",
                escape::line(&a.name),
                a.mock_size,
                escape::line(&a.description)
            );
        }
    }
    Ok(())
}

/// A fetched mock, on disk.
struct FetchedMock {
    /// The file, or the directory the archive was unpacked into.
    path: PathBuf,
    size: u64,
    tree: bool,
}

/// Fetches the mock of `name` into `dest` (a file; for a directory mock, a directory unpacked from its archive),
/// piece by piece on one connection, hashing as it goes: memory stays at one piece, whatever the mock's size.
/// Refuses to overwrite anything.
async fn fetch_mock(url: &str, name: &str, dest: &Path) -> Result<FetchedMock> {
    use std::io::Write;
    ferry_core::names::asset(name)?;
    if dest.exists() {
        bail!("{} exists already: give another --out", dest.display());
    }
    let session = Session::connect(url).await?;
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let _fetching =
        crate::progress::Activity::start(format!("fetching the mock of {}", escape::line(name)), {
            let done = done.clone();
            move || Some(done.load(std::sync::atomic::Ordering::Relaxed))
        });
    let archive = dest.with_file_name(format!(
        ".{}.incoming-{}",
        dest.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        uuid::Uuid::new_v4()
    ));
    let result = async {
        let mut file = ferry_core::tree::HashingWriter::new(std::io::BufWriter::new(
            std::fs::File::create(&archive)
                .with_context(|| format!("creating {}", archive.display()))?,
        ));
        let mut offset = 0u64;
        let (sha256, size, tree) = loop {
            let piece = call_on(
                &session,
                url,
                &Call::Mock {
                    asset: name.to_string(),
                    offset: Some(offset),
                },
            )
            .await?
            .mock
            .context("the reply has no mock")?;
            if piece.offset != offset {
                bail!(
                    "the low side sent the piece at {} when asked for {offset}",
                    piece.offset
                );
            }
            if offset == 0 {
                check_room(name, &archive, piece.size, piece.tree)?;
            }
            let data = b64(&piece.data_base64)?;
            file.write_all(&data)
                .with_context(|| format!("writing {}", archive.display()))?;
            offset += data.len() as u64;
            done.store(offset, std::sync::atomic::Ordering::Relaxed);
            if offset >= piece.size || data.is_empty() {
                break (piece.sha256, piece.size, piece.tree);
            }
        };
        file.flush()?;
        let (_, got, _) = file.finish();
        if offset != size || got != sha256 {
            bail!(
                "the mock of {name} arrived damaged (SHA-256 or size mismatch); nothing was kept"
            );
        }
        if tree {
            let input = std::fs::File::open(&archive)?;
            ferry_transfer::tree::unpack_mock_tree(std::io::BufReader::new(input), dest)?;
            std::fs::remove_file(&archive)?;
        } else {
            std::fs::rename(&archive, dest)
                .with_context(|| format!("writing {}", dest.display()))?;
        }
        Ok(FetchedMock {
            path: dest.to_path_buf(),
            size,
            tree,
        })
    }
    .await;
    session.close().await;
    if result.is_err() {
        let _ = std::fs::remove_file(&archive);
    }
    result
}

/// Refuses a mock of `size` bytes (a tree's archive, which is unpacked beside it: twice that) that the disk
/// holding `archive` has no room for, before any of it is fetched.
fn check_room(name: &str, archive: &Path, size: u64, tree: bool) -> Result<()> {
    let dir = archive.parent().unwrap_or(Path::new("."));
    let need = if tree { size.saturating_mul(2) } else { size };
    if let Some(free) = crate::progress::free_bytes(dir) {
        if free < need {
            bail!(
                "the mock of {} is {}{}, and {} has {} free: make room, or give --out on another disk; \
                 nothing was fetched",
                escape::line(name),
                crate::progress::human(size),
                if tree {
                    ", a directory unpacked beside its archive (twice that)"
                } else {
                    ""
                },
                dir.display(),
                crate::progress::human(free)
            );
        }
    }
    Ok(())
}

/// `ferry mock fetch NAME --out PATH`.
pub async fn mock_fetch(url: &str, name: &str, out: &Path) -> Result<()> {
    let fetched = fetch_mock(url, name, out).await?;
    println!(
        "wrote the mock of {name} ({} bytes{}) to {}",
        fetched.size,
        if fetched.tree { ", a directory" } else { "" },
        fetched.path.display()
    );
    Ok(())
}

/// `ferry run --mock --asset NAME... SCRIPT`: returns the job's exit code.
pub async fn run_mock(
    url: &str,
    assets: &[String],
    runtime: &str,
    python: Option<&Path>,
    script: &Path,
    out: &Path,
    no_sandbox: bool,
) -> Result<i32> {
    let code =
        std::fs::read_to_string(script).with_context(|| format!("reading {}", script.display()))?;
    let runtime = super::runtime::for_mock_run(url, runtime, python).await?;
    let scratch = tempfile_dir()?;
    let mut inputs = Vec::new();
    for name in assets {
        ferry_core::names::asset(name)?;
        let fetched = fetch_mock(url, name, &scratch.join(format!("{name}.mock"))).await?;
        inputs.push((name.clone(), fetched.path));
    }
    let defaults = ferry_core::config::WorkerConfig::default();
    let isolation = if no_sandbox {
        eprintln!("WARNING: running WITHOUT the sandbox (--no-sandbox); the high side will not");
        ferry_sandbox::Isolation::Unsandboxed
    } else {
        ferry_sandbox::Isolation::Sandbox
    };
    let work = scratch.join("work");
    std::fs::create_dir_all(&work)?;
    let outcome = ferry_serve::jobrun::run(
        ferry_serve::jobrun::Job {
            job_id: format!("mock-{}", uuid::Uuid::new_v4()),
            code,
            inputs,
        },
        runtime,
        ferry_serve::jobrun::limits(&defaults),
        isolation,
        work,
        Arc::new(AtomicBool::new(false)),
    )
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    let outcome = outcome.context("running the script")?;
    use std::io::Write;
    std::io::stdout().write_all(&outcome.stdout)?;
    std::io::stderr().write_all(&outcome.stderr)?;
    if !outcome.outputs.is_empty() {
        for o in &outcome.outputs {
            let path = out.join(&o.name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, &o.data)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        eprintln!(
            "ferry: {} output file(s) written to {}",
            outcome.outputs.len(),
            out.display()
        );
    }
    eprintln!("ferry: mock run {}", outcome.summary());
    Ok(outcome.exit_code().unwrap_or(1))
}

fn tempfile_dir() -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("ferry-run-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Refuses, before anything is published, an asset the low side's catalog does not list or a runtime it does
/// not offer (intake would refuse the job later, where the researcher sees it only in `ferry results`).
async fn check_against_catalog(url: &str, assets: &[String], runtime: &str) -> Result<()> {
    let reply = call(url, &Call::Assets).await?;
    let catalog = reply.assets.unwrap_or_default();
    let known: Vec<&str> = catalog.iter().map(|a| a.name.as_str()).collect();
    let unknown: Vec<String> = assets
        .iter()
        .filter(|a| !known.contains(&a.as_str()))
        .map(|a| format!("{:?}", escape::line(a)))
        .collect();
    if !unknown.is_empty() {
        bail!(
            "unknown asset{} {}: the catalog has {} (`ferry assets` lists them); nothing was submitted",
            if unknown.len() > 1 { "s" } else { "" },
            unknown.join(", "),
            if known.is_empty() {
                "no assets yet".to_string()
            } else {
                known
                    .iter()
                    .map(|n| escape::line(n).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    if let Some(runtimes) = reply.runtimes {
        if !runtimes.iter().any(|r| r == runtime) {
            bail!(
                "unknown runtime {:?}: the low side offers {}; nothing was submitted",
                escape::line(runtime),
                runtimes.join(", ")
            );
        }
    }
    Ok(())
}

/// The job `given` names: a full job id, or a unique prefix of one of the caller's own job ids.
async fn resolve_job(url: &str, given: &str) -> Result<uuid::Uuid> {
    if let Ok(id) = uuid::Uuid::parse_str(given) {
        return Ok(id);
    }
    if given.is_empty() || !given.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        bail!(
            "{:?} is not a job id: give the id `ferry submit` printed, or a unique prefix of it",
            escape::line(given)
        );
    }
    let jobs = call(url, &Call::Jobs).await?.jobs.unwrap_or_default();
    let id = by_prefix(given, jobs.iter().filter_map(|u| u.job_id.as_deref()))?;
    uuid::Uuid::parse_str(id).context("the low side sent a job id that is not a UUID")
}

/// The one id in `ids` that starts with `prefix` (case-insensitive).
fn by_prefix<'a>(prefix: &str, ids: impl Iterator<Item = &'a str>) -> Result<&'a str> {
    let prefix = prefix.to_ascii_lowercase();
    let matching: Vec<&str> = ids.filter(|id| id.starts_with(&prefix)).collect();
    match matching.as_slice() {
        [one] => Ok(one),
        [] => bail!("you have no job whose id starts with {prefix:?}"),
        many => bail!(
            "{prefix:?} is the start of {} of your job ids ({}): give more of it",
            many.len(),
            many.iter()
                .map(|m| escape::line(m).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// What `ferry submit` was asked to submit.
pub struct Submission<'a> {
    /// `--asset`s.
    pub assets: &'a [String],
    /// `--title`.
    pub title: &'a str,
    /// `--description`.
    pub description: &'a str,
    /// `--runtime`.
    pub runtime: &'a str,
    /// `--revises`.
    pub revises: Option<&'a str>,
    /// `--memory-mb`, `--wall-secs`, `--cpus`.
    pub resources: ferry_core::wire::Resources,
    /// The script.
    pub script: &'a Path,
}

/// `ferry submit --asset NAME... SCRIPT`: prints the job id.
pub async fn submit(url: &str, what: Submission<'_>) -> Result<()> {
    let Submission {
        assets,
        title,
        description,
        runtime,
        revises,
        resources,
        script,
    } = what;
    let revises = revises
        .map(|r| {
            uuid::Uuid::parse_str(r).map_err(|_| {
                anyhow::anyhow!(
                    "--revises {}: give the full job id of the job this one revises",
                    escape::line(r)
                )
            })
        })
        .transpose()?;
    let code =
        std::fs::read_to_string(script).with_context(|| format!("reading {}", script.display()))?;
    let request = JobRequest {
        job_id: uuid::Uuid::new_v4(),
        title: if title.is_empty() {
            script
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        } else {
            title.to_string()
        },
        description: description.to_string(),
        runtime: runtime.to_string(),
        code,
        assets: assets.to_vec(),
        revises,
        resources: (resources != ferry_core::wire::Resources::default()).then_some(resources),
    };
    // Catch what intake would refuse before it leaves, with the same rules.
    ferry_review::code::check(&request.code)
        .map_err(|r| anyhow::anyhow!("{}: {r}", escape::line(&script.display().to_string())))?;
    let body = serde_json::to_vec(&request).expect("request serializes");
    JobRequest::parse(&body, &ferry_core::config::IntakePolicy::default())
        .map_err(|r| anyhow::anyhow!("{}", r.reason))?;
    check_against_catalog(url, assets, runtime).await?;
    let session = Session::connect(url).await?;
    let job_id = request.job_id.to_string();
    let user = user_of(url);
    let published = session
        .publish(&Outgoing {
            exchange: REQUESTS_EXCHANGE,
            routing_key: JOB_ROUTING_KEY,
            body: &body,
            message_id: Some(&job_id),
            user_id: Some(&user),
            kind: Some("job-request"),
            persistent: true,
            ..Outgoing::default()
        })
        .await;
    session.close().await;
    published.context("publishing the job request")?;
    println!("{job_id}");
    Ok(())
}

fn print_update(u: &JobUpdate) {
    println!(
        "job {}  {}{}",
        escape::line(u.job_id.as_deref().unwrap_or("-")),
        escape::line(&u.state),
        u.reason
            .as_ref()
            .map(|r| format!(": {}", escape::line(r)))
            .unwrap_or_default()
    );
    for c in &u.comments {
        println!(
            "  comment from the {} side ({}): {}",
            escape::line(&c.side),
            ferry_core::time::rfc3339(c.at),
            escape::line(&c.text)
        );
    }
}

/// `ferry status JOB [--json]`.
pub async fn status(url: &str, job: &str, json: bool) -> Result<()> {
    let job_id = resolve_job(url, job).await?;
    let jobs = call(url, &Call::Status { job_id })
        .await?
        .jobs
        .unwrap_or_default();
    for mut u in jobs {
        if json {
            println!("{}", serde_json::to_string_pretty(&u)?);
        } else {
            u.result = None;
            print_update(&u);
            println!("updated {}", u.updated_at);
        }
    }
    Ok(())
}

/// `ferry cancel JOB`.
pub async fn cancel(url: &str, job: &str) -> Result<()> {
    let job_id = resolve_job(url, job).await?;
    let jobs = call(url, &Call::Cancel { job_id })
        .await?
        .jobs
        .unwrap_or_default();
    for u in jobs {
        if u.state == "cancelled" {
            println!("job {} cancelled", job_id);
        } else {
            println!("job {job_id} is {}; the cancellation crosses to the high side with the next export", u.state);
        }
    }
    Ok(())
}

const FINAL: [&str; 6] = [
    "delivered",
    "rejected",
    "withheld",
    "failed",
    "cancelled",
    "returned",
];

/// `ferry results JOB`'s exit code for the job's state (docs/contract.md, "Exit codes"): 0 its result is here,
/// 3 still pending, 4 failed, 5 rejected, 6 withheld, 7 cancelled, 8 returned (changes requested).
fn results_exit_code(update: &JobUpdate) -> i32 {
    match update.state.as_str() {
        "delivered" => 0,
        "released" if update.result.is_some() => 0,
        "failed" => 4,
        "rejected" => 5,
        "withheld" => 6,
        "cancelled" => 7,
        "returned" => 8,
        _ => 3,
    }
}

/// `ferry results [JOB] [--wait] [--timeout S] [--out DIR]`: with JOB, the exit code says how the job stands
/// ([`results_exit_code`]); without, 0.
pub async fn results(
    url: &str,
    job: Option<&str>,
    wait: bool,
    timeout: u64,
    out: &Path,
    json: bool,
) -> Result<i32> {
    let job_id = match job {
        Some(j) => Some(resolve_job(url, j).await?),
        None => None,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let updates = loop {
        let updates = match job_id {
            Some(id) => call(url, &Call::Status { job_id: id })
                .await?
                .jobs
                .unwrap_or_default(),
            None => call(url, &Call::Jobs).await?.jobs.unwrap_or_default(),
        };
        let done = updates.iter().all(|u| {
            FINAL.contains(&u.state.as_str()) || u.state == "released" && u.result.is_some()
        });
        if !wait || done {
            break updates;
        }
        if tokio::time::Instant::now() >= deadline {
            eprintln!("ferry: gave up waiting after {timeout} s");
            break updates;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    if json {
        let shown: Vec<serde_json::Value> = updates
            .iter()
            .map(|u| {
                let mut v = serde_json::to_value(u).expect("serializes");
                if let Some(check) = u.result.as_ref().and_then(|r| receipt_check(u, r)) {
                    v["receipt"] = check.to_json();
                }
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&shown)?);
    }
    let mut code = 0;
    for u in &updates {
        if !json {
            print_update(u);
        }
        if let Some(r) = &u.result {
            if !json {
                // The summary is the sandbox's own line; the names in it are escaped already (block mode does not double
                // their backslashes, and still escapes anything a summary should not hold).
                println!("{}", escape::block(&r.summary).replace('\n', "\\x0a"));
                if let Some(c) = r.exit_code {
                    println!("exit code: {c}");
                }
                println!(
                    "--- stdout{} ---",
                    if r.stdout_truncated {
                        " (truncated)"
                    } else {
                        ""
                    }
                );
                print!("{}", escape::block(&r.stdout));
                if !r.stderr.is_empty() {
                    println!(
                        "--- stderr{} ---",
                        if r.stderr_truncated {
                            " (truncated)"
                        } else {
                            ""
                        }
                    );
                    print!("{}", escape::block(&r.stderr));
                }
                for w in &r.withheld {
                    println!(
                        "withheld by the owner: {}: {}",
                        escape::line(&w.name),
                        escape::line(&w.reason)
                    );
                }
                if let Some(check) = receipt_check(u, r) {
                    check.print();
                }
            }
            if !r.outputs.is_empty() {
                let dir = out.join(u.job_id.as_deref().unwrap_or("unknown"));
                for o in &r.outputs {
                    ferry_core::names::output_path(&o.name)?;
                    let data = b64(&o.data_base64)?;
                    if ferry_core::sha256_hex(&data) != o.sha256 {
                        bail!(
                            "output {} arrived damaged (SHA-256 mismatch)",
                            escape::line(&o.name)
                        );
                    }
                    let path = dir.join(&o.name);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(&path, data)
                        .with_context(|| format!("writing {}", path.display()))?;
                    if !json {
                        println!("output file: {}", escape::line(&path.display().to_string()));
                    }
                }
            }
        }
        if job_id.is_some() {
            code = results_exit_code(u);
        }
    }
    if updates.is_empty() && !json {
        println!("no jobs");
    }
    Ok(code)
}

/// A result's receipt, verified: its signature under the key it names, its job, and the delivered files against
/// what it lists.
struct ReceiptCheck {
    key_id: String,
    outcome: std::result::Result<ferry_core::receipt::Receipt, String>,
}

fn receipt_check(u: &JobUpdate, r: &ferry_core::wire::JobResult) -> Option<ReceiptCheck> {
    let signed = r.receipt.as_ref()?;
    let key_id = hex::decode(&signed.public_key)
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .map(|k| ferry_bundle::key_id(&k))
        .unwrap_or_else(|| "an unreadable key".into());
    let job_id = u.job_id.as_deref().unwrap_or_default();
    let outcome = signed
        .verify_for(job_id, None)
        .map_err(|e| e.to_string())
        .and_then(|receipt| {
            let outputs: Vec<(&str, &str)> = r
                .outputs
                .iter()
                .map(|o| (o.name.as_str(), o.sha256.as_str()))
                .collect();
            receipt
                .check_delivered(&outputs, &r.stdout, &r.stderr)
                .map(|()| receipt)
        });
    Some(ReceiptCheck { key_id, outcome })
}

impl ReceiptCheck {
    fn print(&self) {
        let receipt = match &self.outcome {
            Ok(r) => r,
            Err(why) => {
                println!("receipt: DOES NOT VERIFY: {}", escape::line(why));
                eprintln!(
                    "ferry: WARNING: the result's receipt does not verify: {}",
                    escape::line(why)
                );
                return;
            }
        };
        let run = &receipt.run;
        println!(
            "receipt: verified, signed by the high side's key {}",
            self.key_id
        );
        println!(
            "  ran {} to {} on {}{}, attempt {}: {}",
            escape::line(&run.started_at),
            escape::line(&run.ended_at),
            escape::line(&run.worker),
            if run.sandboxed {
                ""
            } else {
                " WITHOUT the sandbox"
            },
            run.attempt,
            escape::line(&run.summary)
        );
        println!(
            "  code sha256 {}; runtime {} sha256 {}",
            escape::line(&run.code_sha256),
            escape::line(&run.runtime),
            escape::line(&run.runtime_sha256)
        );
        for a in &run.assets {
            println!(
                "  asset {} version {}",
                escape::line(&a.name),
                escape::line(&a.version)
            );
        }
        let l = &run.limits;
        println!(
            "  limits: {} MiB, {} s wall, {} s CPU, {}, outputs up to {} bytes",
            l.memory_mb,
            l.wall_secs,
            l.cpu_secs,
            l.cpus
                .map_or("every CPU".to_string(), |c| format!("{c} CPU(s)")),
            l.max_output_bytes
        );
    }

    fn to_json(&self) -> serde_json::Value {
        match &self.outcome {
            Ok(r) => serde_json::json!({
                "verified": true,
                "key_id": self.key_id,
                "job_id": r.job_id,
                "run": r.run,
                "released": r.released,
                "signed_at": r.signed_at,
            }),
            Err(why) => serde_json::json!({
                "verified": false,
                "key_id": self.key_id,
                "error": why,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_names_one_job_or_says_why_not() {
        let ids = [
            "2e12aa00-0000-4000-8000-000000000000",
            "2e13bb00-0000-4000-8000-000000000000",
        ];
        assert_eq!(by_prefix("2E12", ids.into_iter()).unwrap(), ids[0]);
        let err = by_prefix("2e1", ids.into_iter()).unwrap_err().to_string();
        assert!(err.contains("is the start of 2 of your job ids"), "{err}");
        let err = by_prefix("ff", ids.into_iter()).unwrap_err().to_string();
        assert!(
            err.contains("you have no job whose id starts with \"ff\""),
            "{err}"
        );
    }

    #[test]
    fn results_exit_codes_tell_the_states_apart() {
        let update = |state: &str| JobUpdate {
            job_id: None,
            title: String::new(),
            state: state.into(),
            reason: None,
            updated_at: String::new(),
            result: None,
            comments: Vec::new(),
        };
        let codes: Vec<i32> = [
            "delivered",
            "submitted",
            "running",
            "released",
            "failed",
            "rejected",
            "withheld",
            "cancelled",
            "returned",
        ]
        .iter()
        .map(|s| results_exit_code(&update(s)))
        .collect();
        assert_eq!(codes, [0, 3, 3, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn user_comes_from_the_url() {
        assert_eq!(user_of("amqp://alice:pw@127.0.0.1:5672/%2f"), "alice");
        assert_eq!(user_of("amqp://127.0.0.1:5672/%2f"), "guest");
    }
}
