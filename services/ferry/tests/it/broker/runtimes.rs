//! Owner-registered runtimes: the seed's pandas code (`examples/basic_tfidf.py`) in a virtualenv built here from
//! PyPI, through `ferry run --mock` and through the whole flow, with the researcher's local copy made by
//! `ferry runtime install`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{unique, Pair};

/// A directory outside /tmp (the sandbox puts its own /tmp over the host's, so an environment there is
/// invisible to jobs, and `ferry runtime add` refuses it): in the target's scratch directory, or in /var/tmp
/// when the checkout itself is under /tmp.
fn outside_tmp(name: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let root = if target.starts_with("/tmp") {
        Path::new("/var/tmp/ferry-tests")
    } else {
        target
    };
    let dir = root.join(unique(name));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A virtualenv with pandas, numpy and tqdm from PyPI; returns its interpreter.
fn pandas_venv(dir: &Path) -> PathBuf {
    let venv = dir.join("venv");
    let made = Command::new("/usr/bin/python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "venv: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    let pip = Command::new(venv.join("bin/python"))
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["pandas", "numpy", "tqdm"])
        .output()
        .unwrap();
    assert!(
        pip.status.success(),
        "pip install pandas numpy tqdm (PyPI): {}",
        String::from_utf8_lossy(&pip.stderr)
    );
    venv.join("bin/python")
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/basic_tfidf.py")
}

/// What the script writes to outputs/tfidf.csv when run directly (no Ferry) by `python` on `data`.
fn expected_table(python: &Path, data: &Path) -> String {
    let dir = outside_tmp("direct");
    std::fs::create_dir_all(dir.join("inputs")).unwrap();
    std::fs::copy(data, dir.join("inputs/training-data.csv")).unwrap();
    let out = Command::new(python)
        .arg(example())
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "direct run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = std::fs::read_to_string(dir.join("outputs/tfidf.csv")).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    table
}

#[test]
fn the_seeds_pandas_code_gives_the_same_answer_through_run_mock_and_through_the_whole_flow() {
    let lab = outside_tmp("lab-runtime");
    let lab_python = pandas_venv(&lab);
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let root = pair.dir.path().to_path_buf();

    // The owner registers the environment; the low side learns of it from the next bundle, with no edit there.
    let added = pair.ok(&[
        "runtime",
        "add",
        "--config",
        pair.high_s(),
        "pandas",
        "--python",
        lab_python.to_str().unwrap(),
        "--description",
        "pandas, numpy and tqdm",
    ]);
    assert!(added.contains("runtime pandas registered"), "{added}");
    let imported = pair
        .carry(&pair.high, &pair.low)
        .expect("a bundle with the runtimes");
    assert!(imported.contains("1 runtime(s)"), "{imported}");

    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    let xdg = outside_tmp("alice-data");
    let env = [
        ("FERRY_AMQP_URL", alice.as_str()),
        ("XDG_DATA_HOME", xdg.to_str().unwrap()),
    ];

    // The researcher sees it, with its packages.
    let listed = pair.wait_for("the runtimes call", || {
        let out = pair.run_env(&["runtimes", "--json"], &env);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    let list: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let pandas = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pandas")
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(pandas["origin"], "registered");
    assert!(
        pandas["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "pandas"),
        "{listed}"
    );

    // Before installing, the mock run says how to get the runtime.
    let out_dir = root.join("mock-out");
    let script = example();
    let mock_args = [
        "run",
        "--mock",
        "--runtime",
        "pandas",
        "--asset",
        "training-data.csv",
        "--out",
        out_dir.to_str().unwrap(),
        script.to_str().unwrap(),
    ];
    let (_, err) = pair.fails_env(1, &mock_args, &env);
    assert!(err.contains("ferry runtime install pandas"), "{err}");

    // A local copy with the same versions, remembered for the mock run.
    let installed = pair.run_env(&["runtime", "install", "pandas"], &env);
    assert!(
        installed.status.success(),
        "runtime install: {}",
        String::from_utf8_lossy(&installed.stderr)
    );
    let stderr = String::from_utf8_lossy(&installed.stderr);
    assert!(!stderr.contains("differs"), "{stderr}");
    let local_python = xdg.join("ferry/runtimes/pandas/bin/python");
    assert!(local_python.is_file());

    let mock = pair.run_env(&mock_args, &env);
    assert!(
        mock.status.success(),
        "run --mock: {}",
        String::from_utf8_lossy(&mock.stderr)
    );
    assert!(
        !String::from_utf8_lossy(&mock.stderr).contains("differs"),
        "{}",
        String::from_utf8_lossy(&mock.stderr)
    );
    assert!(String::from_utf8_lossy(&mock.stdout).contains("subtilis: mock-a (1 rows)"));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("tfidf.csv")).unwrap(),
        expected_table(&local_python, &root.join("mock.csv"))
    );

    // One's own interpreter, lacking the packages: warned of, and the script fails as it would.
    let own = pair.run_env(
        &[
            "run",
            "--mock",
            "--runtime",
            "pandas",
            "--python",
            "/usr/bin/python3",
            "--asset",
            "training-data.csv",
            "--out",
            root.join("own-out").to_str().unwrap(),
            example().to_str().unwrap(),
        ],
        &env,
    );
    let own_err = String::from_utf8_lossy(&own.stderr);
    assert!(
        own_err.contains("differs from the lab's runtime pandas"),
        "{own_err}"
    );
    assert!(own_err.contains("pandas missing here"), "{own_err}");
    assert!(!own.status.success());

    // The whole flow, on the private data, in the lab's runtime.
    let job = pair.submit_code_with(
        &alice,
        &std::fs::read_to_string(example()).unwrap(),
        &["--runtime", "pandas"],
    );
    pair.approve_run_and_release(&job);
    let results = root.join("results");
    let out = pair.run_env(
        &[
            "results",
            &job,
            "--wait",
            "--timeout",
            "600",
            "--out",
            results.to_str().unwrap(),
        ],
        &env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "results: {stdout}");
    assert!(
        stdout.contains("subtilis: forum-crawl (1 rows)"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(results.join(&job).join("tfidf.csv")).unwrap(),
        expected_table(&lab_python, &root.join("private.csv"))
    );
    std::fs::remove_dir_all(&lab).unwrap();
    std::fs::remove_dir_all(&xdg).unwrap();
}
