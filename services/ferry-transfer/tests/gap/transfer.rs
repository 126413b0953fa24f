//! Refused bundles land in quarantine with their exact reason and change nothing; a lost bundle is named, resent
//! and never applied twice.

use std::path::PathBuf;

use ferry_core::Side;
use ferry_transfer::export;

use crate::harness::{accepted, assert_refused, Sides};

/// The high side registers `data.csv` and exports the catalog; returns the bundle as carried.
fn catalog_bundle(sides: &mut Sides) -> PathBuf {
    sides.add_asset("data.csv", b"id,text,source\n");
    sides.export(Side::High).expect("a catalog bundle")
}

#[test]
fn a_flipped_byte_or_a_truncated_file_is_quarantined_and_changes_nothing() {
    let mut sides = Sides::create();
    let good = catalog_bundle(&mut sides);
    let data = std::fs::read(&good).unwrap();
    for (name, bytes, kind) in [
        (
            "flipped-header.bundle",
            {
                let mut d = data.clone();
                d[40] ^= 1;
                d
            },
            "bad_signature",
        ),
        (
            "flipped-payload.bundle",
            {
                let mut d = data.clone();
                let n = d.len();
                d[n - 10] ^= 1;
                d
            },
            "payload_hash_mismatch",
        ),
        (
            "truncated.bundle",
            data[..data.len() / 2].to_vec(),
            "truncated",
        ),
    ] {
        let path = sides.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let quarantined = assert_refused(sides.import(Side::Low, &path), kind);
        assert_eq!(quarantined, sides.low.layout.quarantine().join(name));
        assert!(sides.assets_on_low().is_empty(), "{name} changed the state");
        assert_eq!(sides.last_imported(Side::Low), 0);
    }
    // The untouched bundle still imports, once.
    let summary = accepted(sides.import(Side::Low, &good));
    assert!(summary.contains("catalog of 1 asset"), "{summary}");
    assert_eq!(sides.assets_on_low(), ["data.csv"]);
    let archived = sides.low.layout.archive().join(good.file_name().unwrap());
    assert!(archived.exists());
    // The very same file again (an import stopped after its commit, a second copy) is archived, not applied.
    let again = sides.dir.path().join("again.bundle");
    std::fs::copy(&archived, &again).unwrap();
    assert!(matches!(
        sides.import(Side::Low, &again),
        ferry_transfer::import::ImportOutcome::AlreadyImported(_)
    ));
    assert_eq!(sides.assets_on_low(), ["data.csv"]);
    assert_eq!(sides.last_imported(Side::Low), 1);
}

#[test]
fn a_bundle_from_an_unpinned_key_or_for_another_side_is_refused() {
    let mut sides = Sides::create();
    let mut other = Sides::create();
    // Signed by another high side, whose key the low side never pinned.
    let foreign = catalog_bundle(&mut other);
    let foreign = sides.transit(&foreign);
    let quarantined = assert_refused(sides.import(Side::Low, &foreign), "untrusted_signer");
    let reason =
        std::fs::read_to_string(ferry_transfer::quarantine::reason_file(&quarantined)).unwrap();
    assert!(
        reason.contains("untrusted") || reason.contains("signer"),
        "{reason}"
    );
    assert!(sides.assets_on_low().is_empty());
    // The high side's own bundle carried back to itself: not the key it pinned, not its channel.
    let own = catalog_bundle(&mut sides);
    let back = sides.dir.path().join("carried-back.bundle");
    std::fs::copy(&own, &back).unwrap();
    assert_refused(sides.import(Side::High, &back), "untrusted_signer");
    // (`ferry bundle verify` and `ferry bundle inspect` on such files: the ferry crate's it::offline::transfer.)
}

#[test]
fn a_lost_bundle_is_named_resent_and_never_applied_twice() {
    let mut sides = Sides::create();
    let first = catalog_bundle(&mut sides);
    sides.add_asset("more.csv", b"id,text,source\n");
    let second = sides.export(Side::High).unwrap();
    // The first bundle is lost on the way; the second arrives.
    let summary = accepted(sides.import(Side::Low, &second));
    assert!(summary.contains("catalog of 2 asset"), "{summary}");
    assert_eq!(sides.missing(Side::Low), [1]);
    // The acknowledgement rides the other channel and tells the high side what to resend.
    let summary = sides
        .carry(Side::Low, Side::High)
        .expect("an acknowledgement bundle");
    assert!(summary.contains("acknowledgement of 1 bundle"), "{summary}");
    assert_eq!(sides.reported_missing(Side::High), [1]);
    assert_eq!(sides.unacknowledged(Side::High), [1]);
    assert!(
        sides.export(Side::High).is_none(),
        "acknowledgements are not acknowledged back"
    );
    // The owner rebuilds it; it arrives late, and its older catalog does not undo the newer one.
    let resent = export::resend(&mut sides.high, 1).unwrap();
    assert_eq!(resent.seq, 1);
    let resent = sides.transit(&resent.path);
    let summary = accepted(sides.import(Side::Low, &resent));
    assert!(summary.contains("older catalog"), "{summary}");
    assert_eq!(sides.assets_on_low(), ["data.csv", "more.csv"]);
    assert!(sides.missing(Side::Low).is_empty());
    // The original, found again later, changes nothing: its sequence number is taken.
    assert_refused(sides.import(Side::Low, &first), "rollback");
    assert_eq!(sides.assets_on_low(), ["data.csv", "more.csv"]);
    sides
        .carry(Side::Low, Side::High)
        .expect("an acknowledgement bundle");
    assert!(sides.unacknowledged(Side::High).is_empty());
    assert!(sides.reported_missing(Side::High).is_empty());
}

#[test]
fn a_mock_the_low_side_acknowledged_is_not_sent_again_by_an_unrelated_change() {
    let mut sides = Sides::create();
    // A mock of 1 MiB of varied bytes, so that a bundle carrying it is visibly larger than one that does not.
    let big: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    sides.add_asset("model.bin", &big);
    let first = sides.export(Side::High).unwrap();
    assert!(std::fs::metadata(&first).unwrap().len() > 1 << 20);
    accepted(sides.import(Side::Low, &first));

    // Before the low side acknowledges it, a catalog change carries the mock again (the first bundle may be lost).
    sides.add_asset("notes.csv", b"id,text\n");
    let unacknowledged = sides.export(Side::High).unwrap();
    assert!(std::fs::metadata(&unacknowledged).unwrap().len() > 1 << 20);
    accepted(sides.import(Side::Low, &unacknowledged));

    // Once acknowledged, an unrelated change sends only what changed.
    sides
        .carry(Side::Low, Side::High)
        .expect("the acknowledgement");
    sides.add_asset("other.csv", b"id,text\n1,x\n");
    let later = sides.export(Side::High).unwrap();
    let size = std::fs::metadata(&later).unwrap().len();
    assert!(
        size < 64 * 1024,
        "the bundle is {size} bytes: the big mock crossed again"
    );
    let summary = accepted(sides.import(Side::Low, &later));
    assert!(summary.contains("catalog of 3 asset(s)"), "{summary}");
    let kept = sides.low.store.asset("model.bin").unwrap().unwrap();
    assert_eq!(std::fs::read(&kept.mock_path).unwrap(), big);
    assert_eq!(
        sides.assets_on_low(),
        vec!["model.bin", "notes.csv", "other.csv"]
    );
}

#[test]
fn a_removed_asset_leaves_the_low_sides_catalog_with_the_next_bundle() {
    let mut sides = Sides::create();
    sides.add_asset("a.csv", b"id\n1\n");
    sides.add_asset("b.csv", b"id\n2\n");
    sides.carry(Side::High, Side::Low).unwrap();
    assert_eq!(sides.assets_on_low(), vec!["a.csv", "b.csv"]);
    let tx = sides.high.store.begin(Side::High).unwrap();
    tx.remove_asset("a.csv").unwrap();
    let err = tx.remove_asset("a.csv").unwrap_err();
    assert!(err.to_string().contains("no asset named a.csv"), "{err}");
    tx.commit().unwrap();
    assert_eq!(sides.high.store.asset_version("a.csv").unwrap(), None);
    sides.carry(Side::High, Side::Low).unwrap();
    assert_eq!(sides.assets_on_low(), vec!["b.csv"]);
}

/// `asset add` reads a private file once: the version is the SHA-256 the echo index build computed on the way,
/// which must be the file's own (what receipts name and `sha256sum` prints).
#[test]
fn a_file_assets_version_is_the_sha256_of_its_content() {
    use sha2::Digest;
    let mut sides = Sides::create();
    sides.add_asset("a.csv", b"id\n1\n");
    // The harness's private file.
    let private = std::fs::read(sides.dir.path().join("a.csv.private")).unwrap();
    assert_eq!(
        sides.high.store.asset_version("a.csv").unwrap(),
        Some(hex::encode(sha2::Sha256::digest(private)))
    );
}
