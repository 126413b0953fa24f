//! A pair of Ferry sides in a temporary directory, on two fresh vhosts, with helpers to run the binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The `ferry` binary built beside this test binary (scripts/test builds it first).
pub fn ferry_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("ferry");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p ferry` first (scripts/test does)",
        bin.display()
    );
    bin
}

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("running rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A unique short tag for names on the shared broker.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Two initialised sides that trust each other.
pub struct Pair {
    /// Holds everything on disk.
    pub dir: tempfile::TempDir,
    /// Low side's ferry.toml.
    pub low: PathBuf,
    /// High side's ferry.toml.
    pub high: PathBuf,
    /// The low side's vhost.
    pub low_vhost: String,
    vhosts: Vec<String>,
    users: Vec<String>,
    serves: Vec<Child>,
}

impl Pair {
    /// Two sides on fresh vhosts, keys pinned both ways.
    pub fn create() -> Pair {
        let dir = tempfile::tempdir().expect("tempdir");
        let tag = unique("it");
        let low_vhost = format!("ferry-{tag}-low");
        let high_vhost = format!("ferry-{tag}-high");
        for v in [&low_vhost, &high_vhost] {
            rabbitmqctl(&["add_vhost", v]);
            rabbitmqctl(&["set_permissions", "-p", v, "guest", ".*", ".*", ".*"]);
        }
        let pair = Pair {
            low: dir.path().join("low/ferry.toml"),
            high: dir.path().join("high/ferry.toml"),
            dir,
            low_vhost: low_vhost.clone(),
            vhosts: vec![low_vhost.clone(), high_vhost.clone()],
            users: Vec::new(),
            serves: Vec::new(),
        };
        let root = pair.dir.path().to_path_buf();
        pair.ok(&[
            "init",
            "--side",
            "low",
            "--dir",
            root.join("low").to_str().unwrap(),
            "--amqp",
            &format!("amqp://guest:guest@127.0.0.1:5672/{low_vhost}"),
        ]);
        pair.ok(&[
            "init",
            "--side",
            "high",
            "--dir",
            root.join("high").to_str().unwrap(),
            "--amqp",
            &format!("amqp://guest:guest@127.0.0.1:5672/{high_vhost}"),
        ]);
        pair.ok(&[
            "trust",
            "add",
            "--config",
            pair.low_s(),
            root.join("high/public.txt").to_str().unwrap(),
        ]);
        pair.ok(&[
            "trust",
            "add",
            "--config",
            pair.high_s(),
            root.join("low/public.txt").to_str().unwrap(),
        ]);
        pair
    }

    /// Low config path as &str.
    pub fn low_s(&self) -> &str {
        self.low.to_str().unwrap()
    }

    /// High config path as &str.
    pub fn high_s(&self) -> &str {
        self.high.to_str().unwrap()
    }

    /// A side's directory.
    pub fn side_dir(&self, config: &Path) -> PathBuf {
        config.parent().unwrap().to_path_buf()
    }

    /// Runs ferry with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_env(args, &[])
    }

    /// Runs ferry with `args` and extra environment.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(ferry_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("FERRY_CONFIG")
            .env_remove("FERRY_AMQP_URL");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("running ferry")
    }

    /// Runs ferry and returns stdout, failing the test with stderr if it failed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ferry {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates a researcher account; returns its AMQP URL.
    pub fn researcher(&mut self, name: &str) -> String {
        let name = unique(&format!("{name}-"));
        let password = "correct-horse-battery";
        let mut child = Command::new(ferry_bin())
            .args(["researcher", "add", "--config", self.low_s(), &name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ferry researcher add");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "researcher add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.users.push(name.clone());
        format!("amqp://{name}:{password}@127.0.0.1:5672/{}", self.low_vhost)
    }

    /// Registers the demo dataset on the high side and carries the catalog down.
    pub fn register_dataset(&self) {
        let root = self.dir.path();
        let private = root.join("private.csv");
        let mock = root.join("mock.csv");
        std::fs::write(
            &private,
            "id,text,source\n1,grow Bacillus subtilis at home,forum-crawl\n2,a poem,wiki\n",
        )
        .unwrap();
        std::fs::write(
            &mock,
            "id,text,source\n1,mock subtilis row,mock-a\n2,another,mock-b\n",
        )
        .unwrap();
        self.ok(&[
            "asset",
            "add",
            "--config",
            self.high_s(),
            "training-data.csv",
            "--private",
            private.to_str().unwrap(),
            "--mock",
            mock.to_str().unwrap(),
            "--description",
            "test data",
        ]);
        let out = self.carry(&self.high, &self.low).expect("catalog bundle");
        assert!(out.contains("catalog of 1 asset"), "{out}");
    }

    /// Exports from `from` and imports the bundle into `to` by name; returns the import's stdout, or None when
    /// there was nothing to export.
    pub fn carry(&self, from: &Path, to: &Path) -> Option<String> {
        let bundle = self.export(from)?;
        Some(self.ok(&[
            "import",
            "--config",
            to.to_str().unwrap(),
            bundle.to_str().unwrap(),
        ]))
    }

    /// Exports; returns the bundle copied into a transit directory (as a courier would carry it).
    pub fn export(&self, from: &Path) -> Option<PathBuf> {
        let out = self.ok(&["export", "--config", from.to_str().unwrap()]);
        let path = PathBuf::from(out.trim());
        if !path.exists() {
            assert!(out.contains("nothing pending"), "{out}");
            return None;
        }
        let transit = self.dir.path().join("transit");
        std::fs::create_dir_all(&transit).unwrap();
        let target = transit.join(path.file_name().unwrap());
        std::fs::copy(&path, &target).unwrap();
        Some(target)
    }

    /// Starts `ferry serve` for a side.
    pub fn serve(&mut self, config: &Path) {
        let log = std::fs::File::create(config.with_extension("serve.log")).unwrap();
        let child = Command::new(ferry_bin())
            .args(["serve", "--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ferry serve");
        self.serves.push(child);
    }

    /// Waits until `f` returns Some, or panics after `secs`.
    pub fn wait_for<T>(&self, secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            if start.elapsed() > Duration::from_secs(secs) {
                let logs: String = [&self.low, &self.high]
                    .iter()
                    .map(|c| {
                        std::fs::read_to_string(c.with_extension("serve.log")).unwrap_or_default()
                    })
                    .collect();
                panic!("timed out waiting for {what}\nserve logs:\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The state of a job on a side, read with `ferry review show --json`.
    pub fn state_on(&self, config: &Path, job: &str) -> Option<String> {
        let out = self.run(&[
            "review",
            "show",
            "--config",
            config.to_str().unwrap(),
            job,
            "--json",
        ]);
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["state"].as_str().map(str::to_string)
    }
}

impl Pair {
    /// Sends SIGTERM to every `ferry serve` started so far and returns how each exited (None: still running after
    /// ten seconds, then killed).
    pub fn stop_serves(&mut self) -> Vec<Option<std::process::ExitStatus>> {
        let mut out = Vec::new();
        for mut child in std::mem::take(&mut self.serves) {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            let status = loop {
                if let Ok(Some(status)) = child.try_wait() {
                    break Some(status);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            out.push(status);
        }
        out
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for child in &mut self.serves {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
        for child in &mut self.serves {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for v in &self.vhosts {
            let _ = Command::new("rabbitmqctl")
                .args(["delete_vhost", v])
                .output();
        }
        for u in &self.users {
            let _ = Command::new("rabbitmqctl")
                .args(["delete_user", u])
                .output();
        }
    }
}

impl Pair {
    /// Rewrites lines of a side's ferry.toml: each `(from, to)` replaces a whole line.
    pub fn configure(&self, config: &Path, edits: &[(&str, &str)]) {
        let text = std::fs::read_to_string(config).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            let replaced = edits
                .iter()
                .find(|(from, _)| line.trim() == *from)
                .map(|(_, to)| *to);
            out.push_str(replaced.unwrap_or(line));
            out.push('\n');
        }
        for (from, _) in edits {
            assert!(
                text.lines().any(|l| l.trim() == *from),
                "{from:?} not in {}",
                config.display()
            );
        }
        std::fs::write(config, out).unwrap();
    }

    /// Submits `code` as the researcher at `url`; returns the job id.
    pub fn submit_code(&self, url: &str, code: &str) -> String {
        let path = self.dir.path().join(format!("{}.py", unique("job")));
        std::fs::write(&path, code).unwrap();
        let out = self.run_env(
            &[
                "submit",
                "--asset",
                "training-data.csv",
                path.to_str().unwrap(),
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

    /// A job's record on a side, as `ferry review show --json` gives it.
    pub fn job_json(&self, config: &Path, job: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(&[
            "review",
            "show",
            "--config",
            config.to_str().unwrap(),
            job,
            "--json",
        ]))
        .unwrap()
    }
}
