//! The owner's reviews (`ferry review ...`) and `ferry status --config`.

use std::path::Path;

use std::collections::BTreeMap;

use anyhow::Result;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ferry_core::decision::{DecisionKind, ReviewerKey};
use ferry_core::store::JobRow;
use ferry_core::{JobState, Seq, Side};
use ferry_review::escape;
use ferry_review::preview::{self, PreviewOptions};
use ferry_transfer::SideDir;
use serde::Serialize;

use crate::cli::ReviewAction;

pub(crate) use ferry_transfer::review::owner_actor;

fn when(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default()
}

/// A job as `ferry review list|show --json` prints it; `show` adds the fields after `updated_at`.
#[derive(Serialize)]
struct JobJson<'a> {
    job_id: &'a str,
    researcher: &'a str,
    title: &'a str,
    state: &'static str,
    reason: Option<&'a str>,
    assets: &'a [String],
    runtime: &'a str,
    submitted_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<ResultJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<Vec<EventJson>>,
    /// The disclosure checks' findings (`show`, high side); `null` when they have not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    checks: Option<Option<Vec<CheckJson>>>,
    /// What the release carries and withholds (`show`, once released).
    #[serde(skip_serializing_if = "Option::is_none")]
    release: Option<Vec<ReleasedFileJson>>,
    /// The job this one revises (`show`).
    #[serde(skip_serializing_if = "Option::is_none")]
    revises: Option<String>,
    /// Reviewers' signed decisions (`show`).
    #[serde(skip_serializing_if = "Option::is_none")]
    decisions: Option<Vec<DecisionJson>>,
    /// The conversation (`show`).
    #[serde(skip_serializing_if = "Option::is_none")]
    comments: Option<Vec<ferry_core::store::Comment>>,
}

#[derive(Serialize)]
struct DecisionJson {
    kind: &'static str,
    reviewer: String,
    public_key: String,
    at: String,
    reason: Option<String>,
    /// Whether the signature verifies under the key it names.
    signature_verifies: bool,
}

#[derive(Serialize)]
struct CheckJson {
    kind: &'static str,
    output: String,
    detail: String,
    /// Whether `[review] block_on` makes it block a release.
    blocks: bool,
}

#[derive(Serialize)]
struct ReleasedFileJson {
    name: String,
    sha256: Option<String>,
    withheld: Option<String>,
}

#[derive(Serialize)]
struct ResultJson<'a> {
    exit_code: Option<i32>,
    summary: &'a str,
    stdout: String,
    stderr: String,
    /// The exact bytes of stdout (the `stdout` string is lossy UTF-8).
    stdout_content_base64: String,
    /// The exact bytes of stderr.
    stderr_content_base64: String,
    stdout_truncated: bool,
    stderr_truncated: bool,
    unsandboxed: bool,
    outputs: Vec<OutputJson>,
}

#[derive(Serialize)]
struct OutputJson {
    name: String,
    size: usize,
    sha256: String,
    /// The exact bytes of the output, as a release would carry them.
    content_base64: String,
}

#[derive(Serialize)]
struct EventJson {
    at: String,
    actor: String,
    state: &'static str,
    reason: Option<String>,
}

fn job_json<'a>(side: &SideDir, job: &'a JobRow, full: bool) -> Result<JobJson<'a>> {
    let mut v = JobJson {
        job_id: &job.job_id,
        researcher: &job.researcher,
        title: &job.title,
        state: job.state.as_str(),
        reason: job.reason.as_deref(),
        assets: &job.assets,
        runtime: &job.runtime,
        submitted_at: when(job.submitted_at),
        updated_at: when(job.updated_at),
        description: None,
        code: None,
        result: None,
        events: None,
        checks: None,
        release: None,
        revises: None,
        decisions: None,
        comments: None,
    };
    if full {
        v.revises = side.store.revises(&job.job_id)?;
        v.comments = Some(side.store.comments(&job.job_id)?);
        v.decisions = Some(
            side.store
                .decisions(&job.job_id)?
                .into_iter()
                .map(|d| DecisionJson {
                    kind: d.decision.kind.as_str(),
                    signature_verifies: d.verify().is_ok(),
                    public_key: d.public_key.to_string(),
                    reviewer: d.decision.reviewer,
                    at: when(d.decision.at),
                    reason: d.decision.reason,
                })
                .collect(),
        );
        if side.config.side == Side::High {
            let block_on = &side.config.review.block_on;
            v.checks = Some(side.store.checks(&job.job_id)?.map(|found| {
                found
                    .into_iter()
                    .map(|c| CheckJson {
                        kind: c.kind.as_str(),
                        blocks: c.blocks(block_on),
                        output: c.output,
                        detail: c.detail,
                    })
                    .collect()
            }));
        }
        let released = side.store.released_files(&job.job_id)?;
        if !released.is_empty() {
            v.release = Some(
                released
                    .into_iter()
                    .map(|f| ReleasedFileJson {
                        name: f.name,
                        sha256: f.sha256,
                        withheld: f.withheld,
                    })
                    .collect(),
            );
        }
        v.description = Some(&job.description);
        v.code = Some(&job.code);
        if let Some(r) = &job.result {
            v.result = Some(ResultJson {
                exit_code: r.exit_code,
                summary: &r.summary,
                stdout: String::from_utf8_lossy(&r.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&r.stderr).into_owned(),
                stdout_content_base64: BASE64.encode(&r.stdout),
                stderr_content_base64: BASE64.encode(&r.stderr),
                stdout_truncated: r.stdout_truncated,
                stderr_truncated: r.stderr_truncated,
                unsandboxed: r.unsandboxed,
                outputs: side
                    .store
                    .outputs(&job.job_id)?
                    .into_iter()
                    .map(|o| OutputJson {
                        size: o.data.len(),
                        content_base64: BASE64.encode(&o.data),
                        name: o.name,
                        sha256: o.sha256,
                    })
                    .collect(),
            });
        }
        v.events = Some(
            side.store
                .events(&job.job_id)?
                .into_iter()
                .map(|e| EventJson {
                    at: when(e.at),
                    actor: e.actor,
                    state: e.state.as_str(),
                    reason: e.reason,
                })
                .collect(),
        );
    }
    Ok(v)
}

/// Runs one `ferry review` action.
pub fn run(action: ReviewAction) -> Result<()> {
    match action {
        ReviewAction::List { config, all, json } => list(&config.config, all, json),
        ReviewAction::Show { config, id, json } => show(&config.config, &id, json),
        ReviewAction::Extract { config, id, out } => extract(&config.config, &id, &out),
        ReviewAction::Approve { config, key, ids } => {
            let key = load_key(&key)?;
            each(&ids, |id| {
                decide(
                    &config.config,
                    id,
                    DecisionKind::Approve,
                    None,
                    key.as_ref(),
                )
            })
        }
        ReviewAction::Reject {
            config,
            key,
            ids,
            reason,
        } => {
            let key = load_key(&key)?;
            each(&ids, |id| {
                decide(
                    &config.config,
                    id,
                    DecisionKind::Reject,
                    Some(&reason),
                    key.as_ref(),
                )
            })
        }
        ReviewAction::Release {
            config,
            key,
            ids,
            withhold,
            reason,
            override_reason,
        } => {
            let key = load_key(&key)?;
            each(&ids, |id| {
                release(
                    &config.config,
                    id,
                    &withhold,
                    reason.as_deref(),
                    override_reason.as_deref(),
                    key.as_ref(),
                )
            })
        }
        ReviewAction::Withhold {
            config,
            key,
            ids,
            reason,
        } => {
            let key = load_key(&key)?;
            each(&ids, |id| {
                decide(
                    &config.config,
                    id,
                    DecisionKind::Withhold,
                    Some(&reason),
                    key.as_ref(),
                )
            })
        }
        ReviewAction::Return {
            config,
            key,
            id,
            reason,
        } => {
            let key = load_key(&key)?;
            decide(
                &config.config,
                &id,
                DecisionKind::Return,
                Some(&reason),
                key.as_ref(),
            )
        }
        ReviewAction::Comment { config, id, text } => comment(&config.config, &id, &text),
        ReviewAction::Retry { config, id } => retry(&config.config, &id),
    }
}

/// The reviewer key `--key` (or `FERRY_REVIEWER_KEY`) names, if any.
pub(crate) fn load_key(arg: &crate::cli::KeyArg) -> Result<Option<ReviewerKey>> {
    Ok(arg.key.as_deref().map(ReviewerKey::load).transpose()?)
}

/// `ferry review comment`.
fn comment(config: &Path, id: &str, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        anyhow::bail!("the comment is empty");
    }
    if text.len() > ferry_transfer::import::MAX_COMMENT_BYTES {
        anyhow::bail!(
            "the comment is {} bytes; the limit is {}",
            text.len(),
            ferry_transfer::import::MAX_COMMENT_BYTES
        );
    }
    let mut side = SideDir::open(config)?;
    let id = side.resolve_job(id)?;
    let tx = side.store.begin(side.config.side)?;
    tx.comment(
        &id,
        &ferry_core::store::Comment {
            at: ferry_core::now(),
            author: owner_actor(),
            side: side.config.side.as_str().into(),
            text: text.to_string(),
        },
    )?;
    tx.commit()?;
    println!(
        "comment added to job {}{}",
        escape::line(&id),
        match side.config.side {
            Side::Low => "; the researcher is told",
            Side::High => "; it reaches the researcher with the next export",
        }
    );
    Ok(())
}

/// `ferry review retry` (high side).
fn retry(config: &Path, id: &str) -> Result<()> {
    let mut side = SideDir::open(config)?;
    side.require(Side::High, "`ferry review retry`")?;
    let id = side.resolve_job(id)?;
    let tx = side.store.begin(Side::High)?;
    let job = tx.job(&id)?.ok_or_else(|| anyhow::anyhow!("no job {id}"))?;
    if job.state != JobState::Failed {
        anyhow::bail!(
            "job {} is {}: only a failed job is retried",
            escape::line(&id),
            job.state
        );
    }
    if !tx.retryable(&id)? {
        anyhow::bail!(
            "job {} failed for a reason of its own ({}): a retry would fail the same way; the researcher \
             submits a new version",
            escape::line(&id),
            escape::line(job.reason.as_deref().unwrap_or("no reason recorded"))
        );
    }
    let attempt = tx.attempt(&id)? + 1;
    tx.reopen(
        &id,
        attempt,
        &owner_actor(),
        "queued again by the owner (ferry review retry)",
    )?;
    tx.commit()?;
    println!(
        "job {} is queued again (attempt {}); its approvals stand",
        escape::line(&id),
        attempt + 1
    );
    Ok(())
}

/// Decides each of `ids` on its own with `decide`, one line per id; fails (after trying them all) if any failed.
fn each(ids: &[String], decide: impl Fn(&str) -> Result<()>) -> Result<()> {
    if let [id] = ids {
        // One id: its error as it is (with its hint).
        return decide(id);
    }
    let mut failed = 0;
    for id in ids {
        if let Err(e) = decide(id) {
            failed += 1;
            eprintln!(
                "job {}: not decided: {}",
                escape::line(id),
                escape::line(&format!("{e:#}"))
            );
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} of {} job(s) were not decided", ids.len());
    }
    Ok(())
}

/// `ferry review release`: the job's files as shown, less those withheld; refused while a blocking finding
/// concerns a file it would carry, unless overridden with a reason.
fn release(
    config: &Path,
    id: &str,
    withhold: &[String],
    reason: Option<&str>,
    override_reason: Option<&str>,
    key: Option<&ReviewerKey>,
) -> Result<()> {
    let mut side = SideDir::open(config)?;
    side.require(Side::High, "`ferry review release`")?;
    let id = side.resolve_job(id)?;
    let actor = owner_actor();
    let released = ferry_transfer::review::release(
        &mut side,
        &id,
        &ferry_transfer::review::ReleaseRequest {
            withhold,
            reason,
            override_reason,
            actor: &actor,
            key,
        },
    )?;
    for line in released.summary() {
        println!("{line}");
    }
    Ok(())
}

fn list(config: &Path, all: bool, json: bool) -> Result<()> {
    let side = SideDir::open(config)?;
    let awaiting = match side.config.side {
        Side::Low => JobState::Submitted,
        Side::High => JobState::Finished,
    };
    let jobs = side
        .store
        .jobs(if all { None } else { Some(awaiting) }, None)?;
    if json {
        let list = jobs
            .iter()
            .map(|j| job_json(&side, j, false))
            .collect::<Result<Vec<_>>>()?;
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if jobs.is_empty() {
        println!(
            "nothing awaits review on the {} side{}",
            side.config.side.as_str(),
            if all { "" } else { " (--all lists every job)" }
        );
        return Ok(());
    }
    // Every cell escaped in line mode (no control, CR or bidi character reaches the terminal), and the
    // widths computed from the escaped cells so a long name cannot shift the columns after it.
    let rows: Vec<[String; 5]> = jobs
        .iter()
        .map(|j| {
            [
                escape::line(&j.job_id).into_owned(),
                j.state.as_str().to_string(),
                escape::line(&j.researcher).into_owned(),
                when(j.updated_at),
                escape::line(&j.title).into_owned(),
            ]
        })
        .collect();
    let header = ["JOB", "STATE", "RESEARCHER", "UPDATED", "TITLE"];
    let mut widths = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let print_row = |cells: [&str; 5]| {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                line.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count() + 2));
            }
        }
        println!("{}", line.trim_end());
    };
    print_row(header);
    for r in &rows {
        print_row([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    Ok(())
}

fn show(config: &Path, id: &str, json: bool) -> Result<()> {
    let side = SideDir::open(config)?;
    let id = side.resolve_job(id)?;
    let job = side
        .store
        .job(&id)?
        .ok_or_else(|| anyhow::anyhow!("no job {id}"))?;
    let v = job_json(&side, &job, true)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("job:         {}", escape::line(&job.job_id));
    println!("researcher:  {}", escape::line(&job.researcher));
    println!("title:       {}", escape::line(&job.title));
    println!("state:       {}", job.state);
    if let Some(r) = &job.reason {
        println!("reason:      {}", escape::line(r));
    }
    println!("runtime:     {}", escape::line(&job.runtime));
    println!(
        "assets:      {}",
        job.assets
            .iter()
            .map(|a| escape::line(a))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("description: {}", escape::line(&job.description));
    println!("--- code ---\n{}", escape::block(&job.code));
    if let Some(r) = &job.result {
        // The summary is the sandbox's own line; the names in it are escaped already (block mode does not double
        // their backslashes, and still escapes anything a summary should not hold).
        println!(
            "--- result: {} ---",
            escape::block(&r.summary).replace('\n', "\\x0a")
        );
        if r.unsandboxed {
            println!("WARNING: this job ran WITHOUT the sandbox (development mode)");
        }
        if side.config.side == Side::High {
            print_checks(&side, &job.job_id)?;
        }
        let released = side.store.released_files(&job.job_id)?;
        if !released.is_empty() {
            println!("--- release ---");
            for f in &released {
                match (&f.withheld, &f.sha256) {
                    (Some(why), _) => {
                        println!("withheld  {}: {}", escape::line(&f.name), escape::line(why))
                    }
                    (None, Some(sha)) => {
                        println!("carried   {} (sha256 {sha})", escape::line(&f.name))
                    }
                    (None, None) => println!("carried   {}", escape::line(&f.name)),
                }
            }
        }
        let opts = |what: &str| PreviewOptions {
            extract_hint: format!(
                "ferry review extract --config {} {} --out DIR (then DIR/{what})",
                escape::line(&config.display().to_string()),
                escape::line(&job.job_id)
            ),
            ..PreviewOptions::default()
        };
        for (label, data, truncated) in [
            ("stdout", &r.stdout, r.stdout_truncated),
            ("stderr", &r.stderr, r.stderr_truncated),
        ] {
            println!(
                "--- {label}{} ---",
                if truncated { " (truncated)" } else { "" }
            );
            println!("{}", preview::preview_stream(label, data, &opts(label)));
        }
        for o in side.store.outputs(&job.job_id)? {
            println!(
                "--- output file: {} ({} bytes, sha256 {}) ---",
                escape::line(&o.name),
                o.data.len(),
                o.sha256
            );
            let hint = format!("outputs/{}", escape::line(&o.name));
            println!("{}", preview::preview(&o.name, &o.data, &opts(&hint)));
        }
    }
    if let Some(previous) = side.store.revises(&job.job_id)? {
        print_revision(&side, &job, &previous)?;
    }
    let decisions = side.store.decisions(&job.job_id)?;
    if !decisions.is_empty() {
        println!("--- signed decisions ---");
        for d in &decisions {
            println!(
                "{}  {:<8} by {}{}{}",
                when(d.decision.at),
                d.decision.kind.as_str(),
                escape::line(&d.decision.reviewer),
                if d.verify().is_ok() {
                    ""
                } else {
                    "  (SIGNATURE DOES NOT VERIFY)"
                },
                d.decision
                    .reason
                    .as_deref()
                    .map(|r| format!(": {}", escape::line(r)))
                    .unwrap_or_default()
            );
        }
    }
    let comments = side.store.comments(&job.job_id)?;
    if !comments.is_empty() {
        println!("--- conversation ---");
        for c in &comments {
            println!(
                "{}  {} ({} side): {}",
                when(c.at),
                escape::line(&c.author),
                escape::line(&c.side),
                escape::line(&c.text)
            );
        }
    }
    println!("--- history ---");
    for e in side.store.events(&job.job_id)? {
        println!(
            "{}  {:<10} by {}{}",
            when(e.at),
            e.state.as_str(),
            escape::line(&e.actor),
            e.reason
                .map(|r| format!(": {}", escape::line(&r)))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// What a revision changed against the job it revises: the code, and (high side) the outputs.
fn print_revision(side: &SideDir, job: &JobRow, previous: &str) -> Result<()> {
    println!("--- revises job {} ---", escape::line(previous));
    let Some(before) = side.store.job(previous)? else {
        println!("(that job is not on this side)");
        return Ok(());
    };
    match ferry_review::diff::lines(&before.code, &job.code) {
        None => println!("code: unchanged"),
        Some(d) => println!("code changes:\n{d}"),
    }
    if side.config.side == Side::High && (before.result.is_some() || job.result.is_some()) {
        let old = side.store.outputs(previous)?;
        let new = side.store.outputs(&job.job_id)?;
        let mut names: Vec<&str> = old.iter().chain(&new).map(|o| o.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let a = old.iter().find(|o| o.name == name);
            let b = new.iter().find(|o| o.name == name);
            let change = match (a, b) {
                (Some(a), Some(b)) if a.sha256 == b.sha256 => continue,
                (Some(a), Some(b)) => {
                    format!("changed ({} -> {} bytes)", a.data.len(), b.data.len())
                }
                (None, Some(b)) => format!("added ({} bytes)", b.data.len()),
                (Some(a), None) => format!("gone (was {} bytes)", a.data.len()),
                (None, None) => continue,
            };
            println!("output {}: {change}", escape::line(name));
        }
    }
    Ok(())
}

/// The disclosure checks' findings, each marked when `[review] block_on` makes it block a release.
fn print_checks(side: &SideDir, job_id: &str) -> Result<()> {
    let block_on = &side.config.review.block_on;
    match side.store.checks(job_id)? {
        None => println!(
            "--- checks: not run (the job finished before this version of ferry checked outputs) ---"
        ),
        Some(found) if found.is_empty() => println!("--- checks: nothing found ---"),
        Some(found) => {
            let blocking = found.iter().filter(|c| c.blocks(block_on)).count();
            println!(
                "--- checks: {} finding(s), {blocking} blocking a release ([review] block_on) ---",
                found.len()
            );
            for c in &found {
                println!(
                    "{} {:<13} {}: {}",
                    if c.blocks(block_on) { "BLOCKS" } else { "advice" },
                    c.kind.as_str(),
                    escape::line(&c.output),
                    escape::line(&c.detail)
                );
            }
        }
    }
    Ok(())
}

/// `ferry review extract --config CFG ID --out DIR`: the exact bytes of every output, stdout and stderr.
fn extract(config: &Path, id: &str, out: &Path) -> Result<()> {
    use anyhow::Context as _;
    use std::path::Component;
    let side = SideDir::open(config)?;
    let id = side.resolve_job(id)?;
    let job = side
        .store
        .job(&id)?
        .ok_or_else(|| anyhow::anyhow!("no job {id}"))?;
    let r = job
        .result
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("job {} has no result yet", escape::line(&job.job_id)))?;
    let shown = |p: &Path| escape::line(&p.display().to_string()).into_owned();
    if let Ok(mut entries) = std::fs::read_dir(out) {
        if entries.next().is_some() {
            anyhow::bail!(
                "{} exists and is not empty: refusing to overwrite",
                shown(out)
            );
        }
    } else if out.exists() {
        anyhow::bail!("{} exists and is not a directory", shown(out));
    }
    let outputs = side.store.outputs(&job.job_id)?;
    // Check every name before writing anything.
    for o in &outputs {
        let p = Path::new(&o.name);
        if o.name.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
            anyhow::bail!(
                "output name {} is not a plain relative path: refusing to write it",
                escape::line(&o.name)
            );
        }
    }
    let write = |path: &Path, data: &[u8]| -> Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", shown(parent)))?;
        }
        std::fs::write(path, data).with_context(|| format!("writing {}", shown(path)))
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", shown(out)))?;
    write(&out.join("stdout"), &r.stdout)?;
    write(&out.join("stderr"), &r.stderr)?;
    for o in &outputs {
        write(&out.join("outputs").join(&o.name), &o.data)?;
    }
    println!(
        "wrote {} output(s), stdout ({} bytes) and stderr ({} bytes) of job {} to {}",
        outputs.len(),
        r.stdout.len(),
        r.stderr.len(),
        escape::line(&job.job_id),
        shown(out)
    );
    Ok(())
}

fn decide(
    config: &Path,
    id: &str,
    kind: DecisionKind,
    reason: Option<&str>,
    key: Option<&ReviewerKey>,
) -> Result<()> {
    let mut side = SideDir::open(config)?;
    let id = side.resolve_job(id)?;
    let decided =
        ferry_transfer::review::decide(&mut side, &id, kind, reason, key, &owner_actor())?;
    println!("{}", decided.summary());
    Ok(())
}

/// `ferry status --config CFG --json`.
#[derive(Serialize)]
struct StatusJson {
    side: &'static str,
    jobs: BTreeMap<&'static str, u64>,
    channels: BTreeMap<&'static str, ChannelJson>,
    pending_export: Vec<String>,
    quarantined: usize,
}

/// One channel in [`StatusJson`]: outgoing channels say what the other side acknowledged, incoming ones what is
/// missing here.
#[derive(Serialize)]
struct ChannelJson {
    direction: &'static str,
    last_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    acknowledged: Option<Vec<(u64, u64)>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unacknowledged: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reported_missing: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    missing: Option<Vec<u64>>,
}

/// `ferry status --config CFG [--json]`.
pub fn side_status(config: &Path, json: bool) -> Result<()> {
    let side = SideDir::open(config)?;
    let counts = side.store.counts()?;
    let (out, inc) = (side.config.side.outgoing(), side.config.side.incoming());
    let (out_ch, in_ch) = (out.as_str(), inc.as_str());
    let out_seq = side.store.channel_out(out)?.0.get();
    let in_seq = side.store.channel_in(inc)?.0.get();
    let plain = |seqs: Vec<Seq>| -> Vec<u64> { seqs.into_iter().map(Seq::get).collect() };
    let missing_in = plain(side.store.missing_seqs(inc)?);
    let acked = side.store.acked_seqs(out)?;
    let peer_missing = plain(side.store.peer_missing(out)?);
    let unacked: Vec<u64> = (1..=out_seq)
        .filter(|s| !acked.contains(&Seq(*s)))
        .collect();
    let pending = ferry_transfer::export::pending_summary(&side)?;
    let quarantined = std::fs::read_dir(side.layout.quarantine())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".bundle"))
                .count()
        })
        .unwrap_or(0);
    if json {
        let mut channels = BTreeMap::new();
        channels.insert(
            out_ch,
            ChannelJson {
                direction: "out",
                last_seq: out_seq,
                acknowledged: Some(ferry_core::records::to_ranges(&acked)),
                unacknowledged: Some(unacked),
                reported_missing: Some(peer_missing),
                missing: None,
            },
        );
        channels.insert(
            in_ch,
            ChannelJson {
                direction: "in",
                last_seq: in_seq,
                acknowledged: None,
                unacknowledged: None,
                reported_missing: None,
                missing: Some(missing_in),
            },
        );
        let v = StatusJson {
            side: side.config.side.as_str(),
            jobs: counts
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| (s.as_str(), *n))
                .collect(),
            channels,
            pending_export: pending,
            quarantined,
        };
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "{} side ({})",
        side.config.side.as_str(),
        side.config.dir.display()
    );
    println!("jobs:");
    let mut any = false;
    for (state, n) in counts.iter().filter(|(_, n)| *n > 0) {
        println!("  {:<10} {n}", state.as_str());
        any = true;
    }
    if !any {
        println!("  none");
    }
    println!(
        "channel {} (out): last sequence {out_seq}",
        side.outgoing().as_str()
    );
    println!(
        "channel {} (in):  last sequence {in_seq}",
        side.incoming().as_str()
    );
    println!(
        "pending export: {}",
        if pending.is_empty() {
            "nothing".to_string()
        } else {
            pending.join(", ")
        }
    );
    if quarantined > 0 {
        println!(
            "quarantined bundles: {quarantined} (see {})",
            side.layout.quarantine().display()
        );
    }
    Ok(())
}
