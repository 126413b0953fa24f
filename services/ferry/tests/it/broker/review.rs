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

/// Copies the private file into an output (the echo the checks must flag) and writes a second output whose name
/// differs from `summary.txt` only by a zero-width space (which collection must refuse, naming it visibly).
const LEAK: &str = r#"
import os, shutil
os.makedirs("outputs", exist_ok=True)
shutil.copyfile("inputs/training-data.csv", "outputs/summary.txt")
open("outputs/summary\u200b.txt", "w").write("looks like summary.txt\n")
print("rows: 2")
"#;

#[test]
fn a_copied_private_file_is_flagged_and_holds_the_release_until_withheld_or_overridden() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    let withheld = pair.submit_code(&alice, LEAK);
    let overridden = pair.submit_code(&alice, LEAK);
    for job in [&withheld, &overridden] {
        pair.wait_for("intake", || {
            (pair.state_on(&pair.low, job).as_deref() == Some("submitted")).then_some(())
        });
    }
    pair.ok(&[
        "review",
        "approve",
        "--config",
        pair.low_s(),
        &withheld,
        &overridden,
    ]);
    pair.carry(&pair.low, &pair.high)
        .expect("a bundle with the jobs");
    for job in [&withheld, &overridden] {
        pair.wait_for("the worker", || {
            (pair.state_on(&pair.high, job).as_deref() == Some("finished")).then_some(())
        });
    }

    // The owner's screen: the finding, marked as blocking, and the lookalike name made visible.
    let show = pair.run(&["review", "show", "--config", pair.high_s(), &withheld]);
    assert!(show.status.success());
    let screen = rendered(&show.stdout);
    let finding = screen
        .lines()
        .find(|l| l.starts_with("BLOCKS private_echo"))
        .unwrap_or_else(|| panic!("no blocking private_echo finding:\n{screen}"));
    assert!(finding.contains("outputs/summary.txt"), "{screen}");
    assert!(screen.contains("summary\\u{200b}.txt"), "{screen}");
    let json = pair.job_json(&pair.high, &withheld);
    let checks = json["checks"].as_array().expect("checks in --json");
    assert!(
        checks.iter().any(|c| c["kind"] == "private_echo"
            && c["output"] == "outputs/summary.txt"
            && c["blocks"] == true
            && c["detail"].as_str().is_some_and(|d| !d.is_empty())),
        "{json:#}"
    );

    // Released as it is: refused, naming the finding, with the way out.
    let (_, err) = pair.fails(
        1,
        &["review", "release", "--config", pair.high_s(), &withheld],
    );
    assert!(err.contains("private_echo outputs/summary.txt"), "{err}");
    assert!(err.contains("--override"), "{err}");
    assert_eq!(
        pair.state_on(&pair.high, &withheld).as_deref(),
        Some("finished")
    );

    // Withholding the file the finding concerns releases the rest.
    let out = pair.ok(&[
        "review",
        "release",
        "--config",
        pair.high_s(),
        &withheld,
        "--withhold",
        "summary.txt",
        "--reason",
        "it is the private file",
    ]);
    assert!(out.contains("withheld outputs/summary.txt"), "{out}");
    // The other job: an override, recorded with its reason.
    pair.ok(&[
        "review",
        "release",
        "--config",
        pair.high_s(),
        &overridden,
        "--override",
        "the asset owner cleared these rows for release",
    ]);
    let history = pair.ok(&["review", "show", "--config", pair.high_s(), &overridden]);
    assert!(
        history.contains("released over 1 blocking finding(s)")
            && history.contains("the asset owner cleared these rows for release"),
        "{history}"
    );

    pair.carry(&pair.high, &pair.low)
        .expect("a bundle with the results");
    let out = pair.run_env(
        &["results", &withheld, "--wait", "--timeout", "600"],
        &[("FERRY_AMQP_URL", alice.as_str())],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("withheld by the owner: outputs/summary.txt: it is the private file"),
        "{stdout}"
    );
    assert!(!stdout.contains("grow Bacillus subtilis"), "{stdout}");
}
