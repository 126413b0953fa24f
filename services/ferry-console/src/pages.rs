//! The pages. Every value is interpolated through maud (escaped for HTML) and every untrusted one through
//! [`render`] (its invisible, bidi and control characters shown as escapes). No page carries a script or an
//! inline style.

use maud::{html, Markup, DOCTYPE};

use ferry_core::store::JobRow;
use ferry_core::{JobState, Side};
use ferry_review::checks::Check;
use ferry_review::escape;
use ferry_review::preview;
use ferry_transfer::review::EVERY_OUTPUT;
use ferry_transfer::SideDir;

use crate::render::{self, field, when};
use crate::App;

type Result<T> = std::result::Result<T, ferry_core::StoreError>;

/// What a decision form says the page showed: the job's state and last change. A decision is refused when the
/// job no longer has it.
pub fn stamp(job: &JobRow) -> String {
    format!("{}@{}", job.state.as_str(), job.updated_at)
}

/// The state a job awaits review in on `side`.
fn awaiting(side: Side) -> JobState {
    match side {
        Side::Low => JobState::Submitted,
        Side::High => JobState::Finished,
    }
}

/// Every page's head: its title and the console's one stylesheet.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            title { "Ferry console: " (title) }
            link rel="stylesheet" href="/console.css";
        }
    }
}

/// A page of its own for a refusal or an error (no navigation: the visitor may not be signed in).
pub fn message(title: &str, text: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                main {
                    h1 { (title) }
                    p.error role="alert" { (text) }
                    p { a href="/" { "Back to the queue" } }
                }
            }
        }
    }
}

fn layout(app: &App, title: &str, flash: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header {
                    nav {
                        a href="/" { "Queue" }
                        a href="/?all=1" { "All jobs" }
                        a href="/audit" { "Audit trail" }
                    }
                    p.side {
                        strong { (app.side.as_str()) " side" }
                        " · "
                        @match &app.reviewer {
                            Ok(Some(name)) => { "deciding as reviewer " (field(name)) " (signed)" }
                            Ok(None) => { "decisions unsigned (no reviewers registered on this side), as " (field(&app.actor)) }
                            Err(why) => span.error { "decisions will be refused: " (why) }
                        }
                    }
                }
                main {
                    @if let Some(f) = flash { p.flash role="status" { (f) } }
                    (body)
                }
            }
        }
    }
}

fn findings_summary(
    checks: Option<&[Check]>,
    block_on: &[ferry_review::checks::CheckKind],
) -> String {
    match checks {
        None => "not run".into(),
        Some([]) => "nothing found".into(),
        Some(found) => format!(
            "{} finding(s), {} blocking",
            found.len(),
            found.iter().filter(|c| c.blocks(block_on)).count()
        ),
    }
}

/// The queue: jobs awaiting review here (or all of them), newest first.
pub fn queue(app: &App, side: &SideDir, all: bool, flash: Option<&str>) -> Result<Markup> {
    let want = awaiting(app.side);
    let jobs = side.store.jobs(if all { None } else { Some(want) }, None)?;
    let now = ferry_core::now();
    let block_on = &side.config.review.block_on;
    let mut rows = Vec::new();
    for j in &jobs {
        let checks = match app.side {
            Side::High => findings_summary(side.store.checks(&j.job_id)?.as_deref(), block_on),
            Side::Low => "code checked at intake".into(),
        };
        rows.push((j, checks));
    }
    let title = if all { "All jobs" } else { "Awaiting review" };
    Ok(layout(
        app,
        title,
        flash,
        html! {
            h1 { (title) }
            @if rows.is_empty() {
                p { "Nothing awaits review on the " (app.side.as_str()) " side." }
            } @else {
                table.queue {
                    thead { tr { th { "Job" } th { "Researcher" } th { "Title" } th { "State" } th { "Age" } th { "Automated checks" } } }
                    tbody {
                        @for (j, checks) in &rows {
                            tr {
                                td { a href={ "/job/" (j.job_id) } { (j.job_id.get(..8).unwrap_or(&j.job_id)) } }
                                td { (field(&j.researcher)) }
                                td.title { (field(&j.title)) }
                                td { (j.state.as_str()) }
                                td title=(when(j.submitted_at)) { (render::age(j.submitted_at, now)) }
                                td { (checks) }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// Hidden fields every decision form carries.
fn form_fields(csrf: &str, job: &JobRow, decision: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(csrf);
        input type="hidden" name="seen" value=(stamp(job));
        input type="hidden" name="decision" value=(decision);
    }
}

fn reason_form(csrf: &str, job: &JobRow, decision: &str, button: &str, label: &str) -> Markup {
    html! {
        form.decision method="post" action={ "/job/" (job.job_id) "/decision" } {
            (form_fields(csrf, job, decision))
            label { (label) textarea name="reason" required rows="2" {} }
            button type="submit" { (button) }
        }
    }
}

/// A job: what it is, its code (and the diff to the version it revises), on the high side its result and every
/// file a release would carry, the decision forms its state allows, the signed decisions, the conversation and
/// the history.
pub fn job(
    app: &App,
    side: &SideDir,
    job: &JobRow,
    csrf: &str,
    flash: Option<&str>,
) -> Result<Markup> {
    let id = &job.job_id;
    let block_on = &side.config.review.block_on;
    let checks = match app.side {
        Side::High => side.store.checks(id)?,
        Side::Low => None,
    };
    let outputs = side.store.outputs(id)?;
    let files = job
        .result
        .as_ref()
        .map(|r| ferry_transfer::review::job_files(r, &outputs))
        .unwrap_or_default();
    let revises = side.store.revises(id)?;
    let before = match &revises {
        Some(prev) => side.store.job(prev)?,
        None => None,
    };
    let decisions = side.store.decisions(id)?;
    let comments = side.store.comments(id)?;
    let events = side.store.events(id)?;
    let released = side.store.released_files(id)?;
    let findings_for = |name: &str| -> Vec<&Check> {
        let shown = escape::line(name);
        checks
            .iter()
            .flatten()
            .filter(|c| c.output == shown)
            .collect()
    };
    let general: Vec<&Check> = checks
        .iter()
        .flatten()
        .filter(|c| {
            c.output == EVERY_OUTPUT || !files.iter().any(|(n, _)| escape::line(n) == c.output)
        })
        .collect();
    let blocking = checks.iter().flatten().any(|c| c.blocks(block_on));
    let decidable = job.state == awaiting(app.side);
    let finding = |c: &Check| {
        let blocks = c.blocks(block_on);
        html! {
            li class=(if blocks { "finding blocks" } else { "finding advice" }) {
                strong { (if blocks { "BLOCKS" } else { "advice" }) }
                " " (c.kind.as_str()) " in " (field(&c.output)) ": " (field(&c.detail))
            }
        }
    };
    let body = html! {
        h1 { "Job " span.title { (field(&job.title)) } }
        dl.facts {
            dt { "Job" } dd { code { (id) } }
            dt { "Researcher" } dd { (field(&job.researcher)) }
            dt { "State" } dd.state { (job.state.as_str()) }
            @if let Some(r) = &job.reason { dt { "Reason" } dd { (field(r)) } }
            dt { "Runtime" } dd { (field(&job.runtime)) }
            dt { "Assets" } dd {
                @for (i, a) in job.assets.iter().enumerate() { @if i > 0 { ", " } (field(a)) }
            }
            dt { "Submitted" } dd { (when(job.submitted_at)) }
            dt { "Last change" } dd { (when(job.updated_at)) }
            @if let Some(prev) = &revises {
                dt { "Revises" } dd { a href={ "/job/" (prev) } { (prev) } }
            }
        }
        h2 { "Description" }
        pre.text.description { (render::block(&job.description)) }

        @if decidable {
            section.decide {
                h2 { "Decide" }
                @match app.side {
                    Side::Low => {
                        form.decision method="post" action={ "/job/" (id) "/decision" } {
                            (form_fields(csrf, job, "approve"))
                            button type="submit" { "Approve" }
                        }
                        (reason_form(csrf, job, "reject", "Reject", "Why it is rejected, for the researcher"))
                        (reason_form(csrf, job, "return", "Return", "What to change, for the researcher"))
                    }
                    Side::High => {
                        form.decision method="post" action={ "/job/" (id) "/decision" } {
                            (form_fields(csrf, job, "release"))
                            fieldset {
                                legend { "Files the release carries (tick one to withhold it)" }
                                @for (name, data) in &files {
                                    label.file {
                                        input type="checkbox" name="withhold" value=(name);
                                        "Withhold " (field(name)) " (" (data.len()) " bytes)"
                                    }
                                }
                            }
                            label { "Why the ticked files are withheld, for the researcher" textarea name="reason" rows="2" {} }
                            @if blocking {
                                label { "Release over the blocking findings, for this reason (recorded in the audit trail)" textarea name="override_reason" rows="2" {} }
                            }
                            button type="submit" { "Release" }
                        }
                        (reason_form(csrf, job, "withhold", "Withhold", "Why the whole result is withheld, for the researcher"))
                        (reason_form(csrf, job, "return", "Return", "What to change, for the researcher"))
                    }
                }
            }
        }

        h2 { "Code" }
        (render::code(&job.code))

        @if let Some(prev) = &revises {
            h2 { "Changes since job " (prev) }
            @match &before {
                None => p { "That job is not on this side." },
                Some(b) => @match ferry_review::diff::lines(&b.code, &job.code) {
                    None => p { "The code is unchanged." },
                    Some(d) => pre.diff {
                        @for line in d.lines() {
                            @let class = if line.starts_with("+ ") { "add" } else if line.starts_with("- ") { "del" } else { "same" };
                            span class=(class) { (line) } "\n"
                        }
                    },
                },
            }
        }

        @if let Some(r) = &job.result {
            h2 { "Result" }
            p.summary { (field(&r.summary)) }
            @if r.unsandboxed { p.error { "WARNING: this job ran WITHOUT the sandbox (development mode)" } }
            @if app.side == Side::High {
                h3 { "Automated checks" }
                p { (findings_summary(checks.as_deref(), block_on)) }
                @if !general.is_empty() { ul.findings { @for c in &general { (finding(c)) } } }
            }
            @if !released.is_empty() {
                h3 { "Release" }
                ul.release {
                    @for f in &released {
                        li {
                            @match (&f.withheld, &f.sha256) {
                                (Some(why), _) => { "withheld " (field(&f.name)) ": " (field(why)) }
                                (None, Some(sha)) => { "carried " (field(&f.name)) " (sha256 " code { (sha) } ")" }
                                (None, None) => { "carried " (field(&f.name)) }
                            }
                        }
                    }
                }
            }
            @for (n, (name, data)) in files.iter().enumerate() {
                @let truncated = (n == 0 && r.stdout_truncated) || (n == 1 && r.stderr_truncated);
                section.file id={ "file-" (n) } {
                    h3 { (field(name)) @if truncated { " (truncated)" } }
                    p.meta {
                        (data.len()) " bytes, sha256 " code { (ferry_core::sha256_hex(data)) }
                        " · " (kind_of(data))
                        " · " a href={ "/job/" (id) "/file/" (n) } { "download the exact bytes" }
                    }
                    @let found = findings_for(name);
                    @if !found.is_empty() { ul.findings { @for c in found { (finding(c)) } } }
                    (contents(id, n, data))
                }
            }
        }

        @if !decisions.is_empty() {
            h2 { "Signed decisions" }
            ul.decisions {
                @for d in &decisions {
                    li {
                        (when(d.decision.at)) " " strong { (d.decision.kind.as_str()) } " by " (field(&d.decision.reviewer))
                        @if d.verify().is_err() { span.error { " (SIGNATURE DOES NOT VERIFY)" } }
                        @if let Some(r) = &d.decision.reason { ": " (field(r)) }
                    }
                }
            }
        }
        h2 { "Conversation" }
        @if comments.is_empty() { p { "No comments." } }
        ul.thread {
            @for c in &comments {
                li { (when(c.at)) " " strong { (field(&c.author)) } " (" (field(&c.side)) " side): " pre.text { (render::block(&c.text)) } }
            }
        }
        h2 { "History" }
        ul.history {
            @for e in &events {
                li {
                    (when(e.at)) " " strong { (e.state.as_str()) } " by " (field(&e.actor))
                    @if let Some(r) = &e.reason { ": " (field(r)) }
                }
            }
        }
    };
    Ok(layout(app, &escape::line(&job.title), flash, body))
}

fn kind_of(data: &[u8]) -> String {
    match preview::classify(data) {
        preview::Kind::Empty => "empty".into(),
        preview::Kind::Text => match preview::csv_shape(data) {
            Some(_) => "CSV".into(),
            None => "text".into(),
        },
        preview::Kind::Binary => preview::detect_type(data),
    }
}

/// A file's contents: text as numbered lines, a CSV as a table, a PNG, JPEG or GIF as an image (from the
/// image route), anything else as hex.
fn contents(id: &str, n: usize, data: &[u8]) -> Markup {
    match preview::classify(data) {
        preview::Kind::Empty => html! { p.note { "(empty)" } },
        preview::Kind::Text => match preview::csv_shape(data) {
            Some(shape) => render::csv(data, &shape),
            None => render::text(data),
        },
        preview::Kind::Binary => html! {
            @if render::image_type(data).is_some() {
                img.output src={ "/job/" (id) "/image/" (n) } alt={ "output file " (n) };
            }
            (render::hex(data))
        },
    }
}

/// The audit trail, newest first, with whether its chain verifies.
pub fn audit(app: &App, side: &SideDir) -> Result<Markup> {
    let problems = side.store.verify_audit()?;
    let entries = side.store.audit_entries(None)?;
    Ok(layout(
        app,
        "Audit trail",
        None,
        html! {
            h1 { "Audit trail" }
            @if problems.is_empty() {
                p { (entries.len()) " entries; the chain is intact and agrees with the decisions (`ferry audit verify`)." }
            } @else {
                ul.problems { @for p in &problems { li.error { "PROBLEM: " (field(p)) } } }
            }
            table.audit {
                thead { tr { th { "#" } th { "When" } th { "What" } th { "Who" } th { "Job" } th { "Detail" } } }
                tbody {
                    @for e in entries.iter().rev() {
                        tr {
                            td { (e.seq) }
                            td { (when(e.at)) }
                            td { (field(&e.kind)) }
                            td { (field(&e.actor)) }
                            td { @if let Some(j) = &e.job_id { a href={ "/job/" (j) } { (field(j.get(..8).unwrap_or(j))) } } }
                            td { (field(&e.detail)) }
                        }
                    }
                }
            }
        },
    ))
}
