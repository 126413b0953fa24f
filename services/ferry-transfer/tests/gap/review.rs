//! Output review: what the owner reviewed is what crosses. A release records the SHA-256 of every file it carries
//! and the reason for every file it withholds; export carries exactly those bytes, fails a job whose bytes or
//! names it cannot carry, and lets the others cross; findings of a `block_on` kind hold a release until the owner
//! withholds the file or overrides with a recorded reason.

use ferry_core::store::{output_row, StoredResult};
use ferry_core::wire::JobRequest;
use ferry_core::{JobState, Side};
use ferry_review::checks::CheckKind;
use ferry_transfer::review::{self, ReleaseRequest};
use ferry_transfer::{setup, TransferError};

use crate::harness::Sides;

const OWNER: &str = "owner:test";

/// The private rows the checks must recognise: long enough fields (32 characters or more) and lines.
const PRIVATE: &str = "id,text,source\n\
    1,protocol for culturing bacillus subtilis at scale in a home lab,forum-archive-2023\n\
    2,enhancing respiratory syncytial virus transmissibility in ferrets,preprint-server-x\n\
    3,a recipe for sourdough bread with a long cold fermentation,cooking-blog-77\n";

/// Registers `data.csv` on the high side with [`PRIVATE`] as its private file and `canaries`.
pub(crate) fn add_private_asset(sides: &mut Sides, canaries: &[&str]) {
    let private = sides.dir.path().join("data.private.csv");
    let mock = sides.dir.path().join("data.mock.csv");
    std::fs::write(&private, PRIVATE).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&mock, "id,text,source\n1,mock text,mock\n").unwrap();
    let canaries: Vec<String> = canaries.iter().map(|c| c.to_string()).collect();
    setup::asset_add(
        &mut sides.high,
        "data.csv",
        &private,
        &mock,
        "test data",
        &canaries,
        65534,
    )
    .expect("asset add");
}

/// A job submitted and approved on the low side, carried to the high side, run there (its result stored as
/// given, and its disclosure checks run as the worker runs them) and finished. Returns its id.
pub(crate) fn finished_job(sides: &mut Sides, stdout: &[u8], outputs: &[(&str, &[u8])]) -> String {
    let request = JobRequest {
        job_id: uuid::Uuid::new_v4(),
        title: "t".into(),
        description: String::new(),
        runtime: "python".into(),
        code: "print(1)".into(),
        assets: vec!["data.csv".into()],
        revises: None,
        resources: None,
    };
    let id = request.job_id.to_string();
    let tx = sides.low.store.begin(Side::Low).unwrap();
    tx.submit(&request, "alice").unwrap();
    tx.transition(&id, &[JobState::Submitted], JobState::Approved, OWNER, None)
        .unwrap();
    tx.commit().unwrap();
    sides.carry(Side::Low, Side::High).expect("the job crosses");
    let result = StoredResult {
        exit_code: Some(0),
        summary: "exited with code 0".into(),
        stdout: stdout.to_vec(),
        stderr: b"a warning\n".to_vec(),
        stdout_truncated: false,
        stderr_truncated: false,
        unsandboxed: false,
    };
    let outputs: Vec<_> = outputs
        .iter()
        .map(|(n, d)| output_row(n, d.to_vec()))
        .collect();
    let checks = review::check_job(
        &sides.high.store,
        &sides.high.layout,
        &sides.high.config.review,
        &["data.csv".to_string()],
        &result,
        &outputs,
    );
    let tx = sides.high.store.begin(Side::High).unwrap();
    tx.transition(
        &id,
        &[JobState::Exported],
        JobState::Running,
        "worker",
        None,
    )
    .unwrap();
    tx.store_result(&id, &result, &outputs).unwrap();
    tx.store_checks(&id, &checks).unwrap();
    tx.transition(
        &id,
        &[JobState::Running],
        JobState::Finished,
        "worker",
        None,
    )
    .unwrap();
    tx.commit().unwrap();
    id
}

fn release(sides: &mut Sides, id: &str, request: ReleaseRequest<'_>) -> review::Released {
    review::release(
        &mut sides.high,
        id,
        &ReleaseRequest {
            actor: OWNER,
            ..request
        },
    )
    .expect("release")
}

fn low_job(sides: &Sides, id: &str) -> ferry_core::store::JobRow {
    sides
        .low
        .store
        .job(id)
        .unwrap()
        .expect("the low side knows the job")
}

#[test]
fn a_release_records_the_sha256_of_every_file_and_export_carries_exactly_those() {
    let mut sides = Sides::create();
    add_private_asset(&mut sides, &[]);
    let id = finished_job(&mut sides, b"rows: 3\n", &[("summary.txt", b"3 rows\n")]);
    let released = release(&mut sides, &id, ReleaseRequest::default());
    assert_eq!(
        released.carried,
        ["stdout", "stderr", "outputs/summary.txt"]
    );
    let record = sides.high.store.released_files(&id).unwrap();
    let sha = |name: &str| {
        record
            .iter()
            .find(|f| f.name == name)
            .and_then(|f| f.sha256.clone())
            .unwrap()
    };
    assert_eq!(sha("stdout"), ferry_core::sha256_hex(b"rows: 3\n"));
    assert_eq!(
        sha("outputs/summary.txt"),
        ferry_core::sha256_hex(b"3 rows\n")
    );
    sides
        .carry(Side::High, Side::Low)
        .expect("the release crosses");
    let job = low_job(&sides, &id);
    assert_eq!(job.state, JobState::Released);
    assert_eq!(job.result.unwrap().stdout, b"rows: 3\n");
    let outputs = sides.low.store.outputs(&id).unwrap();
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0].data, b"3 rows\n");
}

#[test]
fn export_fails_a_job_whose_bytes_differ_from_those_released_and_the_others_cross() {
    let mut sides = Sides::create();
    add_private_asset(&mut sides, &[]);
    let changed = finished_job(&mut sides, b"one\n", &[("a.txt", b"reviewed\n")]);
    let kept = finished_job(&mut sides, b"two\n", &[("b.txt", b"fine\n")]);
    release(&mut sides, &changed, ReleaseRequest::default());
    release(&mut sides, &kept, ReleaseRequest::default());
    // After the release, the stored bytes change (a damaged disk, a hand edit, a bug): not what was reviewed.
    let tx = sides.high.store.begin(Side::High).unwrap();
    let result = tx.job(&changed).unwrap().unwrap().result.unwrap();
    tx.store_result(
        &changed,
        &result,
        &[output_row("a.txt", b"the private rows\n".to_vec())],
    )
    .unwrap();
    tx.commit().unwrap();
    sides
        .carry(Side::High, Side::Low)
        .expect("the bundle crosses");
    let high = sides.high.store.job(&changed).unwrap().unwrap();
    assert_eq!(high.state, JobState::Failed);
    let reason = high.reason.unwrap();
    assert!(
        reason.contains("outputs/a.txt") && reason.contains("differ from those released"),
        "{reason}"
    );
    let low = low_job(&sides, &changed);
    assert_eq!(low.state, JobState::Failed, "the researcher sees it failed");
    assert_eq!(low.reason.as_deref(), Some(reason.as_str()));
    assert!(
        sides.low.store.outputs(&changed).unwrap().is_empty(),
        "nothing of it crossed"
    );
    assert_eq!(
        low_job(&sides, &kept).state,
        JobState::Released,
        "the other job crossed"
    );
    assert_eq!(sides.low.store.outputs(&kept).unwrap()[0].data, b"fine\n");
    // Reported once: the next export has nothing more to say about either.
    assert!(ferry_transfer::export::pending_summary(&sides.high)
        .unwrap()
        .is_empty());
}

#[test]
fn an_output_name_the_other_side_would_refuse_fails_its_job_at_export_and_the_others_cross() {
    let mut sides = Sides::create();
    add_private_asset(&mut sides, &[]);
    // Stored past the sandbox's collection (an older build, a hand edit): a name with a control character.
    let bad = finished_job(&mut sides, b"", &[("sum\u{1b}[2Kmary.txt", b"x\n")]);
    // And a name over the 200-byte cap, which the other side's import would refuse with the whole bundle.
    let long_name = format!("{}.txt", "a".repeat(197));
    let long = finished_job(&mut sides, b"", &[(long_name.as_str(), b"z\n")]);
    let good = finished_job(&mut sides, b"", &[("summary.txt", b"y\n")]);
    for id in [&bad, &long, &good] {
        release(&mut sides, id, ReleaseRequest::default());
    }
    sides
        .carry(Side::High, Side::Low)
        .expect("the bundle is not refused");
    let low = low_job(&sides, &bad);
    assert_eq!(low.state, JobState::Failed);
    let reason = low.reason.unwrap();
    assert!(
        reason.contains("\\x1b"),
        "the name is shown escaped: {reason}"
    );
    assert!(!reason.contains('\u{1b}'), "{reason:?}");
    let low = low_job(&sides, &long);
    assert_eq!(low.state, JobState::Failed);
    let reason = low.reason.unwrap();
    assert!(reason.contains("the limit is 200 bytes"), "{reason}");
    assert_eq!(low_job(&sides, &good).state, JobState::Released);
}

#[test]
fn withheld_files_never_cross_and_the_researcher_is_told_why() {
    let mut sides = Sides::create();
    add_private_asset(&mut sides, &[]);
    let id = finished_job(
        &mut sides,
        b"counts only\n",
        &[
            ("counts.csv", b"source,n\nforum,12\n"),
            ("raw.csv", b"every row\n"),
        ],
    );
    let withhold = ["raw.csv".to_string(), "stderr".to_string()];
    let released = release(
        &mut sides,
        &id,
        ReleaseRequest {
            withhold: &withhold,
            reason: Some("row-level data"),
            ..Default::default()
        },
    );
    assert_eq!(released.withheld, ["outputs/raw.csv", "stderr"]);
    assert_eq!(released.carried, ["stdout", "outputs/counts.csv"]);
    sides.carry(Side::High, Side::Low).expect("crosses");
    let job = low_job(&sides, &id);
    let result = job.result.clone().unwrap();
    assert!(result.stderr.is_empty(), "a withheld stderr crosses empty");
    assert_eq!(result.stdout, b"counts only\n");
    let names: Vec<String> = sides
        .low
        .store
        .outputs(&id)
        .unwrap()
        .into_iter()
        .map(|o| o.name)
        .collect();
    assert_eq!(names, ["counts.csv"]);
    let update = sides.low.store.update_for(&job).unwrap();
    let withheld: Vec<(String, String)> = update
        .result
        .unwrap()
        .withheld
        .into_iter()
        .map(|w| (w.name, w.reason))
        .collect();
    assert_eq!(
        withheld,
        [
            ("outputs/raw.csv".to_string(), "row-level data".to_string()),
            ("stderr".to_string(), "row-level data".to_string())
        ]
    );
    assert!(job.reason.unwrap().contains("row-level data"));
}

#[test]
fn withholding_needs_a_reason_and_names_a_file_the_job_has() {
    let mut sides = Sides::create();
    add_private_asset(&mut sides, &[]);
    let id = finished_job(&mut sides, b"", &[("a.txt", b"a\n")]);
    let withhold = ["a.txt".to_string()];
    let err = review::release(
        &mut sides.high,
        &id,
        &ReleaseRequest {
            withhold: &withhold,
            actor: OWNER,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("needs a reason"), "{err}");
    let missing = ["b.txt".to_string()];
    let err = review::release(
        &mut sides.high,
        &id,
        &ReleaseRequest {
            withhold: &missing,
            reason: Some("r"),
            actor: OWNER,
            ..Default::default()
        },
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("no file b.txt") && text.contains("outputs/a.txt"),
        "{text}"
    );
    assert_eq!(
        sides.high.store.job(&id).unwrap().unwrap().state,
        JobState::Finished,
        "a refused release changes nothing"
    );
}

#[test]
fn private_echo_flags_a_copied_row_and_not_an_aggregate() {
    let mut sides = Sides::create();
    add_private_asset(&mut sides, &[]);
    let copied = finished_job(
        &mut sides,
        b"",
        &[(
            "summary.txt",
            b"2,enhancing respiratory syncytial virus transmissibility in ferrets,preprint-server-x\n",
        )],
    );
    let aggregate = finished_job(
        &mut sides,
        b"source,count\nforum-archive-2023,1\npreprint-server-x,1\ncooking-blog-77,1\n",
        &[(
            "by_source.csv",
            b"source,rows\nforum-archive-2023,40\npreprint-server-x,52\n",
        )],
    );
    let kinds = |id: &str| -> Vec<(CheckKind, String)> {
        sides
            .high
            .store
            .checks(id)
            .unwrap()
            .expect("checks ran")
            .into_iter()
            .map(|c| (c.kind, c.output))
            .collect()
    };
    assert!(
        kinds(&copied).contains(&(CheckKind::PrivateEcho, "outputs/summary.txt".into())),
        "{:?}",
        kinds(&copied)
    );
    assert!(
        !kinds(&aggregate)
            .iter()
            .any(|(k, _)| *k == CheckKind::PrivateEcho),
        "{:?}",
        kinds(&aggregate)
    );
}

#[test]
fn a_blocking_finding_holds_the_release_until_withheld_or_overridden_with_a_recorded_reason() {
    let mut sides = Sides::create();
    add_private_asset(&mut sides, &["FERRY-CANARY-7f3a9c"]);
    let id = finished_job(
        &mut sides,
        b"done\n",
        &[
            ("leak.txt", b"found FERRY-CANARY-7f3a9c in row 4\n"),
            ("fine.txt", b"ok\n"),
        ],
    );
    let found = sides.high.store.checks(&id).unwrap().unwrap();
    assert!(
        found
            .iter()
            .any(|c| c.kind == CheckKind::Canary && c.output == "outputs/leak.txt"),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .all(|c| !c.detail.contains("FERRY-CANARY-7f3a9c")),
        "findings never print the canary itself: {found:?}"
    );
    let err = review::release(
        &mut sides.high,
        &id,
        &ReleaseRequest {
            actor: OWNER,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, TransferError::Blocked { .. }), "{err}");
    assert!(err.to_string().contains("canary outputs/leak.txt"), "{err}");
    assert_eq!(
        sides.high.store.job(&id).unwrap().unwrap().state,
        JobState::Finished
    );
    // Withholding the file the finding concerns releases the rest without an override.
    let withhold = ["leak.txt".to_string()];
    let released = release(
        &mut sides,
        &id,
        ReleaseRequest {
            withhold: &withhold,
            reason: Some("it repeats the asset's canary"),
            ..Default::default()
        },
    );
    assert!(released.overridden.is_empty());
    assert_eq!(released.withheld, ["outputs/leak.txt"]);

    // An override releases everything and is recorded, with its reason, in the audit trail.
    let other = finished_job(&mut sides, b"", &[("leak.txt", b"FERRY-CANARY-7f3a9c\n")]);
    let released = release(
        &mut sides,
        &other,
        ReleaseRequest {
            override_reason: Some("the canary is the asset's public name"),
            ..Default::default()
        },
    );
    assert_eq!(released.overridden.len(), 1);
    let events = sides.high.store.events(&other).unwrap();
    let audit = events
        .iter()
        .find(|e| {
            e.reason
                .as_deref()
                .is_some_and(|r| r.contains("blocking finding"))
        })
        .expect("the override is in the audit trail");
    assert_eq!(audit.actor, OWNER);
    assert!(audit
        .reason
        .as_deref()
        .unwrap()
        .contains("the canary is the asset's public name"));
    assert_eq!(audit.state, JobState::Finished);
}

#[test]
fn with_block_on_empty_findings_only_advise() {
    let mut sides = Sides::create();
    sides.high.config.review.block_on.clear();
    add_private_asset(&mut sides, &["FERRY-CANARY-7f3a9c"]);
    let id = finished_job(&mut sides, b"FERRY-CANARY-7f3a9c\n", &[]);
    assert!(!sides.high.store.checks(&id).unwrap().unwrap().is_empty());
    let released = release(&mut sides, &id, ReleaseRequest::default());
    assert!(released.overridden.is_empty());
    assert_eq!(released.job.state, JobState::Released);
}

#[test]
fn the_echo_index_is_built_once_per_asset_version() {
    let mut sides = Sides::create();
    add_private_asset(&mut sides, &[]);
    let path = sides.high.layout.echo_index("data.csv");
    let built = std::fs::metadata(&path)
        .expect("asset add builds the index")
        .modified()
        .unwrap();
    let private = sides.dir.path().join("data.private.csv");
    let policy = sides.high.config.review.clone();
    let index = review::echo_index(&sides.high.layout, "data.csv", &private, &policy).unwrap();
    assert_eq!(index.asset_bytes(), PRIVATE.len() as u64);
    assert_eq!(
        std::fs::metadata(&path).unwrap().modified().unwrap(),
        built,
        "a fresh index is loaded, not rebuilt"
    );
    // The private file changes in place: the next check rebuilds the index for the new version.
    let grown = format!(
        "{PRIVATE}4,a new private row that is long enough to be indexed whole,new-source-9\n"
    );
    std::fs::write(&private, &grown).unwrap();
    let index = review::echo_index(&sides.high.layout, "data.csv", &private, &policy).unwrap();
    assert_eq!(index.asset_bytes(), grown.len() as u64);
    let scan = index.scan(
        b"4,a new private row that is long enough to be indexed whole,new-source-9\n",
        3,
    );
    assert!(!scan.hits.is_empty(), "the new row is recognised");
}

#[test]
fn asset_add_and_a_rebuild_leave_only_the_index_in_assets_indexes() {
    let mut sides = Sides::create();
    add_private_asset(&mut sides, &[]);
    let dir = sides.high.layout.indexes_dir();
    let listing = || {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        listing(),
        ["data.csv.echo"],
        "the build's runs and temporary file are gone"
    );
    // A check rebuilding the index for a changed private file leaves nothing either.
    let private = sides.dir.path().join("data.private.csv");
    std::fs::write(
        &private,
        format!("{PRIVATE}4,one more private row that is long enough,src-4\n"),
    )
    .unwrap();
    let policy = sides.high.config.review.clone();
    let summary =
        review::build_echo_index(&sides.high.layout, "data.csv", &private, &policy).unwrap();
    assert_eq!(
        summary.asset_bytes,
        std::fs::metadata(&private).unwrap().len()
    );
    assert_eq!(listing(), ["data.csv.echo"]);
}

#[test]
fn a_canary_shorter_than_eight_bytes_is_refused_at_asset_add() {
    let mut sides = Sides::create();
    let private = sides.dir.path().join("p.csv");
    std::fs::write(&private, PRIVATE).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = setup::asset_add(
        &mut sides.high,
        "data.csv",
        &private,
        &private,
        "",
        &["short".to_string()],
        65534,
    )
    .unwrap_err();
    assert!(err.to_string().contains("at least 8 bytes"), "{err}");
    assert!(sides.high.store.asset("data.csv").unwrap().is_none());
}
