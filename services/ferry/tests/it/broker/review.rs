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

/// What a terminal shows after printing `bytes`: pyte's screen, one line per row (pyte must be installed:
/// scripts/prereqs does; without it this fails).
fn rendered(bytes: &[u8]) -> String {
    use std::io::Write;
    let script = r#"
import sys, pyte
screen = pyte.Screen(240, 400)
stream = pyte.ByteStream(screen)
stream.feed(sys.stdin.buffer.read().replace(b"\n", b"\r\n"))
for line in screen.display:
    if line.strip():
        print(line.rstrip())
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "pyte: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const HOSTILE: &str = r#"
import os, sys
os.makedirs("outputs", exist_ok=True)
sys.stdout.write("row 1\nrow 2\n\x1b[1A\x1b[2K\x1b[1A\x1b[2Kall fine\n")
"#;

#[test]
fn the_owners_terminal_shows_escapes_not_their_effects() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    let script = pair.dir.path().join("hostile.py");
    std::fs::write(&script, HOSTILE).unwrap();
    let out = pair.run_env(
        &[
            "submit",
            "--asset",
            "training-data.csv",
            "--title",
            "ok\rmallory-forged-row",
            script.to_str().unwrap(),
        ],
        &[("FERRY_AMQP_URL", alice.as_str())],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = String::from_utf8_lossy(&out.stdout).trim().to_string();
    pair.wait_for("intake", || {
        (pair.state_on(&pair.low, &job).as_deref() == Some("submitted")).then_some(())
    });
    // The carriage return in the title does not start a row of its own on the owner's screen.
    let list = pair.run(&["review", "list", "--config", pair.low_s()]);
    let screen = rendered(&list.stdout);
    let row = screen
        .lines()
        .find(|l| l.starts_with(&job))
        .unwrap_or_else(|| panic!("no row for {job}:\n{screen}"));
    assert!(
        row.contains("alice") && row.contains("ok\\x0dmallory-forged-row"),
        "{screen}"
    );
    assert!(
        !screen.lines().any(|l| l.starts_with("mallory")),
        "{screen}"
    );

    pair.ok(&["review", "approve", "--config", pair.low_s(), &job]);
    pair.carry(&pair.low, &pair.high)
        .expect("a bundle with the job");
    pair.wait_for("the worker", || {
        (pair.state_on(&pair.high, &job).as_deref() == Some("finished")).then_some(())
    });
    let show = pair.run(&["review", "show", "--config", pair.high_s(), &job]);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let screen = rendered(&show.stdout);
    // ESC[1A ESC[2K did not erase the rows printed before it.
    assert!(screen.contains("row 1"), "{screen}");
    assert!(screen.contains("row 2"), "{screen}");
    assert!(screen.contains("\\x1b[1A\\x1b[2K"), "{screen}");
}
