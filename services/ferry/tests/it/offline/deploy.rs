//! deploy/'s systemd units and compose file, checked without a broker: the units pass `systemd-analyze verify`
//! (with the built binary in place of /usr/local/bin/ferry, which verify requires to exist) and keep what
//! bubblewrap needs; the compose file and the cluster example are well-formed YAML and JSON of the shape they
//! promise. Both tools are required: a missing one fails the test (scripts/prereqs installs them).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ferry_bin;

fn deploy_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(name)
}

fn deploy_file(name: &str) -> String {
    let path = deploy_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The unit's settings (`Key=value` lines outside comments), in order.
fn settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn setting<'a>(s: &'a [(String, String)], key: &str) -> Option<&'a str> {
    s.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    for (template, instance) in [
        ("ferry-serve@.service", "ferry-serve@low.service"),
        ("ferry-serve@.service", "ferry-serve@high.service"),
        ("ferry-worker@.service", "ferry-worker@1.service"),
    ] {
        let unit = deploy_file(&format!("systemd/{template}"));
        assert!(unit.contains("/usr/local/bin/ferry "), "{template}");
        let unit = unit.replace(
            "/usr/local/bin/ferry ",
            &format!("{} ", ferry_bin().display()),
        );
        std::fs::write(dir.path().join(template), unit).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(dir.path().join(instance))
            .env("SYSTEMD_LOG_COLOR", "0")
            .output()
            .expect(
                "running systemd-analyze (Debian package systemd; scripts/prereqs installs it)",
            );
        let stderr = String::from_utf8_lossy(&out.stderr);
        // verify exits 0 after mere warnings (an unknown key, a value it ignores): any complaint fails here.
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "systemd-analyze verify {instance}: {}\n{stderr}",
            out.status
        );
    }
}

/// A unit that verify would flag fails the test above: the check can fail.
#[test]
fn systemd_analyze_verify_flags_a_bad_unit() {
    let dir = tempfile::tempdir().unwrap();
    let unit = deploy_file("systemd/ferry-worker@.service")
        .replace(
            "/usr/local/bin/ferry ",
            &format!("{} ", ferry_bin().display()),
        )
        .replace("RestartSec=5s", "RestartSec=soon");
    std::fs::write(dir.path().join("ferry-worker@.service"), unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(dir.path().join("ferry-worker@1.service"))
        .output()
        .expect("running systemd-analyze (Debian package systemd; scripts/prereqs installs it)");
    assert!(String::from_utf8_lossy(&out.stderr).contains("soon"));
}

#[test]
fn the_units_restart_on_failure_cap_worker_memory_and_leave_bubblewrap_its_namespaces() {
    for (name, command) in [
        ("ferry-serve@.service", "serve"),
        ("ferry-worker@.service", "worker"),
    ] {
        let s = settings(&deploy_file(&format!("systemd/{name}")));
        assert_eq!(setting(&s, "Restart"), Some("on-failure"), "{name}");
        assert!(
            setting(&s, "ExecStart")
                .is_some_and(|e| e.contains(&format!("ferry {command} --config"))),
            "{name}"
        );
        // SIGTERM to ferry alone, so that it drains; not to the jobs' sandboxes.
        assert_eq!(setting(&s, "KillMode"), Some("mixed"), "{name}");
        assert_eq!(setting(&s, "NoNewPrivileges"), Some("yes"), "{name}");
        let namespaces = setting(&s, "RestrictNamespaces").unwrap_or_default();
        for ns in ["user", "mnt", "pid", "net", "ipc", "uts", "cgroup"] {
            assert!(
                namespaces.split_whitespace().any(|n| n == ns),
                "{name}: RestrictNamespaces forbids {ns}, which bubblewrap makes"
            );
        }
        // The per-job cgroups are made in the unit's delegated subtree, which must stay writable.
        let delegated = setting(&s, "Delegate").unwrap_or_default();
        for controller in ["memory", "pids"] {
            assert!(
                delegated.split_whitespace().any(|c| c == controller),
                "{name}: Delegate= must hand over {controller} for the jobs' cgroups"
            );
        }
        assert!(
            setting(&s, "ProtectControlGroups").is_none(),
            "{name}: ProtectControlGroups= makes the delegated subtree read-only"
        );
        // Each of these breaks bubblewrap: see the unit's comments.
        for forbidden in [
            "PrivateUsers",
            "ProtectKernelTunables",
            "ProtectKernelLogs",
            "ProtectProc",
            "ProcSubset",
            "SystemCallFilter",
            "MemoryDenyWriteExecute",
        ] {
            assert!(
                setting(&s, forbidden).is_none(),
                "{name} sets {forbidden}, which breaks bubblewrap"
            );
        }
    }
    let worker = settings(&deploy_file("systemd/ferry-worker@.service"));
    let max = setting(&worker, "MemoryMax").expect("the worker unit caps memory");
    let gib: u64 = max
        .strip_suffix('G')
        .and_then(|g| g.parse().ok())
        .expect(max);
    // Above the largest memory a job may ask for by default (worker.max_memory_mb = 8192).
    assert!(gib * 1024 > 8192, "MemoryMax={max}");
}

/// Runs python3 with PyYAML on `script` (reading the file named by argv[1]); its stdout.
fn python_yaml(script: &str, file: &Path) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(file)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "python3 with PyYAML (Debian package python3-yaml; scripts/prereqs installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_compose_demo_has_two_brokers_and_two_sides_that_share_nothing_but_the_courier_volume() {
    let script = r#"
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
print(json.dumps(doc))
"#;
    let compose: serde_json::Value =
        serde_json::from_str(&python_yaml(script, &deploy_path("compose/compose.yaml"))).unwrap();
    let services = compose["services"].as_object().expect("services");
    for name in [
        "rabbitmq-low",
        "rabbitmq-high",
        "ferry-low",
        "ferry-high",
        "setup",
    ] {
        assert!(services.contains_key(name), "no service {name}");
    }
    // Each side reaches its own broker only: they share a network with it and with nothing else.
    let networks = |s: &str| -> Vec<String> {
        services[s]["networks"]
            .as_array()
            .unwrap_or_else(|| panic!("{s} has no networks"))
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    };
    for (side, net) in [("ferry-low", "low"), ("ferry-high", "high")] {
        assert_eq!(networks(side), [net], "{side}");
        assert_eq!(networks(&format!("rabbitmq-{net}")), [net]);
        assert!(
            services[side]["command"].to_string().contains("\"serve\""),
            "{side} does not run ferry serve"
        );
    }
    let setup = services["setup"].to_string();
    for (side, broker) in [("low", "rabbitmq-low"), ("high", "rabbitmq-high")] {
        assert!(
            setup.contains(&format!("--side {side} --dir /srv/{side} --amqp amqp://ferry-{side}:CHANGE-ME@{broker}:5672/ferry-{side}")),
            "{setup}"
        );
    }
    for (broker, defs) in [
        ("rabbitmq-low", "rabbitmq-low.definitions.json"),
        ("rabbitmq-high", "rabbitmq-high.definitions.json"),
    ] {
        let text = services[broker].to_string();
        assert!(text.contains(defs), "{broker} does not load {defs}: {text}");
    }
    // The one thing both sides mount: the courier's transit directory (the air gap, carried by hand).
    let volumes = |s: &str| -> Vec<String> {
        services[s]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().split(':').next().unwrap().to_string())
            .collect()
    };
    let (low, high) = (volumes("ferry-low"), volumes("ferry-high"));
    let shared: Vec<&String> = low.iter().filter(|v| high.contains(v)).collect();
    assert_eq!(shared, [&"transit".to_string()], "{low:?} {high:?}");
    // The compose file's own paths exist beside it.
    for rel in [
        "Dockerfile",
        "rabbitmq.conf",
        "../rabbitmq-low.definitions.json",
        "../rabbitmq-high.definitions.json",
    ] {
        assert!(
            deploy_path("compose").join(rel).is_file(),
            "deploy/compose/{rel}"
        );
    }
}

#[test]
fn the_cluster_example_forms_three_nodes_and_loads_the_quorum_definitions_serve_declares() {
    let conf = deploy_file("cluster/rabbitmq.conf");
    let lines: Vec<&str> = conf
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    for node in 1..=3 {
        let want = format!("cluster_formation.classic_config.nodes.{node} = rabbit@ferry-mq{node}");
        assert!(lines.contains(&want.as_str()), "{want} not in {conf}");
    }
    assert!(
        lines.contains(&"cluster_partition_handling = pause_minority"),
        "{conf}"
    );
    assert!(
        lines.contains(&"load_definitions = /etc/rabbitmq/rabbitmq-high-quorum.definitions.json"),
        "{conf}"
    );
    // The definitions are the single-node quorum ones, unchanged: an x-quorum-initial-group-size that serve does
    // not declare would make its declare fail (PRECONDITION_FAILED). Without it a quorum queue gets three
    // replicas, RabbitMQ's default.
    for file in [
        "rabbitmq-high-quorum.definitions.json",
        "rabbitmq-low-quorum.definitions.json",
    ] {
        let text = deploy_file(file);
        assert!(!text.contains("x-quorum-initial-group-size"), "{file}");
        let defs: serde_json::Value = serde_json::from_str(&text).unwrap();
        let durable: Vec<_> = defs["queues"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|q| q["durable"] == true)
            .collect();
        assert!(!durable.is_empty());
        for q in durable {
            assert_eq!(q["arguments"]["x-queue-type"], "quorum", "{file}: {q}");
        }
    }
    let readme = deploy_file("cluster/README.md");
    assert!(readme.contains("queue_type = \"quorum\""), "{readme}");
}
