//! Low-side intake: every bad request ends in a state the researcher can see, nothing is silently dropped.

use std::process::Command;

use crate::harness::Pair;

#[test]
fn bad_requests_are_refused_with_reasons_the_researcher_receives() {
    let mut pair = Pair::with_broker();
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
    ch.basic_publish("ferry.requests", "job", body, pika.BasicProperties(content_type="application/json", user_id=user, message_id=job_id))
good = {"job_id": str(uuid.uuid4()), "runtime": "python", "code": "print(1)", "assets": ["training-data.csv"]}
send(b"{not json")
ch.basic_publish("ferry.requests", "job", json.dumps(dict(good, job_id=str(uuid.uuid4()))).encode())  # no user_id
send(json.dumps(dict(good, job_id=str(uuid.uuid4()), assets=["secret-weights"])).encode())
send(json.dumps(dict(good, job_id=str(uuid.uuid4()), code="x" * 300000)).encode())
send(json.dumps(dict(good, job_id=str(uuid.uuid4()), extra=1)).encode())
plain = str(uuid.uuid4())
ch.basic_publish("ferry.requests", "job", json.dumps(dict(good, job_id=plain)).encode(),
                 pika.BasicProperties(content_type="text/plain", user_id=user, message_id=plain))
send(json.dumps(good).encode(), good["job_id"])
send(json.dumps(good).encode(), good["job_id"])  # a retry: harmless
send(json.dumps(dict(good, code="print(2)")).encode(), good["job_id"])  # same id, other content
# Six updates are due (five refusals, one submitted job). Wait for them however long the machine takes, then
# keep listening while the queue stays quiet for a few seconds, to catch an update the retry should not have caused.
reasons, states = [], []
deadline = time.time() + float(sys.argv[3])
quiet_since = None
while time.time() < deadline:
    m, p, b = ch.basic_get("ferry.results." + user, auto_ack=True)
    if m is None:
        if len(reasons) + len(states) >= 6:
            quiet_since = quiet_since or time.time()
            if time.time() - quiet_since > 3:
                break
        time.sleep(0.2); continue
    quiet_since = None
    u = json.loads(b)
    (reasons if u["state"] == "failed" else states).append(u)
for u in reasons: print("failed:", u.get("job_id"), u["reason"])
for u in states: print("state:", u["job_id"], u["state"])
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &dave,
            &user,
            &crate::harness::patience().as_secs().to_string(),
        ])
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
        text.contains("must have content_type application/json; this one had \"text/plain\""),
        "{text}"
    );
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
    let dead = pair.wait_for("the dead-letter queue", || {
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
        4,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == "submitted").count(),
        1,
        "{states:?}"
    );
    // A request refused before its job id could be read still leaves a trace the researcher can list.
    let out = pair.run_env(&["results", "--json"], &[("FERRY_AMQP_URL", dave.as_str())]);
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["job_id"].is_null()
                && u["state"] == "failed"
                && u["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("not valid JSON"))),
        "{listed:#}"
    );
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let mut pair = Pair::with_broker();
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    // Both sides up: the low side answers calls.
    let url = pair.researcher("hal");
    pair.wait_for("the low side to answer", || {
        pair.run_env(&["assets"], &[("FERRY_AMQP_URL", &url)])
            .status
            .success()
            .then_some(())
    });
    // The high side answers no call: wait for it to say it is starting, or a SIGTERM may come before main.
    pair.wait_until_started(&pair.high.clone());
    for status in pair.stop_serves() {
        let status = status.expect("ferry serve did not stop after SIGTERM");
        assert!(status.success(), "{status:?}");
    }
}

/// CI found a high side killed by a SIGTERM that came while it was still starting: its handler was installed only
/// when the shutdown future was first polled. Now it is installed before the side opens anything.
#[test]
fn serve_terminated_the_moment_it_logs_starting_stops_cleanly() {
    let mut pair = Pair::with_broker();
    for round in 0..5 {
        pair.serve(&pair.high.clone());
        pair.wait_until_started(&pair.high.clone());
        for status in pair.stop_serves() {
            let status = status.expect("ferry serve did not stop after SIGTERM");
            assert!(
                status.success(),
                "round {round}: {status:?}\n{}",
                pair.serve_logs()
            );
        }
    }
}

#[test]
fn intake_refuses_a_bidi_control_in_code_naming_line_and_column() {
    let mut pair = Pair::with_broker();
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
    let script = r#"
import json, sys, time, uuid, pika
url, user = sys.argv[1], sys.argv[2]
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel(); ch.confirm_delivery()
job_id = str(uuid.uuid4())
req = {"job_id": job_id, "runtime": "python", "code": "x = 1\nok = 'a' # \u202e ;b'\n", "assets": ["training-data.csv"]}
ch.basic_publish("ferry.requests", "job", json.dumps(req).encode(), pika.BasicProperties(content_type="application/json", user_id=user, message_id=job_id))
deadline = time.time() + float(sys.argv[3])
while time.time() < deadline:
    m, p, b = ch.basic_get("ferry.results." + user, auto_ack=True)
    if m is None:
        time.sleep(0.2); continue
    u = json.loads(b)
    print("update:", u["state"], u.get("reason"))
    break
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &dave,
            &user,
            &crate::harness::patience().as_secs().to_string(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("update: failed"), "{text}");
    assert!(text.contains("\\u{202e} at line 2, column 12"), "{text}");
}

#[test]
fn a_call_whose_reply_to_names_another_queue_is_not_answered_there() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let alice = pair.researcher("alice");
    let bob = pair.researcher("bob");
    pair.serve(&pair.low.clone());
    let user_of = |url: &str| {
        url.split("://")
            .nth(1)
            .unwrap()
            .split(':')
            .next()
            .unwrap()
            .to_string()
    };
    let (alice_user, bob_user) = (user_of(&alice), user_of(&bob));
    // Alice asks for the catalog with the reply addressed to Bob's results queue, then to ferry.requests, then
    // makes a proper call over direct reply-to: once that is answered, the two before it were handled.
    let script = r#"
import json, sys, time, pika
url, user, victim, patience = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
body = json.dumps({"call": "assets"}).encode()
for target in ["ferry.results." + victim, "ferry.requests"]:
    ch.basic_publish("ferry.requests", "call", body, pika.BasicProperties(
        content_type="application/json", user_id=user, reply_to=target, correlation_id="x"))
got = []
ch.basic_consume("amq.rabbitmq.reply-to", lambda c, m, p, b: got.append(b), auto_ack=True)
ch.basic_publish("ferry.requests", "call", body, pika.BasicProperties(
    content_type="application/json", user_id=user, reply_to="amq.rabbitmq.reply-to", correlation_id="y"))
deadline = time.time() + patience
while not got and time.time() < deadline:
    conn.process_data_events(time_limit=0.2)
print("answered" if got else "NO ANSWER")
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &alice,
            &alice_user,
            &bob_user,
            &crate::harness::patience().as_secs().to_string(),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("answered"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let queues = crate::harness::rabbitmqctl_lines(&[
        "list_queues",
        "-p",
        &pair.low_vhost,
        "name",
        "messages",
    ]);
    let depth = |name: &str| {
        queues
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{name}\t")))
            .map(|n| n.trim().to_string())
    };
    assert_eq!(
        depth(&format!("ferry.results.{bob_user}")).as_deref(),
        Some("0"),
        "{queues:?}"
    );
    assert_eq!(depth("ferry.requests").as_deref(), Some("0"), "{queues:?}");
    let logs = pair.serve_logs();
    assert_eq!(
        logs.matches("not direct reply-to: not answered").count(),
        2,
        "{logs}"
    );
}
