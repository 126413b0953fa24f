//! Commands say what is wrong, and how to fix it, without a broker.

use crate::harness::Pair;

#[test]
fn commands_name_what_is_wrong() {
    let pair = Pair::create();
    let (_, err) = pair.fails(
        1,
        &["review", "approve", "--config", pair.low_s(), "no-such-job"],
    );
    assert!(err.contains("no job \"no-such-job\""), "{err}");
    let (_, err) = pair.fails(1, &["review", "release", "--config", pair.low_s(), "x"]);
    assert!(err.contains("high-side command"), "{err}");
    assert!(
        err.contains("hint: each side's owner commands take that side's own ferry.toml"),
        "{err}"
    );
    let (_, err) = pair.fails(1, &["export", "--config", "/nonexistent/ferry.toml"]);
    assert!(err.contains("/nonexistent/ferry.toml"), "{err}");
    pair.fails(2, &["assets"]);
    // No broker answers on port 1; offline, nothing answers at all. (A broker that refuses the login:
    // broker::cli.)
    let out = pair.run_env(
        &["assets"],
        &[("FERRY_AMQP_URL", "amqp://nobody:wrong@127.0.0.1:1/%2f")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("hint: is RabbitMQ running?"), "{err}");
    assert!(!err.contains("wrong"), "the password is not printed: {err}");
    let out = pair.ok(&["export", "--config", pair.low_s()]);
    assert!(out.contains("nothing pending"), "{out}");
}

#[test]
fn a_side_is_made_once_and_pins_only_the_other_side() {
    let pair = Pair::create();
    let low_dir = pair.side_dir(&pair.low);
    let (_, err) = pair.fails(
        1,
        &["init", "--side", "low", "--dir", low_dir.to_str().unwrap()],
    );
    assert!(err.contains("exists already"), "{err}");
    let (_, err) = pair.fails(
        1,
        &[
            "trust",
            "add",
            "--config",
            pair.low_s(),
            low_dir.join("public.txt").to_str().unwrap(),
        ],
    );
    assert!(err.contains("own identity"), "{err}");
    // Pinning the same peer again changes nothing.
    pair.ok(&[
        "trust",
        "add",
        "--config",
        pair.low_s(),
        pair.side_dir(&pair.high)
            .join("public.txt")
            .to_str()
            .unwrap(),
    ]);
}

#[test]
fn review_approve_of_several_ids_reports_each_and_fails_if_any_failed() {
    let pair = Pair::create();
    let (stdout, stderr) = pair.fails(
        1,
        &[
            "review",
            "approve",
            "--config",
            pair.low_s(),
            "nope-1",
            "nope-2",
        ],
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("job nope-1: not decided: no job \"nope-1\"")),
        "{stdout}{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("job nope-2: not decided")),
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains("2 of 2 job(s) were not decided"),
        "{stderr}"
    );
}

#[test]
fn init_prints_the_next_steps_and_gives_each_side_its_own_vhost() {
    let pair = Pair::create();
    for (side, step) in [
        ("high", "ferry asset add --config"),
        ("low", "ferry researcher add --config"),
    ] {
        let dir = pair.dir.path().join(format!("fresh-{side}"));
        let out = pair.ok(&["init", "--side", side, "--dir", dir.to_str().unwrap()]);
        assert!(out.contains("next steps:"), "{out}");
        assert!(out.contains("ferry trust add --config"), "{out}");
        assert!(out.contains(step), "{out}");
        assert!(out.contains("ferry serve --config"), "{out}");
        assert!(out.contains("--provision"), "{out}");
        let toml = std::fs::read_to_string(dir.join("ferry.toml")).unwrap();
        assert!(
            toml.contains(&format!("@127.0.0.1:5672/ferry-{side}\"")),
            "a side's own vhost by default: {toml}"
        );
    }
}

/// `ferry researcher ...` needs the management API: a broker on another host without `[broker] management_url`,
/// or an API that does not answer, is named as such, before anything is done and without the password.
#[test]
fn researcher_commands_name_a_missing_or_silent_management_api() {
    let pair = Pair::create();
    let low = pair.low_s();
    let original = std::fs::read_to_string(&pair.low).unwrap();
    let remote = original.replace(
        "guest:guest@127.0.0.1:5672/",
        "svc:service-secret@broker.invalid:5672/",
    );
    assert_ne!(remote, original);
    std::fs::write(&pair.low, &remote).unwrap();
    let out = pair.run_stdin(
        &["researcher", "add", "--config", low, "alice"],
        "alice-password\n",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("set [broker] management_url"), "{err}");
    assert!(
        !err.contains("service-secret") && !err.contains("alice-password"),
        "{err}"
    );

    // An API named but silent: port 1 on loopback (nothing answers there; offline, nothing answers at all).
    std::fs::write(
        &pair.low,
        original.replacen(
            "\n[",
            "\n[broker]\nmanagement_url = \"http://127.0.0.1:1\"\n\n[",
            1,
        ),
    )
    .unwrap();
    for args in [
        vec!["researcher", "add", "--config", low, "alice"],
        vec!["researcher", "list", "--config", low],
        vec!["researcher", "remove", "--config", low, "alice"],
        vec!["researcher", "password", "--config", low, "alice"],
    ] {
        let out = pair.run_stdin(&args, "alice-password\n", &[]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("management API at http://127.0.0.1:1 does not answer"),
            "{args:?}: {err}"
        );
        assert!(err.contains("rabbitmq_management"), "{err}");
        assert!(!err.contains("alice-password"), "{err}");
    }
}

#[test]
fn version_names_the_commit_and_completions_and_man_page_come_from_the_cli() {
    let pair = Pair::create();
    let version = pair.ok(&["--version"]);
    let inner = version
        .trim()
        .strip_prefix(&format!("ferry {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|v| v.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{version}"));
    assert!(!inner.is_empty(), "{version}");
    let bash = pair.ok(&["completions", "bash"]);
    for word in ["review", "doctor", "reviewer", "--withhold"] {
        assert!(bash.contains(word), "{word} not in the completions");
    }
    let script = pair.dir.path().join("ferry.bash");
    std::fs::write(&script, &bash).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(syntax.success(), "the bash completions do not parse");
    let man = pair.ok(&["manpage"]);
    assert!(man.contains(".TH ferry 1"), "{man}");
    assert!(man.contains("doctor"), "{man}");
}

#[test]
fn a_runtime_that_cannot_run_in_the_sandbox_is_refused_and_nothing_is_registered() {
    let pair = crate::harness::Pair::create();
    let (_, err) = pair.fails(
        1,
        &[
            "runtime",
            "add",
            "--config",
            pair.high_s(),
            "gone",
            "--python",
            "/nonexistent/bin/python",
        ],
    );
    assert!(err.contains("/nonexistent/bin/python"), "{err}");
    let (_, err) = pair.fails(
        1,
        &[
            "runtime",
            "add",
            "--config",
            pair.high_s(),
            "shell",
            "--python",
            "/bin/sh",
        ],
    );
    assert!(err.contains("does not run as Python 3"), "{err}");
    let (_, err) = pair.fails(
        1,
        &[
            "runtime",
            "add",
            "--config",
            pair.high_s(),
            "Bad",
            "--python",
            "/usr/bin/python3",
        ],
    );
    assert!(err.contains("lower case"), "{err}");
    let (_, err) = pair.fails(
        1,
        &[
            "runtime",
            "add",
            "--config",
            pair.low_s(),
            "sys",
            "--python",
            "/usr/bin/python3",
        ],
    );
    assert!(err.contains("high side"), "{err}");
    let (_, err) = pair.fails(
        1,
        &[
            "runtime",
            "add",
            "--config",
            pair.high_s(),
            "python",
            "--python",
            "/usr/bin/python3",
        ],
    );
    assert!(err.contains("configured"), "{err}");
    let listed = pair.ok(&["runtime", "list", "--config", pair.high_s(), "--json"]);
    let list: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["python"], "nothing half-registered");

    // The system interpreter registers under a name of its own, and can be removed.
    let added = pair.ok(&[
        "runtime",
        "add",
        "--config",
        pair.high_s(),
        "system",
        "--python",
        "/usr/bin/python3",
    ]);
    assert!(added.contains("runtime system registered"), "{added}");
    pair.ok(&["runtime", "remove", "--config", pair.high_s(), "system"]);
    let (_, err) = pair.fails(
        1,
        &["runtime", "remove", "--config", pair.high_s(), "system"],
    );
    assert!(err.contains("no runtime named system"), "{err}");
}
