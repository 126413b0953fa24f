//! `ferry console` in a real browser: Debian's headless Chromium driven by playwright-core (npm) from
//! `console.mjs`, against a real `ferry console` process on a real side. These tests need `chromium`, `node` and
//! playwright-core in `FERRY_PLAYWRIGHT_DIR` (default `.cache/playwright` in the repository), which
//! `scripts/prereqs` installs; without them they fail, naming what is missing. `scripts/test` runs them;
//! `scripts/check` skips them (`--skip browser::`).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use ferry_core::{JobState, Side};

use crate::ferry_bin;
use crate::harness::Pair;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn playwright_dir() -> PathBuf {
    std::env::var_os("FERRY_PLAYWRIGHT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".cache/playwright"))
}

fn chromium() -> PathBuf {
    std::env::var_os("FERRY_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Fails the test (never skips it) when the browser or its driver is missing.
fn require_browser() {
    let mut missing = Vec::new();
    if !chromium().exists() {
        missing.push(format!(
            "{} (Debian: apt-get install chromium)",
            chromium().display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("node (Debian: apt-get install nodejs)".to_string());
    }
    let pw = playwright_dir().join("node_modules/playwright-core/package.json");
    if !pw.exists() {
        missing.push(format!(
            "{} (npm install --prefix DIR playwright-core@1)",
            pw.display()
        ));
    }
    assert!(
        missing.is_empty(),
        "the browser tests need: {}; scripts/prereqs installs them",
        missing.join(", ")
    );
}

/// A running `ferry console`, killed when dropped.
struct ConsoleProcess {
    child: Child,
    url: String,
}

impl Drop for ConsoleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_console(config: &Path, key: &Path) -> ConsoleProcess {
    let mut child = Command::new(ferry_bin())
        .args(["console", "--config", config.to_str().unwrap(), "--key"])
        .arg(key)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting ferry console");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .expect("ferry console printed nothing")
        .unwrap();
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {first:?}"))
        .to_string();
    assert!(url.contains("/login?token="), "{url}");
    ConsoleProcess { child, url }
}

/// Runs `console.mjs SCENARIO PARAMS`; what it saw.
fn drive(scenario: &str, params: serde_json::Value) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/browser/console.mjs");
    let out = Command::new("node")
        .arg(&script)
        .arg(scenario)
        .arg(params.to_string())
        .env("FERRY_PLAYWRIGHT_DIR", playwright_dir())
        .env("FERRY_CHROMIUM", chromium())
        .output()
        .expect("running node");
    assert!(
        out.status.success(),
        "console.mjs {scenario} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A reviewer key for `name`, registered on the side of `config`; returns the key file.
fn reviewer(pair: &Pair, config: &Path, name: &str) -> PathBuf {
    let key = pair.dir.path().join(format!("{name}.key"));
    let public = pair.ok(&["reviewer", "keygen", "--out", key.to_str().unwrap()]);
    pair.ok(&[
        "reviewer",
        "add",
        "--config",
        config.to_str().unwrap(),
        name,
        public.trim(),
    ]);
    key
}

/// What a hostile researcher puts in a request, straight into the low side's store (intake would accept it:
/// its code has no control or bidi character).
fn hostile_request(title: &str) -> ferry_core::wire::JobRequest {
    ferry_core::wire::JobRequest {
        job_id: uuid::Uuid::new_v4(),
        title: title.into(),
        description: "<img src=x onerror=alert('description')>\nsecond line".into(),
        runtime: "python".into(),
        code: "import os\n# </td></tr></table><script>alert('code')</script>\nprint(\"zero\u{200b}width\")\n"
            .into(),
        assets: vec!["training-data.csv".into()],
        revises: None,
        resources: None,
    }
}

const TITLE: &str = "<script>alert('title')</script>\u{202e}txt.exe";

fn assert_inert(seen: &serde_json::Value) {
    assert_eq!(
        seen["dialogs"],
        serde_json::json!([]),
        "a payload ran: {seen}"
    );
    assert_eq!(seen["requests_elsewhere"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["queue_scripts"], 0, "{seen}");
    assert_eq!(seen["job_scripts"], 0, "{seen}");
    assert_eq!(seen["job_svgs"], 0, "{seen}");
    assert_eq!(seen["job_iframes"], 0, "{seen}");
}

fn assert_signed_in_once(seen: &serde_json::Value) {
    assert_eq!(seen["sign_in_status"], 200, "{seen}");
    assert!(seen["queue_url"].as_str().unwrap().ends_with('/'), "{seen}");
    assert_eq!(
        seen["cookie"],
        serde_json::json!([{"name": "ferry_console", "httpOnly": true, "sameSite": "Strict", "path": "/"}])
    );
    assert_eq!(seen["no_cookie_status"], 401, "{seen}");
    assert_eq!(seen["no_cookie_job_status"], 401, "{seen}");
    assert_eq!(seen["second_sign_in_status"], 403, "{seen}");
    assert!(
        seen["second_sign_in_text"]
            .as_str()
            .unwrap()
            .contains("used already"),
        "{seen}"
    );
}

/// The low side's console: the queue, a hostile request shown inert, an approval from the page that the
/// command line then shows signed by the console's reviewer, refusals without the CSRF token or the cookie, a
/// decision refused once the command line changed the job, and a second console on the side refused.
#[test]
fn low_side_console_shows_hostile_requests_inert_and_approves_through_the_cli_path() {
    require_browser();
    let pair = Pair::create();
    let key = reviewer(&pair, &pair.low, "bob");
    let mut store = ferry_core::Store::open(&pair.side_dir(&pair.low).join("state.db")).unwrap();
    let first = hostile_request(TITLE);
    let second = hostile_request("second");
    for r in [&first, &second] {
        let tx = store.begin(Side::Low).unwrap();
        tx.submit(r, "alice").unwrap();
        tx.commit().unwrap();
    }
    drop(store);
    let (job, job2) = (first.job_id.to_string(), second.job_id.to_string());
    let console = start_console(&pair.low, &key);

    // A second console on the same side is refused, naming the first.
    let (_, err) = pair.fails(
        1,
        &[
            "console",
            "--config",
            pair.low_s(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert!(
        err.contains("another `ferry console` is serving this side"),
        "{err}"
    );
    assert!(err.contains(&console.child.id().to_string()), "{err}");

    let seen = drive(
        "low",
        serde_json::json!({
            "url": console.url, "job": job, "job2": job2,
            "ferry": ferry_bin(), "config": pair.low, "key": key,
        }),
    );
    assert_inert(&seen);
    assert_signed_in_once(&seen);
    assert_eq!(seen["queue_heading"], "Awaiting review");
    assert_eq!(seen["queue_rows"], 2, "{seen}");
    assert!(
        seen["queue_titles"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(
                "<script>alert('title')</script>\\u{202e}txt.exe"
            )),
        "the title is shown as text, its override as an escape: {seen}"
    );
    assert_eq!(
        seen["job_heading"],
        "Job <script>alert('title')</script>\\u{202e}txt.exe"
    );
    assert_eq!(
        seen["description"],
        "<img src=x onerror=alert('description')>\nsecond line"
    );
    assert_eq!(seen["code_lines"], 3, "{seen}");
    let code = seen["code_text"].as_str().unwrap();
    assert!(
        code.contains("</td></tr></table><script>alert('code')</script>"),
        "{code}"
    );
    assert!(code.contains("zero\\u{200b}width"), "{code}");
    assert!(seen["escapes_marked"].as_u64().unwrap() >= 2, "{seen}");
    for b in ["Approve", "Reject", "Return"] {
        assert!(
            seen["buttons"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!(b)),
            "no {b} button: {seen}"
        );
    }

    assert_eq!(seen["no_csrf_status"], 403, "{seen}");
    assert!(
        seen["no_csrf_text"].as_str().unwrap().contains("CSRF"),
        "{seen}"
    );
    assert_eq!(seen["bare_post_status"], 403, "{seen}");

    assert!(
        seen["after_approve_flash"]
            .as_str()
            .unwrap()
            .contains("is now approved"),
        "{seen}"
    );
    assert_eq!(seen["after_approve_state"], "approved");
    // The command line shows the same decision: approved, signed by the console's reviewer, verifying.
    let shown = pair.job_json(&pair.low, &job);
    assert_eq!(shown["state"], JobState::Approved.as_str());
    let decisions = shown["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 1, "{shown}");
    assert_eq!(decisions[0]["kind"], "approve");
    assert_eq!(decisions[0]["reviewer"], "bob");
    assert_eq!(decisions[0]["signature_verifies"], true);

    // The page showed the second job before the command line rejected it: its decision is refused.
    assert_eq!(seen["stale_status"], 409, "{seen}");
    assert!(
        seen["stale_text"]
            .as_str()
            .unwrap()
            .contains("changed since this page showed it"),
        "{seen}"
    );
    let shown = pair.job_json(&pair.low, &job2);
    assert_eq!(shown["state"], "rejected");
    assert_eq!(shown["reason"], "from the CLI");
    assert!(
        seen["audit_text"]
            .as_str()
            .unwrap()
            .contains("decision:approve"),
        "{seen}"
    );
}

/// A tiny real PNG (1x1).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// The high side's console: every output shown by what it is (CSV as a table, SVG and HTML as text, a PNG as an
/// image through the image route, binary as hex) with the checks marked in place and nothing hostile running;
/// a release from the page withholding one file, which the command line then shows, signed.
#[test]
fn high_side_console_shows_every_output_inert_and_releases_through_the_cli_path() {
    require_browser();
    let pair = Pair::create();
    let job = pair.job_on_high();
    let key = reviewer(&pair, &pair.high, "bob");
    let outputs: Vec<(&str, Vec<u8>)> = vec![
        ("blob.bin", vec![0u8, 1, 2, 0xff, b'<', b's', b'>', 0x1b]),
        (
            "evil.svg",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert('svg')\"><script>alert('svg2')</script></svg>\n"
                .to_vec(),
        ),
        ("page.html", b"<html><body><script>alert('html')</script></body></html>\n".to_vec()),
        ("plot.png", PNG.to_vec()),
        (
            "report.csv",
            b"name,count\n<script>alert('cell')</script>,3\n\"<img src=x onerror=alert(1)>\",4\n".to_vec(),
        ),
    ];
    {
        let mut side = ferry_transfer::SideDir::open(&pair.high).unwrap();
        let rows: Vec<_> = outputs
            .iter()
            .map(|(n, d)| ferry_core::store::output_row(n, d.clone()))
            .collect();
        let tx = side.store.begin(Side::High).unwrap();
        tx.transition(
            &job,
            &[JobState::Exported],
            JobState::Running,
            "worker",
            None,
        )
        .unwrap();
        let result = ferry_core::store::StoredResult {
            exit_code: Some(0),
            summary: "exited with status 0".into(),
            stdout: b"done <b>bold</b> \x1b[2K\n".to_vec(),
            stderr: Vec::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            unsandboxed: false,
        };
        tx.store_result(&job, &result, &rows).unwrap();
        use ferry_review::checks::{Check, CheckKind};
        tx.store_checks(
            &job,
            &[
                Check {
                    kind: CheckKind::SmallCount,
                    output: "outputs/report.csv".into(),
                    detail: "a count of 3 in row 1".into(),
                },
                Check {
                    kind: CheckKind::BinaryOutput,
                    output: "outputs/blob.bin".into(),
                    detail: "binary data".into(),
                },
            ],
        )
        .unwrap();
        tx.transition(
            &job,
            &[JobState::Running],
            JobState::Finished,
            "worker",
            None,
        )
        .unwrap();
        tx.commit().unwrap();
    }
    let console = start_console(&pair.high, &key);
    // Files in job_files order: stdout, stderr, then the outputs by name; evil.svg is the fourth.
    let seen = drive(
        "high",
        serde_json::json!({ "url": console.url, "job": job, "svg_index": 3 }),
    );
    assert_inert(&seen);
    assert_signed_in_once(&seen);
    assert_eq!(seen["queue_rows"], 1, "{seen}");
    assert_eq!(
        seen["files"],
        serde_json::json!([
            "stdout",
            "stderr",
            "outputs/blob.bin",
            "outputs/evil.svg",
            "outputs/page.html",
            "outputs/plot.png",
            "outputs/report.csv"
        ])
    );
    assert_eq!(seen["csv_headers"], serde_json::json!(["name", "count"]));
    assert_eq!(
        seen["csv_cells"],
        serde_json::json!([
            "<script>alert('cell')</script>",
            "3",
            "<img src=x onerror=alert(1)>",
            "4"
        ])
    );
    let csv_findings = seen["csv_findings"].as_array().unwrap();
    assert_eq!(csv_findings.len(), 1, "{seen}");
    assert!(
        csv_findings[0].as_str().unwrap().contains("small_count"),
        "{seen}"
    );
    assert!(
        seen["bin_findings"][0]
            .as_str()
            .unwrap()
            .contains("binary_output"),
        "{seen}"
    );
    assert!(
        seen["svg_text"]
            .as_str()
            .unwrap()
            .contains("onload=\"alert('svg')\""),
        "{seen}"
    );
    assert!(
        seen["html_text"]
            .as_str()
            .unwrap()
            .contains("<script>alert('html')</script>"),
        "{seen}"
    );
    assert!(
        seen["bin_hex"]
            .as_str()
            .unwrap()
            .contains("00 01 02 ff 3c 73 3e 1b"),
        "{seen}"
    );
    let stdout = seen["stdout_text"].as_str().unwrap();
    assert!(stdout.contains("done <b>bold</b> \\x1b[2K"), "{stdout}");
    assert_eq!(seen["images"], 1, "only the PNG is an image: {seen}");
    assert_eq!(
        seen["png_width"], 1,
        "the PNG loads through the image route: {seen}"
    );
    assert_eq!(
        seen["svg_image_status"], 404,
        "an SVG is never served as an image"
    );
    assert!(
        seen["download_disposition"]
            .as_str()
            .unwrap()
            .starts_with("attachment"),
        "{seen}"
    );
    assert_eq!(seen["download_type"], "application/octet-stream");
    let csp = seen["csp"].as_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    for b in ["Release", "Withhold", "Return"] {
        assert!(
            seen["buttons"]
                .as_array()
                .unwrap()
                .contains(&serde_json::json!(b)),
            "no {b} button: {seen}"
        );
    }
    assert!(
        seen["after_release_flash"]
            .as_str()
            .unwrap()
            .contains("is now released"),
        "{seen}"
    );
    assert!(
        seen["after_release_flash"]
            .as_str()
            .unwrap()
            .contains("withheld outputs/blob.bin"),
        "{seen}"
    );
    assert_eq!(seen["after_release_state"], "released");
    assert_eq!(
        seen["buttons_after"],
        serde_json::json!([]),
        "a released job has nothing to decide"
    );

    // The command line shows the same release: blob.bin withheld with the reason, the rest carried by their
    // SHA-256, and bob's signed release.
    let shown = pair.job_json(&pair.high, &job);
    assert_eq!(shown["state"], "released");
    let release = shown["release"].as_array().unwrap();
    let blob = release
        .iter()
        .find(|f| f["name"] == "outputs/blob.bin")
        .unwrap();
    assert_eq!(blob["withheld"], "binary data stays");
    let csv = release
        .iter()
        .find(|f| f["name"] == "outputs/report.csv")
        .unwrap();
    assert_eq!(csv["withheld"], serde_json::Value::Null);
    assert_eq!(csv["sha256"], ferry_core::sha256_hex(&outputs[4].1));
    let decisions = shown["decisions"].as_array().unwrap();
    assert_eq!(decisions.len(), 1, "{shown}");
    assert_eq!(decisions[0]["kind"], "release");
    assert_eq!(decisions[0]["reviewer"], "bob");
    assert_eq!(decisions[0]["signature_verifies"], true);
}
