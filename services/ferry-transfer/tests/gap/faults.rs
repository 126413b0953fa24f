//! Crashes, local faults and couriers: nothing lost, nothing applied twice, the channel open afterwards.

use std::path::Path;

use ferry_core::Side;
use ferry_transfer::import::{self, ImportOptions, ImportOutcome};
use ferry_transfer::{export, media, BundleName};

use crate::harness::{accepted, ack, assert_refused, Forge, Sides};

fn only_file(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "sent")
        .collect();
    names.sort();
    names
}

#[test]
fn a_bundle_imported_again_after_its_commit_is_archived_not_refused() {
    let mut sides = Sides::create();
    sides.add_asset("data.csv", b"id,text,source\n");
    let bundle = sides.export(Side::High).unwrap();
    std::fs::copy(&bundle, sides.dir.path().join("again.bundle")).unwrap();
    accepted(sides.import(Side::Low, &bundle));
    // The import was killed after its commit, before the file left the inbox: the same file is imported again.
    match sides.import(Side::Low, &sides.dir.path().join("again.bundle")) {
        ImportOutcome::AlreadyImported(summary) => {
            assert!(summary.contains("same file"), "{summary}")
        }
        other => panic!("wanted already imported, got {other:?}"),
    }
    assert!(only_file(&sides.low.layout.quarantine()).is_empty());
    assert_eq!(only_file(&sides.low.layout.archive()).len(), 2);
    assert_eq!(sides.last_imported(Side::Low), 1);
}

#[test]
fn another_file_under_an_imported_bundle_id_is_a_replay() {
    let mut sides = Sides::create();
    let forge = Forge::high_to_low(&sides);
    let first = forge.params(1);
    let id = first.bundle_id;
    accepted(sides.import(Side::Low, &forge.bundle("one.bundle", first, ack(), &[])));
    let mut second = forge.params(2);
    second.bundle_id = id;
    let replay = forge.bundle("two.bundle", second, ack(), &[]);
    assert_refused(sides.import(Side::Low, &replay), "replay");
    assert_eq!(sides.last_imported(Side::Low), 1);
}

#[test]
fn a_named_file_outside_the_inbox_is_never_moved() {
    let mut sides = Sides::create();
    sides.add_asset("data.csv", b"id,text,source\n");
    let bundle = sides.export(Side::High).unwrap();
    let mut results = import::import_files(
        &mut sides.low,
        std::slice::from_ref(&bundle),
        ImportOptions::default(),
    )
    .unwrap();
    accepted(results.pop().unwrap().1);
    assert!(bundle.exists(), "the named file stays where it was");
    assert_eq!(
        only_file(&sides.low.layout.archive()).len(),
        1,
        "a copy is archived"
    );
    // A refused one is copied into quarantine with its reason, and stays too.
    let junk = sides.dir.path().join("junk.bundle");
    std::fs::write(&junk, b"not a bundle at all").unwrap();
    let mut results = import::import_files(
        &mut sides.low,
        std::slice::from_ref(&junk),
        ImportOptions::default(),
    )
    .unwrap();
    assert!(matches!(
        results.pop().unwrap().1,
        ImportOutcome::Refused { .. }
    ));
    assert!(junk.exists());
    assert_eq!(
        only_file(&sides.low.layout.quarantine()),
        ["junk.bundle", "junk.bundle.reason"]
    );
}

#[test]
fn a_local_fault_during_import_leaves_the_bundle_in_the_inbox() {
    let mut sides = Sides::create();
    sides.add_asset("data.csv", b"id,text,source\n");
    let bundle = sides.export(Side::High).unwrap();
    let inbox = sides.low.layout.inbox().join(bundle.file_name().unwrap());
    std::fs::rename(&bundle, &inbox).unwrap();
    // Staging cannot be created: work/ is not a directory (as good as a full or broken disk).
    let work = sides.low.layout.work_dir();
    std::fs::remove_dir_all(&work).unwrap();
    std::fs::write(&work, b"").unwrap();
    let err = import::import_files(
        &mut sides.low,
        std::slice::from_ref(&inbox),
        ImportOptions::default(),
    )
    .expect_err("a local fault is an error, not a refusal");
    assert!(err.to_string().contains("work"), "{err}");
    assert!(inbox.exists(), "the bundle stays in the inbox");
    assert!(
        only_file(&sides.low.layout.quarantine()).is_empty(),
        "nothing quarantined"
    );
    // Once the disk is fixed, the same bundle imports.
    std::fs::remove_file(&work).unwrap();
    std::fs::create_dir(&work).unwrap();
    let mut results = import::import_files(
        &mut sides.low,
        std::slice::from_ref(&inbox),
        ImportOptions::default(),
    )
    .unwrap();
    accepted(results.pop().unwrap().1);
}

#[test]
fn an_export_stopped_between_commit_and_rename_is_finished_by_the_next() {
    let mut sides = Sides::create();
    sides.add_asset("data.csv", b"id,text,source\n");
    let exported = export::export(&mut sides.high).unwrap().unwrap();
    // The crash came after the commit, before the rename: only the temporary file exists.
    let name = exported
        .path
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let tmp = exported.path.with_file_name(format!(".{name}.tmp"));
    std::fs::rename(&exported.path, &tmp).unwrap();
    // And an export that never committed left a temporary file of the next sequence number.
    let parsed = BundleName::parse(&name).unwrap();
    let uncommitted = BundleName {
        seq: parsed.seq + 1,
        ..parsed.clone()
    };
    let stray = sides
        .high
        .layout
        .outbox()
        .join(format!(".{uncommitted}.tmp"));
    std::fs::write(&stray, b"half a bundle").unwrap();
    sides.add_asset("more.csv", b"id,text,source\n");
    let second = export::export(&mut sides.high).unwrap().unwrap();
    assert_eq!(second.seq, 2);
    assert!(
        exported.path.exists(),
        "the recorded bundle is put in place"
    );
    assert!(!tmp.exists() && !stray.exists());
    // Both arrive in order; nothing jams the channel.
    let first = sides.transit(&exported.path);
    let second = sides.transit(&second.path);
    accepted(sides.import(Side::Low, &first));
    accepted(sides.import(Side::Low, &second));
    assert_eq!(sides.assets_on_low(), ["data.csv", "more.csv"]);
}

#[test]
fn a_bundle_still_being_copied_is_left_to_grow() {
    let mut sides = Sides::create();
    sides.add_asset("data.csv", b"id,text,source\n");
    let bundle = sides.export(Side::High).unwrap();
    let data = std::fs::read(&bundle).unwrap();
    let partial = sides.low.layout.inbox().join(bundle.file_name().unwrap());
    std::fs::write(&partial, &data[..data.len() - 100]).unwrap();
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&partial)
        .unwrap()
        .set_modified(past)
        .unwrap();
    let meta = std::fs::metadata(&partial).unwrap();
    assert!(
        !import::is_settled(&partial, &meta, import::STALLED_COPY),
        "short: left to grow"
    );
    assert!(import::inbox_files(&sides.low, true).unwrap().is_empty());
    assert!(
        import::is_settled(&partial, &meta, std::time::Duration::from_secs(2)),
        "stalled past the timeout: taken, to be refused as truncated"
    );
    std::fs::write(&partial, &data).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&partial)
        .unwrap()
        .set_modified(past)
        .unwrap();
    assert_eq!(import::inbox_files(&sides.low, true).unwrap(), [partial]);
}

#[test]
fn a_medium_never_overwrites_the_inbox_and_junk_is_not_copied() {
    let mut sides = Sides::create();
    sides.add_asset("data.csv", b"id,text,source\n");
    let bundle = sides.export(Side::High).unwrap();
    let medium = sides.dir.path().join("medium");
    std::fs::create_dir(&medium).unwrap();
    let name = bundle.file_name().unwrap();
    std::fs::copy(&bundle, medium.join(name)).unwrap();
    std::fs::write(medium.join("junk.bundle"), vec![0u8; 4096]).unwrap();
    // A different file of the same name waits in the inbox already.
    let waiting = sides.low.layout.inbox().join(name);
    std::fs::write(&waiting, b"someone else's bundle").unwrap();
    let read = media::read_medium(&sides.low, &medium, &mut media::NoProgress).unwrap();
    assert_eq!(std::fs::read(&waiting).unwrap(), b"someone else's bundle");
    assert_eq!(read.copied.len(), 1);
    assert_ne!(read.copied[0], waiting);
    assert_eq!(
        std::fs::read(&read.copied[0]).unwrap(),
        std::fs::read(&bundle).unwrap()
    );
    assert_eq!(read.problems.len(), 1, "{:?}", read.problems);
    assert!(
        read.problems[0].contains("junk.bundle"),
        "{:?}",
        read.problems
    );
    assert!(!sides.low.layout.inbox().join("junk.bundle").exists());
    // Reading the same medium again copies nothing twice.
    let again = media::read_medium(&sides.low, &medium, &mut media::NoProgress).unwrap();
    assert!(again.copied.is_empty(), "{:?}", again.copied);
    assert_eq!(again.already, [read.copied[0].clone()]);
}

#[test]
fn a_full_quarantine_records_a_refusal_without_keeping_its_bytes() {
    let mut sides = Sides::create();
    sides.add_asset("data.csv", b"id,text,source\n");
    let good = sides.export(Side::High).expect("a catalog bundle");
    let mut data = std::fs::read(&good).unwrap();
    data[40] ^= 1;
    let junk = sides.dir.path().join("junk.bundle");
    std::fs::write(&junk, &data).unwrap();
    // Quarantine may hold nothing more: a courier dropping junk must not fill the disk.
    sides.low.config.bundle.max_quarantine_mb = 0;
    let outcome = sides.import(Side::Low, &junk);
    let ferry_transfer::import::ImportOutcome::Refused {
        refusal,
        quarantined,
    } = outcome
    else {
        panic!("not refused");
    };
    assert_eq!(refusal.kind(), "bad_signature");
    let quarantine = sides.low.layout.quarantine();
    assert_eq!(quarantined, quarantine.join("junk.bundle.reason"));
    let text = std::fs::read_to_string(&quarantined).unwrap();
    assert!(text.starts_with("refused: bad_signature\n"), "{text}");
    assert!(text.contains("kept: no"), "{text}");
    assert!(
        text.contains(&format!("sha256 {}", ferry_core::sha256_hex(&data))),
        "{text}"
    );
    assert!(
        !quarantine.join("junk.bundle").exists(),
        "its bytes are not kept"
    );
    assert!(
        ferry_transfer::import::inbox_files(&sides.low, false)
            .unwrap()
            .is_empty(),
        "nor left in inbox/ to be refused again"
    );
    // The good bundle still imports.
    crate::harness::accepted(sides.import(Side::Low, &good));
}
