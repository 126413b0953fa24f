//! `ferry import`, `export`, `status`, `bundle verify|inspect` on refused, lost and resent bundles.

use std::path::PathBuf;

use crate::harness::{assert_reason, quarantined, Forge, Pair};

fn catalog_bundle(pair: &Pair, name: &str) -> PathBuf {
    let root = pair.dir.path();
    std::fs::write(root.join("p.csv"), "id,text,source\n").unwrap();
    std::fs::write(root.join("m.csv"), "id,text,source\n").unwrap();
    pair.ok(&[
        "asset",
        "add",
        "--config",
        pair.high_s(),
        name,
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
fn a_refused_import_exits_1_names_the_kind_and_changes_nothing() {
    let pair = Pair::create();
    let good = catalog_bundle(&pair, "data.csv");
    let mut data = std::fs::read(&good).unwrap();
    data[40] ^= 1;
    let flipped = pair.dir.path().join("flipped.bundle");
    std::fs::write(&flipped, data).unwrap();
    let (_, err) = pair.fails(
        1,
        &[
            "import",
            "--config",
            pair.low_s(),
            flipped.to_str().unwrap(),
        ],
    );
    assert!(err.contains("(bad_signature)"), "{err}");
    assert!(err.contains("moved to"), "{err}");
    assert_reason(
        &quarantined(&pair.side_dir(&pair.low), &flipped),
        "bad_signature",
    );
    assert_eq!(assets_on_low(&pair).trim(), "no assets registered");
    let status = pair.status_json(&pair.low);
    assert_eq!(status["quarantined"], 1, "{status}");
    // The untouched bundle still imports, once.
    let out = pair.ok(&["import", "--config", pair.low_s(), good.to_str().unwrap()]);
    assert!(out.contains("catalog of 1 asset"), "{out}");
    assert!(assets_on_low(&pair).contains("data.csv"));
    let archived = pair
        .side_dir(&pair.low)
        .join("archive")
        .join(good.file_name().unwrap());
    assert!(archived.exists());
    // The very same file again (a second copy, an import stopped after its commit) is archived, not applied, and
    // is no error.
    let again = pair.dir.path().join("again.bundle");
    std::fs::copy(&archived, &again).unwrap();
    let out = pair.ok(&["import", "--config", pair.low_s(), again.to_str().unwrap()]);
    assert!(out.contains("imported already"), "{out}");
    assert!(pair
        .side_dir(&pair.low)
        .join("archive/again.bundle")
        .exists());
    let status = pair.status_json(&pair.low);
    assert_eq!(status["quarantined"], 1, "{status}");
    assert_eq!(status["channels"]["high-to-low"]["last_seq"], 1, "{status}");
    // An empty inbox is not an error.
    let out = pair.ok(&["import", "--config", pair.low_s()]);
    assert!(out.contains("no bundles in"), "{out}");
}

#[test]
fn accept_gap_is_for_named_files_the_owner_reviewed() {
    let pair = Pair::create();
    let forge = Forge::new(&pair, &pair.side_dir(&pair.high).join("keys"));
    let far = forge.ack_bundle("far.bundle", 40);
    let (_, err) = pair.fails(
        1,
        &["import", "--config", pair.low_s(), far.to_str().unwrap()],
    );
    assert!(
        err.contains("(sequence_gap)") && err.contains("--accept-gap"),
        "{err}"
    );
    assert_reason(
        &quarantined(&pair.side_dir(&pair.low), &far),
        "sequence_gap",
    );
    let held = pair.side_dir(&pair.low).join("quarantine/far.bundle");
    let out = pair.ok(&[
        "import",
        "--config",
        pair.low_s(),
        "--accept-gap",
        held.to_str().unwrap(),
    ]);
    assert!(out.contains("sequence 40"), "{out}");
    let (_, err) = pair.fails(1, &["import", "--config", pair.low_s(), "--accept-gap"]);
    assert!(
        err.contains("--accept-gap needs the bundle files named"),
        "{err}"
    );
    assert_eq!(
        pair.status_json(&pair.low)["channels"]["high-to-low"]["last_seq"],
        40
    );
}

#[test]
fn status_names_a_lost_bundle_and_export_resend_rebuilds_it() {
    let pair = Pair::create();
    let first = catalog_bundle(&pair, "data.csv");
    let second = catalog_bundle(&pair, "more.csv");
    // The first bundle is lost on the way; the second arrives.
    pair.ok(&["import", "--config", pair.low_s(), second.to_str().unwrap()]);
    let low = pair.status_json(&pair.low);
    assert_eq!(low["side"], "low");
    assert_eq!(low["channels"]["high-to-low"]["direction"], "in");
    assert_eq!(low["channels"]["high-to-low"]["last_seq"], 2);
    assert_eq!(
        low["channels"]["high-to-low"]["missing"],
        serde_json::json!([1])
    );
    assert_eq!(
        low["pending_export"],
        serde_json::json!(["an acknowledgement of bundles received"])
    );
    // The acknowledgement rides the other channel and tells the high side what to resend.
    pair.carry(&pair.low, &pair.high)
        .expect("an acknowledgement bundle");
    let high = pair.status_json(&pair.high);
    assert_eq!(high["channels"]["high-to-low"]["direction"], "out");
    assert_eq!(
        high["channels"]["high-to-low"]["reported_missing"],
        serde_json::json!([1])
    );
    assert_eq!(
        high["channels"]["high-to-low"]["unacknowledged"],
        serde_json::json!([1])
    );
    assert_eq!(
        high["channels"]["high-to-low"]["acknowledged"],
        serde_json::json!([[2, 2]])
    );
    assert!(
        pair.export(&pair.high).is_none(),
        "acknowledgements are not acknowledged back"
    );
    // The owner rebuilds it; it arrives late, and its older catalog does not undo the newer one.
    let out = pair.ok(&["export", "--config", pair.high_s(), "--resend", "1"]);
    let resent = PathBuf::from(out.trim());
    assert!(resent.exists(), "{out}");
    let imported = pair.ok(&["import", "--config", pair.low_s(), resent.to_str().unwrap()]);
    assert!(imported.contains("older catalog"), "{imported}");
    assert!(assets_on_low(&pair).contains("more.csv"));
    assert_eq!(
        pair.status_json(&pair.low)["channels"]["high-to-low"]["missing"],
        serde_json::json!([])
    );
    let (_, err) = pair.fails(1, &["export", "--config", pair.high_s(), "--resend", "9"]);
    assert!(err.contains("never exported sequence 9"), "{err}");
    // The original, found again later, changes nothing: its sequence number is taken.
    let (_, err) = pair.fails(
        1,
        &["import", "--config", pair.low_s(), first.to_str().unwrap()],
    );
    assert!(err.contains("(rollback)"), "{err}");
    assert_reason(&quarantined(&pair.side_dir(&pair.low), &first), "rollback");
    pair.carry(&pair.low, &pair.high)
        .expect("an acknowledgement bundle");
    let high = pair.status_json(&pair.high);
    assert_eq!(
        high["channels"]["high-to-low"]["unacknowledged"],
        serde_json::json!([])
    );
    assert_eq!(
        high["channels"]["high-to-low"]["reported_missing"],
        serde_json::json!([])
    );
}

#[test]
fn bundle_verify_and_inspect_say_what_they_found() {
    let pair = Pair::create();
    let other = Pair::create();
    // Signed by another high side, whose key the low side never pinned.
    let foreign = catalog_bundle(&other, "data.csv");
    let (_, err) = pair.fails(
        1,
        &[
            "bundle",
            "verify",
            "--config",
            pair.low_s(),
            foreign.to_str().unwrap(),
        ],
    );
    assert!(err.contains("error: verifying"), "{err}");
    let (_, err) = pair.fails(
        1,
        &[
            "import",
            "--config",
            pair.low_s(),
            foreign.to_str().unwrap(),
        ],
    );
    assert!(err.contains("(untrusted_signer)"), "{err}");
    assert_reason(
        &quarantined(&pair.side_dir(&pair.low), &foreign),
        "untrusted_signer",
    );
    // The high side's own bundle carried back to itself: not the key it pinned, not its channel.
    let own = catalog_bundle(&pair, "data.csv");
    let back = pair.dir.path().join("carried-back.bundle");
    std::fs::copy(&own, &back).unwrap();
    pair.fails(
        1,
        &["import", "--config", pair.high_s(), back.to_str().unwrap()],
    );
    assert_reason(
        &quarantined(&pair.side_dir(&pair.high), &back),
        "untrusted_signer",
    );
    // Verification without import says what it found.
    let out = pair.ok(&[
        "bundle",
        "verify",
        "--config",
        pair.low_s(),
        own.to_str().unwrap(),
    ]);
    assert!(out.contains("signature"), "{out}");
    assert!(out.contains("sequence 1"), "{out}");
    assert!(!out.contains("already imported"), "{out}");
    let out = pair.ok(&["bundle", "inspect", own.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["channel"], "high-to-low");
    assert_eq!(v["sequence"], 1);
    assert_eq!(v["verified"], false);
    let out = pair.ok(&["bundle", "inspect", own.to_str().unwrap()]);
    assert!(out.contains("NOT verified"), "{out}");
    pair.ok(&["import", "--config", pair.low_s(), own.to_str().unwrap()]);
    let archived = pair
        .side_dir(&pair.low)
        .join("archive")
        .join(own.file_name().unwrap());
    let out = pair.ok(&[
        "bundle",
        "verify",
        "--config",
        pair.low_s(),
        archived.to_str().unwrap(),
    ]);
    assert!(out.contains("already imported"), "{out}");
}

#[test]
fn export_says_what_it_packed_and_how_big_it_is() {
    let pair = Pair::create();
    let bundle = catalog_bundle(&pair, "data.csv");
    pair.ok(&["import", "--config", pair.low_s(), bundle.to_str().unwrap()]);
    // The low side owes the high side an acknowledgement of that bundle.
    let out = pair.run(&["export", "--config", pair.low_s()]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = PathBuf::from(stdout.trim());
    assert!(path.exists(), "stdout is the bundle's path alone: {stdout}");
    let size = std::fs::metadata(&path).unwrap().len();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!(
            "ferry: bundle 1 for the high side: an acknowledgement; {:.1} KiB",
            size as f64 / 1024.0
        ),
        "{err}"
    );
}

/// The peak resident memory, in KiB, of `ferry ARGS` run alone (a fresh Python parent measures its only child).
fn peak_kib(args: &[&str]) -> u64 {
    let script = r#"
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True)
sys.stderr.buffer.write(r.stdout + r.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
sys.exit(r.returncode)
"#;
    let bin = crate::ferry_bin();
    let mut all = vec![bin.to_str().unwrap()];
    all.extend_from_slice(args);
    crate::harness::python(script, &all).trim().parse().unwrap()
}

#[test]
fn importing_large_results_holds_them_on_disk_not_in_memory() {
    let pair = Pair::create();
    pair.register_dataset();
    let ids = vec![pair.job_on_high()];
    // Four 24 MiB result files (96 MiB, and a third more as base64 in a job update).
    let mut outputs = Vec::new();
    for i in 0..4u8 {
        let data: Vec<u8> = (0..24u32 << 20)
            .map(|j| (j.wrapping_mul(2654435761) >> 13) as u8 ^ i)
            .collect();
        outputs.push((format!("part{i}.bin"), data));
    }
    let named: Vec<(&str, Vec<u8>)> = outputs
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    pair.released_on_high(&ids, &named);
    let bundle = pair.export(&pair.high).expect("the results");
    let kib = peak_kib(&["import", "--config", pair.low_s(), bundle.to_str().unwrap()]);
    println!(
        "peak memory of importing 96 MiB of results: {:.1} MiB",
        kib as f64 / 1024.0
    );
    assert!(kib < 64 * 1024, "peak {kib} KiB");
    // Stored whole, byte for byte.
    let store = ferry_core::Store::open(&pair.side_dir(&pair.low).join("state.db")).unwrap();
    let stored = store.outputs(&ids[0]).unwrap();
    assert_eq!(stored.len(), 4);
    for ((name, data), row) in outputs.iter().zip(&stored) {
        assert_eq!(&row.name, name);
        assert!(row.data == *data, "{name} differs");
    }
}

/// `ferry export --metrics-file F` leaves F in the Prometheus text format with the bundle's real size, replaced
/// whole on the next export, and nothing beside it.
#[test]
fn export_writes_its_metrics_file_for_the_textfile_collector() {
    let pair = Pair::create();
    pair.approved_jobs(1);
    let dir = pair.dir.path().join("textfile");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("ferry-low.prom");
    let sample = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}{{side=\"low\"}} ")))
            .unwrap_or_else(|| panic!("{name} not in {text}"))
            .parse()
            .unwrap()
    };
    let mut sizes = Vec::new();
    for _ in 0..2 {
        let out = pair.ok(&[
            "export",
            "--config",
            pair.low_s(),
            "--metrics-file",
            file.to_str().unwrap(),
        ]);
        let bundle = std::path::PathBuf::from(out.trim());
        let size = std::fs::metadata(&bundle).unwrap().len();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains("# TYPE ferry_bundle_export_bytes gauge"),
            "{text}"
        );
        assert_eq!(sample(&text, "ferry_bundle_export_bytes"), size as f64);
        assert!(sample(&text, "ferry_bundle_export_seconds") > 0.0, "{text}");
        let at = sample(&text, "ferry_bundle_export_timestamp_seconds");
        assert!((at - ferry_core::now() as f64).abs() < 600.0, "{text}");
        sizes.push(size);
        // Three more jobs: the next bundle is larger, and the file must say so.
        pair.approved_jobs(3);
    }
    assert_ne!(sizes[0], sizes[1], "the file was not replaced: {sizes:?}");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ferry-low.prom"]);
}
