//! A pair of Ferry sides in a temporary directory, with helpers to run the binary. [`Pair::create`] touches
//! nothing outside the directory; [`Pair::with_broker`] (or the first [`Pair::serve`] or [`Pair::researcher`])
//! adds the two vhosts on the real broker, and dropping the pair removes them, its researchers' accounts and the
//! `ferry serve` processes it started.
//!
//! Shared with `examples/intake_bench.rs`, which includes this file and defines its own `ferry_bin()`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::ferry_bin;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The password [`Pair::researcher`] gives every researcher.
pub const RESEARCHER_PASSWORD: &str = "correct-horse-battery";

/// How long a wait for a condition may take before the test fails. Generous on purpose: the waits end as soon as
/// the condition holds, and a loaded machine must not turn slowness into failures. `FERRY_TEST_WAIT_SECS`
/// overrides it.
pub fn patience() -> Duration {
    let secs = std::env::var("FERRY_TEST_WAIT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    Duration::from_secs(secs)
}

/// Runs `rabbitmqctl ARGS`; it must succeed.
pub fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("running rabbitmqctl (broker tests need it on PATH, as root)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `rabbitmqctl ARGS --quiet --no-table-headers` prints (it must succeed).
pub fn rabbitmqctl_lines(args: &[&str]) -> Vec<String> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .args(["--quiet", "--no-table-headers"])
        .output()
        .expect("running rabbitmqctl (broker tests need it on PATH, as root)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Removes vhosts and accounts a test made on the shared broker, when dropped (even when the test fails).
#[derive(Default)]
pub struct BrokerNames {
    /// Vhosts to delete.
    pub vhosts: Vec<String>,
    /// Accounts to delete.
    pub users: Vec<String>,
}

impl Drop for BrokerNames {
    fn drop(&mut self) {
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
    /// The low side's vhost (named in its ferry.toml; it exists only once [`Pair::broker`] ran).
    pub low_vhost: String,
    /// The high side's vhost.
    pub high_vhost: String,
    vhosts_made: bool,
    users: Vec<String>,
    serves: Vec<Child>,
}

impl Pair {
    /// Two sides, keys pinned both ways; nothing on the broker.
    pub fn create() -> Pair {
        let dir = tempfile::tempdir().expect("tempdir");
        let tag = unique("it");
        let low_vhost = format!("ferry-{tag}-low");
        let high_vhost = format!("ferry-{tag}-high");
        let pair = Pair {
            low: dir.path().join("low/ferry.toml"),
            high: dir.path().join("high/ferry.toml"),
            dir,
            low_vhost,
            high_vhost,
            vhosts_made: false,
            users: Vec::new(),
            serves: Vec::new(),
        };
        let root = pair.dir.path().to_path_buf();
        for (side, vhost) in [("low", &pair.low_vhost), ("high", &pair.high_vhost)] {
            pair.ok(&[
                "init",
                "--side",
                side,
                "--dir",
                root.join(side).to_str().unwrap(),
                "--amqp",
                &format!("amqp://guest:guest@127.0.0.1:5672/{vhost}"),
            ]);
        }
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

    /// Two sides on fresh vhosts of the real broker.
    pub fn with_broker() -> Pair {
        let mut pair = Pair::create();
        pair.broker();
        pair
    }

    /// Makes the two sides' vhosts (once), with guest allowed everything on them.
    pub fn broker(&mut self) {
        if self.vhosts_made {
            return;
        }
        self.vhosts_made = true;
        for v in [&self.low_vhost, &self.high_vhost] {
            rabbitmqctl(&["add_vhost", v]);
            rabbitmqctl(&["set_permissions", "-p", v, "guest", ".*", ".*", ".*"]);
        }
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

    /// Runs ferry with `args` on a terminal (a pseudo-terminal that python3's `pty` module opens, as stdin,
    /// stdout and stderr); returns the exit code and everything the terminal received.
    pub fn on_terminal(&self, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
        const PTY: &str = r#"
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        data = os.read(fd, 65536)
    except OSError:
        break
    if not data:
        break
    out += data
_, status = os.waitpid(pid, 0)
sys.stdout.buffer.write(out)
sys.exit(os.waitstatus_to_exitcode(status))
"#;
        let mut cmd = Command::new("python3");
        cmd.args(["-c", PTY])
            .arg(ferry_bin())
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("FERRY_CONFIG")
            .env_remove("FERRY_AMQP_URL");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("running ferry on a pseudo-terminal");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
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

    /// Runs ferry, expecting it to fail with exit code `code`; returns stdout and stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> (String, String) {
        self.fails_env(code, args, &[])
    }

    /// [`Pair::fails`] with extra environment.
    pub fn fails_env(&self, code: i32, args: &[&str], env: &[(&str, &str)]) -> (String, String) {
        let out = self.run_env(args, env);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(code),
            "ferry {args:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
        (stdout, stderr)
    }

    /// Creates a researcher account on the low side's vhost; returns its AMQP URL.
    pub fn researcher(&mut self, name: &str) -> String {
        self.broker();
        let name = unique(&format!("{name}-"));
        let out = self.researcher_add(&name, RESEARCHER_PASSWORD);
        assert!(
            out.status.success(),
            "researcher add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.researcher_url(&name)
    }

    /// The AMQP URL of researcher `name` (made by [`Pair::researcher_add`] with [`RESEARCHER_PASSWORD`]).
    pub fn researcher_url(&self, name: &str) -> String {
        format!(
            "amqp://{name}:{RESEARCHER_PASSWORD}@127.0.0.1:5672/{}",
            self.low_vhost
        )
    }

    /// Runs `ferry researcher add --config LOW NAME` with `password` on stdin, whatever the broker holds; the
    /// account (if made) is removed with the pair.
    pub fn researcher_add(&mut self, name: &str, password: &str) -> Output {
        self.researcher_add_env(name, password, &[])
    }

    /// [`Pair::researcher_add`] with extra environment (a failpoint, say).
    pub fn researcher_add_env(
        &mut self,
        name: &str,
        password: &str,
        env: &[(&str, &str)],
    ) -> Output {
        self.users.push(name.to_string());
        let low = self.low_s().to_string();
        self.run_stdin(
            &["researcher", "add", "--config", &low, name],
            &format!("{password}\n"),
            env,
        )
    }

    /// Runs ferry with `args`, `input` on its stdin and extra environment.
    pub fn run_stdin(&self, args: &[&str], input: &str, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(ferry_bin());
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("FERRY_CONFIG")
            .env_remove("FERRY_AMQP_URL")
            .env_remove("FERRY_FAILPOINT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("running ferry");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Submits and approves `n` jobs of researcher `alice` on the low side, straight in its state store (no
    /// broker needed); returns their ids.
    pub fn approved_jobs(&self, n: usize) -> Vec<String> {
        use ferry_core::{JobState, Side};
        let mut store =
            ferry_core::Store::open(&self.side_dir(&self.low).join("state.db")).unwrap();
        let mut ids = Vec::new();
        for i in 0..n {
            let request = ferry_core::wire::JobRequest {
                job_id: uuid::Uuid::new_v4(),
                title: format!("job {i}"),
                description: String::new(),
                runtime: "python".into(),
                code: format!("print({i})\n"),
                assets: vec!["training-data.csv".into()],
                revises: None,
                resources: None,
            };
            let id = request.job_id.to_string();
            let tx = store.begin(Side::Low).unwrap();
            tx.submit(&request, "alice").unwrap();
            tx.transition(
                &id,
                &[JobState::Submitted],
                JobState::Approved,
                "owner:t",
                None,
            )
            .unwrap();
            tx.commit().unwrap();
            ids.push(id);
        }
        ids
    }

    /// One job of alice's carried to the high side (both sides offline); returns its id.
    pub fn job_on_high(&self) -> String {
        let ids = self.approved_jobs(1);
        let bundle = self.export(&self.low).expect("the job");
        self.ok(&[
            "import",
            "--config",
            self.high_s(),
            bundle.to_str().unwrap(),
        ]);
        ids.into_iter().next().unwrap()
    }

    /// Runs (as a worker would, with `outputs`) and releases each of `ids` on the high side, straight in its
    /// state store (no worker needed).
    pub fn released_on_high(&self, ids: &[String], outputs: &[(&str, Vec<u8>)]) {
        use ferry_core::{JobState, Side};
        let mut side = ferry_transfer::SideDir::open(&self.high).unwrap();
        let rows: Vec<_> = outputs
            .iter()
            .map(|(n, d)| ferry_core::store::output_row(n, d.clone()))
            .collect();
        for id in ids {
            let tx = side.store.begin(Side::High).unwrap();
            tx.transition(id, &[JobState::Exported], JobState::Running, "worker", None)
                .unwrap();
            let result = ferry_core::store::StoredResult {
                exit_code: Some(0),
                summary: "exited with status 0".into(),
                stdout: format!("answer for {id}\n").into_bytes(),
                stderr: Vec::new(),
                stdout_truncated: false,
                stderr_truncated: false,
                unsandboxed: false,
            };
            tx.store_result(id, &result, &rows).unwrap();
            tx.store_checks(id, &[]).unwrap();
            tx.transition(id, &[JobState::Running], JobState::Finished, "worker", None)
                .unwrap();
            tx.commit().unwrap();
            ferry_transfer::review::release(
                &mut side,
                id,
                &ferry_transfer::review::ReleaseRequest {
                    actor: "owner:t",
                    ..Default::default()
                },
            )
            .unwrap();
        }
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
        Some(self.transit(&path))
    }

    /// A copy of `file` in the transit directory.
    pub fn transit(&self, file: &Path) -> PathBuf {
        let transit = self.dir.path().join("transit");
        std::fs::create_dir_all(&transit).unwrap();
        let target = transit.join(file.file_name().unwrap());
        std::fs::copy(file, &target).unwrap();
        target
    }

    /// Starts `ferry serve` for a side (making the vhosts first if need be).
    pub fn serve(&mut self, config: &Path) {
        self.serve_with(config, &[]);
    }

    /// [`Pair::serve`] with more arguments (`--metrics 127.0.0.1:0`, ...).
    pub fn serve_with(&mut self, config: &Path, extra: &[&str]) {
        self.broker();
        become_subreaper();
        let log = std::fs::File::create(config.with_extension("serve.log")).unwrap();
        let child = Command::new(ferry_bin())
            .args(["serve", "--config", config.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ferry serve");
        self.serves.push(child);
    }

    /// Waits until the serve of `config` has logged that it is starting: from then on it has its signal handlers,
    /// so a SIGTERM stops it cleanly.
    pub fn wait_until_started(&self, config: &Path) {
        let log = config.with_extension("serve.log");
        self.wait_for("ferry serve to start", || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("starting")
                .then_some(())
        });
    }

    /// Takes a submitted `job` the whole way with both sides serving: intake, the low side's approval, the bundle
    /// to the high side, the run (a failed run panics with its review), the release, the bundle back.
    pub fn approve_run_and_release(&self, job: &str) {
        self.wait_for("intake", || {
            (self.state_on(&self.low, job).as_deref() == Some("submitted")).then_some(())
        });
        self.ok(&["review", "approve", "--config", self.low_s(), job]);
        self.carry(&self.low, &self.high).expect("the job");
        self.wait_for("the worker", || {
            match self.state_on(&self.high, job).as_deref() {
                Some("finished") => Some(()),
                Some("failed") => panic!(
                    "{}",
                    self.ok(&["review", "show", "--config", self.high_s(), job])
                ),
                _ => None,
            }
        });
        self.ok(&["review", "release", "--config", self.high_s(), job]);
        self.carry(&self.high, &self.low).expect("the result");
    }

    /// Waits until `f` returns Some; panics with the serve logs after [`patience`].
    pub fn wait_for<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            if start.elapsed() > patience() {
                panic!(
                    "waited {:?} for {what}\nserve logs:\n{}",
                    start.elapsed(),
                    self.serve_logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The `http://ADDR/metrics` URL a side's `ferry serve --metrics` logged, once it has.
    pub fn metrics_url(&self, config: &Path) -> String {
        let log = config.with_extension("serve.log");
        self.wait_for("ferry serve to log its metrics address", || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let start = text.find("metrics on http://")? + "metrics on ".len();
            let url = text[start..].split_whitespace().next()?;
            url.ends_with("/metrics").then(|| url.to_string())
        })
    }

    /// What the `ferry serve` processes logged so far.
    pub fn serve_logs(&self) -> String {
        [&self.low, &self.high]
            .iter()
            .map(|c| std::fs::read_to_string(c.with_extension("serve.log")).unwrap_or_default())
            .collect()
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

    /// Sends SIGTERM to every `ferry serve` started so far and returns how each exited (None: still running after
    /// [`patience`], then killed).
    pub fn stop_serves(&mut self) -> Vec<Option<std::process::ExitStatus>> {
        let mut children = std::mem::take(&mut self.serves);
        for child in &children {
            terminate(child);
        }
        children
            .iter_mut()
            .map(|c| wait_or_kill(c, patience()))
            .collect()
    }

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
        self.submit_code_with(url, code, &[])
    }

    /// [`Pair::submit_code`] with more `ferry submit` arguments (`--cpus 1`, ...).
    pub fn submit_code_with(&self, url: &str, code: &str, extra: &[&str]) -> String {
        let path = self.dir.path().join(format!("{}.py", unique("job")));
        std::fs::write(&path, code).unwrap();
        let mut args = vec!["submit", "--asset", "training-data.csv"];
        args.extend_from_slice(extra);
        args.push(path.to_str().unwrap());
        let out = self.run_env(&args, &[("FERRY_AMQP_URL", url)]);
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

    /// `ferry status --config CFG --json`.
    pub fn status_json(&self, config: &Path) -> serde_json::Value {
        serde_json::from_str(&self.ok(&["status", "--config", config.to_str().unwrap(), "--json"]))
            .unwrap()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for child in &self.serves {
            terminate(child);
        }
        for child in &mut self.serves {
            wait_or_kill(child, Duration::from_secs(60));
        }
        if self.vhosts_made {
            for v in [&self.low_vhost, &self.high_vhost] {
                let _ = Command::new("rabbitmqctl")
                    .args(["delete_vhost", v])
                    .output();
            }
        }
        for u in &self.users {
            let _ = Command::new("rabbitmqctl")
                .args(["delete_user", u])
                .output();
        }
    }
}

fn terminate(child: &Child) {
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(child),
        rustix::process::Signal::TERM,
    );
}

/// Waits for `child` to exit; kills it after `limit`.
fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Makes this test process the reaper of its orphaned descendants, so that a process that escapes its parent
/// (say, a job's daemon outliving the sandbox) stays in this process's tree, where [`descendants`] finds it,
/// instead of moving under init.
fn become_subreaper() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
            .expect("PR_SET_CHILD_SUBREAPER");
    });
}

/// Every live (not zombie) process descended from this test process, with its command line (arguments joined
/// by spaces). Reads only this process's own tree under /proc, never the whole machine's.
pub fn descendants() -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut todo = children_of(std::process::id());
    while let Some(pid) = todo.pop() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The state follows the parenthesised command name, which may itself hold spaces or parentheses.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if state.is_none() || state == Some("Z") {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline)
            .trim_end_matches('\0')
            .replace('\0', " ");
        out.push((pid, cmdline));
        todo.extend(children_of(pid));
    }
    out
}

/// The children of every thread of `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Bundles high → low that are authentic (signed by a key the low side pinned) but wrong in some other way, for
/// the command line's handling of refusals; ferry-transfer's tests cover each rule.
pub struct Forge {
    keys: ferry_bundle::SideKeys,
    to: ferry_bundle::PublicIdentity,
    dir: PathBuf,
}

impl Forge {
    /// Signs with the keys in `keys_dir` (the high side's, or a copy of keys it retired), encrypts to the low side.
    pub fn new(pair: &Pair, keys_dir: &Path) -> Forge {
        let low = std::fs::read_to_string(pair.side_dir(&pair.low).join("public.txt")).unwrap();
        Forge {
            keys: ferry_bundle::SideKeys::load(keys_dir).unwrap(),
            to: ferry_bundle::PublicIdentity::parse(&low).unwrap(),
            dir: pair.dir.path().to_path_buf(),
        }
    }

    /// A bundle named `name` with sequence `seq` on high-to-low holding one empty acknowledgement.
    pub fn ack_bundle(&self, name: &str, seq: u64) -> PathBuf {
        let records = ferry_core::records::Batch {
            records: vec![ferry_core::records::Record::Ack {
                received: vec![],
                missing: vec![],
            }],
        }
        .encode();
        let now = ferry_core::now();
        let path = self.dir.join(name);
        ferry_bundle::write_bundle(
            std::fs::File::create(&path).unwrap(),
            &self.keys,
            &self.to,
            &ferry_bundle::HeaderParams {
                bundle_id: ferry_bundle::new_bundle_id(),
                channel: ferry_bundle::Channel::HighToLow,
                seq,
                prev_hash: [0; 32],
                created_at: now,
                expires_at: now + 3600,
            },
            &[ferry_bundle::Entry {
                path: ferry_core::records::RECORDS_ENTRY.into(),
                source: ferry_bundle::EntrySource::Bytes(&records),
            }],
        )
        .unwrap();
        path
    }
}

/// The `.reason` file of `bundle` quarantined on the side in `side_dir`; fails unless the bundle is there.
pub fn quarantined(side_dir: &Path, bundle: &Path) -> String {
    let name = bundle.file_name().unwrap().to_str().unwrap();
    let q = side_dir.join("quarantine");
    assert!(q.join(name).exists(), "{name} not in quarantine");
    std::fs::read_to_string(q.join(format!("{name}.reason"))).unwrap()
}

/// Asserts that a `.reason` file records exactly `kind`.
pub fn assert_reason(reason: &str, kind: &str) {
    assert_eq!(
        reason.lines().next(),
        Some(format!("refused: {kind}").as_str()),
        "{reason}"
    );
}

/// Runs a Python 3 `script` with `args` (`sys.argv[1:]`); returns its stdout, failing the test with its stderr
/// when it fails.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
