//! Faults that need root: a small full disk (a tmpfs of the test's own), and the broker going away, on a private
//! RabbitMQ node of the test's own (its own node name, port, database and log directory, no plugins), stopped and
//! started by the test: never the shared broker on 5672.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ferry_bin;
use crate::harness::{patience, python, unique, Pair};

/// A RabbitMQ node started for one test, stopped (and its files removed) when dropped.
struct PrivateBroker {
    node: String,
    port: u16,
    dir: tempfile::TempDir,
}

fn ctl(node: &str, args: &[&str]) -> std::process::Output {
    Command::new("rabbitmqctl")
        .arg("-n")
        .arg(node)
        .args(args)
        .output()
        .expect("running rabbitmqctl (broker tests need it, as root)")
}

impl PrivateBroker {
    fn start() -> PrivateBroker {
        let dir = tempfile::Builder::new()
            .prefix("ferry-private-broker")
            .tempdir_in("/tmp")
            .unwrap();
        // A port of its own, away from the shared broker's 5672 and its distribution port.
        let port = 5700 + (std::process::id() % 200) as u16;
        let node = format!("{}@localhost", unique("ferryfault"));
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .unwrap();
        let chown = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let p = |name: &str| dir.path().join(name).display().to_string();
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", (port + 20000).to_string())
            .env("RABBITMQ_MNESIA_BASE", p("mnesia"))
            .env("RABBITMQ_LOG_BASE", p("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", p("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", p("rabbitmq.conf"))
            .env("RABBITMQ_PID_FILE", p("pid"))
            .current_dir("/tmp")
            .status()
            .expect("rabbitmq-server");
        assert!(status.success(), "rabbitmq-server -detached: {status}");
        let broker = PrivateBroker { node, port, dir };
        broker.wait_until_up();
        broker
    }

    /// Waits until the node accepts AMQP connections.
    fn wait_until_up(&self) {
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                start.elapsed() < patience(),
                "the private broker {} did not come up; its log is in {}",
                self.node,
                self.dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Stops the broker application (every connection drops; the node and its queues on disk stay).
    fn stop_app(&self) {
        let out = ctl(&self.node, &["stop_app"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start_app(&self) {
        let out = ctl(&self.node, &["start_app"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.wait_until_up();
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = ctl(&self.node, &["stop"]);
    }
}

/// Publishes `n` job requests as `guest` (persistent, confirmed) to the broker at `url`; returns their ids.
fn publish(url: &str, n: usize) -> Vec<String> {
    let script = r#"
import json, sys, uuid, pika
conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = conn.channel(); ch.confirm_delivery()
for _ in range(int(sys.argv[2])):
    job_id = str(uuid.uuid4())
    body = json.dumps({"job_id": job_id, "runtime": "python", "code": "print(1)", "assets": ["training-data.csv"]}).encode()
    ch.basic_publish("ferry.requests", "job", body, pika.BasicProperties(
        content_type="application/json", user_id="guest", message_id=job_id, delivery_mode=2))
    print(job_id)
"#;
    python(script, &[url, &n.to_string()])
        .lines()
        .map(str::to_string)
        .collect()
}

/// The ids of the jobs the low side recorded (every one must be `submitted`: none refused).
fn recorded(pair: &Pair) -> Vec<String> {
    let out = pair.ok(&[
        "review",
        "list",
        "--config",
        pair.low_s(),
        "--all",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|j| {
            assert_eq!(j["state"], "submitted", "{j}");
            j["job_id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn serve(config: &Path, log: &Path) -> Child {
    Command::new(ferry_bin())
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("ferry serve")
}

#[test]
fn the_low_side_rides_out_a_broker_outage_and_loses_nothing() {
    let broker = PrivateBroker::start();
    let pair = Pair::create();
    pair.register_dataset();
    let low_text = std::fs::read_to_string(&pair.low).unwrap();
    let url_line = low_text
        .lines()
        .find(|l| l.starts_with("amqp_url"))
        .unwrap()
        .to_string();
    pair.configure(
        &pair.low,
        &[(
            url_line.as_str(),
            &format!("amqp_url = \"{}\"", broker.url()),
        )],
    );
    let log: PathBuf = pair.dir.path().join("low-serve.log");
    let mut child = serve(&pair.low, &log);
    // Before the outage: the side declares its queues and takes requests.
    let mut sent = Vec::new();
    let before_outage = Instant::now();
    loop {
        // The first publish may race the side's declaring its exchange.
        let out = Command::new("python3")
            .args([
                "-c",
                "import pika,sys; c=pika.BlockingConnection(pika.URLParameters(sys.argv[1])); c.channel().exchange_declare('ferry.requests', passive=True)",
                &broker.url(),
            ])
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            before_outage.elapsed() < patience(),
            "the exchange never appeared"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    sent.extend(publish(&broker.url(), 20));
    pair.wait_for("the first requests", || {
        (recorded(&pair).len() == 20).then_some(())
    });
    // The broker goes away while requests wait in its queue, and comes back.
    sent.extend(publish(&broker.url(), 10));
    broker.stop_app();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "ferry serve exited when the broker went away:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    broker.start_app();
    let back = Instant::now();
    sent.extend(publish(&broker.url(), 10));
    pair.wait_for("every request after the outage", || {
        (recorded(&pair).len() >= sent.len()).then_some(())
    });
    let recovered = back.elapsed();
    let mut got = recorded(&pair);
    got.sort();
    let mut want = sent.clone();
    want.sort();
    assert_eq!(got, want, "nothing lost, nothing twice");
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("connect"), "{logs}");
    println!(
        "outage recovery: {} requests recorded {:.1} s after the broker came back (40 sent, 0 lost, 0 twice)",
        sent.len(),
        recovered.as_secs_f64()
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// A tmpfs of `mib` MiB mounted over `dir` for one test (root only), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, mib: u32) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount tmpfs on {}", dir.display());
        SmallDisk(dir.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_during_import_keeps_the_bundle_and_the_next_import_takes_it() {
    let pair = Pair::create();
    pair.register_dataset();
    let ids = vec![pair.job_on_high()];
    let data: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
        .collect();
    pair.released_on_high(&ids, &[("big.bin", data.clone())]);
    let results = pair.export(&pair.high).expect("the results");
    // The low side's work/ (where an import stages what it decrypts) is a small disk, nearly full.
    let work = pair.side_dir(&pair.low).join("work");
    let _disk = SmallDisk::mount(&work, 8);
    let filler = work.join("filler");
    std::fs::write(&filler, vec![0u8; 6 << 20]).unwrap();
    let inbox = pair.side_dir(&pair.low).join("inbox");
    let carried = inbox.join(results.file_name().unwrap());
    std::fs::copy(&results, &carried).unwrap();
    let (_, err) = pair.fails(1, &["import", "--config", pair.low_s()]);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(carried.exists(), "the bundle stays in inbox/: {err}");
    let quarantine = pair.side_dir(&pair.low).join("quarantine");
    assert_eq!(
        std::fs::read_dir(&quarantine).unwrap().count(),
        0,
        "nothing quarantined"
    );
    let staged: Vec<_> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "filler")
        .collect();
    assert!(staged.is_empty(), "no staging left behind: {staged:?}");
    // Space again: the same bundle imports, once, whole.
    std::fs::remove_file(&filler).unwrap();
    let out = pair.ok(&["import", "--config", pair.low_s()]);
    assert!(out.contains("released"), "{out}");
    let store = ferry_core::Store::open(&pair.side_dir(&pair.low).join("state.db")).unwrap();
    let stored = store.outputs(&ids[0]).unwrap();
    assert!(stored.len() == 1 && stored[0].data == data);
}
