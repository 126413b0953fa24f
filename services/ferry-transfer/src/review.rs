//! Output review on the high side: the disclosure checks a finished job gets before the owner looks, the echo
//! index of each private asset they need, and the release itself, which records the SHA-256 of every file it
//! carries and the reason for every file it withholds (export then carries exactly those bytes,
//! [`crate::export`]).
//!
//! The files of a job are named as findings and decisions name them: `stdout`, `stderr` and
//! `outputs/<name>` ([`job_files`]).

use std::path::Path;
use std::time::SystemTime;

use ferry_core::store::{JobRow, OutputRow, ReleasedFile, StoredResult};
use ferry_core::{sha256_hex, JobState, Side, Store};
use ferry_review::checks::{self, Canary, Check, CheckKind, EchoIndex, Output, ReviewPolicy};
use ferry_review::escape;

use crate::error::IoContext;
use crate::{Layout, Result, SideDir, TransferError};

/// How a finding names the whole of a job's output, when a check could not run at all.
pub const EVERY_OUTPUT: &str = "every output";

/// The largest echo index file this side loads (its own files; the cap only bounds a damaged one).
const MAX_INDEX_BYTES: u64 = 64 << 30;

/// Every file of a job's result as review names it, in a stable order: `stdout`, `stderr`, then
/// `outputs/<name>` by name.
pub fn job_files<'a>(
    result: &'a StoredResult,
    outputs: &'a [OutputRow],
) -> Vec<(String, &'a [u8])> {
    let mut files = vec![
        ("stdout".to_string(), result.stdout.as_slice()),
        ("stderr".to_string(), result.stderr.as_slice()),
    ];
    files.extend(
        outputs
            .iter()
            .map(|o| (format!("outputs/{}", o.name), o.data.as_slice())),
    );
    files
}

/// Builds the echo index of the private file `private` of `asset` and saves it where [`echo_index`] finds
/// it. `ferry asset add` calls it, so a job's checks never wait for it.
pub fn build_echo_index(
    layout: &Layout,
    asset: &str,
    private: &Path,
    policy: &ReviewPolicy,
) -> Result<EchoIndex> {
    let file = std::fs::File::open(private).at("opening the private file", private)?;
    let index = EchoIndex::build(asset, std::io::BufReader::new(file), policy.index_params())
        .map_err(|e| {
            TransferError::Invalid(format!(
                "building the echo index of {}: {e}",
                escape::line(asset)
            ))
        })?;
    let dir = layout.indexes_dir();
    std::fs::create_dir_all(&dir).at("creating", &dir)?;
    let path = layout.echo_index(asset);
    index.save(&path).map_err(|e| {
        TransferError::Invalid(format!("saving the echo index {}: {e}", path.display()))
    })?;
    Ok(index)
}

/// The echo index of `asset`: the saved one when it is as new as the private file and of its size, else one
/// built now (and saved).
pub fn echo_index(
    layout: &Layout,
    asset: &str,
    private: &Path,
    policy: &ReviewPolicy,
) -> Result<EchoIndex> {
    let path = layout.echo_index(asset);
    let modified = |p: &Path| -> Option<(SystemTime, u64)> {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    if let (Some((index_time, _)), Some((asset_time, asset_len))) =
        (modified(&path), modified(private))
    {
        if index_time >= asset_time {
            if let Ok(index) = EchoIndex::load(&path, MAX_INDEX_BYTES) {
                if index.asset_bytes() == asset_len {
                    return Ok(index);
                }
            }
        }
    }
    tracing::info!(asset, "building the echo index of the private asset");
    build_echo_index(layout, asset, private, policy)
}

/// Runs every disclosure check on a finished job's files against the private assets it read. Never fails: a
/// check that cannot run (an asset gone, an index that cannot be built) is itself a finding, of the kind it
/// stood for, so that under the default `block_on` the release waits for the owner.
pub fn check_job(
    store: &Store,
    layout: &Layout,
    policy: &ReviewPolicy,
    assets: &[String],
    result: &StoredResult,
    outputs: &[OutputRow],
) -> Vec<Check> {
    let mut findings = Vec::new();
    let mut indexes = Vec::new();
    let mut canaries = Vec::new();
    for asset in assets {
        let could_not = |kind: CheckKind, why: String| Check {
            kind,
            output: EVERY_OUTPUT.into(),
            detail: format!(
                "the check against asset {} could not run: {why}",
                escape::line(asset)
            ),
        };
        match store.asset(asset) {
            Ok(Some(row)) => match row.private_path {
                Some(private) => match echo_index(layout, asset, Path::new(&private), policy) {
                    Ok(index) => indexes.push(index),
                    Err(e) => findings.push(could_not(
                        CheckKind::PrivateEcho,
                        escape::line(&e.to_string()).into_owned(),
                    )),
                },
                None => findings.push(could_not(
                    CheckKind::PrivateEcho,
                    "it has no private file on this side".into(),
                )),
            },
            Ok(None) => findings.push(could_not(
                CheckKind::PrivateEcho,
                "it is not registered on this side".into(),
            )),
            Err(e) => findings.push(could_not(CheckKind::PrivateEcho, e.to_string())),
        }
        match store.canaries(asset) {
            Ok(values) => {
                for value in values {
                    match Canary::new(asset, &value) {
                        Ok(c) => canaries.push(c),
                        Err(e) => findings.push(could_not(CheckKind::Canary, e.to_string())),
                    }
                }
            }
            Err(e) => findings.push(could_not(CheckKind::Canary, e.to_string())),
        }
    }
    let mut files = vec![
        Output::stdout(&result.stdout),
        Output::stderr(&result.stderr),
    ];
    files.extend(outputs.iter().map(|o| Output::file(&o.name, &o.data)));
    let refs: Vec<&EchoIndex> = indexes.iter().collect();
    findings.extend(checks::run_checks(&files, &refs, &canaries, policy));
    findings
}

/// What the owner asks of a release.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReleaseRequest<'a> {
    /// Files to withhold: `stdout`, `stderr`, `outputs/<name>` or just `<name>`.
    pub withhold: &'a [String],
    /// Why they are withheld, for the researcher; required with `withhold`.
    pub reason: Option<&'a str>,
    /// Release despite findings that `[review] block_on` makes blocking, for this recorded reason.
    pub override_reason: Option<&'a str>,
    /// Who decides, for the audit trail.
    pub actor: &'a str,
}

/// What a release did.
#[derive(Clone, Debug)]
pub struct Released {
    /// The job, now `released`.
    pub job: JobRow,
    /// The files it carries.
    pub carried: Vec<String>,
    /// The files it withholds.
    pub withheld: Vec<String>,
    /// The blocking findings the owner overrode.
    pub overridden: Vec<Check>,
    /// Whether the job's checks ever ran (a job finished before checks existed has none).
    pub checks_run: bool,
}

/// Releases a finished job (high side): records the SHA-256 of every file it carries and the reason for every
/// file it withholds, and refuses, changing nothing, while a finding of a `block_on` kind concerns a file it would
/// carry and no override reason is given.
pub fn release(side: &mut SideDir, job_id: &str, request: &ReleaseRequest<'_>) -> Result<Released> {
    side.require(Side::High, "`ferry review release`")?;
    let blank = |s: Option<&str>| s.is_none_or(|s| s.trim().is_empty());
    if !request.withhold.is_empty() && blank(request.reason) {
        return Err(TransferError::Invalid(
            "withholding files needs a reason: the researcher is told why".into(),
        ));
    }
    if request.override_reason.is_some() && blank(request.override_reason) {
        return Err(TransferError::Invalid(
            "an override needs a reason, which the audit trail records".into(),
        ));
    }
    let block_on = side.config.review.block_on.clone();
    let tx = side.store.begin(Side::High)?;
    let job = tx
        .job(job_id)?
        .ok_or_else(|| TransferError::JobLookup(format!("no job {job_id}")))?;
    if job.state != JobState::Finished {
        return Err(ferry_core::StoreError::WrongState {
            job_id: job.job_id,
            state: job.state,
            action: "a release".into(),
            expected: "finished".into(),
        }
        .into());
    }
    let result = job.result.as_ref().ok_or_else(|| {
        TransferError::Invalid(format!("finished job {} has no stored result", job.job_id))
    })?;
    let outputs = tx.outputs(&job.job_id)?;
    let files = job_files(result, &outputs);
    let mut withheld_names = Vec::new();
    for asked in request.withhold {
        let found = files
            .iter()
            .find(|(name, _)| name == asked || *name == format!("outputs/{asked}"));
        match found {
            Some((name, _)) => {
                if !withheld_names.contains(name) {
                    withheld_names.push(name.clone());
                }
            }
            None => {
                return Err(TransferError::Invalid(format!(
                    "job {} has no file {} to withhold; its files are {}",
                    job.job_id,
                    escape::line(asked),
                    files
                        .iter()
                        .map(|(n, _)| escape::line(n).into_owned())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        }
    }
    let checks = tx.checks(&job.job_id)?;
    let checks_run = checks.is_some();
    // A finding names its file escaped (`outputs/<escaped name>`); valid output names escape to themselves.
    let carried_shown: Vec<String> = files
        .iter()
        .filter(|(n, _)| !withheld_names.contains(n))
        .map(|(n, _)| escape::line(n).into_owned())
        .collect();
    let blocking: Vec<Check> = checks
        .unwrap_or_default()
        .into_iter()
        .filter(|c| {
            c.blocks(&block_on) && (c.output == EVERY_OUTPUT || carried_shown.contains(&c.output))
        })
        .collect();
    if !blocking.is_empty() && request.override_reason.is_none() {
        return Err(TransferError::Blocked {
            job_id: job.job_id.clone(),
            findings: blocking.iter().map(|c| c.to_string()).collect(),
        });
    }
    let reason = request.reason.map(str::trim);
    let record: Vec<ReleasedFile> = files
        .iter()
        .map(|(name, data)| ReleasedFile {
            name: name.clone(),
            sha256: Some(sha256_hex(data)),
            withheld: withheld_names
                .contains(name)
                .then(|| reason.unwrap_or_default().to_string()),
        })
        .collect();
    tx.record_release(&job.job_id, &record)?;
    if let (false, Some(why)) = (blocking.is_empty(), request.override_reason) {
        let kinds: Vec<String> = blocking
            .iter()
            .map(|c| format!("{} in {}", c.kind, c.output))
            .collect();
        tx.audit(
            &job.job_id,
            request.actor,
            &format!(
                "released over {} blocking finding(s) ({}): {}",
                blocking.len(),
                kinds.join("; "),
                why.trim()
            ),
        )?;
    }
    let researcher_reason = (!withheld_names.is_empty()).then(|| {
        format!(
            "released without {}: {}",
            withheld_names
                .iter()
                .map(|n| escape::line(n).into_owned())
                .collect::<Vec<_>>()
                .join(", "),
            reason.unwrap_or_default()
        )
    });
    let job = tx.transition(
        &job.job_id,
        &[JobState::Finished],
        JobState::Released,
        request.actor,
        researcher_reason.as_deref(),
    )?;
    tx.commit()?;
    Ok(Released {
        job,
        carried: files
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| !withheld_names.contains(n))
            .collect(),
        withheld: withheld_names,
        overridden: blocking,
        checks_run,
    })
}
