//! Decisions signed by registered reviewers, counted under the two-person rule, named in the delivered result, and
//! witnessed in each side's audit log.

use crate::harness::Pair;

/// Makes a reviewer key in the test directory with `ferry reviewer keygen` and registers it on `config` as
/// `name`; returns the key file.
fn reviewer(pair: &Pair, config: &std::path::Path, name: &str) -> String {
    let key = pair.dir.path().join(format!("{name}.key"));
    let public = pair.ok(&["reviewer", "keygen", "--out", key.to_str().unwrap()]);
    assert!(public.trim().starts_with("ed25519:"), "{public}");
    pair.ok(&[
        "reviewer",
        "add",
        "--config",
        config.to_str().unwrap(),
        name,
        public.trim(),
    ]);
    key.to_str().unwrap().to_string()
}

#[test]
fn two_reviewers_sign_the_release_and_the_researcher_sees_both_names() {
    let mut pair = Pair::with_broker();
    for config in [pair.low.clone(), pair.high.clone()] {
        pair.configure(
            &config,
            &[("releases_required = 1", "releases_required = 2")],
        );
    }
    let rita = reviewer(&pair, &pair.low, "rita");
    let hana = reviewer(&pair, &pair.high, "hana");
    let omar = reviewer(&pair, &pair.high, "omar");
    pair.register_dataset();
    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    let job = pair.submit_code(&alice, "print('3 sources')\n");
    pair.wait_for("intake", || {
        (pair.state_on(&pair.low, &job).as_deref() == Some("submitted")).then_some(())
    });
    // Unsigned, where reviewers are registered: refused, with the way to sign.
    let (_, err) = pair.fails(1, &["review", "approve", "--config", pair.low_s(), &job]);
    assert!(
        err.contains("must be signed with a reviewer's key"),
        "{err}"
    );
    assert!(err.contains("--key"), "{err}");
    pair.ok(&[
        "review",
        "approve",
        "--config",
        pair.low_s(),
        "--key",
        &rita,
        &job,
    ]);
    pair.carry(&pair.low, &pair.high).expect("the job crosses");
    pair.wait_for("the worker", || {
        (pair.state_on(&pair.high, &job).as_deref() == Some("finished")).then_some(())
    });
    let release = |key: &str| {
        pair.ok(&[
            "review",
            "release",
            "--config",
            pair.high_s(),
            "--key",
            key,
            &job,
        ])
    };
    assert!(release(&hana).contains("1 of 2 releases required"));
    assert!(
        release(&hana).contains("1 of 2 releases required"),
        "the same reviewer twice counts once"
    );
    assert_eq!(pair.state_on(&pair.high, &job).as_deref(), Some("finished"));
    assert!(release(&omar).contains("is now released"));
    pair.carry(&pair.high, &pair.low)
        .expect("the result crosses");
    let out = pair.run_env(
        &["results", &job, "--wait", "--timeout", "600", "--json"],
        &[("FERRY_AMQP_URL", alice.as_str())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let updates: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let result = &updates[0]["result"];
    assert_eq!(
        result["released_by"],
        serde_json::json!(["hana", "omar"]),
        "{updates:#}"
    );
    assert_eq!(
        result["approved_by"],
        serde_json::json!(["rita"]),
        "{updates:#}"
    );

    // Each side's log verifies, and the low side witnesses the high side's.
    let verified = pair.ok(&["audit", "verify", "--config", pair.low_s()]);
    assert!(verified.contains("chain intact"), "{verified}");
    let log = pair.ok(&["audit", "export", "--config", pair.high_s(), "--json"]);
    let file = pair.dir.path().join("high-audit.json");
    std::fs::write(&file, &log).unwrap();
    let witnessed = pair.ok(&[
        "audit",
        "verify",
        "--config",
        pair.low_s(),
        "--peer",
        file.to_str().unwrap(),
    ]);
    assert!(witnessed.contains("chain intact"), "{witnessed}");
    // The high side's log rewritten before it is shown: caught.
    let mut entries: Vec<serde_json::Value> = serde_json::from_str(&log).unwrap();
    entries[0]["detail"] = serde_json::json!("rewritten");
    std::fs::write(&file, serde_json::to_string(&entries).unwrap()).unwrap();
    let (out, _) = pair.fails(
        1,
        &[
            "audit",
            "verify",
            "--config",
            pair.low_s(),
            "--peer",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        out.contains("PROBLEM: peer: audit entry 1 was changed"),
        "{out}"
    );
}
