//! Stateless workers (`ferry init --side worker`, `ferry worker`): separate processes that see neither the high
//! side's state store nor its keys (a private mount namespace puts an empty tmpfs over the high side's
//! directory), take jobs over the broker and report back to `ferry serve`, which commits.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::harness::Pair;

/// Worker processes, stopped when the test ends (passed or not).
#[derive(Default)]
pub struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The high side's broker URL, from its ferry.toml.
pub fn high_url(pair: &Pair) -> String {
    std::fs::read_to_string(&pair.high)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("amqp_url = "))
        .unwrap()
        .trim_matches('"')
        .to_string()
}

/// `ferry init --side worker` in the pair's directory; returns its ferry.toml. The asset store is the pair's
/// directory, where `register_dataset` keeps the private file.
pub fn init_worker(pair: &Pair, name: &str) -> PathBuf {
    let dir = pair.dir.path().join(name);
    let out = pair.ok(&[
        "init",
        "--side",
        "worker",
        "--dir",
        dir.to_str().unwrap(),
        "--amqp",
        &high_url(pair),
        "--assets",
        pair.dir.path().to_str().unwrap(),
    ]);
    assert!(out.contains("ferry worker --config"), "{out}");
    let config = dir.join("ferry.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("side = \"worker\""), "{text}");
    assert!(
        !dir.join("state.db").exists() && !dir.join("keys").exists(),
        "a worker has no state and no keys"
    );
    config
}

/// Starts `ferry worker --config CONFIG` in a private mount namespace where the high side's directory is an
/// empty tmpfs: the worker cannot open the state store or the keys. Its stderr goes to `worker.log` beside its
/// configuration. The shell checks the hiding before it becomes the worker (exit 99 otherwise).
pub fn start_hidden(pair: &Pair, config: &Path) -> Child {
    let high_dir = pair.side_dir(&pair.high);
    assert!(
        high_dir.join("state.db").exists(),
        "the high side has a state store to hide"
    );
    let log = std::fs::File::create(config.with_file_name("worker.log")).unwrap();
    Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t tmpfs -o ro hidden \"$1\" && test ! -e \"$1/state.db\" || exit 99; \
             exec \"$2\" worker --config \"$3\"",
            "sh",
            high_dir.to_str().unwrap(),
            crate::ferry_bin().to_str().unwrap(),
            config.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("unshare")
}

/// Waits until `queue` on the high side's vhost has `n` consumers. A worker of `workers` that exits meanwhile
/// fails the test at once, with its log (its configuration is the one at the same index of `configs`).
fn wait_for_consumers(
    pair: &Pair,
    queue: &str,
    n: usize,
    workers: &mut Workers,
    configs: &[&Path],
) {
    pair.wait_for(&format!("{n} consumers on {queue}"), || {
        for (child, config) in workers.0.iter_mut().zip(configs) {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "the worker of {} exited ({status}) before consuming:\n{}",
                    config.display(),
                    worker_log(config)
                );
            }
        }
        crate::harness::rabbitmqctl_lines(&[
            "list_queues",
            "-p",
            &pair.high_vhost,
            "name",
            "consumers",
        ])
        .iter()
        .any(|l| {
            let mut f = l.split_whitespace();
            f.next() == Some(queue) && f.next().and_then(|c| c.parse::<usize>().ok()) == Some(n)
        })
        .then_some(())
    });
}

fn worker_log(config: &Path) -> String {
    std::fs::read_to_string(config.with_file_name("worker.log")).unwrap_or_default()
}

/// Submits and approves `codes` and carries them to the high side; returns the job ids in order.
fn approved(pair: &Pair, researcher: &str, codes: &[String]) -> Vec<String> {
    let jobs: Vec<String> = codes
        .iter()
        .map(|c| pair.submit_code(researcher, c))
        .collect();
    for job in &jobs {
        pair.wait_for("intake", || {
            (pair.state_on(&pair.low, job).as_deref() == Some("submitted")).then_some(())
        });
        pair.ok(&["review", "approve", "--config", pair.low_s(), job]);
    }
    let imported = pair.carry(&pair.low, &pair.high).unwrap();
    assert_eq!(imported.matches("job ").count(), jobs.len(), "{imported}");
    jobs
}

fn running_events(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["state"] == "running")
        .cloned()
        .collect()
}

/// Both sides serving, the high side's serve only coordinating (`[worker] count = 0`: every job runs in a worker
/// process), with the dataset registered; and the researcher erin's URL.
fn coordinating_pair() -> (Pair, String) {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    pair.configure(&pair.high.clone(), &[("count = 1", "count = 0")]);
    let erin = pair.researcher("erin");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    (pair, erin)
}

#[test]
fn two_hidden_worker_processes_share_the_jobs_none_lost_or_run_twice_and_serve_commits_them() {
    let (pair, erin) = coordinating_pair();
    let configs = [init_worker(&pair, "w1"), init_worker(&pair, "w2")];
    let mut workers = Workers::default();
    for c in &configs {
        workers.0.push(start_hidden(&pair, c));
    }
    // Both consume before any job is queued: on a loaded machine one may start seconds after the other, which
    // would then take every job (CI saw it).
    let started: Vec<&Path> = configs.iter().map(PathBuf::as_path).collect();
    wait_for_consumers(&pair, "ferry.jobs.python", 2, &mut workers, &started);
    // 24 jobs reading the private asset; one writes an output of several chunks.
    let mut codes: Vec<String> = (0..24)
        .map(|i| {
            format!(
                "import time\nrows = open('inputs/training-data.csv').read().count('\\n')\n\
                 time.sleep(0.2)\nprint({i}, rows)\n"
            )
        })
        .collect();
    codes[7] = "import hashlib, os\nos.makedirs('outputs', exist_ok=True)\n\
                data = bytes(range(256)) * (10 * 1024)\n\
                open('outputs/big.bin', 'wb').write(data)\n\
                print(hashlib.sha256(data).hexdigest())\n"
        .to_string();
    let jobs = approved(&pair, &erin, &codes);
    for job in &jobs {
        pair.wait_for("every job finished", || {
            let state = pair.state_on(&pair.high, job)?;
            assert!(
                matches!(state.as_str(), "exported" | "running" | "finished"),
                "job {job} is {state}:\n{}\n{}",
                worker_log(&configs[0]),
                worker_log(&configs[1])
            );
            (state == "finished").then_some(())
        });
    }
    let mut actors = std::collections::BTreeSet::new();
    for (i, job) in jobs.iter().enumerate() {
        let v = pair.job_json(&pair.high, job);
        assert_eq!(v["state"], "finished", "{v:#}");
        let runs = running_events(&v);
        assert_eq!(runs.len(), 1, "job {job} ran {} times: {v:#}", runs.len());
        let actor = runs[0]["actor"].as_str().unwrap().to_string();
        actors.insert(actor.split('@').nth(1).unwrap().to_string());
        if i == 7 {
            let stdout = v["result"]["stdout"].as_str().unwrap().trim().to_string();
            let out = pair.dir.path().join("extracted");
            pair.ok(&[
                "review",
                "extract",
                "--config",
                pair.high_s(),
                job,
                "--out",
                out.to_str().unwrap(),
            ]);
            let blob = out.join("outputs/big.bin");
            assert_eq!(std::fs::metadata(&blob).unwrap().len(), 256 * 10 * 1024);
            let sum = crate::harness::python(
                "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
                &[blob.to_str().unwrap()],
            );
            assert_eq!(sum.trim(), stdout, "the chunked output arrived whole");
        } else {
            assert_eq!(v["result"]["stdout"], format!("{i} 3\n"), "{v:#}");
        }
    }
    // Both processes took jobs, and serve ran none of them itself.
    assert_eq!(
        actors.len(),
        2,
        "both worker processes took jobs: {actors:?}"
    );
    let serve_pid_runs = pair.serve_logs().matches("could not run").count();
    assert_eq!(serve_pid_runs, 0);
    for c in &configs {
        assert!(
            worker_log(c).contains("worker serving"),
            "{}",
            worker_log(c)
        );
    }
}

#[test]
fn a_worker_killed_mid_job_has_it_run_again_by_another_and_one_without_the_runtime_takes_none() {
    let (pair, erin) = coordinating_pair();
    // A worker with no python: it must take no python job.
    let other = init_worker(&pair, "other");
    let text = std::fs::read_to_string(&other).unwrap();
    std::fs::write(
        &other,
        text.replace("[runtimes.python", "[runtimes.not-python"),
    )
    .unwrap();
    let first = init_worker(&pair, "first");
    let mut workers = Workers::default();
    workers.0.push(start_hidden(&pair, &other));
    workers.0.push(start_hidden(&pair, &first));
    wait_for_consumers(
        &pair,
        "ferry.jobs.python",
        1,
        &mut workers,
        &[&other, &first],
    );
    let jobs = approved(
        &pair,
        &erin,
        // Long enough to be seen running on a loaded machine (polled with `review show`).
        &[
            "import time\nprint('started', flush=True)\ntime.sleep(10)\nprint('done')\n"
                .to_string(),
        ],
    );
    let job = &jobs[0];
    pair.wait_for("the first worker to run it", || {
        let state = pair.state_on(&pair.high, job);
        assert_ne!(
            state.as_deref(),
            Some("finished"),
            "the job finished before it was seen running"
        );
        (state.as_deref() == Some("running")).then_some(())
    });
    // SIGKILL mid-run: the broker gets the job back when the connection drops.
    workers.0[1].kill().unwrap();
    workers.0[1].wait().unwrap();
    let second = init_worker(&pair, "second");
    workers.0.push(start_hidden(&pair, &second));
    pair.wait_for("the job to finish on the second worker", || {
        (pair.state_on(&pair.high, job).as_deref() == Some("finished")).then_some(())
    });
    let v = pair.job_json(&pair.high, job);
    assert_eq!(v["result"]["stdout"], "started\ndone\n", "{v:#}");
    let runs = running_events(&v);
    assert_eq!(runs.len(), 2, "the history shows both runs: {v:#}");
    assert!(
        runs[1]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("redelivered"),
        "{v:#}"
    );
    assert_ne!(runs[0]["actor"], runs[1]["actor"], "{v:#}");
    // The worker without python never took it.
    let log = worker_log(&other);
    assert!(log.contains("worker serving"), "{log}");
    assert!(!log.contains(job.as_str()), "{log}");
    // The killed worker left its job's directory behind; started again, it removes it before serving.
    let work = first.with_file_name("work");
    let left = |what: &str| -> Vec<String> {
        std::fs::read_dir(&work)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(what))
            .collect()
    };
    assert!(
        !left(job).is_empty(),
        "the killed job's directory is in {}",
        work.display()
    );
    workers.0.push(start_hidden(&pair, &first));
    pair.wait_for("the restarted worker to serve", || {
        worker_log(&first).contains("worker serving").then_some(())
    });
    assert_eq!(left(job), Vec::<String>::new(), "{}", worker_log(&first));
    assert!(
        worker_log(&first).contains("removed the job directories of workers no longer running"),
        "{}",
        worker_log(&first)
    );
}
