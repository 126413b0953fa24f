//! What the command line says when the broker answers but refuses.

use crate::harness::Pair;

#[test]
fn a_login_the_broker_refuses_gets_a_hint() {
    let pair = Pair::create();
    let out = pair.run_env(
        &["assets"],
        &[("FERRY_AMQP_URL", "amqp://nobody:wrong@127.0.0.1:5672/%2f")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("hint: the broker refused this account"),
        "{err}"
    );
    assert!(
        err.contains("nobody:***@"),
        "the password is not printed: {err}"
    );
}

#[test]
fn a_wrong_password_gets_one_error_line_and_the_account_hint() {
    // guest exists; only its password is wrong.
    let pair = Pair::create();
    let out = pair.run_env(
        &["assets"],
        &[(
            "FERRY_AMQP_URL",
            "amqp://guest:not-the-password@127.0.0.1:5672/%2f",
        )],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "one error line and one hint: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(
        lines[1].starts_with("hint: the broker refused this account"),
        "{err}"
    );
    assert!(!err.contains("is RabbitMQ running"), "{err}");
    assert!(
        !err.contains("ERROR"),
        "no raw AMQP library log lines: {err}"
    );
    assert!(!err.contains("not-the-password"), "{err}");
    // The cause is said once, however deep the chain.
    let error = lines[0];
    let causes: Vec<&str> = error.split(": ").collect();
    for (i, c) in causes.iter().enumerate() {
        assert!(
            !causes[i + 1..].iter().any(|later| later == c),
            "{c:?} repeated in {error}"
        );
    }
}

#[test]
fn answered_calls_log_no_could_not_reply_warning() {
    let mut pair = Pair::with_broker();
    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    let env = [("FERRY_AMQP_URL", alice.as_str())];
    pair.wait_for("the first call", || {
        pair.run_env(&["assets"], &env)
            .status
            .success()
            .then_some(())
    });
    // The low side answers one call at a time and logs a failed reply before it takes the next call, so once
    // this second answer arrives, the first one's warning (if any) is in the log.
    let out = pair.run_env(&["assets", "--json"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = pair.serve_logs();
    assert!(!logs.contains("could not reply"), "{logs}");
    assert!(!logs.contains("WARN"), "{logs}");
}

#[test]
fn serve_logs_written_to_a_file_carry_no_colour_codes() {
    let mut pair = Pair::with_broker();
    pair.serve(&pair.low.clone());
    let logs = pair.wait_for("serve to log", || {
        let logs = pair.serve_logs();
        logs.contains("INFO").then_some(logs)
    });
    assert!(!logs.contains('\u{1b}'), "ESC in a log file: {logs:?}");
}

#[test]
fn a_vhost_the_broker_lacks_gets_the_provision_hint_not_is_rabbitmq_running() {
    let pair = Pair::create();
    let vhost = crate::harness::unique("no-such-vhost-");
    let out = pair.run_env(
        &["assets"],
        &[(
            "FERRY_AMQP_URL",
            &format!("amqp://guest:guest@127.0.0.1:5672/{vhost}"),
        )],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&vhost), "{err}");
    assert!(err.contains("hint: the broker has no such vhost"), "{err}");
    assert!(!err.contains("is RabbitMQ running"), "{err}");
}

#[test]
fn doctor_finds_a_served_pair_healthy() {
    let mut pair = Pair::with_broker();
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    for config in [pair.low.clone(), pair.high.clone()] {
        // Healthy once serve has declared the side's exchanges and queues.
        pair.wait_for("the topology", || {
            let out = pair.run(&["doctor", "--config", config.to_str().unwrap()]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            (out.status.success() && text.contains("ok       topology")).then_some(text)
        });
    }
    let out = pair.ok(&["doctor", "--config", pair.low_s()]);
    assert!(out.trim_end().ends_with("healthy"), "{out}");
    assert!(!out.contains("PROBLEM"), "{out}");
}
