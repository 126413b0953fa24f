//! What the owner sees and extracts on the high side is what a release carries.

use crate::harness::Pair;

const JOB: &str = r#"
import os, sys
os.makedirs("outputs/sub", exist_ok=True)
open("outputs/sub/blob.bin", "wb").write(bytes(range(256)) * 3)
open("outputs/summary.txt", "w").write("rows: 3\n")
sys.stdout.buffer.write(b"first row\n\xff\xfe not utf-8\n\x1b[1A\x1b[2Kgone?\n")
sys.stderr.buffer.write(b"warn\r\n")
"#;

/// Runs [`JOB`] through intake, approval and the high side's worker; returns the job id.
fn finished_job(pair: &mut Pair) -> String {
    pair.register_dataset();
    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    let job = pair.submit_code(&alice, JOB);
    pair.wait_for("intake", || {
        (pair.state_on(&pair.low, &job).as_deref() == Some("submitted")).then_some(())
    });
    pair.ok(&["review", "approve", "--config", pair.low_s(), &job]);
    pair.carry(&pair.low, &pair.high)
        .expect("a bundle with the job");
    pair.wait_for("the worker", || {
        (pair.state_on(&pair.high, &job).as_deref() == Some("finished")).then_some(())
    });
    job
}

#[test]
fn review_extract_writes_the_exact_bytes_a_release_carries() {
    let mut pair = Pair::with_broker();
    let job = finished_job(&mut pair);
    let out = pair.dir.path().join("extracted");
    pair.ok(&[
        "review",
        "extract",
        "--config",
        pair.high_s(),
        &job,
        "--out",
        out.to_str().unwrap(),
    ]);
    let blob: Vec<u8> = (0..=255u8).collect::<Vec<_>>().repeat(3);
    assert_eq!(
        std::fs::read(out.join("outputs/sub/blob.bin")).unwrap(),
        blob
    );
    assert_eq!(
        std::fs::read(out.join("outputs/summary.txt")).unwrap(),
        b"rows: 3\n"
    );
    assert_eq!(
        std::fs::read(out.join("stdout")).unwrap(),
        b"first row\n\xff\xfe not utf-8\n\x1b[1A\x1b[2Kgone?\n"
    );
    assert_eq!(std::fs::read(out.join("stderr")).unwrap(), b"warn\r\n");
    // A non-empty directory is never overwritten.
    let (_, err) = pair.fails(
        1,
        &[
            "review",
            "extract",
            "--config",
            pair.high_s(),
            &job,
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(err.contains("not empty"), "{err}");

    // The human view shows the escape sequences instead of obeying them; the binary output as hex.
    let shown = pair.ok(&["review", "show", "--config", pair.high_s(), &job]);
    assert!(!shown.contains('\x1b'), "{shown}");
    assert!(shown.contains("\\x1b[1A\\x1b[2K"), "{shown}");
    assert!(shown.contains("\\xff"), "{shown}");
    assert!(shown.contains("sub/blob.bin"), "{shown}");
}
