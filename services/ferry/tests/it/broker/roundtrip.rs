//! The whole air-gap round trip, and what researchers see along it.

use std::process::Command;

use crate::harness::Pair;

const EVAL: &str = r#"
import csv, os
rows = list(csv.DictReader(open("inputs/training-data.csv")))
hits = sorted({r["source"] for r in rows if "subtilis" in r["text"].lower()})
os.makedirs("outputs", exist_ok=True)
open("outputs/sources.txt", "w").write("\n".join(hits) + "\n")
print("sources:", ",".join(hits))
print("job", os.environ["FERRY_JOB_ID"])
"#;

fn write_script(pair: &Pair, code: &str) -> String {
    let path = pair
        .dir
        .path()
        .join(format!("job-{}.py", crate::harness::unique("s")));
    std::fs::write(&path, code).unwrap();
    path.to_str().unwrap().to_string()
}

fn submit(pair: &Pair, url: &str, script: &str) -> String {
    let out = pair.run_env(
        &[
            "submit",
            "--asset",
            "training-data.csv",
            "--title",
            "subtilis by source",
            script,
        ],
        &[("FERRY_AMQP_URL", url)],
    );
    assert!(
        out.status.success(),
        "submit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn full_round_trip_delivers_the_released_result() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    let env = [("FERRY_AMQP_URL", alice.as_str())];

    // The researcher sees the catalog and tests on the mock, in the same sandbox the high side uses.
    let assets = pair.wait_for("the assets call", || {
        let out = pair.run_env(&["assets", "--json"], &env);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    });
    assert!(assets.contains("training-data.csv"), "{assets}");
    let script = write_script(&pair, EVAL);
    let out_dir = pair.dir.path().join("mock-out");
    let mock = pair.run_env(
        &[
            "run",
            "--mock",
            "--asset",
            "training-data.csv",
            "--out",
            out_dir.to_str().unwrap(),
            &script,
        ],
        &env,
    );
    assert!(
        mock.status.success(),
        "run --mock: {}",
        String::from_utf8_lossy(&mock.stderr)
    );
    assert!(String::from_utf8_lossy(&mock.stdout).contains("sources: mock-a"));
    assert_eq!(
        std::fs::read_to_string(out_dir.join("sources.txt")).unwrap(),
        "mock-a\n"
    );

    let job = submit(&pair, &alice, &script);
    pair.wait_for("intake", || {
        (pair.state_on(&pair.low, &job).as_deref() == Some("submitted")).then_some(())
    });
    pair.ok(&["review", "approve", "--config", pair.low_s(), &job]);
    let imported = pair
        .carry(&pair.low, &pair.high)
        .expect("a bundle with the job");
    assert!(imported.contains(&job), "{imported}");
    pair.wait_for("the worker", || {
        (pair.state_on(&pair.high, &job).as_deref() == Some("finished")).then_some(())
    });
    let review = pair.ok(&["review", "show", "--config", pair.high_s(), &job]);
    assert!(review.contains("sources: forum-crawl"), "{review}");
    pair.ok(&["review", "release", "--config", pair.high_s(), &job]);
    pair.carry(&pair.high, &pair.low)
        .expect("a bundle with the result");

    let results_dir = pair.dir.path().join("results");
    let out = pair.run_env(
        &[
            "results",
            &job,
            "--wait",
            "--timeout",
            "600",
            "--out",
            results_dir.to_str().unwrap(),
        ],
        &env,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "results: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sources: forum-crawl"), "{stdout}");
    assert!(stdout.contains(&format!("job {job}")), "{stdout}");
    assert!(
        stdout.contains("receipt: verified, signed by the high side's key"),
        "{stdout}"
    );

    // The receipt: which code, runtime and asset version the result came from, and what the release carries.
    let out = pair.run_env(&["results", &job, "--json"], &env);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let receipt = &shown[0]["receipt"];
    assert_eq!(receipt["verified"], true, "{receipt}");
    assert_eq!(receipt["run"]["runtime"], "python");
    assert_eq!(
        receipt["run"]["code_sha256"],
        ferry_core::sha256_hex(&std::fs::read(&script).unwrap())
    );
    let private = std::fs::read(pair.dir.path().join("private.csv")).unwrap();
    assert_eq!(
        receipt["run"]["assets"][0]["version"],
        ferry_core::sha256_hex(&private)
    );
    let released: Vec<&str> = receipt["released"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(released, vec!["outputs/sources.txt", "stderr", "stdout"]);
    assert_eq!(
        std::fs::read_to_string(results_dir.join(&job).join("sources.txt")).unwrap(),
        "forum-crawl\n"
    );
    pair.wait_for("delivery", || {
        (pair.state_on(&pair.low, &job).as_deref() == Some("delivered")).then_some(())
    });

    // The audit trail names who approved and who released.
    let shown = pair.ok(&["review", "show", "--config", pair.low_s(), &job, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    let actors: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert!(actors.iter().any(|a| a.starts_with("owner:")), "{actors:?}");

    // Only an acknowledgement is left to carry, and it is not acknowledged back.
    let ack = pair
        .carry(&pair.low, &pair.high)
        .expect("an acknowledgement bundle");
    assert!(ack.contains("acknowledgement of"), "{ack}");
    assert!(pair.export(&pair.high).is_none());
    assert!(pair.export(&pair.low).is_none());
}

#[test]
fn rejection_and_withholding_reach_the_researcher_with_their_reasons() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let alice = pair.researcher("alice");
    pair.serve(&pair.low.clone());
    pair.serve(&pair.high.clone());
    let env = [("FERRY_AMQP_URL", alice.as_str())];
    let script = write_script(&pair, EVAL);

    let rejected = submit(&pair, &alice, &script);
    pair.wait_for("intake", || pair.state_on(&pair.low, &rejected));
    let empty_reason = pair.run(&[
        "review",
        "reject",
        "--config",
        pair.low_s(),
        &rejected,
        "--reason",
        " ",
    ]);
    assert!(!empty_reason.status.success());
    pair.ok(&[
        "review",
        "reject",
        "--config",
        pair.low_s(),
        &rejected,
        "--reason",
        "prints raw rows",
    ]);
    let out = pair.run_env(&["results", &rejected, "--wait", "--timeout", "600"], &env);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("rejected: prints raw rows"), "{stdout}");
    assert_eq!(out.status.code(), Some(5), "rejected");

    let withheld = submit(&pair, &alice, &script);
    pair.wait_for("intake", || pair.state_on(&pair.low, &withheld));
    pair.ok(&["review", "approve", "--config", pair.low_s(), &withheld]);
    pair.carry(&pair.low, &pair.high).unwrap();
    pair.wait_for("the worker", || {
        (pair.state_on(&pair.high, &withheld).as_deref() == Some("finished")).then_some(())
    });
    pair.ok(&[
        "review",
        "withhold",
        "--config",
        pair.high_s(),
        &withheld,
        "--reason",
        "names a source",
    ]);
    pair.carry(&pair.high, &pair.low).unwrap();
    let out = pair.run_env(&["status", &withheld, "--json"], &env);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "withheld");
    assert_eq!(v["reason"], "names a source");
    assert!(
        v.get("result").is_none(),
        "a withheld result must not leave: {v}"
    );
    let out = pair.run_env(&["results", &withheld], &env);
    assert_eq!(out.status.code(), Some(6), "withheld");
}

#[test]
fn two_researchers_results_stay_apart() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let alice = pair.researcher("alice");
    let bob = pair.researcher("bob");
    pair.serve(&pair.low.clone());
    let script = write_script(&pair, EVAL);
    let job = submit(&pair, &alice, &script);
    pair.wait_for("intake", || pair.state_on(&pair.low, &job));

    // Bob cannot ask about Alice's job...
    let out = pair.run_env(&["status", &job], &[("FERRY_AMQP_URL", &bob)]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("you have no job"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // ...nor read her results queue, nor publish as her.
    let alice_user = alice
        .split("://")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    let probe = format!(
        r#"
import pika, sys
conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = conn.channel()
try:
    ch.basic_get("ferry.results.{alice_user}")
    print("READ-ALLOWED")
except pika.exceptions.ChannelClosedByBroker as e:
    print("read refused", e.reply_code)
ch = conn.channel()
ch.confirm_delivery()
try:
    ch.basic_publish("ferry.requests", "job", b"{{}}", pika.BasicProperties(user_id="{alice_user}"))
    print("SPOOF-ALLOWED")
except pika.exceptions.ChannelClosedByBroker as e:
    print("spoof refused", e.reply_code)
"#
    );
    let out = Command::new("python3")
        .args(["-c", &probe, &bob])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("read refused 403"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("spoof refused 406"), "{text}");
    // Alice sees her own.
    let out = pair.run_env(&["status", &job], &[("FERRY_AMQP_URL", &alice)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_python_client_built_from_the_schemas_flows_through() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let carol = pair.researcher("carol");
    pair.serve(&pair.low.clone());
    let schemas = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");
    let client = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/it/broker/schema_client.py"
    );
    let out = Command::new("python3")
        .args([
            client,
            &carol,
            schemas,
            &crate::harness::patience().as_secs().to_string(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = stdout
        .lines()
        .find_map(|l| l.strip_prefix("submitted "))
        .expect("job id")
        .to_string();
    assert!(stdout.contains("update submitted"), "{stdout}");
    assert!(stdout.contains("refused: "), "{stdout}");
    assert_eq!(pair.state_on(&pair.low, &job).as_deref(), Some("submitted"));
}
