//! Import refusals through the CLI: each refused bundle lands in quarantine with its reason and changes nothing.

use std::path::{Path, PathBuf};

use crate::harness::Pair;

fn quarantined(side_dir: &Path, bundle: &Path) -> String {
    let name = bundle.file_name().unwrap().to_str().unwrap();
    let q = side_dir.join("quarantine");
    assert!(q.join(name).exists(), "{name} not in quarantine");
    std::fs::read_to_string(q.join(format!("{name}.reason"))).unwrap()
}

fn catalog_bundle(pair: &Pair) -> PathBuf {
    let root = pair.dir.path();
    std::fs::write(root.join("p.csv"), "id,text,source\n").unwrap();
    std::fs::write(root.join("m.csv"), "id,text,source\n").unwrap();
    pair.ok(&[
        "asset",
        "add",
        "--config",
        pair.high_s(),
        "data.csv",
        "--private",
        root.join("p.csv").to_str().unwrap(),
        "--mock",
        root.join("m.csv").to_str().unwrap(),
    ]);
    pair.export(&pair.high).unwrap()
}

fn assets_on_low(pair: &Pair) -> String {
    pair.ok(&["asset", "list", "--config", pair.low_s()])
}

#[test]
fn a_flipped_byte_or_a_truncated_file_is_quarantined_and_changes_nothing() {
    let pair = Pair::create();
    let good = catalog_bundle(&pair);
    let data = std::fs::read(&good).unwrap();
    for (name, bytes) in [
        ("flipped-header.bundle", {
            let mut d = data.clone();
            d[40] ^= 1;
            d
        }),
        ("flipped-payload.bundle", {
            let mut d = data.clone();
            let n = d.len();
            d[n - 10] ^= 1;
            d
        }),
        ("truncated.bundle", data[..data.len() / 2].to_vec()),
    ] {
        let path = pair.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = pair.run(&["import", "--config", pair.low_s(), path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let reason = quarantined(&pair.side_dir(&pair.low), &path);
        assert!(reason.starts_with("refused: "), "{reason}");
        assert_eq!(
            assets_on_low(&pair).trim(),
            "no assets registered",
            "{name} changed the state"
        );
    }
    // The untouched bundle still imports, once.
    let out = pair.ok(&["import", "--config", pair.low_s(), good.to_str().unwrap()]);
    assert!(out.contains("catalog of 1 asset"), "{out}");
    let archived = pair
        .side_dir(&pair.low)
        .join("archive")
        .join(good.file_name().unwrap());
    assert!(archived.exists());
    let replay = pair.dir.path().join("replay.bundle");
    std::fs::copy(&archived, &replay).unwrap();
    let out = pair.run(&["import", "--config", pair.low_s(), replay.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(quarantined(&pair.side_dir(&pair.low), &replay).contains("refused: replay"));
}

#[test]
fn a_bundle_from_an_unpinned_key_or_for_another_side_is_refused() {
    let pair = Pair::create();
    let other = Pair::create();
    // Signed by another high side, whose key the low side never pinned.
    let foreign = catalog_bundle(&other);
    let out = pair.run(&[
        "import",
        "--config",
        pair.low_s(),
        foreign.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let reason = quarantined(&pair.side_dir(&pair.low), &foreign);
    assert!(
        reason.contains("untrusted") || reason.contains("signer"),
        "{reason}"
    );
    // The high side's own bundle carried back to itself: not its key, not its channel.
    let own = catalog_bundle(&pair);
    let back = pair.dir.path().join("carried-back.bundle");
    std::fs::copy(&own, &back).unwrap();
    let out = pair.run(&["import", "--config", pair.high_s(), back.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(quarantined(&pair.side_dir(&pair.high), &back).starts_with("refused: "));
    // Verification without import says what it found.
    let out = pair.ok(&[
        "bundle",
        "verify",
        "--config",
        pair.low_s(),
        own.to_str().unwrap(),
    ]);
    assert!(out.contains("signature"), "{out}");
    let out = pair.ok(&["bundle", "inspect", own.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["channel"], "high-to-low");
    assert_eq!(v["sequence"], 1);
}

#[test]
fn a_lost_bundle_is_named_resent_and_never_applied_twice() {
    let pair = Pair::create();
    let first = catalog_bundle(&pair);
    let root = pair.dir.path();
    pair.ok(&[
        "asset",
        "add",
        "--config",
        pair.high_s(),
        "more.csv",
        "--private",
        root.join("p.csv").to_str().unwrap(),
        "--mock",
        root.join("m.csv").to_str().unwrap(),
    ]);
    let second = pair.export(&pair.high).unwrap();
    // The first bundle is lost on the way; the second arrives.
    pair.ok(&["import", "--config", pair.low_s(), second.to_str().unwrap()]);
    let status = |config: &std::path::Path| -> serde_json::Value {
        serde_json::from_str(&pair.ok(&["status", "--config", config.to_str().unwrap(), "--json"]))
            .unwrap()
    };
    assert_eq!(
        status(&pair.low)["channels"]["high-to-low"]["missing"],
        serde_json::json!([1])
    );
    // The acknowledgement rides the other channel and tells the high side what to resend.
    pair.carry(&pair.low, &pair.high)
        .expect("an acknowledgement bundle");
    let high = status(&pair.high);
    assert_eq!(
        high["channels"]["high-to-low"]["reported_missing"],
        serde_json::json!([1])
    );
    assert_eq!(
        high["channels"]["high-to-low"]["unacknowledged"],
        serde_json::json!([1])
    );
    assert!(
        pair.export(&pair.high).is_none(),
        "acknowledgements are not acknowledged back"
    );
    // The owner rebuilds it; it arrives late, and its older catalog does not undo the newer one.
    let out = pair.ok(&["export", "--config", pair.high_s(), "--resend", "1"]);
    let resent = std::path::PathBuf::from(out.trim());
    let imported = pair.ok(&["import", "--config", pair.low_s(), resent.to_str().unwrap()]);
    assert!(imported.contains("older catalog"), "{imported}");
    assert!(assets_on_low(&pair).contains("more.csv"));
    assert_eq!(
        status(&pair.low)["channels"]["high-to-low"]["missing"],
        serde_json::json!([])
    );
    // The original, found again later, changes nothing: its sequence number is taken.
    let out = pair.run(&["import", "--config", pair.low_s(), first.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(quarantined(&pair.side_dir(&pair.low), &first).contains("refused: rollback"));
    pair.carry(&pair.low, &pair.high)
        .expect("an acknowledgement bundle");
    let high = status(&pair.high);
    assert_eq!(
        high["channels"]["high-to-low"]["unacknowledged"],
        serde_json::json!([])
    );
    assert_eq!(
        high["channels"]["high-to-low"]["reported_missing"],
        serde_json::json!([])
    );
}
