//! Low-side intake: every bad request ends in a state the researcher can see, nothing is silently dropped.

use std::process::Command;

use crate::harness::Pair;

#[test]
fn bad_requests_are_refused_with_reasons_the_researcher_receives() {
    let mut pair = Pair::create();
    pair.register_dataset();
    let dave = pair.researcher("dave");
    pair.serve(&pair.low.clone());
    let user = dave
        .split("://")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_string();
    // Publishes raw bodies as the researcher, then collects the updates from their results queue.
    let script = r#"
import json, sys, time, uuid, pika
url, user = sys.argv[1], sys.argv[2]
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel(); ch.confirm_delivery()
def send(body, job_id=None):
    ch.basic_publish("ferry.requests", "job", body, pika.BasicProperties(user_id=user, message_id=job_id))
good = {"job_id": str(uuid.uuid4()), "runtime": "python", "code": "print(1)", "assets": ["training-data.csv"]}
send(b"{not json")
ch.basic_publish("ferry.requests", "job", json.dumps(dict(good, job_id=str(uuid.uuid4()))).encode())  # no user_id
send(json.dumps(dict(good, job_id=str(uuid.uuid4()), assets=["secret-weights"])).encode())
send(json.dumps(dict(good, job_id=str(uuid.uuid4()), code="x" * 300000)).encode())
send(json.dumps(dict(good, job_id=str(uuid.uuid4()), extra=1)).encode())
send(json.dumps(good).encode(), good["job_id"])
send(json.dumps(good).encode(), good["job_id"])  # a retry: harmless
send(json.dumps(dict(good, code="print(2)")).encode(), good["job_id"])  # same id, other content
reasons, states = [], []
deadline = time.time() + 30
while time.time() < deadline and len(reasons) + len(states) < 6:
    m, p, b = ch.basic_get("ferry.results." + user, auto_ack=True)
    if m is None:
        time.sleep(0.2); continue
    u = json.loads(b)
    (reasons if u["state"] == "failed" else states).append(u)
for u in reasons: print("failed:", u.get("job_id"), u["reason"])
for u in states: print("state:", u["job_id"], u["state"])
"#;
    let out = Command::new("python3")
        .args(["-c", script, &dave, &user])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("not valid JSON"), "{text}");
    assert!(text.contains("unknown asset \"secret-weights\""), "{text}");
    assert!(text.contains("code is 300000 bytes"), "{text}");
    assert!(text.contains("extra"), "{text}");
    assert!(
        text.contains("already used by a different request"),
        "{text}"
    );
    assert_eq!(
        text.matches("state: ").count(),
        1,
        "one submitted job, the retry changed nothing: {text}"
    );

    // The unparsable message and the one without a user_id were dead-lettered for the operators, not dropped.
    let dead = pair.wait_for(10, "the dead-letter queue", || {
        let out = Command::new("rabbitmqctl")
            .args([
                "list_queues",
                "-p",
                &pair.low_vhost,
                "name",
                "messages",
                "--quiet",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .any(|l| l.starts_with("ferry.requests.dead\t2"))
            .then_some(text)
    });
    assert!(dead.contains("ferry.requests.dead"));
    // Every refused request with a readable id is recorded as failed, so its status can be asked later.
    let failed = pair.ok(&[
        "review",
        "list",
        "--config",
        pair.low_s(),
        "--all",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&failed).unwrap();
    let states: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "failed").count(),
        3,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "submitted").count(),
        1,
        "{states:?}"
    );
}

#[test]
fn commands_name_what_is_wrong() {
    let pair = Pair::create();
    let out = pair.run(&["review", "approve", "--config", pair.low_s(), "no-such-job"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no job \"no-such-job\""));
    let out = pair.run(&["review", "release", "--config", pair.low_s(), "x"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("high-side command"));
    let out = pair.run(&["export", "--config", "/nonexistent/ferry.toml"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/ferry.toml"));
    let out = pair.run(&["assets"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let out = pair.run_env(
        &["assets"],
        &[("FERRY_AMQP_URL", "amqp://nobody:wrong@127.0.0.1:5672/%2f")],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hint:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = pair.ok(&["export", "--config", pair.low_s()]);
    assert!(out.contains("nothing pending"), "{out}");
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let mut pair = Pair::create();
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    // Both sides up: the low side answers calls.
    let url = pair.researcher("hal");
    pair.wait_for(30, "the low side to answer", || {
        pair.run_env(&["assets"], &[("FERRY_AMQP_URL", &url)])
            .status
            .success()
            .then_some(())
    });
    for status in pair.stop_serves() {
        let status = status.expect("ferry serve did not stop within ten seconds of SIGTERM");
        assert!(status.success(), "{status:?}");
    }
}
