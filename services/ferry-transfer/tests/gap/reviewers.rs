//! Decisions that prove who made them: reviewers' signed approvals and releases, counted on both sides under the
//! two-person rule; the audit log's hash chain and the peer's witness of it; returns, comments, revisions and
//! retries across the gap.

use ferry_core::decision::{DecisionKind, ReviewerKey};
use ferry_core::store::{output_row, StoredResult};
use ferry_core::wire::JobRequest;
use ferry_core::{JobState, Side};
use ferry_transfer::review::{self, ReleaseRequest};
use ferry_transfer::TransferError;

use crate::harness::Sides;

/// Registers a new reviewer `name` on `side` and returns their key.
fn reviewer(sides: &mut Sides, side: Side, name: &str) -> ReviewerKey {
    let key = ReviewerKey::generate();
    let dir = sides.side(side);
    let tx = dir.store.begin(side).unwrap();
    tx.add_reviewer(name, &key.public(), "owner:test").unwrap();
    tx.commit().unwrap();
    key
}

/// A job alice submits on the low side (optionally revising `revises`); returns its id.
fn submitted(sides: &mut Sides, code: &str, revises: Option<&str>) -> String {
    sides.add_asset("data.csv", b"id,text\n");
    let request = JobRequest {
        job_id: uuid::Uuid::new_v4(),
        title: "t".into(),
        description: String::new(),
        runtime: "python".into(),
        code: code.into(),
        assets: vec!["data.csv".into()],
        revises: revises.map(|r| r.parse().unwrap()),
        resources: None,
    };
    let tx = sides.low.store.begin(Side::Low).unwrap();
    tx.submit(&request, "alice").unwrap();
    tx.commit().unwrap();
    request.job_id.to_string()
}

fn approve(sides: &mut Sides, id: &str, key: Option<&ReviewerKey>) -> review::Decided {
    review::decide(
        &mut sides.low,
        id,
        DecisionKind::Approve,
        None,
        key,
        "owner:test",
    )
    .expect("approve")
}

/// Runs a crossed job on the high side as the worker would (result stored, checks run) and finishes it.
fn run_on_high(sides: &mut Sides, id: &str) {
    let result = StoredResult {
        exit_code: Some(0),
        summary: "exited with status 0".into(),
        stdout: b"3 sources\n".to_vec(),
        stderr: Vec::new(),
        stdout_truncated: false,
        stderr_truncated: false,
        unsandboxed: false,
    };
    let outputs = vec![output_row("sources.txt", b"forum\n".to_vec())];
    let tx = sides.high.store.begin(Side::High).unwrap();
    tx.transition(id, &[JobState::Exported], JobState::Running, "worker", None)
        .unwrap();
    tx.store_result(id, &result, &outputs).unwrap();
    tx.store_checks(id, &[]).unwrap();
    tx.transition(id, &[JobState::Running], JobState::Finished, "worker", None)
        .unwrap();
    tx.commit().unwrap();
}

fn release(sides: &mut Sides, id: &str, key: &ReviewerKey) -> review::Released {
    review::release(
        &mut sides.high,
        id,
        &ReleaseRequest {
            actor: "owner:test",
            key: Some(key),
            ..Default::default()
        },
    )
    .expect("release")
}

fn state(sides: &Sides, side: Side, id: &str) -> (JobState, Option<String>) {
    let store = match side {
        Side::Low => &sides.low.store,
        Side::High => &sides.high.store,
    };
    let job = store.job(id).unwrap().expect("the job is there");
    (job.state, job.reason)
}

#[test]
fn one_reviewer_even_twice_is_not_enough_where_two_are_required() {
    let mut sides = Sides::create();
    sides.low.config.review.approvals_required = 2;
    sides.high.config.review.approvals_required = 2;
    let rita = reviewer(&mut sides, Side::Low, "rita");
    let sam = reviewer(&mut sides, Side::Low, "sam");
    let id = submitted(&mut sides, "print(1)\n", None);
    let first = approve(&mut sides, &id, Some(&rita));
    assert_eq!(first.job.state, JobState::Submitted);
    assert_eq!(first.counted, Some((vec!["rita".to_string()], 2)));
    let again = approve(&mut sides, &id, Some(&rita));
    assert_eq!(
        again.job.state,
        JobState::Submitted,
        "one reviewer counts once"
    );
    assert_eq!(again.counted.unwrap().0, ["rita"]);
    let second = approve(&mut sides, &id, Some(&sam));
    assert_eq!(second.job.state, JobState::Approved);
    sides.carry(Side::Low, Side::High).expect("the job crosses");
    assert_eq!(
        state(&sides, Side::High, &id).0,
        JobState::Exported,
        "it runs"
    );
    let signers: Vec<String> = sides
        .high
        .store
        .decisions(&id)
        .unwrap()
        .into_iter()
        .map(|d| d.decision.reviewer)
        .collect();
    assert!(signers.contains(&"rita".to_string()) && signers.contains(&"sam".to_string()));

    // The high side counts for itself: one approval that crossed does not make two there.
    sides.low.config.review.approvals_required = 1;
    let lone = submitted(&mut sides, "print(2)\n", None);
    approve(&mut sides, &lone, Some(&rita));
    sides.carry(Side::Low, Side::High).expect("the job crosses");
    let (st, reason) = state(&sides, Side::High, &lone);
    assert_eq!(st, JobState::Failed);
    assert!(
        reason
            .as_deref()
            .unwrap()
            .contains("1 of the 2 signed approvals required verify"),
        "{reason:?}"
    );
}

#[test]
fn two_distinct_reviewers_releases_send_the_result_and_the_researcher_sees_both_names() {
    let mut sides = Sides::create();
    for side in [Side::Low, Side::High] {
        sides.side(side).config.review.releases_required = 2;
    }
    let rita = reviewer(&mut sides, Side::Low, "rita");
    let hana = reviewer(&mut sides, Side::High, "hana");
    let omar = reviewer(&mut sides, Side::High, "omar");
    let id = submitted(&mut sides, "print(1)\n", None);
    approve(&mut sides, &id, Some(&rita));
    sides.carry(Side::Low, Side::High).expect("the job crosses");
    run_on_high(&mut sides, &id);
    let first = release(&mut sides, &id, &hana);
    assert_eq!(first.job.state, JobState::Finished, "one release of two");
    let again = release(&mut sides, &id, &hana);
    assert_eq!(
        again.job.state,
        JobState::Finished,
        "the same reviewer again"
    );
    let second = release(&mut sides, &id, &omar);
    assert_eq!(second.job.state, JobState::Released);
    sides
        .carry(Side::High, Side::Low)
        .expect("the result crosses");
    let job = sides.low.store.job(&id).unwrap().unwrap();
    assert_eq!(job.state, JobState::Released);
    let update = sides.low.store.update_for(&job).unwrap();
    let result = update.result.expect("the result is delivered");
    assert_eq!(result.released_by, ["hana", "omar"]);
    assert_eq!(result.approved_by, ["rita"]);
}

#[test]
fn a_result_whose_releases_do_not_count_is_withheld_by_policy() {
    let mut sides = Sides::create();
    sides.low.config.review.releases_required = 2;
    let hana = reviewer(&mut sides, Side::High, "hana");
    let id = submitted(&mut sides, "print(1)\n", None);
    approve(&mut sides, &id, None);
    sides.carry(Side::Low, Side::High).expect("the job crosses");
    run_on_high(&mut sides, &id);
    // The high side needs one; the low side, two.
    release(&mut sides, &id, &hana);
    sides.carry(Side::High, Side::Low).expect("crosses");
    let (st, reason) = state(&sides, Side::Low, &id);
    assert_eq!(st, JobState::Withheld);
    assert!(reason
        .unwrap()
        .starts_with("withheld by policy: 1 of the 2"));
    assert!(
        sides.low.store.outputs(&id).unwrap().is_empty(),
        "nothing of it is kept"
    );
}

#[test]
fn a_decision_not_signed_by_a_registered_reviewer_never_counts_or_crosses() {
    let mut sides = Sides::create();
    let rita = reviewer(&mut sides, Side::Low, "rita");
    let id = submitted(&mut sides, "print(1)\n", None);
    // Without a key, where reviewers are registered.
    let err = review::decide(
        &mut sides.low,
        &id,
        DecisionKind::Approve,
        None,
        None,
        "owner:x",
    )
    .unwrap_err();
    assert!(matches!(err, TransferError::NeedsReviewerKey), "{err}");
    // With a key nobody registered.
    let stranger = ReviewerKey::generate();
    let err = review::decide(
        &mut sides.low,
        &id,
        DecisionKind::Approve,
        None,
        Some(&stranger),
        "owner:x",
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a current reviewer"), "{err}");
    // The researcher reviewing their own job.
    let alice = reviewer(&mut sides, Side::Low, "alice");
    let err = review::decide(
        &mut sides.low,
        &id,
        DecisionKind::Approve,
        None,
        Some(&alice),
        "owner:x",
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot review it"), "{err}");
    assert_eq!(state(&sides, Side::Low, &id).0, JobState::Submitted);
    // Two reviewers with one key.
    let tx = sides.low.store.begin(Side::Low).unwrap();
    let err = tx
        .add_reviewer("copy", &rita.public(), "owner:x")
        .unwrap_err();
    assert!(err.to_string().contains("rita's already"), "{err}");
    drop(tx);

    // A signed approval edited in the state store after signing: the high side refuses to run the job.
    approve(&mut sides, &id, Some(&rita));
    let db = rusqlite::Connection::open(sides.low.layout.state_db()).unwrap();
    let body: Vec<u8> = db
        .query_row("SELECT body FROM decisions WHERE job_id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    let mut forged = ferry_core::decision::SignedDecision::from_bytes(&body).unwrap();
    forged.decision.reviewer = "sam".into();
    db.execute(
        "UPDATE decisions SET body = ?1 WHERE job_id = ?2",
        rusqlite::params![forged.to_bytes(), id],
    )
    .unwrap();
    sides
        .carry(Side::Low, Side::High)
        .expect("the bundle crosses");
    let (st, reason) = state(&sides, Side::High, &id);
    assert_eq!(st, JobState::Failed);
    let reason = reason.unwrap();
    assert!(reason.starts_with("not run: 0 of the 1"), "{reason}");
    assert!(reason.contains("does not verify"), "{reason}");

    // A removed reviewer's approval does not count on the other side either.
    let next = submitted(&mut sides, "print(3)\n", None);
    approve(&mut sides, &next, Some(&rita));
    let tx = sides.low.store.begin(Side::Low).unwrap();
    tx.remove_reviewer("rita", "owner:x").unwrap();
    tx.commit().unwrap();
    sides
        .carry(Side::Low, Side::High)
        .expect("the bundle crosses");
    let (st, reason) = state(&sides, Side::High, &next);
    assert_eq!(st, JobState::Failed);
    assert!(reason.unwrap().contains("rita was removed"));
}

#[test]
fn audit_verify_passes_untouched_and_names_an_edited_row() {
    let mut sides = Sides::create();
    let rita = reviewer(&mut sides, Side::Low, "rita");
    let id = submitted(&mut sides, "print(1)\n", None);
    approve(&mut sides, &id, Some(&rita));
    sides.carry(Side::Low, Side::High).expect("crosses");
    assert_eq!(
        sides.low.store.verify_audit().unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        sides.high.store.verify_audit().unwrap(),
        Vec::<String>::new()
    );
    let entries = sides.low.store.audit_entries(None).unwrap();
    for kind in [
        "state:submitted",
        "decision:approve",
        "state:approved",
        "export",
        "reviewer-add",
    ] {
        assert!(entries.iter().any(|e| e.kind == kind), "no {kind} entry");
    }

    let high = sides.high.store.audit_entries(None).unwrap();
    for kind in [
        "import",
        "peer-reviewers",
        "state:exported",
        "decision:approve",
    ] {
        assert!(
            high.iter().any(|e| e.kind == kind),
            "no {kind} entry on the high side"
        );
    }

    let db = rusqlite::Connection::open(sides.low.layout.state_db()).unwrap();
    // An approval's audit-trail row made to name someone else.
    let row: i64 = db
        .query_row(
            "SELECT id FROM events WHERE job_id = ?1 AND state = 'approved'",
            [&id],
            |r| r.get(0),
        )
        .unwrap();
    db.execute("UPDATE events SET actor = 'mallory' WHERE id = ?1", [row])
        .unwrap();
    let problems = sides.low.store.verify_audit().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&format!("audit trail row {row}")) && p.contains("was edited")),
        "{problems:?}"
    );
    // An audit entry edited.
    db.execute("UPDATE audit SET detail = 'nothing' WHERE seq = 2", [])
        .unwrap();
    let problems = sides.low.store.verify_audit().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p == "audit entry 2 was changed: its contents do not match its hash"),
        "{problems:?}"
    );
    // A decision's row edited.
    db.execute("UPDATE decisions SET body = x'00'", []).unwrap();
    let problems = sides.low.store.verify_audit().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("decision ") && p.contains("was edited")),
        "{problems:?}"
    );
}

#[test]
fn the_peer_witness_catches_a_rewritten_peer_log() {
    let mut sides = Sides::create();
    let id = submitted(&mut sides, "print(1)\n", None);
    approve(&mut sides, &id, None);
    sides.carry(Side::Low, Side::High).expect("crosses");
    run_on_high(&mut sides, &id);
    review::release(
        &mut sides.high,
        &id,
        &ReleaseRequest {
            actor: "owner:test",
            ..Default::default()
        },
    )
    .unwrap();
    sides.carry(Side::High, Side::Low).expect("crosses");
    let heads = sides.low.store.peer_audit_heads().unwrap();
    assert!(!heads.is_empty(), "the bundle carried the head: {heads:?}");
    let log = sides.high.store.audit_entries(None).unwrap();
    assert_eq!(
        ferry_core::store::check_heads(&log, &heads),
        Vec::<String>::new()
    );

    // The high side rewrites its log (an entry changed, every hash after it recomputed): the chain is
    // consistent again, but the heads the low side holds give it away.
    let mut rewritten = log.clone();
    rewritten[1].detail = "released by nobody".into();
    let mut prev = rewritten[0].hash.clone();
    for e in rewritten.iter_mut().skip(1) {
        e.prev_hash = prev.clone();
        e.hash = e.expected_hash();
        prev = e.hash.clone();
    }
    assert!(ferry_core::store::verify_chain(&rewritten, true).is_empty());
    let problems = ferry_core::store::check_heads(&rewritten, &heads);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("the peer's log was rewritten")),
        "{problems:?}"
    );
    // Cut short.
    let cut = &log[..heads[0].0 as usize - 1];
    let problems = ferry_core::store::check_heads(cut, &heads);
    assert!(
        problems.iter().any(|p| p.contains("it was cut")),
        "{problems:?}"
    );
}

#[test]
fn returns_comments_revisions_and_retries_work_across_the_gap() {
    let mut sides = Sides::create();
    // Returned on the low side: the researcher is told why, and revises.
    let first = submitted(&mut sides, "print('all rows')\n", None);
    let returned = review::decide(
        &mut sides.low,
        &first,
        DecisionKind::Return,
        Some("print counts, not rows"),
        None,
        "owner:test",
    )
    .unwrap();
    assert_eq!(returned.job.state, JobState::Returned);
    let update = sides.low.store.update_for(&returned.job).unwrap();
    assert_eq!(update.state, "returned");
    assert_eq!(update.reason.as_deref(), Some("print counts, not rows"));
    let second = submitted(&mut sides, "print('counts')\n", Some(&first));
    assert_eq!(
        sides.low.store.revises(&second).unwrap().as_deref(),
        Some(first.as_str())
    );
    approve(&mut sides, &second, None);
    sides.carry(Side::Low, Side::High).expect("crosses");
    assert_eq!(
        sides.high.store.revises(&second).unwrap().as_deref(),
        Some(first.as_str()),
        "the link crosses with the job"
    );

    // A comment on the high side reaches the researcher with the next bundle.
    let tx = sides.high.store.begin(Side::High).unwrap();
    tx.comment(
        &second,
        &ferry_core::store::Comment {
            at: 5,
            author: "owner:hi".into(),
            side: "high".into(),
            text: "the sandbox is being fixed".into(),
        },
    )
    .unwrap();
    // The job fails for a reason not its own (the worker marks such failures retryable).
    tx.transition(
        &second,
        &[JobState::Exported],
        JobState::Failed,
        "worker-1",
        Some("runtime \"python\" is not configured on the high side"),
    )
    .unwrap();
    tx.mark_retryable(&second).unwrap();
    tx.commit().unwrap();
    sides.carry(Side::High, Side::Low).expect("crosses");
    let job = sides.low.store.job(&second).unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    let update = sides.low.store.update_for(&job).unwrap();
    assert_eq!(update.comments.len(), 1);
    assert_eq!(update.comments[0].text, "the sandbox is being fixed");

    // Retried: the job runs again without new approvals and the low side follows.
    let tx = sides.high.store.begin(Side::High).unwrap();
    assert!(tx.retryable(&second).unwrap());
    tx.reopen(&second, 1, "owner:hi", "queued again").unwrap();
    tx.commit().unwrap();
    run_on_high(&mut sides, &second);
    review::release(
        &mut sides.high,
        &second,
        &ReleaseRequest {
            actor: "owner:test",
            ..Default::default()
        },
    )
    .unwrap();
    sides.carry(Side::High, Side::Low).expect("crosses");
    assert_eq!(state(&sides, Side::Low, &second).0, JobState::Released);
    assert_eq!(
        sides.low.store.outputs(&second).unwrap()[0].data,
        b"forum\n"
    );
}

#[test]
fn a_signed_release_counts_even_when_the_bundle_that_listed_its_reviewer_is_late() {
    let mut sides = Sides::create();
    let hana = reviewer(&mut sides, Side::High, "hana");
    let first = submitted(&mut sides, "print(1)\n", None);
    let second = submitted(&mut sides, "print(2)\n", None);
    approve(&mut sides, &first, None);
    approve(&mut sides, &second, None);
    sides.carry(Side::Low, Side::High).expect("the jobs cross");
    run_on_high(&mut sides, &first);
    run_on_high(&mut sides, &second);
    release(&mut sides, &first, &hana);
    // The bundle carrying the first release (and the new reviewer list) is lost on the way...
    let lost = sides.export(Side::High).expect("a bundle");
    release(&mut sides, &second, &hana);
    let later = sides.export(Side::High).expect("another bundle");
    // ... and the next one still carries the list its signed release needs.
    crate::harness::accepted(sides.import(Side::Low, &later));
    assert_eq!(state(&sides, Side::Low, &second).0, JobState::Released);
    crate::harness::accepted(sides.import(Side::Low, &lost));
    assert_eq!(state(&sides, Side::Low, &first).0, JobState::Released);
}
