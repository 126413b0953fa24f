//! Times the private-echo index build against `sha256sum` on the same synthetic private CSV, in the
//! same run, then times the checks on 64 MiB of outputs against that index:
//!
//! ```text
//! checks_bench run [MIB]            the whole benchmark (default FERRY_BENCH_MB, else 1024 MiB)
//! checks_bench gen ASSET MIB        write the synthetic asset only (prints its row count)
//! checks_bench build ASSET INDEX    build and save the index of ASSET (one step, for timing)
//! checks_bench check ROWS INDEX     run every check on 64 MiB of outputs made from an asset of ROWS rows
//! ```
//!
//! Each step runs in a process of its own, so its peak resident set (VmHWM, printed by the step at exit)
//! is its own. Scratch files go under FERRY_BENCH_DIR (default /var/tmp), removed afterwards.
//! Build with `cargo build --release -p ferry-review --example checks_bench`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use ferry_review::checks::{run_checks, BuildLimits, CheckKind, EchoIndex, Output, ReviewPolicy};

/// Words the synthetic texts are made of.
const WORDS: &[&str] = &[
    "the",
    "model",
    "patient",
    "reported",
    "pain",
    "after",
    "dose",
    "account",
    "balance",
    "transfer",
    "weather",
    "station",
    "reading",
    "error",
    "request",
    "timeout",
    "server",
    "message",
    "private",
    "contract",
    "signed",
    "delivery",
    "late",
    "refund",
    "issued",
    "ticket",
    "closed",
    "open",
    "user",
    "login",
    "failed",
    "password",
    "reset",
    "address",
    "changed",
    "phone",
    "number",
    "verified",
    "order",
    "shipped",
    "returned",
    "invoice",
    "paid",
    "overdue",
    "meeting",
    "moved",
    "tomorrow",
    "diagnosis",
    "confirmed",
    "allergy",
    "noted",
    "results",
    "normal",
    "follow",
    "up",
    "scheduled",
];
const SOURCES: &[&str] = &["wiki", "forum", "email", "chat", "support", "clinic"];

/// A small deterministic generator (xorshift64*), seeded per row so rows can be made again.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Free text of 40 to 200 characters.
fn text(rng: &mut Rng, out: &mut Vec<u8>) {
    let target = 40 + rng.below(160);
    let start = out.len();
    while out.len() - start < target {
        if out.len() > start {
            out.push(b' ');
        }
        out.extend_from_slice(WORDS[rng.below(WORDS.len())].as_bytes());
        if rng.below(8) == 0 {
            out.extend_from_slice(format!(" {}", rng.below(10_000)).as_bytes());
        }
    }
}

/// Row `i` of the private asset: `id,user,email,source,text,score`, about 160 bytes.
fn private_row(i: u64, out: &mut Vec<u8>) {
    let mut rng = Rng::new(i);
    let user = rng.below(1_000_000);
    let source = SOURCES[rng.below(SOURCES.len())];
    out.extend_from_slice(format!("{i},user_{user},user{user}@example.org,{source},\"").as_bytes());
    text(&mut rng, out);
    out.extend_from_slice(format!("\",0.{:03}\n", rng.below(1000)).as_bytes());
}

const HEADER: &[u8] = b"id,user,email,source,text,score\n";

/// Writes an asset of about `mib` MiB; returns its rows.
fn make_asset(path: &Path, mib: u64) -> std::io::Result<u64> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    w.write_all(HEADER)?;
    let target = mib << 20;
    let (mut written, mut rows) = (HEADER.len() as u64, 0u64);
    let mut row = Vec::with_capacity(512);
    while written < target {
        row.clear();
        private_row(rows, &mut row);
        w.write_all(&row)?;
        written += row.len() as u64;
        rows += 1;
    }
    w.flush()?;
    Ok(rows)
}

/// 64 MiB of outputs: aggregate tables, unrelated text (same words, other seeds), and one file with
/// `planted` rows of the asset among unrelated lines. Returns (name, data) pairs and the planted count.
fn make_outputs(asset_rows: u64) -> (Vec<(String, Vec<u8>)>, u64) {
    const EACH: usize = 8 << 20;
    let mut outputs = Vec::new();
    // 4 aggregate tables: counts per source and day, means per user bucket.
    for t in 0..4u64 {
        let mut data = b"day,source,count,mean_score\n".to_vec();
        let mut rng = Rng::new(1_000_000_000 + t);
        let mut day = 0u64;
        while data.len() < EACH {
            for source in SOURCES {
                data.extend_from_slice(
                    format!(
                        "2024-{:02}-{:02},{source},{},0.{:03}\n",
                        1 + day / 28 % 12,
                        1 + day % 28,
                        10 + rng.below(5000),
                        rng.below(1000)
                    )
                    .as_bytes(),
                );
            }
            day += 1;
        }
        outputs.push((format!("aggregate_{t}.csv"), data));
    }
    // 3 files of unrelated text lines, shaped like the asset's texts.
    for t in 0..3u64 {
        let mut data = Vec::with_capacity(EACH + 512);
        let mut rng = Rng::new(2_000_000_000 + t);
        while data.len() < EACH {
            text(&mut rng, &mut data);
            data.push(b'\n');
        }
        outputs.push((format!("generated_{t}.txt"), data));
    }
    // One file of unrelated lines with a copied asset row every 100 lines.
    let mut data = Vec::with_capacity(EACH + 512);
    let mut rng = Rng::new(3_000_000_000);
    let (mut line, mut planted) = (0u64, 0u64);
    while data.len() < EACH {
        if line % 100 == 99 {
            private_row(rng.next() % asset_rows, &mut data);
            planted += 1;
        } else {
            text(&mut rng, &mut data);
            data.push(b'\n');
        }
        line += 1;
    }
    outputs.push(("samples.txt".to_string(), data));
    (outputs, planted)
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn build(asset: &Path, index_path: &Path) -> Result<(), String> {
    let file = File::open(asset).map_err(|e| e.to_string())?;
    let started = Instant::now();
    // As `ferry asset add` builds it: in bounded memory, spilling beside the index.
    let spill_dir = index_path.parent().unwrap_or(Path::new("."));
    let summary = EchoIndex::build_file(
        "asset.csv",
        file,
        ReviewPolicy::default().index_params(),
        index_path,
        &BuildLimits::new(spill_dir),
    )
    .map_err(|e| e.to_string())?;
    let (fields, windows) = summary.entries;
    println!(
        "built {} bytes of index from {} lines in {:.2}s: {fields} field and row entries, {windows} window entries, {} sorted runs spilled",
        summary.file_len,
        summary.asset_lines,
        started.elapsed().as_secs_f64(),
        summary.runs
    );
    println!("VmHWM: {} kB", vm_hwm_kib());
    Ok(())
}

fn check(asset_rows: u64, index_path: &Path) -> Result<(), String> {
    let (outputs, planted) = make_outputs(asset_rows);
    let total: usize = outputs.iter().map(|(_, d)| d.len()).sum();
    let started = Instant::now();
    let index = EchoIndex::load(index_path, 16 << 30).map_err(|e| e.to_string())?;
    let load = started.elapsed().as_secs_f64();
    let inputs: Vec<Output<'_>> = outputs
        .iter()
        .map(|(name, data)| Output::file(name, data))
        .collect();
    let started = Instant::now();
    let checks = run_checks(&inputs, &[&index], &[], &ReviewPolicy::default());
    let secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut flagged_lines = 0;
    let mut flagged_in_unrelated = 0;
    for (name, data) in &outputs {
        let scan = index.scan(data, 0);
        if name == "samples.txt" {
            flagged_lines += scan.lines_hit;
        } else {
            flagged_in_unrelated += scan.lines_hit;
        }
    }
    let echo_secs = started.elapsed().as_secs_f64();
    println!(
        "outputs: {:.1} MiB in {} files (4 aggregate tables, 3 of unrelated text, 1 with {planted} copied rows among unrelated lines)",
        total as f64 / (1 << 20) as f64,
        outputs.len()
    );
    println!("index load: {load:.2}s");
    println!(
        "all checks: {secs:.2}s ({:.0} MB/s); private_echo scan alone: {echo_secs:.2}s ({:.0} MB/s)",
        total as f64 / 1e6 / secs,
        total as f64 / 1e6 / echo_secs
    );
    let echo_findings: Vec<_> = checks
        .iter()
        .filter(|c| c.kind == CheckKind::PrivateEcho)
        .collect();
    println!(
        "private_echo: {flagged_lines} lines of samples.txt flagged for {planted} copied rows; {flagged_in_unrelated} lines flagged in the other outputs; {} findings",
        echo_findings.len()
    );
    for c in &checks {
        let mut line = c.to_string();
        if line.len() > 160 {
            let mut cut = 160;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str("...");
        }
        println!("  {line}");
    }
    println!("VmHWM: {} kB", vm_hwm_kib());
    Ok(())
}

/// Runs `cmd`, returns its wall time and its stdout.
fn timed(cmd: &mut Command) -> Result<(f64, String), String> {
    let started = Instant::now();
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((secs, String::from_utf8_lossy(&out.stdout).into_owned()))
}

fn hwm_of(stdout: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn run(mib: u64) -> Result<bool, String> {
    let base = std::env::var("FERRY_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let dir = tempfile::Builder::new()
        .prefix("ferry-checks-bench.")
        .tempdir_in(&base)
        .map_err(|e| e.to_string())?;
    let asset = dir.path().join("asset.csv");
    let index = dir.path().join("asset.eix");
    let rows = make_asset(&asset, mib).map_err(|e| e.to_string())?;
    let asset_bytes = std::fs::metadata(&asset).map_err(|e| e.to_string())?.len();
    println!(
        "asset: {mib} MiB synthetic private CSV ({asset_bytes} bytes, {rows} rows, id,user,email,source,text,score) in {}",
        dir.path().display()
    );
    // Both sides read the asset from the page cache.
    std::io::copy(
        &mut File::open(&asset).map_err(|e| e.to_string())?,
        &mut std::io::sink(),
    )
    .map_err(|e| e.to_string())?;
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let (sha_secs, _) = timed(Command::new("sha256sum").arg(&asset))?;
    let (build_secs, build_out) = timed(Command::new(&me).arg("build").arg(&asset).arg(&index))?;
    let mb = asset_bytes as f64 / 1e6;
    println!("sha256sum:   {sha_secs:7.2}s ({:.0} MB/s)", mb / sha_secs);
    println!(
        "index build: {build_secs:7.2}s ({:.0} MB/s), peak memory {:.1} MiB",
        mb / build_secs,
        hwm_of(&build_out)
    );
    for line in build_out.lines().filter(|l| !l.starts_with("VmHWM")) {
        println!("  {line}");
    }
    let index_len = std::fs::metadata(&index).map_err(|e| e.to_string())?.len();
    println!(
        "index size: {index_len} bytes = {:.2}% of the asset",
        100.0 * index_len as f64 / asset_bytes as f64
    );
    let ratio = build_secs / sha_secs;
    let met = ratio <= 3.0;
    println!(
        "index build / sha256sum: {ratio:.2}x (target <= 3x) {}",
        if met { "met" } else { "NOT met" }
    );
    let (check_secs, check_out) = timed(
        Command::new(&me)
            .arg("check")
            .arg(rows.to_string())
            .arg(&index),
    )?;
    for line in check_out.lines().filter(|l| !l.starts_with("VmHWM")) {
        println!("{line}");
    }
    println!(
        "check step: {check_secs:.2}s in all (making the outputs included), peak memory {:.1} MiB (64 MiB of outputs held in memory)",
        hwm_of(&check_out)
    );
    println!(
        "load average after: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(met)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["run"] | [] => {
            let mib = std::env::var("FERRY_BENCH_MB")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1024);
            run(mib).map(|_| ())
        }
        ["run", mib] => match mib.parse() {
            Ok(mib) => run(mib).map(|_| ()),
            Err(_) => Err(format!("not a size in MiB: {mib}")),
        },
        ["gen", asset, mib] => match mib.parse() {
            Ok(mib) => make_asset(&PathBuf::from(asset), mib)
                .map(|rows| println!("{rows} rows"))
                .map_err(|e| e.to_string()),
            Err(_) => Err(format!("not a size in MiB: {mib}")),
        },
        ["build", asset, index] => build(&PathBuf::from(asset), &PathBuf::from(index)),
        ["check", rows, index] => match rows.parse() {
            Ok(rows) => check(rows, &PathBuf::from(index)),
            Err(_) => Err(format!("not a row count: {rows}")),
        },
        _ => Err(
            "usage: checks_bench run [MIB] | gen ASSET MIB | build ASSET INDEX | check ROWS INDEX"
                .into(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("checks_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
