//! Export and import time against the number of jobs they carry, in the same run, to show whether they grow
//! linearly.
//!
//! For each count N (default 1000 and 10000), two fresh sides in a temporary directory:
//! - low → high: N approved jobs exported in one bundle by the low side, imported by the high side;
//! - high → low: a status report for each of those N jobs (failed, with a reason) exported by the high side,
//!   imported by the low side, which notifies each job's researcher.
//!
//! Each step is timed alone (wall clock, the state store on the scratch disk, fsynced as in production, and the
//! pages it wrote checkpointed from SQLite's log into the database file before the clock stops), in
//! `FERRY_BENCH_RUNS` (default 5) interleaved runs of every count. Printed: the median times, and for each step
//! the ratio of the largest count's time to the smallest's, taken within each run (the two ran a moment apart)
//! and judged on its median over the runs, against the ratio of the counts (target: 10,000 jobs ≤ 12× 1,000
//! jobs, i.e. no worse than linear with 20% slack).
//!
//! `cargo run --release -p ferry-transfer --example export_scaling [N...]` (`scripts/bench transfer` runs it);
//! `FERRY_BENCH_DIR` chooses where the scratch sides go (default: the system's temporary directory).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ferry_core::wire::JobRequest;
use ferry_core::{JobState, Side};
use ferry_transfer::import::{self, ImportOptions, ImportOutcome};
use ferry_transfer::{export, setup, SideDir};

/// Never dialled: nothing here uses a broker.
const UNUSED_AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

struct Times {
    jobs: usize,
    export_jobs: Duration,
    import_jobs: Duration,
    export_status: Duration,
    import_status: Duration,
}

fn sides(dir: &Path) -> (SideDir, SideDir) {
    let low = setup::init(Side::Low, &dir.join("low"), UNUSED_AMQP).expect("init low");
    let high = setup::init(Side::High, &dir.join("high"), UNUSED_AMQP).expect("init high");
    let low_side = SideDir::open(&low.config_file).expect("open low");
    let high_side = SideDir::open(&high.config_file).expect("open high");
    setup::trust_add(&low_side, &high.public_file).expect("low pins high");
    setup::trust_add(&high_side, &low.public_file).expect("high pins low");
    (low_side, high_side)
}

/// N jobs submitted by a few researchers and approved by the owner, as intake and `review approve` leave them.
fn approved_jobs(low: &mut SideDir, n: usize) -> Vec<String> {
    let tx = low.store.begin(Side::Low).expect("begin");
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let request = JobRequest {
            job_id: uuid::Uuid::new_v4(),
            title: format!("scaling job {i}"),
            description: "counts rows".into(),
            runtime: "python".into(),
            code: format!("print({i})\n"),
            assets: vec!["training-data.csv".into()],
            revises: None,
            resources: None,
        };
        let researcher = format!("researcher{}", i % 7);
        tx.submit(&request, &researcher).expect("submit");
        let id = request.job_id.hyphenated().to_string();
        tx.transition(
            &id,
            &[JobState::Submitted],
            JobState::Approved,
            "owner:bench",
            None,
        )
        .expect("approve");
        ids.push(id);
    }
    tx.commit().expect("commit");
    ids
}

/// Every imported job failed on the high side, with a reason: one status report each.
fn fail_all(high: &mut SideDir, ids: &[String]) {
    let tx = high.store.begin(Side::High).expect("begin");
    for id in ids {
        tx.transition(
            id,
            &[JobState::Exported],
            JobState::Failed,
            "worker",
            Some("the bench fails every job"),
        )
        .expect("fail");
    }
    tx.commit().expect("commit");
}

/// One of the four timed steps of a run.
type Step = fn(&Times) -> Duration;

fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn carry(from: &mut SideDir, to: &mut SideDir) -> (Duration, Duration) {
    // Each side's log starts empty, and each timed step ends by copying what it wrote into the database file:
    // SQLite would otherwise do that inside whichever later commit passes 1,000 pages of log, which a 10,000-job
    // step does and a 1,000-job one leaves to the next.
    from.store.checkpoint().expect("checkpoint");
    to.store.checkpoint().expect("checkpoint");
    let (exported, export_time) = timed(|| {
        let exported = export::export(from).expect("export");
        from.store.checkpoint().expect("checkpoint");
        exported
    });
    let exported = exported.expect("something to export");
    let carried: PathBuf = to.layout.inbox().join(exported.path.file_name().unwrap());
    std::fs::copy(&exported.path, &carried).expect("carry");
    let (results, import_time) = timed(|| {
        let results =
            import::import_files(to, std::slice::from_ref(&carried), ImportOptions::default())
                .expect("import");
        to.store.checkpoint().expect("checkpoint");
        results
    });
    match &results[0].1 {
        ImportOutcome::Accepted(_) => {}
        other => panic!("the bundle was not accepted: {other:?}"),
    }
    (export_time, import_time)
}

fn run(base: &Path, n: usize) -> Times {
    let dir = tempfile::Builder::new()
        .prefix("ferry-scaling.")
        .tempdir_in(base)
        .expect("scratch dir");
    let (mut low, mut high) = sides(dir.path());
    let ids = approved_jobs(&mut low, n);
    let (export_jobs, import_jobs) = carry(&mut low, &mut high);
    assert_eq!(
        high.store
            .jobs(Some(JobState::Exported), None)
            .unwrap()
            .len(),
        n
    );
    fail_all(&mut high, &ids);
    let (export_status, import_status) = carry(&mut high, &mut low);
    assert_eq!(
        low.store.jobs(Some(JobState::Failed), None).unwrap().len(),
        n
    );
    Times {
        jobs: n,
        export_jobs,
        import_jobs,
        export_status,
        import_status,
    }
}

/// Each step's median over several runs of one count.
fn median(mut runs: Vec<Times>) -> Times {
    let mid = runs.len() / 2;
    let step = |f: fn(&Times) -> Duration| {
        let mut v: Vec<Duration> = runs.iter().map(f).collect();
        v.sort_unstable();
        v[mid]
    };
    let export_jobs = step(|t| t.export_jobs);
    let import_jobs = step(|t| t.import_jobs);
    let export_status = step(|t| t.export_status);
    let import_status = step(|t| t.import_status);
    let jobs = runs.pop().expect("at least one run").jobs;
    Times {
        jobs,
        export_jobs,
        import_jobs,
        export_status,
        import_status,
    }
}

fn main() {
    let mut counts: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("a job count"))
        .collect();
    if counts.is_empty() {
        counts = vec![1000, 10000];
    }
    counts.sort_unstable();
    let base = std::env::var_os("FERRY_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let runs: usize = std::env::var("FERRY_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    // Interleaved (small, large, small, large...) so that drift in the machine's load hits every count alike;
    // the median of each step over the runs is reported.
    let mut all: Vec<Vec<Times>> = counts.iter().map(|_| Vec::new()).collect();
    for _ in 0..runs {
        for (i, &n) in counts.iter().enumerate() {
            all[i].push(run(&base, n));
        }
    }
    // Each step's ratio of the largest count's time to the smallest's, in every run.
    let per_run = |f: Step| -> Vec<f64> {
        all[0]
            .iter()
            .zip(&all[all.len() - 1])
            .map(|(small, large)| f(large).as_secs_f64() / f(small).as_secs_f64())
            .collect()
    };
    let steps: [(&str, Step); 4] = [
        ("export of jobs, large / small", |t| t.export_jobs),
        ("import of jobs, large / small", |t| t.import_jobs),
        ("export of statuses, large / small", |t| t.export_status),
        ("import of statuses, large / small", |t| t.import_status),
    ];
    let ratios: Vec<Vec<f64>> = steps.iter().map(|(_, f)| per_run(*f)).collect();
    let times: Vec<Times> = all.into_iter().map(median).collect();

    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{:>8} {:>14} {:>14} {:>17} {:>17}",
        "jobs", "export jobs", "import jobs", "export statuses", "import statuses"
    );
    for t in &times {
        println!(
            "{:>8} {:>11.0} ms {:>11.0} ms {:>14.0} ms {:>14.0} ms",
            t.jobs,
            ms(t.export_jobs),
            ms(t.import_jobs),
            ms(t.export_status),
            ms(t.import_status)
        );
    }
    let (small, large) = (&times[0], &times[times.len() - 1]);
    if small.jobs == large.jobs {
        return;
    }
    let scale = large.jobs as f64 / small.jobs as f64;
    let limit = scale * 1.2;
    let mut failed = 0;
    for ((what, _), mut runs) in steps.iter().zip(ratios) {
        let each = runs
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(" ");
        runs.sort_by(f64::total_cmp);
        let r = runs[runs.len() / 2];
        let ok = r <= limit;
        failed += usize::from(!ok);
        println!(
            "{what:<36}{r:7.2}x  target <= {limit}x ({} jobs / {} jobs; median of the runs {each})  {}",
            large.jobs,
            small.jobs,
            if ok { "met" } else { "NOT met" }
        );
    }
    println!(
        "{}",
        if failed == 0 {
            "all targets met".to_string()
        } else {
            format!("{failed} target(s) NOT met")
        }
    );
}
