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
