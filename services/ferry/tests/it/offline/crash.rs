//! The crash matrix: `ferry export` and `ferry import` killed with SIGKILL at each named point
//! (`ferry_transfer::failpoint::POINTS`, compiled in with the `failpoints` feature; scripts/test runs this with
//! it), then run again as an operator would. Every cell must survive: every job crosses once, none is lost or
//! applied twice, and the channel stays open for the next bundle.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use ferry_core::{JobState, Store};

use crate::ferry_bin;
use crate::harness::Pair;

const JOBS: usize = 5;

/// Runs `ferry ARGS`, killed at `point` when given; returns whether it died by SIGKILL.
fn run(args: &[&str], point: Option<&str>) -> (bool, std::process::Output) {
    let mut cmd = Command::new(ferry_bin());
    cmd.args(args);
    if let Some(p) = point {
        cmd.env("FERRY_FAILPOINT", p);
    }
    let out = cmd.output().unwrap();
    (out.status.signal() == Some(libc::SIGKILL), out)
}

/// Every bundle file in `dir`.
fn bundles(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bundle"))
        .collect();
    files.sort();
    files
}

#[derive(Debug, PartialEq, Eq)]
enum Cell {
    Survived,
    Lost(usize),
    Duplicated(usize),
    Stuck(String),
}

/// Which way the crashed bundle travels.
#[derive(Clone, Copy)]
enum Way {
    /// Approved jobs, low to high.
    Jobs,
    /// Released results, high to low.
    Results,
}

/// One cell: jobs (or results) carried across with a crash at `point`, then everything run again; checks what
/// arrived and that a later bundle still imports.
fn cell(point: &str, way: Way) -> Cell {
    let pair = Pair::create();
    pair.register_dataset();
    let ids = pair.approved_jobs(JOBS);
    let (from, to) = match way {
        Way::Jobs => (pair.low.clone(), pair.high.clone()),
        Way::Results => {
            let bundle = pair.export(&pair.low).expect("the jobs");
            pair.ok(&[
                "import",
                "--config",
                pair.high_s(),
                bundle.to_str().unwrap(),
            ]);
            pair.released_on_high(&ids, &[("answer.txt", b"42\n".to_vec())]);
            (pair.high.clone(), pair.low.clone())
        }
    };
    let (from_dir, to_dir) = (pair.side_dir(&from), pair.side_dir(&to));
    let export = ["export", "--config", from.to_str().unwrap()];
    let import = ["import", "--config", to.to_str().unwrap()];
    let carry = || {
        for b in bundles(&from_dir.join("outbox")) {
            let target = to_dir.join("inbox").join(b.file_name().unwrap());
            if !target.exists() {
                std::fs::copy(&b, &target).unwrap();
            }
        }
    };
    if point.starts_with("export") {
        let (killed, out) = run(&export, Some(point));
        assert!(killed, "{point}: export was not killed: {out:?}");
        // The operator runs it again, and carries whatever outbox/ holds.
        let (_, out) = run(&export, None);
        assert!(out.status.success(), "{point}: {out:?}");
        carry();
        let (_, out) = run(&import, None);
        assert!(out.status.success(), "{point}: {out:?}");
    } else {
        let (_, out) = run(&export, None);
        assert!(out.status.success(), "{point}: {out:?}");
        carry();
        let (killed, out) = run(&import, Some(point));
        assert!(killed, "{point}: import was not killed: {out:?}");
        let (_, out) = run(&import, None);
        if !out.status.success() {
            return Cell::Stuck(String::from_utf8_lossy(&out.stdout).into_owned());
        }
    }
    // What the receiving side holds, and how often each job's arrival was applied.
    let arrived = match way {
        Way::Jobs => JobState::Exported,
        Way::Results => JobState::Released,
    };
    let store = Store::open(&to_dir.join("state.db")).unwrap();
    let mut lost = 0;
    let mut twice = 0;
    for id in &ids {
        let job = store.job(id).unwrap();
        let here = job.as_ref().is_some_and(|j| j.state == arrived)
            && (matches!(way, Way::Jobs) || store.outputs(id).unwrap().len() == 1);
        if !here {
            lost += 1;
            continue;
        }
        let applied = store
            .events(id)
            .unwrap()
            .iter()
            .filter(|e| e.state == arrived && e.actor.starts_with("import"))
            .count();
        if applied > 1 {
            twice += 1;
        }
    }
    if lost > 0 {
        return Cell::Lost(lost);
    }
    if twice > 0 {
        return Cell::Duplicated(twice);
    }
    // The channel is open: something more crosses the same way.
    let later = pair.approved_jobs(1);
    if let Way::Results = way {
        let bundle = pair.export(&pair.low).expect("the later job");
        pair.ok(&[
            "import",
            "--config",
            pair.high_s(),
            bundle.to_str().unwrap(),
        ]);
        pair.released_on_high(&later, &[("answer.txt", b"42\n".to_vec())]);
    }
    let (_, out) = run(&export, None);
    assert!(out.status.success(), "{point}: {out:?}");
    carry();
    let (_, out) = run(&import, None);
    let crossed = store
        .job(&later[0])
        .unwrap()
        .is_some_and(|j| j.state == arrived);
    if !out.status.success() || !crossed {
        return Cell::Stuck(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Cell::Survived
}

#[test]
fn export_and_import_killed_at_every_point_lose_nothing_and_apply_nothing_twice() {
    let mut rows = Vec::new();
    for (way, name) in [
        (Way::Jobs, "jobs low->high"),
        (Way::Results, "results high->low"),
    ] {
        for point in ferry_transfer::failpoint::POINTS {
            rows.push((format!("{name}: {point}"), cell(point, way)));
        }
    }
    println!("crash matrix (kill -9, then run again; {JOBS} jobs a cell):");
    println!(
        "{:<40} {:>8} {:>5} {:>10} {:>5}",
        "bundle: point", "survived", "lost", "duplicated", "stuck"
    );
    for (point, c) in &rows {
        let (s, l, d, k) = match c {
            Cell::Survived => (1, 0, 0, 0),
            Cell::Lost(n) => (0, *n, 0, 0),
            Cell::Duplicated(n) => (0, 0, *n, 0),
            Cell::Stuck(_) => (0, 0, 0, 1),
        };
        println!("{point:<40} {s:>8} {l:>5} {d:>10} {k:>5}");
    }
    for (point, c) in rows {
        assert_eq!(c, Cell::Survived, "{point}");
    }
}
