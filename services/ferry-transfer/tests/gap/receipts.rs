//! Run receipts: a released result crosses with a receipt signed by the high side, naming the run's code,
//! runtime, asset versions and limits and the files the release carries; a receipt that does not verify refuses
//! the bundle it came in.

use ferry_core::receipt::{AssetVersion, Receipt, RunFacts, RunLimits};
use ferry_core::records::Record;
use ferry_core::Side;
use ferry_transfer::review::{self, ReleaseRequest};

use crate::harness::{accepted, assert_refused, Forge, Sides};
use crate::review::{add_private_asset, finished_job};

fn facts(sides: &Sides) -> RunFacts {
    RunFacts {
        attempt: 0,
        code_sha256: ferry_core::sha256_hex(b"print(1)"),
        runtime: "python".into(),
        runtime_sha256: "ab".repeat(32),
        assets: vec![AssetVersion {
            name: "data.csv".into(),
            version: sides.high.store.asset_version("data.csv").unwrap().unwrap(),
        }],
        limits: RunLimits {
            memory_mb: 1024,
            wall_secs: 60,
            cpu_secs: 60,
            cpus: None,
            max_output_bytes: 1 << 26,
        },
        worker: "worker-0@1".into(),
        started_at: "2026-12-01T00:00:00+00:00".into(),
        ended_at: "2026-12-01T00:00:01+00:00".into(),
        exit_code: Some(0),
        summary: "exited with code 0".into(),
        sandboxed: true,
    }
}

#[test]
fn a_released_result_crosses_with_a_receipt_the_low_side_verified() {
    let mut sides = Sides::create();
    add_private_asset(&mut sides, &[]);
    sides.carry(Side::High, Side::Low).unwrap();
    let id = finished_job(
        &mut sides,
        b"counts\n",
        &[("table.csv", b"a,1\n"), ("raw.csv", b"secret\n")],
    );
    let run = facts(&sides);
    // The asset's version is its private content's hash, recorded when it was registered.
    let private = std::fs::read(sides.dir.path().join("data.private.csv")).unwrap();
    assert_eq!(run.assets[0].version, ferry_core::sha256_hex(&private));
    let tx = sides.high.store.begin(Side::High).unwrap();
    tx.set_run_facts(&id, &run).unwrap();
    tx.commit().unwrap();
    review::release(
        &mut sides.high,
        &id,
        &ReleaseRequest {
            actor: "owner:test",
            withhold: &["outputs/raw.csv".to_string()],
            reason: Some("row-level data"),
            ..Default::default()
        },
    )
    .unwrap();
    sides.carry(Side::High, Side::Low).unwrap();

    let signed = sides.low.store.receipt(&id).unwrap().expect("a receipt");
    let high_key = sides.high.keys().unwrap().public().signing;
    let receipt = signed.verify_for(&id, Some(&high_key)).unwrap();
    assert_eq!(receipt.run, run);
    let names: Vec<&str> = receipt.released.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, vec!["outputs/table.csv", "stderr", "stdout"]);
    assert_eq!(receipt.released[0].sha256, ferry_core::sha256_hex(b"a,1\n"));
    // The researcher's update carries it.
    let job = sides.low.store.job(&id).unwrap().unwrap();
    let update = sides.low.store.update_for(&job).unwrap();
    assert_eq!(update.result.unwrap().receipt, Some(signed));
}

#[test]
fn a_receipt_that_does_not_verify_refuses_its_bundle() {
    let mut sides = Sides::create();
    let forge = Forge::high_to_low(&sides);
    let stranger = ferry_bundle::SideKeys::generate();
    let receipt = Receipt {
        job_id: "6f1c2a52-8f0e-4b3a-9a59-2b1f0c9f4a11".into(),
        run: facts_without_asset(),
        released: vec![],
        signed_at: "2026-12-01T00:00:02+00:00".into(),
    };
    // Signed by a key that is not the high side's, in an authentic bundle.
    let forged = receipt.sign(&stranger.public().signing, |m| stranger.sign_statement(m));
    let bundle = forge.bundle(
        "forged.bundle",
        forge.params(1),
        vec![Record::Receipt {
            job_id: receipt.job_id.clone(),
            receipt: forged,
        }],
        &[],
    );
    assert_refused(sides.import(Side::Low, &bundle), "bad_records");

    // Signed by the high side, but for no job the low side knows.
    let keys = sides.high.keys().unwrap();
    let unknown = receipt.sign(&keys.public().signing, |m| keys.sign_statement(m));
    let bundle = forge.bundle(
        "unknown.bundle",
        forge.params(1),
        vec![Record::Receipt {
            job_id: receipt.job_id.clone(),
            receipt: unknown.clone(),
        }],
        &[],
    );
    assert_refused(sides.import(Side::Low, &bundle), "bad_records");

    // Named for another job than the one it is about.
    let bundle = forge.bundle(
        "swapped.bundle",
        forge.params(1),
        vec![Record::Receipt {
            job_id: "0d0e5c2a-0000-4000-8000-000000000000".into(),
            receipt: unknown,
        }],
        &[],
    );
    assert_refused(sides.import(Side::Low, &bundle), "bad_records");
    accepted(sides.import(
        Side::Low,
        &forge.bundle("ok.bundle", forge.params(1), crate::harness::ack(), &[]),
    ));
}

fn facts_without_asset() -> RunFacts {
    RunFacts {
        attempt: 0,
        code_sha256: String::new(),
        runtime: "python".into(),
        runtime_sha256: String::new(),
        assets: vec![],
        limits: RunLimits {
            memory_mb: 1,
            wall_secs: 1,
            cpu_secs: 1,
            cpus: None,
            max_output_bytes: 1,
        },
        worker: "w".into(),
        started_at: String::new(),
        ended_at: String::new(),
        exit_code: None,
        summary: String::new(),
        sandboxed: true,
    }
}
