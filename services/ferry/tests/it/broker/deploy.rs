//! deploy/'s RabbitMQ definitions against the real broker: each file imports (`rabbitmqctl import_definitions`)
//! into a test vhost of its own, makes the queues it promises (quorum ones with their delivery limits), and
//! `ferry serve` with the matching `[broker] queue_type` starts on what it made, declaring the same topology
//! without a conflict. A side configured for quorum queues on a broker holding classic ones stops with an error
//! naming the mismatch instead of retrying.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::ferry_bin;
use crate::harness::{patience, rabbitmqctl, rabbitmqctl_lines, unique, BrokerNames, Pair};

/// A file of the repository's deploy/ directory.
fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(name)
}

/// Imports deploy/`file` with its vhost renamed `vhost` and its account renamed to a unique one (removed by
/// `names`), so that nothing on the shared broker outside the test's vhost changes; waits until its queues exist.
fn import(pair: &Pair, file: &str, vhost: &str, names: &mut BrokerNames) -> serde_json::Value {
    let text = std::fs::read_to_string(deploy_file(file)).unwrap();
    let mut defs: serde_json::Value = serde_json::from_str(&text).unwrap();
    let user = unique("ferry-defs-");
    names.users.push(user.clone());
    defs["vhosts"] = serde_json::json!([{ "name": vhost }]);
    for u in defs["users"].as_array_mut().unwrap() {
        u["name"] = user.clone().into();
        u["password"] = unique("pw").into();
    }
    for p in defs["permissions"].as_array_mut().unwrap() {
        p["user"] = user.clone().into();
        p["vhost"] = vhost.into();
    }
    for kind in ["queues", "exchanges", "bindings"] {
        for item in defs[kind].as_array_mut().unwrap() {
            item["vhost"] = vhost.into();
        }
    }
    let path = pair.dir.path().join(file);
    std::fs::write(&path, serde_json::to_vec_pretty(&defs).unwrap()).unwrap();
    rabbitmqctl(&["import_definitions", path.to_str().unwrap()]);
    // The import is asynchronous: it is done once every queue it names exists.
    let want = defs["queues"].as_array().unwrap().len();
    pair.wait_for("the imported queues", || {
        (queues(vhost).len() == want).then_some(())
    });
    defs
}

/// `name type arguments durable` of every queue of `vhost`.
fn queues(vhost: &str) -> Vec<(String, String, String, String)> {
    rabbitmqctl_lines(&[
        "list_queues",
        "-p",
        vhost,
        "name",
        "type",
        "arguments",
        "durable",
    ])
    .into_iter()
    .filter_map(|l| {
        let f: Vec<&str> = l.split('\t').collect();
        (f.len() == 4).then(|| (f[0].into(), f[1].into(), f[2].into(), f[3].into()))
    })
    .collect()
}

fn queue<'a>(
    list: &'a [(String, String, String, String)],
    name: &str,
) -> &'a (String, String, String, String) {
    list.iter()
        .find(|q| q.0 == name)
        .unwrap_or_else(|| panic!("no queue {name} in {list:?}"))
}

/// Sets `[broker] queue_type` in a side's ferry.toml (which `ferry init` writes without a `[broker]` table).
fn set_queue_type(config: &Path, queue_type: &str) {
    let mut text = std::fs::read_to_string(config).unwrap();
    assert!(!text.contains("[broker]"), "{text}");
    text.push_str(&format!("\n[broker]\nqueue_type = \"{queue_type}\"\n"));
    std::fs::write(config, text).unwrap();
}

/// Starts `ferry serve` for `config`, waits until it logs that it serves, stops it with SIGTERM and checks it
/// exited cleanly; returns its log.
fn serves_and_stops(pair: &mut Pair, config: &Path, serving: &str) -> String {
    pair.serve(config);
    let log = config.with_extension("serve.log");
    pair.wait_for(serving, || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains(serving)
            .then_some(())
    });
    let exits = pair.stop_serves();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        exits.iter().all(|e| e.is_some_and(|s| s.success())),
        "{exits:?}\n{text}"
    );
    assert!(!text.contains("ERROR") && !text.contains("WARN"), "{text}");
    text
}

#[test]
fn quorum_definitions_import_with_delivery_limits_and_serve_declares_the_same() {
    let mut pair = Pair::with_broker();
    let mut names = BrokerNames::default();
    let (low_vhost, high_vhost) = (pair.low_vhost.clone(), pair.high_vhost.clone());
    import(
        &pair,
        "rabbitmq-low-quorum.definitions.json",
        &low_vhost,
        &mut names,
    );
    import(
        &pair,
        "rabbitmq-high-quorum.definitions.json",
        &high_vhost,
        &mut names,
    );

    let low = queues(&low_vhost);
    let requests = queue(&low, "ferry.requests");
    assert_eq!(requests.1, "quorum", "{requests:?}");
    assert!(
        requests.2.contains("{\"x-delivery-limit\",5}")
            && requests
                .2
                .contains("{\"x-dead-letter-exchange\",\"ferry.dead\"}"),
        "{requests:?}"
    );
    assert_eq!(queue(&low, "ferry.requests.dead").1, "quorum");
    // Calls are request/reply and transient: a classic queue, as serve declares it whatever the type.
    let calls = queue(&low, "ferry.calls");
    assert_eq!((calls.1.as_str(), calls.3.as_str()), ("classic", "false"));
    let high = queues(&high_vhost);
    let jobs = queue(&high, "ferry.jobs.python");
    assert_eq!(jobs.1, "quorum", "{jobs:?}");
    assert!(jobs.2.contains("{\"x-delivery-limit\",5}"), "{jobs:?}");
    assert_eq!(queue(&high, "ferry.jobs.dead").1, "quorum");

    // serve declares every queue again, with its own arguments: any difference would be PRECONDITION_FAILED.
    for config in [pair.low.clone(), pair.high.clone()] {
        set_queue_type(&config, "quorum");
    }
    let (low_cfg, high_cfg) = (pair.low.clone(), pair.high.clone());
    serves_and_stops(&mut pair, &low_cfg, "low side serving");
    serves_and_stops(&mut pair, &high_cfg, "high side serving");
    // Nothing was added beside what the definitions made.
    assert_eq!(queues(&low_vhost).len(), low.len());
    assert_eq!(queues(&high_vhost).len(), high.len());
}

#[test]
fn classic_definitions_import_and_serve_declares_the_same() {
    let mut pair = Pair::with_broker();
    let mut names = BrokerNames::default();
    let (low_vhost, high_vhost) = (pair.low_vhost.clone(), pair.high_vhost.clone());
    import(
        &pair,
        "rabbitmq-low.definitions.json",
        &low_vhost,
        &mut names,
    );
    import(
        &pair,
        "rabbitmq-high.definitions.json",
        &high_vhost,
        &mut names,
    );
    for (vhost, name) in [
        (&low_vhost, "ferry.requests"),
        (&high_vhost, "ferry.jobs.python"),
    ] {
        let list = queues(vhost);
        let q = queue(&list, name);
        assert_eq!(q.1, "classic", "{q:?}");
        assert!(!q.2.contains("x-delivery-limit"), "{q:?}");
    }
    // No [broker] queue_type: classic, the default.
    let (low_cfg, high_cfg) = (pair.low.clone(), pair.high.clone());
    serves_and_stops(&mut pair, &low_cfg, "low side serving");
    serves_and_stops(&mut pair, &high_cfg, "high side serving");
}

#[test]
fn a_side_set_to_quorum_on_classic_queues_stops_naming_the_mismatch() {
    let pair = Pair::with_broker();
    let mut names = BrokerNames::default();
    for (file, vhost) in [
        ("rabbitmq-low.definitions.json", pair.low_vhost.clone()),
        ("rabbitmq-high.definitions.json", pair.high_vhost.clone()),
    ] {
        import(&pair, file, &vhost, &mut names);
    }
    for config in [&pair.low, &pair.high] {
        set_queue_type(config, "quorum");
        let (code, stderr) = run_to_exit(&["serve", "--config", config.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{stderr}");
        assert!(
            stderr.contains("PRECONDITION_FAILED") && stderr.contains("x-queue-type"),
            "{stderr}"
        );
        assert!(!stderr.contains("connecting again"), "{stderr}");
    }
}

/// Runs ferry with `args` until it exits (killed after the patience, which fails the test); exit code and
/// stderr.
fn run_to_exit(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(ferry_bin())
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > patience() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "ferry {args:?} still running after {:?}: {}",
                start.elapsed(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
