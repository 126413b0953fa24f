//! Output review on the high side: the disclosure checks a finished job gets before the owner looks, the echo
//! index of each private asset they need, and the release itself, which records the SHA-256 of every file it
//! carries and the reason for every file it withholds (export then carries exactly those bytes,
//! [`crate::export`]).
//!
//! The files of a job are named as findings and decisions name them: `stdout`, `stderr` and
//! `outputs/<name>` ([`job_files`]).

use std::path::Path;
use std::time::SystemTime;

use ferry_core::decision::{
    self, Covered, Decision, DecisionKind, Reviewer, ReviewerKey, SignedDecision, Tally,
};
use ferry_core::store::{JobRow, OutputRow, ReleasedFile, StoredResult};
use ferry_core::{sha256_hex, JobState, Side, Store};
use ferry_review::checks::{self, Canary, Check, CheckKind, EchoIndex, Output, ReviewPolicy};
use ferry_review::escape;

use crate::error::IoContext;
use crate::{Layout, Result, SideDir, TransferError};

/// How a finding names the whole of a job's output, when a check could not run at all.
pub const EVERY_OUTPUT: &str = "every output";

/// Who is acting, for the audit trail: `owner:<login>` (`SUDO_USER`, else `USER`, else `LOGNAME`). The command
/// line and the review console record their decisions under it.
pub fn owner_actor() -> String {
    let user = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("owner:{user}")
}

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
/// it. `ferry asset add` calls it, so a job's checks never wait for it. The build holds a bounded amount of the
/// index in memory whatever the asset's size ([`checks::BuildLimits`]), spilling the rest under
/// `assets/indexes/` (never `/tmp`), and removes what it spilled when it ends.
pub fn build_echo_index(
    layout: &Layout,
    asset: &str,
    private: &Path,
    policy: &ReviewPolicy,
) -> Result<checks::IndexSummary> {
    let reader: Box<dyn std::io::Read> = if private.is_dir() {
        // A directory (a model folder): its text files, one after another; weight shards and other binary files
        // (a NUL byte in their first 8 KiB) hold no rows to echo.
        Box::new(crate::tree::TextFiles::new(private)?)
    } else {
        Box::new(std::fs::File::open(private).at("opening the private file", private)?)
    };
    let dir = layout.indexes_dir();
    std::fs::create_dir_all(&dir).at("creating", &dir)?;
    let path = layout.echo_index(asset);
    EchoIndex::build_file(
        asset,
        std::io::BufReader::new(reader),
        policy.index_params(),
        &path,
        &checks::BuildLimits::new(&dir),
    )
    .map_err(|e| {
        TransferError::Invalid(format!(
            "building the echo index of {} into {}: {e}",
            escape::line(asset),
            path.display()
        ))
    })
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
                // A directory's size says nothing of its files': its index, built by `ferry asset add` (which
                // re-adding rebuilds), stands while it is newer than the directory.
                if private.is_dir() || index.asset_bytes() == asset_len {
                    return Ok(index);
                }
            }
        }
    }
    tracing::info!(asset, "building the echo index of the private asset");
    build_echo_index(layout, asset, private, policy)?;
    EchoIndex::load(&path, MAX_INDEX_BYTES).map_err(|e| {
        TransferError::Invalid(format!(
            "loading the echo index {} just built: {e}",
            path.display()
        ))
    })
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
    /// The reviewer's key, required where the side has reviewers.
    pub key: Option<&'a ReviewerKey>,
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
    /// The distinct reviewers whose releases count so far and how many are required (`None` without
    /// reviewers); the job stays `finished` until enough have released it.
    pub counted: Option<(Vec<String>, u32)>,
}

impl Released {
    /// What the release did, in the lines `ferry review release` prints (names escaped): who released it and how
    /// many releases it still waits for, or the state it is in now and what it carries and withholds, then any
    /// override and a note when no checks ran.
    pub fn summary(&self) -> Vec<String> {
        let shown = |names: &[String]| {
            names
                .iter()
                .map(|n| escape::line(n).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        if let Some((names, required)) = &self.counted {
            if self.job.state == JobState::Finished {
                return vec![format!(
                    "job {}: released by {} ({} of {required} releases required); it waits for another reviewer",
                    escape::line(&self.job.job_id),
                    names.join(", "),
                    names.len()
                )];
            }
        }
        let mut lines = vec![format!(
            "job {} is now {}: carries {}{}",
            escape::line(&self.job.job_id),
            self.job.state,
            shown(&self.carried),
            if self.withheld.is_empty() {
                String::new()
            } else {
                format!("; withheld {}", shown(&self.withheld))
            }
        )];
        if !self.overridden.is_empty() {
            lines.push(format!(
                "released over {} blocking finding(s); the override and its reason are in the audit trail",
                self.overridden.len()
            ));
        }
        if !self.checks_run {
            lines.push(
                "note: no disclosure checks ran on this job (it finished before this version of ferry)".into(),
            );
        }
        lines
    }
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
    let required = side.config.review.releases_required;
    let reviewer = reviewer_for(side, request.key)?;
    if reviewer.is_none() && required > 1 {
        return Err(TransferError::Invalid(format!(
            "[review] releases_required = {required} needs registered reviewers: `ferry reviewer add`"
        )));
    }
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
    if let Some(name) = &reviewer {
        refuse_own_job(name, &job)?;
    }
    // A second reviewer releases what the first did: the same files, the same bytes, the same withheld.
    let earlier = tx.released_files(&job.job_id)?;
    // Compared by name, bytes and whether withheld (a second reviewer's reason may be worded otherwise).
    let shape = |files: &[ReleasedFile]| {
        let mut v: Vec<(String, Option<String>, bool)> = files
            .iter()
            .map(|f| (f.name.clone(), f.sha256.clone(), f.withheld.is_some()))
            .collect();
        v.sort();
        v
    };
    if !earlier.is_empty() && shape(&earlier) != shape(&record) {
        let shown = |files: &[ReleasedFile]| {
            files
                .iter()
                .filter(|f| f.withheld.is_some())
                .map(|f| escape::line(&f.name).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(TransferError::Invalid(format!(
            "job {} has a release waiting for more reviewers that withholds [{}]; this one withholds [{}] (or \
             its files changed since): release the same files, or withhold the job",
            job.job_id,
            shown(&earlier),
            shown(&record)
        )));
    }
    tx.record_release(&job.job_id, &record)?;
    let carried: Vec<String> = files
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| !withheld_names.contains(n))
        .collect();
    let mut counted = None;
    if let (Some(name), Some(key)) = (&reviewer, request.key) {
        let covers: Vec<Covered> = record
            .iter()
            .filter(|f| f.withheld.is_none())
            .map(|f| Covered {
                name: f.name.clone(),
                sha256: f.sha256.clone().unwrap_or_default(),
            })
            .collect();
        let signed = sign_and_count(
            &tx,
            key,
            name,
            &job,
            DecisionKind::Release,
            covers,
            withheld_names.clone(),
            reason,
        )?;
        counted = Some((signed.clone(), required));
        if (signed.len() as u64) < u64::from(required) {
            tx.commit()?;
            return Ok(Released {
                carried,
                job,
                withheld: withheld_names,
                overridden: blocking,
                checks_run,
                counted,
            });
        }
    }
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
    let decided_by = match &counted {
        Some((names, _)) => names.join(", "),
        None => request.actor.to_string(),
    };
    let job = tx.transition(
        &job.job_id,
        &[JobState::Finished],
        JobState::Released,
        &decided_by,
        researcher_reason.as_deref(),
    )?;
    tx.commit()?;
    Ok(Released {
        job,
        carried,
        withheld: withheld_names,
        overridden: blocking,
        checks_run,
        counted,
    })
}

/// Refuses a reviewer deciding on a job submitted under their own name.
fn refuse_own_job(reviewer: &str, job: &JobRow) -> Result<()> {
    if reviewer == job.researcher {
        return Err(TransferError::Invalid(format!(
            "{reviewer} submitted job {} and cannot review it",
            job.job_id
        )));
    }
    Ok(())
}

/// Signs `reviewer`'s decision of `kind` on `job` with `key` (covers and withheld sorted, as they are signed),
/// stores it, and returns the distinct reviewers of this side whose decisions of that kind on exactly these
/// contents now count.
#[allow(clippy::too_many_arguments)]
fn sign_and_count(
    tx: &ferry_core::store::Tx<'_>,
    key: &ReviewerKey,
    reviewer: &str,
    job: &JobRow,
    kind: DecisionKind,
    mut covers: Vec<Covered>,
    mut withheld: Vec<String>,
    reason: Option<&str>,
) -> Result<Vec<String>> {
    covers.sort();
    withheld.sort();
    tx.add_decision(&key.sign(Decision {
        job_id: job.job_id.clone(),
        kind,
        covers: covers.clone(),
        withheld: withheld.clone(),
        reason: reason.map(|r| r.trim().to_string()),
        reviewer: reviewer.to_string(),
        at: ferry_core::now(),
    }))?;
    let reviewers: Vec<Reviewer> = tx.reviewers()?.into_iter().map(|r| r.reviewer).collect();
    let tally = decision::count(
        &tx.decisions(&job.job_id)?,
        kind,
        &job.job_id,
        &covers,
        &withheld,
        &reviewers,
        &job.researcher,
    );
    Ok(tally.reviewers)
}

/// What an approval covers: the code, by its SHA-256.
pub fn approval_covers(code: &str) -> Vec<Covered> {
    vec![Covered {
        name: "code".into(),
        sha256: sha256_hex(code.as_bytes()),
    }]
}

/// Whether a job that crossed may run: with no reviewers known from the low side and one approval required, its
/// (unsigned) approval stands as before; otherwise `required` distinct reviewers of the low side must have signed
/// an approval of exactly this code. `Err` says why not.
pub fn verify_approvals(
    job: &ferry_core::records::JobTransfer,
    peer_reviewers: &[Reviewer],
    required: u32,
) -> std::result::Result<(), String> {
    if peer_reviewers.is_empty() && job.approvals.is_empty() && required <= 1 {
        return Ok(());
    }
    let tally = decision::count(
        &job.approvals,
        DecisionKind::Approve,
        &job.job_id,
        &approval_covers(&job.code),
        &[],
        peer_reviewers,
        &job.researcher,
    );
    enough(tally, required, "approvals")
}

/// Whether a released result that crossed may be delivered: as [`verify_approvals`], for the high side's
/// reviewers' signed releases of exactly these files.
pub fn verify_releases(
    job_id: &str,
    result: &ferry_core::records::ResultTransfer,
    decisions: &[SignedDecision],
    peer_reviewers: &[Reviewer],
    required: u32,
    researcher: Option<&str>,
) -> std::result::Result<(), String> {
    if peer_reviewers.is_empty() && decisions.is_empty() && required <= 1 {
        return Ok(());
    }
    let withheld: Vec<String> = result.withheld.iter().map(|w| w.name.clone()).collect();
    let mut covers = Vec::new();
    for (name, data) in [("stdout", &result.stdout), ("stderr", &result.stderr)] {
        if !withheld.iter().any(|w| w == name) {
            covers.push(Covered {
                name: name.into(),
                sha256: sha256_hex(data),
            });
        }
    }
    covers.extend(result.outputs.iter().map(|f| Covered {
        name: format!("outputs/{}", f.name),
        sha256: f.sha256.clone(),
    }));
    let tally = decision::count(
        decisions,
        DecisionKind::Release,
        job_id,
        &covers,
        &withheld,
        peer_reviewers,
        researcher.unwrap_or_default(),
    );
    enough(tally, required, "releases")
}

fn enough(tally: Tally, required: u32, what: &str) -> std::result::Result<(), String> {
    if tally.reviewers.len() as u64 >= u64::from(required) {
        return Ok(());
    }
    let mut why = format!(
        "{} of the {required} signed {what} required verify{}",
        tally.reviewers.len(),
        if tally.reviewers.is_empty() {
            String::new()
        } else {
            format!(" ({})", tally.reviewers.join(", "))
        }
    );
    if !tally.problems.is_empty() {
        why.push_str(&format!("; {}", tally.problems.join("; ")));
    }
    Err(escape::line(&why).into_owned())
}

/// The reviewer a decision is made as: the registered, current reviewer whose key `key` is, when this side has
/// reviewers; `None` when it has none and no key was given.
pub fn reviewer_for(side: &SideDir, key: Option<&ReviewerKey>) -> Result<Option<String>> {
    let current: Vec<Reviewer> = side
        .store
        .reviewers()?
        .into_iter()
        .map(|r| r.reviewer)
        .filter(|r| !r.removed)
        .collect();
    match key {
        None if current.is_empty() => Ok(None),
        None => Err(TransferError::NeedsReviewerKey),
        Some(key) => {
            let public = key.public();
            match current.iter().find(|r| r.public_key == public) {
                Some(r) => Ok(Some(r.name.clone())),
                None => Err(TransferError::Invalid(format!(
                    "the key {public} is not a current reviewer's on this side (`ferry reviewer list`)"
                ))),
            }
        }
    }
}

/// What a decision did.
#[derive(Clone, Debug)]
pub struct Decided {
    /// The job as it is now.
    pub job: JobRow,
    /// The distinct reviewers whose decisions count so far, and how many are required; `None` without reviewers.
    pub counted: Option<(Vec<String>, u32)>,
}

impl Decided {
    /// What the decision did, in the line `ferry review approve|reject|return|withhold` prints: the state the job
    /// is in now, or who approved it so far when it waits for another reviewer.
    pub fn summary(&self) -> String {
        match &self.counted {
            Some((names, required)) if self.job.state == JobState::Submitted => format!(
                "job {}: approved by {} ({} of {required} approvals required); it waits for another reviewer",
                escape::line(&self.job.job_id),
                names.join(", "),
                names.len()
            ),
            _ => format!(
                "job {} is now {}",
                escape::line(&self.job.job_id),
                self.job.state
            ),
        }
    }
}

/// An owner's decision other than a release: `approve` (low side), `reject` (low), `withhold` (high) or
/// `return` (either side, changes requested). Signed with `key` when the side has reviewers (then required);
/// an approval moves the job on only once `[review] approvals_required` distinct reviewers approved it; a
/// rejection, withholding or return takes one.
pub fn decide(
    side: &mut SideDir,
    job_id: &str,
    kind: DecisionKind,
    reason: Option<&str>,
    key: Option<&ReviewerKey>,
    actor: &str,
) -> Result<Decided> {
    let (needs_side, from, to) = match kind {
        DecisionKind::Approve => (Some(Side::Low), JobState::Submitted, JobState::Approved),
        DecisionKind::Reject => (Some(Side::Low), JobState::Submitted, JobState::Rejected),
        DecisionKind::Withhold => (Some(Side::High), JobState::Finished, JobState::Withheld),
        DecisionKind::Return => (None, JobState::Submitted, JobState::Returned),
        DecisionKind::Release => {
            return Err(TransferError::Invalid(
                "a release is made with review::release".into(),
            ))
        }
    };
    if let Some(want) = needs_side {
        side.require(want, &format!("`ferry review {}`", kind.as_str()))?;
    }
    let from = match (kind, side.config.side) {
        (DecisionKind::Return, Side::High) => JobState::Finished,
        _ => from,
    };
    if kind != DecisionKind::Approve && reason.is_none_or(|r| r.trim().is_empty()) {
        return Err(TransferError::Invalid(
            "--reason is empty: the researcher must be told why".into(),
        ));
    }
    let reviewer = reviewer_for(side, key)?;
    let required = side.config.review.approvals_required;
    let tx = side.store.begin(side.config.side)?;
    let job = tx
        .job(job_id)?
        .ok_or_else(|| TransferError::JobLookup(format!("no job {job_id}")))?;
    if job.state != from {
        return Err(ferry_core::StoreError::WrongState {
            job_id: job.job_id,
            state: job.state,
            action: format!("`ferry review {}`", kind.as_str()),
            expected: from.as_str().into(),
        }
        .into());
    }
    let mut counted = None;
    if let (Some(name), Some(key)) = (&reviewer, key) {
        refuse_own_job(name, &job)?;
        let covers = match kind {
            DecisionKind::Approve => approval_covers(&job.code),
            _ => Vec::new(),
        };
        let signed = sign_and_count(&tx, key, name, &job, kind, covers, Vec::new(), reason)?;
        if kind == DecisionKind::Approve {
            counted = Some((signed.clone(), required));
            if (signed.len() as u64) < u64::from(required) {
                tx.commit()?;
                return Ok(Decided { job, counted });
            }
        }
    } else if kind == DecisionKind::Approve && required > 1 {
        return Err(TransferError::Invalid(format!(
            "[review] approvals_required = {required} needs registered reviewers: `ferry reviewer add`"
        )));
    }
    let decided_by = match &counted {
        Some((names, _)) => names.join(", "),
        None => reviewer.clone().unwrap_or_else(|| actor.to_string()),
    };
    let job = tx.transition(&job.job_id, &[from], to, &decided_by, reason.map(str::trim))?;
    tx.commit()?;
    Ok(Decided { job, counted })
}
