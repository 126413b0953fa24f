//! The researcher's commands: what they check before publishing, the job ids they accept, what they exit with.

use crate::harness::Pair;

const CODE: &str = "print(open('inputs/training-data.csv').read().count('subtilis'))\n";

fn script(pair: &Pair) -> String {
    let path = pair
        .dir
        .path()
        .join(format!("{}.py", crate::harness::unique("job")));
    std::fs::write(&path, CODE).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn submit_refuses_an_unknown_asset_or_runtime_before_publishing() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    let env = [("FERRY_AMQP_URL", alice.as_str())];
    let script = script(&pair);
    pair.wait_for("the low side to answer", || {
        pair.run_env(&["assets"], &env)
            .status
            .success()
            .then_some(())
    });

    let out = pair.run_env(&["submit", "--asset", "training-dta.csv", &script], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown asset \"training-dta.csv\""), "{err}");
    assert!(err.contains("the catalog has training-data.csv"), "{err}");
    assert!(out.stdout.is_empty(), "no job id is printed");

    let out = pair.run_env(
        &[
            "submit",
            "--asset",
            "training-data.csv",
            "--runtime",
            "julia",
            &script,
        ],
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unknown runtime \"julia\""), "{err}");
    assert!(err.contains("offers python"), "{err}");

    // Fetching a mock shows that it is under way, on a terminal.
    let out_file = pair.dir.path().join("mock-copy.csv");
    let (code, screen) = pair.on_terminal(
        &[
            "mock",
            "fetch",
            "training-data.csv",
            "--out",
            out_file.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code, Some(0), "{screen}");
    assert!(
        screen.contains("fetching the mock of training-data.csv"),
        "{screen:?}"
    );

    // Nothing reached the low side: the researcher has no job at all.
    let jobs = pair.run_env(&["results", "--json"], &env);
    assert!(jobs.status.success());
    let v: serde_json::Value = serde_json::from_slice(&jobs.stdout).unwrap();
    assert_eq!(v, serde_json::json!([]), "{v}");
}

#[test]
fn researcher_commands_take_a_unique_prefix_of_ones_own_job_ids() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    // A name longer than the RESEARCHER heading, to see the columns after it stay aligned.
    let alice = pair.researcher("alice-long-account");
    let bob = pair.researcher("bob");
    pair.serve(&pair.low.clone());
    let job = pair.submit_code(&alice, CODE);
    pair.wait_for("intake", || pair.state_on(&pair.low, &job));
    let prefix = &job[..8];

    let env = [("FERRY_AMQP_URL", alice.as_str())];
    let out = pair.run_env(&["status", prefix, "--json"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["job_id"], job.as_str());
    let out = pair.run_env(&["results", &prefix.to_uppercase()], &env);
    assert_eq!(out.status.code(), Some(3), "still pending");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&job));

    // Someone else's prefix is not theirs to name.
    let out = pair.run_env(&["status", prefix], &[("FERRY_AMQP_URL", bob.as_str())]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("you have no job whose id starts with"),
        "{err}"
    );
    let out = pair.run_env(&["cancel", "not-hex!"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a job id"));

    let out = pair.run_env(&["cancel", prefix], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pair.state_on(&pair.low, &job).as_deref(), Some("cancelled"));

    // The owner's list: every row's columns start where the heading's do.
    let list = pair.ok(&["review", "list", "--config", pair.low_s(), "--all"]);
    let lines: Vec<&str> = list.lines().collect();
    let columns: Vec<usize> = ["STATE", "RESEARCHER", "UPDATED", "TITLE"]
        .iter()
        .map(|h| lines[0].find(h).unwrap())
        .collect();
    for line in &lines[1..] {
        assert!(line.contains("alice-long-account"), "{list}");
        for &col in &columns {
            assert_eq!(
                line.as_bytes()[col - 1],
                b' ',
                "a cell runs into column {col}:\n{list}"
            );
            assert_ne!(line.as_bytes()[col], b' ', "a cell starts late:\n{list}");
        }
    }
}

#[test]
fn results_exit_codes_tell_pending_failed_and_rejected_apart() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    // Intake on this low side takes very little code, so a job `ferry submit` lets through fails there.
    pair.configure(
        &pair.low.clone(),
        &[("max_code_bytes = 262144", "max_code_bytes = 64")],
    );
    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    let env = [("FERRY_AMQP_URL", alice.as_str())];

    let pending = pair.submit_code(&alice, "print(1)\n");
    pair.wait_for("intake", || pair.state_on(&pair.low, &pending));
    assert_eq!(
        pair.run_env(&["results", &pending], &env).status.code(),
        Some(3)
    );

    let failed = pair.submit_code(&alice, &format!("print({:?})\n", "x".repeat(100)));
    pair.wait_for("intake", || pair.state_on(&pair.low, &failed));
    let out = pair.run_env(&["results", &failed], &env);
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    pair.ok(&[
        "review",
        "reject",
        "--config",
        pair.low_s(),
        &pending,
        "--reason",
        "no",
    ]);
    let out = pair.run_env(&["results", &pending, "--wait"], &env);
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stdout).contains("rejected: no"));
    // Without a job, the list of them all: 0.
    assert_eq!(pair.run_env(&["results"], &env).status.code(), Some(0));
}
