//! The high-side workers: scale-out, cancellation, and hostile jobs that must not take the worker down.

use crate::harness::Pair;

fn final_on_high(state: &str) -> bool {
    matches!(state, "finished" | "failed" | "cancelled")
}

#[test]
fn fifty_jobs_on_two_workers_each_run_exactly_once() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    pair.configure(&pair.high, &[("count = 1", "count = 2")]);
    let erin = pair.researcher("erin");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    let jobs: Vec<String> = (0..50)
        .map(|i| {
            pair.submit_code(
                &erin,
                &format!("import time\ntime.sleep(0.05)\nprint({i})\n"),
            )
        })
        .collect();
    pair.wait_for("intake of fifty jobs", || {
        let list = pair.ok(&["review", "list", "--config", pair.low_s(), "--json"]);
        (serde_json::from_str::<serde_json::Value>(&list)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
            == 50)
            .then_some(())
    });
    for job in &jobs {
        pair.ok(&["review", "approve", "--config", pair.low_s(), job]);
    }
    let imported = pair.carry(&pair.low, &pair.high).unwrap();
    assert_eq!(imported.matches("job ").count(), 50, "{imported}");
    pair.wait_for("fifty finished jobs", || {
        let list = pair.ok(&["review", "list", "--config", pair.high_s(), "--json"]);
        (serde_json::from_str::<serde_json::Value>(&list)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
            == 50)
            .then_some(())
    });
    let mut workers = std::collections::BTreeSet::new();
    for (i, job) in jobs.iter().enumerate() {
        let v = pair.job_json(&pair.high, job);
        assert_eq!(v["state"], "finished", "{v}");
        assert_eq!(v["result"]["stdout"], format!("{i}\n"));
        let runs: Vec<&serde_json::Value> = v["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["state"] == "running")
            .collect();
        assert_eq!(runs.len(), 1, "job {job} ran {} times", runs.len());
        workers.insert(runs[0]["actor"].as_str().unwrap().to_string());
    }
    assert_eq!(workers.len(), 2, "both workers took jobs: {workers:?}");
}

#[test]
fn a_running_job_is_cancelled_across_the_gap() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let fay = pair.researcher("fay");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    let env = [("FERRY_AMQP_URL", fay.as_str())];

    // Cancelled before approval: final at once, nothing crosses.
    let early = pair.submit_code(&fay, "print(1)\n");
    pair.wait_for("intake", || pair.state_on(&pair.low, &early));
    let out = pair.run_env(&["cancel", &early], &env);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("cancelled"),
        "{out:?}"
    );
    assert_eq!(
        pair.state_on(&pair.low, &early).as_deref(),
        Some("cancelled")
    );

    // Cancelled while running on the high side.
    let job = pair.submit_code(
        &fay,
        "import time\nprint('started', flush=True)\ntime.sleep(280)\n",
    );
    pair.wait_for("intake", || pair.state_on(&pair.low, &job));
    pair.ok(&["review", "approve", "--config", pair.low_s(), &job]);
    pair.carry(&pair.low, &pair.high).unwrap();
    pair.wait_for("the job to run", || {
        (pair.state_on(&pair.high, &job).as_deref() == Some("running")).then_some(())
    });
    let out = pair.run_env(&["cancel", &job], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let carried = pair.carry(&pair.low, &pair.high).unwrap();
    assert!(carried.contains("cancellation"), "{carried}");
    pair.wait_for("the kill", || {
        (pair.state_on(&pair.high, &job).as_deref() == Some("cancelled")).then_some(())
    });
    pair.carry(&pair.high, &pair.low).unwrap();
    let out = pair.run_env(&["status", &job, "--json"], &env);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "cancelled");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("cancelled by the researcher"),
        "{v}"
    );
}

/// Each attack is a job script; it must end as a contained, clearly reported failure, and the worker must go on
/// to run the next job.
#[test]
fn hostile_jobs_are_contained_and_the_worker_survives_them_all() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    pair.configure(
        &pair.high,
        &[
            ("wall_time_secs = 300", "wall_time_secs = 6"),
            ("cpu_secs = 300", "cpu_secs = 4"),
            ("memory_mb = 2048", "memory_mb = 512"),
            ("max_output_mb = 64", "max_output_mb = 8"),
            ("max_stdio_kb = 1024", "max_stdio_kb = 64"),
        ],
    );
    let gus = pair.researcher("gus");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    let high_dir = pair.side_dir(&pair.high);
    let key = high_dir.join("keys/signing.key");
    let db = high_dir.join("state.db");
    let private = pair.dir.path().join("private.csv");
    let probe = |what: &str, body: &str| {
        format!(
            "import os, socket, sys\ntry:\n{}\n    print('ESCAPED {what}')\nexcept BaseException as e:\n    print('BLOCKED {what}', type(e).__name__)\n",
            body.lines().map(|l| format!("    {l}\n")).collect::<String>()
        )
    };
    let attacks: Vec<(&str, String)> = vec![
        ("broker", probe("broker", "socket.create_connection(('127.0.0.1', 5672), timeout=2)")),
        ("outside", probe("outside", &format!("socket.create_connection(({:?}, 5672), timeout=2)", host_address()))),
        ("key", probe("key", &format!("open({key:?}).read()"))),
        ("statedb", probe("statedb", &format!("open({db:?}, 'rb').read()"))),
        ("other-asset", probe("other-asset", &format!("open({private:?}).read()"))),
        ("shadow", probe("shadow", "open('/etc/shadow').read()")),
        ("write-outside", probe("write-outside", "open('/job/inputs/training-data.csv', 'w').write('x')")),
        ("environ", "import os\nprint(sorted(os.environ))\n".to_string()),
        ("fork-bomb", "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n".to_string()),
        ("memory", "x = bytearray(8 * 1024**3)\nprint('ESCAPED memory')\n".to_string()),
        ("spin", "while True:\n    pass\n".to_string()),
        ("sleep", "import time\ntime.sleep(10**6)\n".to_string()),
        ("big-output", "import os\nos.makedirs('outputs', exist_ok=True)\nf = open('outputs/big', 'wb')\nfor _ in range(10 * 1024):\n    f.write(b'x' * 1024**2)\n".to_string()),
        ("stdout-flood", "import sys\nchunk = 'y' * 1024**2\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n".to_string()),
        ("background", "import os, subprocess\nsubprocess.Popen(['sleep', '1000'], start_new_session=True)\nprint('left a child')\n".to_string()),
    ];
    let mut jobs = Vec::new();
    for (name, code) in &attacks {
        jobs.push((*name, pair.submit_code(&gus, code)));
    }
    let benign = pair.submit_code(
        &gus,
        "print(open('inputs/training-data.csv').read().count('subtilis'))\n",
    );
    pair.wait_for("intake", || {
        let list = pair.ok(&["review", "list", "--config", pair.low_s(), "--json"]);
        (serde_json::from_str::<serde_json::Value>(&list)
            .unwrap()
            .as_array()
            .unwrap()
            .len()
            == attacks.len() + 1)
            .then_some(())
    });
    for (_, job) in &jobs {
        pair.ok(&["review", "approve", "--config", pair.low_s(), job]);
    }
    pair.ok(&["review", "approve", "--config", pair.low_s(), &benign]);
    pair.carry(&pair.low, &pair.high).unwrap();
    pair.wait_for("every hostile job to end", || {
        jobs.iter()
            .chain(std::iter::once(&("benign", benign.clone())))
            .all(|(_, j)| {
                pair.state_on(&pair.high, j)
                    .is_some_and(|s| final_on_high(&s))
            })
            .then_some(())
    });
    for (name, job) in &jobs {
        let v = pair.job_json(&pair.high, job);
        let stdout = v["result"]["stdout"].as_str().unwrap_or("");
        let summary = v["result"]["summary"].as_str().unwrap_or("");
        assert!(!stdout.contains("ESCAPED"), "{name}: {stdout}");
        assert!(
            !summary.is_empty() || v["state"] == "failed",
            "{name}: no summary: {v}"
        );
        match *name {
            "environ" => {
                assert!(
                    !stdout.contains("FERRY_CONFIG") && !stdout.contains("RUST"),
                    "{stdout}"
                );
                assert!(stdout.contains("FERRY_JOB_ID"), "{stdout}");
            }
            "spin" | "sleep" => assert!(
                summary.contains("limit") || summary.contains("killed"),
                "{name}: {summary}"
            ),
            "stdout-flood" => assert_eq!(v["result"]["stdout_truncated"], true, "{name}"),
            "big-output" => {
                let outputs = v["result"]["outputs"].as_array().unwrap();
                let total: u64 = outputs.iter().map(|o| o["size"].as_u64().unwrap()).sum();
                assert!(total <= 8 * 1024 * 1024, "{name}: {total} bytes kept");
            }
            "fork-bomb" | "memory" | "background" => {}
            _ => assert!(
                stdout.contains(&format!("BLOCKED {name}")),
                "{name}: {stdout}"
            ),
        }
    }
    let v = pair.job_json(&pair.high, &benign);
    assert_eq!(v["state"], "finished");
    assert_eq!(v["result"]["exit_code"], 0);
    assert_eq!(v["result"]["stdout"], "1\n");
    // The background process did not outlive its job. The test process adopts orphans (see `Pair::serve`), so a
    // process that escaped the sandbox would still be found among its own descendants, next to the services.
    let descendants = crate::harness::descendants();
    assert!(
        descendants
            .iter()
            .any(|(_, cmdline)| cmdline.ends_with(&format!("serve --config {}", pair.high_s()))),
        "the high side's `ferry serve` is among this test's descendants: {descendants:?}"
    );
    let survivors: Vec<(u32, String)> = descendants
        .into_iter()
        .filter(|(_, cmdline)| cmdline == "sleep 1000")
        .collect();
    assert!(
        survivors.is_empty(),
        "a job's process survived: {survivors:?}"
    );
}

/// This machine's own external address: a job must not reach even that (no route at all), and a test never sends
/// anything off the machine.
fn host_address() -> String {
    let out = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| a.contains('.') && !a.starts_with("127."))
        .unwrap_or("127.0.0.2")
        .to_string()
}

#[test]
fn a_message_no_worker_can_handle_is_dead_lettered_and_the_next_job_runs() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    let high_url = std::fs::read_to_string(&pair.high)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("amqp_url = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let depth = |queue: &str| {
        crate::harness::rabbitmqctl_lines(&[
            "list_queues",
            "-p",
            &pair.high_vhost,
            "name",
            "messages",
        ])
        .iter()
        .find_map(|l| {
            l.strip_prefix(&format!("{queue}\t"))
                .map(|n| n.trim().to_string())
        })
    };
    // The high side declared its queues (with dead-lettering) once it serves.
    pair.wait_for("ferry.jobs.dead", || depth("ferry.jobs.dead"));
    crate::harness::python(
        "import pika,sys; c=pika.BlockingConnection(pika.URLParameters(sys.argv[1])); ch=c.channel(); \
         ch.confirm_delivery(); ch.basic_publish('', 'ferry.jobs.python', b'not a job', pika.BasicProperties(delivery_mode=2))",
        &[&high_url],
    );
    pair.wait_for("the dead-letter queue", || {
        (depth("ferry.jobs.dead").as_deref() == Some("1")).then_some(())
    });
    assert!(pair
        .serve_logs()
        .contains("not a job message: dead-lettered"));
    // The workers carry on.
    let job = pair.submit_code(&alice, "print('still here')\n");
    pair.wait_for("intake", || {
        (pair.state_on(&pair.low, &job).as_deref() == Some("submitted")).then_some(())
    });
    pair.ok(&["review", "approve", "--config", pair.low_s(), &job]);
    pair.carry(&pair.low, &pair.high).expect("the job crosses");
    pair.wait_for("the worker", || {
        (pair.state_on(&pair.high, &job).as_deref() == Some("finished")).then_some(())
    });
}

#[test]
fn a_job_gets_the_resources_it_asks_for_up_to_the_caps() {
    let mut pair = Pair::with_broker();
    pair.configure(
        &pair.low.clone(),
        &[("max_memory_mb = 8192", "max_memory_mb = 4096")],
    );
    pair.register_dataset();
    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    // Over the low side's cap: refused at intake, naming it.
    let greedy = pair.submit_code_with(&alice, "print(1)\n", &["--memory-mb", "65536"]);
    pair.wait_for("the refusal", || {
        (pair.state_on(&pair.low, &greedy).as_deref() == Some("failed")).then_some(())
    });
    let refused = pair.job_json(&pair.low, &greedy);
    let reason = refused["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("max_memory_mb") && reason.contains("4096"),
        "{refused:#}"
    );
    // Within the caps: the job runs with what it asked for.
    let code = "import os, resource\n\
                print('cpus', len(os.sched_getaffinity(0)))\n\
                print('memory', resource.getrlimit(resource.RLIMIT_AS)[0] >> 20)\n";
    let job = pair.submit_code_with(&alice, code, &["--cpus", "1", "--memory-mb", "3072"]);
    pair.wait_for("intake", || {
        (pair.state_on(&pair.low, &job).as_deref() == Some("submitted")).then_some(())
    });
    pair.ok(&["review", "approve", "--config", pair.low_s(), &job]);
    pair.carry(&pair.low, &pair.high).expect("the job crosses");
    pair.wait_for("the worker", || {
        (pair.state_on(&pair.high, &job).as_deref() == Some("finished")).then_some(())
    });
    let shown = pair.job_json(&pair.high, &job);
    let stdout = shown["result"]["stdout"].as_str().unwrap_or_default();
    assert!(
        stdout.contains("cpus 1") && stdout.contains("memory 3072"),
        "{shown:#}"
    );
}
