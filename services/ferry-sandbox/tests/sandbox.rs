//! Real jobs under real bubblewrap and python3: what a job can do, and every attack it must not get away with.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_sandbox::{
    check_available, run_job, run_job_with, Isolation, JobOutcome, JobSpec, Limits, Runtime,
    SandboxError, Termination, Tools,
};

/// A scratch area: a private work root (0700, like a side's directory) and a private "assets" directory.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("work")).unwrap();
        fs::create_dir(dir.path().join("assets")).unwrap();
        Scratch { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// An asset file, mode 0644 inside the private directory.
    fn asset(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.path().join("assets").join(name);
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        path
    }

    fn spec(&self, code: &str) -> JobSpec {
        JobSpec {
            job_id: "3f2a1d9e-8c5b-4d7a-9e61-0b2c4d6e8f10".into(),
            code: code.into(),
            inputs: Vec::new(),
            runtime: Runtime::python_default(),
            limits: Limits {
                wall_time: Duration::from_secs(20),
                cpu_seconds: 10,
                max_output_bytes: 10 << 20,
                max_stdio_bytes: 64 << 10,
                ..Limits::default()
            },
            isolation: Isolation::Sandbox,
            work_root: self.path().join("work"),
        }
    }

    /// Nothing is left under the work root after a job.
    fn assert_cleaned_up(&self) {
        let left: Vec<_> = fs::read_dir(self.path().join("work")).unwrap().collect();
        assert!(left.is_empty(), "job directories left behind: {left:?}");
    }
}

fn run(spec: &JobSpec) -> JobOutcome {
    run_job(spec, &AtomicBool::new(false)).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn lines(outcome: &JobOutcome) -> Vec<String> {
    text(&outcome.stdout).lines().map(str::to_owned).collect()
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Whether any process on the host has `marker` in its command line.
fn process_with_marker(marker: &str) -> bool {
    fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        fs::read(entry.path().join("cmdline"))
            .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(marker))
            .unwrap_or(false)
    })
}

#[test]
fn happy_path_reads_inputs_writes_outputs_and_reports() {
    let scratch = Scratch::new();
    let mut spec = scratch.spec(
        r#"
import json, os, sys
data = open("inputs/x").read()
print("input:", data)
print("cwd:", os.getcwd(), sorted(os.listdir(".")))
print("env:", json.dumps(sorted(os.environ)))
print("id:", os.environ["FERRY_JOB_ID"])
print("oops", file=sys.stderr)
open("outputs/a.txt", "w").write(data.upper())
os.makedirs("outputs/sub")
json.dump({"rows": 3}, open("outputs/sub/b.json", "w"))
sys.exit(3)
"#,
    );
    spec.inputs = vec![("x".into(), scratch.asset("x.csv", b"id,text\n1,hello"))];
    let outcome = run(&spec);
    let out = lines(&outcome);
    assert_eq!(outcome.termination, Termination::Exited(3), "{outcome:?}");
    assert_eq!(outcome.exit_code(), Some(3));
    assert!(!outcome.succeeded());
    assert_eq!(outcome.summary(), "exited with status 3");
    assert!(!outcome.unsandboxed);
    assert_eq!(out[0], "input: id,text");
    assert_eq!(out[2], "cwd: /job ['inputs', 'outputs']");
    // Only what the contract allows (and the PWD bwrap sets); nothing of the test process (cargo sets
    // CARGO_* for tests).
    assert_eq!(
        out[3],
        r#"env: ["FERRY_JOB_ID", "HOME", "LANG", "PATH", "PWD"]"#
    );
    assert_eq!(out[4], format!("id: {}", spec.job_id));
    assert_eq!(text(&outcome.stderr), "oops\n");
    let names: Vec<_> = outcome.outputs.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a.txt", "sub/b.json"]);
    assert_eq!(outcome.outputs[0].data, b"ID,TEXT\n1,HELLO");
    assert_eq!(outcome.outputs[1].data, br#"{"rows": 3}"#);
    scratch.assert_cleaned_up();
}

#[test]
fn runtime_env_is_passed_and_worker_env_is_not() {
    let scratch = Scratch::new();
    let mut spec = scratch.spec(
        "import os\nprint(os.environ.get('FERRY_EXTRA'), os.environ.get('CARGO_MANIFEST_DIR'), os.environ['HOME'])",
    );
    spec.runtime.env = vec![("FERRY_EXTRA".into(), "yes".into())];
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    let outcome = run(&spec);
    assert_eq!(lines(&outcome), ["yes None /job"], "{outcome:?}");
}

#[test]
fn job_runs_unprivileged_without_capabilities_or_stray_descriptors() {
    let scratch = Scratch::new();
    let code = r#"
import ctypes, os
print("uid", os.getuid(), os.getgid(), os.getgroups())
caps = [l.split()[1] for l in open("/proc/self/status") if l.startswith(("CapEff", "CapPrm", "CapBnd"))]
print("caps", caps)
open_fds = []
for fd in range(3, 1024):
    try:
        os.fstat(fd)
        open_fds.append((fd, os.readlink(f"/proc/self/fd/{fd}")))
    except OSError:
        pass
print("fds", open_fds)
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(result):
    return "ok" if result == 0 else os.strerror(ctypes.get_errno())
print("new user namespace:", errno_of(libc.unshare(0x10000000)))
print("ptrace:", errno_of(libc.ptrace(0, 0, None, None)))
print("pids", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
print([l.strip() for l in open("/proc/self/status") if l.startswith("NoNewPrivs")])
"#;
    let outcome = run(&scratch.spec(code));
    let out = lines(&outcome);
    assert_eq!(out[0], "uid 65534 65534 []", "{outcome:?}");
    assert_eq!(
        out[1],
        "caps ['0000000000000000', '0000000000000000', '0000000000000000']"
    );
    // A descriptor on a host directory would let the job climb out with openat("..").
    assert_eq!(out[2], "fds []");
    // Refused by the seccomp filter (and, for a non-root worker, by bwrap's --disable-userns too).
    assert_eq!(out[3], "new user namespace: Operation not permitted");
    assert_eq!(out[4], "ptrace: Operation not permitted");
    // Its own pid namespace: bwrap's init and the job itself.
    assert_eq!(out[5], "pids [1, 2]");
    assert_eq!(out[6], "['NoNewPrivs:\\t1']");
}

#[test]
fn ordinary_python_features_work() {
    let scratch = Scratch::new();
    // Threads (clone3 is refused with ENOSYS, so the C library falls back to clone), subprocesses,
    // multiprocessing (POSIX semaphores in /dev/shm), scratch files in /tmp.
    let code = r#"
import concurrent.futures, multiprocessing, subprocess, sys, tempfile
with concurrent.futures.ThreadPoolExecutor(8) as pool:
    print("threads", sum(pool.map(lambda x: x * x, range(100))))
print("subprocess", subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True).stdout.strip())
with multiprocessing.Pool(2) as pool:
    print("processes", pool.map(abs, [-1, -2, -3]))
with tempfile.NamedTemporaryFile() as f:
    f.write(b"x" * 1000)
    print("tmp", f.name.startswith("/tmp/"))
"#;
    let outcome = run(&scratch.spec(code));
    assert_eq!(
        lines(&outcome),
        [
            "threads 328350",
            "subprocess 42",
            "processes [1, 2, 3]",
            "tmp True"
        ],
        "{}",
        text(&outcome.stderr)
    );
}

#[test]
fn memory_no_limit_counts_and_sockets_of_other_families_are_refused() {
    let scratch = Scratch::new();
    // memfd and System V shared memory escape RLIMIT_AS; AF_VSOCK reaches a VM's hypervisor; the rest of the
    // families are kernel surface no job needs. Local and IP sockets, and netlink's route protocol, still open.
    let code = r#"
import ctypes, errno, os, socket
def attempt(what, f):
    try:
        f()
        print(what, "ALLOWED")
    except OSError as e:
        print(what, errno.errorcode.get(e.errno, str(e)))
attempt("memfd", lambda: os.memfd_create("x"))
libc = ctypes.CDLL(None, use_errno=True)
r = libc.shmget(0, 1 << 20, 0o1600)
print("shmget", "ALLOWED" if r >= 0 else errno.errorcode.get(ctypes.get_errno()))
for name in ["AF_VSOCK", "AF_PACKET", "AF_ALG", "AF_BLUETOOTH"]:
    attempt(name, lambda: socket.socket(getattr(socket, name), socket.SOCK_DGRAM if name != "AF_ALG" else socket.SOCK_SEQPACKET).close())
attempt("netlink audit", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 9).close())
for name in ["AF_UNIX", "AF_INET", "AF_INET6"]:
    socket.socket(getattr(socket, name), socket.SOCK_STREAM).close()
    print(name, "opens")
socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()
print("netlink route opens")
"#;
    let outcome = run(&scratch.spec(code));
    assert_eq!(
        lines(&outcome),
        [
            "memfd EPERM",
            "shmget EPERM",
            "AF_VSOCK EAFNOSUPPORT",
            "AF_PACKET EAFNOSUPPORT",
            "AF_ALG EAFNOSUPPORT",
            "AF_BLUETOOTH EAFNOSUPPORT",
            "netlink audit EPROTONOSUPPORT",
            "AF_UNIX opens",
            "AF_INET opens",
            "AF_INET6 opens",
            "netlink route opens",
        ],
        "{}",
        text(&outcome.stderr)
    );
}

/// The red team's finding: RLIMIT_AS is per process, so a job of several processes held several times its
/// `memory_mb`. Where the worker can make a cgroup (a root worker here), the job as a whole is bounded by
/// one; the cgroup is gone after the job.
#[test]
fn processes_of_one_job_together_stay_under_the_job_memory_limit() {
    let scratch = Scratch::new();
    let mut spec = scratch.spec(
        r#"
import subprocess, sys, time
hold = "b = b'x' * (100 << 20); import time; print('held', flush=True); time.sleep(30)"
children = [subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.DEVNULL) for _ in range(4)]
deadline = time.time() + 15
while time.time() < deadline and not any(c.poll() is not None for c in children):
    time.sleep(0.05)
time.sleep(0.5)
print("killed", sum(1 for c in children if c.poll() == -9))
for c in children:
    c.kill()
"#,
    );
    spec.job_id = "6b0e2c1a-4f3d-4e8b-9a7c-1d2e3f4a5b6c".into();
    // 4 × 100 MiB is well under each process's 256 MiB but over the job's 256 + 2 × 8 MiB.
    spec.limits.memory_bytes = 256 << 20;
    spec.limits.max_output_bytes = 8 << 20;
    let outcome = run(&spec);
    if is_root() {
        // A root worker can make a cgroup for each job.
        let version = ferry_sandbox::job_cgroups().unwrap_or_else(|why| panic!("{why}"));
        assert_eq!(outcome.cgroup, Some(version), "{outcome:?}");
        assert!(outcome.job_memory_limit_hit, "{}", outcome.summary());
        let killed: u32 = lines(&outcome)
            .iter()
            .find_map(|l| l.strip_prefix("killed ").map(|n| n.parse().unwrap()))
            .unwrap_or_else(|| panic!("{outcome:?}"));
        assert!(killed >= 1, "{}", text(&outcome.stdout));
        assert!(
            outcome
                .summary()
                .contains("killed at the job's memory limit of 272 MiB"),
            "{}",
            outcome.summary()
        );
        let left = cgroups_named(&spec.job_id);
        assert!(left.is_empty(), "job cgroups left behind: {left:?}");
    } else {
        // Without a cgroup the per-process bounds hold alone, and the outcome says there was none.
        assert_eq!(outcome.cgroup, None, "{outcome:?}");
        assert!(ferry_sandbox::job_cgroups().is_err());
        assert_eq!(lines(&outcome), ["killed 0"], "{}", text(&outcome.stderr));
    }
    scratch.assert_cleaned_up();
}

/// tmpfs has no inode cap under bubblewrap 0.8: empty files cost the host kernel memory outside RLIMIT_AS (about
/// 4 GiB a job, the red team found). A root worker mounts the job's /tmp and /dev/shm itself, with `nr_inodes`.
#[test]
fn empty_files_in_tmp_and_dev_shm_stop_at_their_inode_caps() {
    let scratch = Scratch::new();
    // Without the caps (a worker that is not root here) only a few are made: nothing would stop them.
    let most = if is_root() { 1_000_000 } else { 1_000 };
    let mut spec = scratch.spec(&format!(
        r#"
import os
for d in ["/tmp", "/dev/shm"]:
    n = 0
    try:
        while n < {most}:
            os.close(os.open(f"{{d}}/{{n}}", os.O_CREAT | os.O_WRONLY))
            n += 1
        print(d, "stopped by nothing at", n)
    except OSError as e:
        print(d, "stopped by", e.strerror, "at", n)
"#
    ));
    spec.limits.wall_time = Duration::from_secs(60);
    spec.limits.cpu_seconds = 60;
    let outcome = run(&spec);
    let out = lines(&outcome);
    if is_root() {
        // The tmpfs root is an inode too.
        assert_eq!(
            out,
            [
                format!(
                    "/tmp stopped by No space left on device at {}",
                    ferry_sandbox::SCRATCH_INODES - 1
                ),
                format!(
                    "/dev/shm stopped by No space left on device at {}",
                    ferry_sandbox::SHM_INODES - 1
                ),
            ],
            "{}",
            text(&outcome.stderr)
        );
    } else {
        assert_eq!(
            out,
            [
                "/tmp stopped by nothing at 1000",
                "/dev/shm stopped by nothing at 1000"
            ],
            "{}",
            outcome.summary()
        );
    }
    scratch.assert_cleaned_up();
}

/// Directories under /sys/fs/cgroup (three levels below each hierarchy) whose names hold `job_id`.
fn cgroups_named(job_id: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: u32, job_id: &str, found: &mut Vec<PathBuf>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            if entry.file_name().to_string_lossy().contains(job_id) {
                found.push(path.clone());
            }
            if depth > 0 {
                walk(&path, depth - 1, job_id, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 4, job_id, &mut found);
    found
}

#[test]
fn a_job_bound_to_one_cpu_stays_bound_and_is_told_so() {
    let scratch = Scratch::new();
    let mut spec = scratch.spec(
        r#"
import errno, os
print("cpus", len(os.sched_getaffinity(0)))
print("omp", os.environ.get("OMP_NUM_THREADS"))
try:
    os.sched_setaffinity(0, range(os.cpu_count()))
    print("widened", len(os.sched_getaffinity(0)))
except OSError as e:
    print("widening", errno.errorcode[e.errno])
"#,
    );
    spec.limits.cpus = Some(1);
    let outcome = run(&spec);
    assert_eq!(
        lines(&outcome),
        ["cpus 1", "omp 1", "widening EPERM"],
        "{}",
        text(&outcome.stderr)
    );
}

#[test]
fn network_is_unreachable_including_the_host_broker() {
    let scratch = Scratch::new();
    // 5672 is the development broker; the second target is this machine's own external address, so that even a
    // broken sandbox sends nothing off the machine (with no route, connect fails locally anyway).
    let host_ip = host_address();
    let code = r#"
import errno, socket, time
for host, port in [("127.0.0.1", 5672), ("HOST_IP", 5672)]:
    s = socket.socket()
    s.settimeout(5)
    start = time.monotonic()
    try:
        s.connect((host, port))
        print(host, "CONNECTED")
    except OSError as e:
        print(host, errno.errorcode.get(e.errno, str(e)), time.monotonic() - start < 0.5)
print("interfaces", [name for _, name in socket.if_nameindex()])
"#
    .replace("HOST_IP", &host_ip);
    let outcome = run(&scratch.spec(&code));
    assert_eq!(
        lines(&outcome),
        [
            "127.0.0.1 ECONNREFUSED True",
            format!("{host_ip} ENETUNREACH True").as_str(),
            "interfaces ['lo']"
        ],
        "{outcome:?}"
    );
}

#[test]
fn host_secrets_are_invisible() {
    let scratch = Scratch::new();
    let keys = scratch.path().join("keys");
    fs::create_dir(&keys).unwrap();
    fs::write(keys.join("signing.key"), b"SECRET").unwrap();
    fs::set_permissions(keys.join("signing.key"), fs::Permissions::from_mode(0o644)).unwrap();
    let work_root = scratch.path().join("work");
    let code = format!(
        r#"
import os
for path in [{keys:?}, {key:?}, {work:?}, "/etc/shadow", "/etc/passwd", "/root", "/home", "/var", "/proc/1/root/etc/shadow"]:
    try:
        if os.path.isdir(path):
            print(path, "LISTED", os.listdir(path))
        else:
            print(path, "READ", open(path).read()[:20])
    except OSError as e:
        print(path, "blocked", type(e).__name__)
"#,
        keys = keys.display().to_string(),
        key = keys.join("signing.key").display().to_string(),
        work = work_root.display().to_string(),
    );
    let outcome = run(&scratch.spec(&code));
    let out = lines(&outcome);
    assert_eq!(out.len(), 9, "{outcome:?}");
    for line in &out {
        assert!(line.contains(" blocked "), "{line}");
    }
    assert!(!text(&outcome.stdout).contains("SECRET"));
}

#[test]
fn writes_outside_outputs_fail() {
    let scratch = Scratch::new();
    let mut spec = scratch.spec(
        r#"
import os
for path in ["/usr/evil", "/ferry/job.py", "inputs/x", "/job/evil", "/evil", "/proc/sys/kernel/hostname", "/dev/evil"]:
    try:
        with open(path, "w") as f:
            f.write("pwned")
        print(path, "WRITTEN")
    except OSError as e:
        print(path, "blocked", type(e).__name__)
open("/tmp/scratch", "w").write("fine")
print("tmp ok")
try:
    with open("/tmp/filler", "wb") as f:
        for _ in range(40):
            f.write(b"z" * (1 << 20))
    print("/tmp FILLED")
except OSError as e:
    print("/tmp is capped", type(e).__name__)
"#,
    );
    let asset = scratch.asset("x.csv", b"original");
    spec.inputs = vec![("x".into(), asset.clone())];
    let outcome = run(&spec);
    let out = lines(&outcome);
    assert_eq!(out.len(), 9, "{out:?} {}", text(&outcome.stderr));
    for line in &out[..7] {
        assert!(line.contains(" blocked "), "{line}");
    }
    assert_eq!(out[8], "/tmp is capped OSError");
    assert_eq!(fs::read(&asset).unwrap(), b"original");
    assert!(outcome.succeeded());
}

#[test]
fn links_in_outputs_are_not_followed() {
    let scratch = Scratch::new();
    let mut spec = scratch.spec(
        r#"
import os
os.symlink("/etc/passwd", "outputs/passwd")
os.symlink("/root", "outputs/root")
os.symlink("../inputs/x", "outputs/input")
try:
    os.link("inputs/x", "outputs/hardlink")
    print("hard link made")
except OSError as e:
    print("hard link", type(e).__name__)
os.mkfifo("outputs/fifo")
open("outputs/real.txt", "w").write("real")
"#,
    );
    spec.inputs = vec![("x".into(), scratch.asset("x", b"private rows"))];
    let outcome = run(&spec);
    assert!(outcome.succeeded(), "{outcome:?}");
    // Bind mounts are separate mounts: a hard link across them is refused.
    assert_eq!(lines(&outcome), ["hard link OSError"]);
    let names: Vec<_> = outcome.outputs.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["real.txt"]);
}

#[test]
fn fork_bomb_is_bounded_and_killed() {
    let scratch = Scratch::new();
    let mut spec = scratch.spec(
        r#"
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
"#,
    );
    spec.limits.wall_time = Duration::from_secs(2);
    spec.limits.max_processes = 32;
    let start = Instant::now();
    let outcome = run(&spec);
    assert_eq!(outcome.termination, Termination::TimedOut, "{outcome:?}");
    assert!(start.elapsed() < Duration::from_secs(8));
    // The host is fine: we can still start processes.
    assert!(std::process::Command::new("true")
        .status()
        .unwrap()
        .success());
}

#[test]
fn process_count_is_capped_per_job() {
    let scratch = Scratch::new();
    let code = r#"
import os, time
children = 0
for _ in range(100):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(2)
        os._exit(0)
    children += 1
print(children)
"#;
    let mut spec = scratch.spec(code);
    spec.limits.max_processes = 16;
    // Two jobs at once: each gets its own count (limits applied before the user namespace exists would
    // make them share one).
    let other = {
        let spec = spec.clone();
        std::thread::spawn(move || run(&spec))
    };
    let outcome = run(&spec);
    let other = other.join().unwrap();
    for outcome in [outcome, other] {
        let children: u64 = text(&outcome.stdout).trim().parse().unwrap();
        // bwrap's init and the job itself count too.
        assert!((10..16).contains(&children), "{children} {outcome:?}");
    }
}

#[test]
fn huge_allocation_fails_cleanly() {
    let scratch = Scratch::new();
    let outcome = run(&scratch.spec("x = bytearray(8 << 30)\nprint('allocated')"));
    assert_eq!(outcome.termination, Termination::Exited(1), "{outcome:?}");
    assert!(text(&outcome.stderr).contains("MemoryError"));
    assert!(outcome.stdout.is_empty());
}

#[test]
fn cpu_spin_is_killed_by_the_cpu_limit() {
    let scratch = Scratch::new();
    let mut spec = scratch.spec("while True:\n    pass\n");
    spec.limits.cpu_seconds = 1;
    spec.limits.wall_time = Duration::from_secs(6);
    let outcome = run(&spec);
    assert_eq!(
        outcome.termination,
        Termination::Signaled(24),
        "{outcome:?}"
    );
    assert!(
        outcome.summary().contains("CPU-time limit of 1s"),
        "{}",
        outcome.summary()
    );
}

#[test]
fn sleeping_forever_times_out() {
    let scratch = Scratch::new();
    let mut spec = scratch.spec("import time\nprint('sleeping', flush=True)\ntime.sleep(3600)");
    spec.limits.wall_time = Duration::from_millis(1500);
    let outcome = run(&spec);
    assert_eq!(outcome.termination, Termination::TimedOut, "{outcome:?}");
    assert_eq!(
        outcome.summary(),
        "killed: wall-clock limit of 1500ms reached"
    );
    assert_eq!(text(&outcome.stdout), "sleeping\n");
    assert!(
        outcome.duration < Duration::from_secs(3),
        "{:?}",
        outcome.duration
    );
    scratch.assert_cleaned_up();
}

#[test]
fn huge_output_file_hits_the_cap() {
    let scratch = Scratch::new();
    // 1 GiB into one file, with a 10 MiB cap.
    let code = r#"
chunk = b"x" * (1 << 20)
with open("outputs/big.bin", "wb") as f:
    for _ in range(1024):
        f.write(chunk)
"#;
    let outcome = run(&scratch.spec(code));
    assert_eq!(outcome.termination, Termination::OutputLimit, "{outcome:?}");
    assert_eq!(
        outcome.summary(),
        "killed: outputs exceeded the limit of 10 MiB"
    );
    let kept: usize = outcome.outputs.iter().map(|f| f.data.len()).sum();
    assert!(kept <= 10 << 20);
    scratch.assert_cleaned_up();
}

#[test]
fn many_output_files_hit_the_cap() {
    let scratch = Scratch::new();
    // Each file stays under the single-file limit; the running total is what stops the job.
    let code = r#"
import time
chunk = b"x" * (1 << 20)
for i in range(1000):
    with open(f"outputs/part{i:04}.bin", "wb") as f:
        f.write(chunk)
time.sleep(5)
"#;
    let outcome = run(&scratch.spec(code));
    assert_eq!(outcome.termination, Termination::OutputLimit, "{outcome:?}");
    assert!(outcome.duration < Duration::from_secs(5));
    let kept: usize = outcome.outputs.iter().map(|f| f.data.len()).sum();
    assert!(kept <= 10 << 20);
}

#[test]
fn too_many_output_files_hit_the_cap() {
    let scratch = Scratch::new();
    let code = r#"
import time
for i in range(20000):
    open(f"outputs/f{i}", "w").close()
time.sleep(5)
"#;
    let outcome = run(&scratch.spec(code));
    assert_eq!(outcome.termination, Termination::OutputLimit, "{outcome:?}");
    assert!(outcome.outputs.len() <= ferry_sandbox::MAX_OUTPUT_ENTRIES as usize);
}

/// The worker's peak resident memory so far.
fn peak_rss_bytes() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    kib * 1024
}

#[test]
fn printing_a_gibibyte_is_truncated_with_bounded_memory() {
    let scratch = Scratch::new();
    let code = r#"
import sys
chunk = b"y" * (1 << 20)
for _ in range(1024):
    sys.stdout.buffer.write(chunk)
print("done", file=sys.stderr)
"#;
    let start = Instant::now();
    let peak_before = peak_rss_bytes();
    let outcome = run(&scratch.spec(code));
    // Other tests run concurrently in this process, but none comes near a gibibyte.
    assert!(peak_rss_bytes() - peak_before < 256 << 20);
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(outcome.stdout.len(), 64 << 10);
    assert!(outcome.stdout_truncated);
    assert!(!outcome.stderr_truncated);
    assert_eq!(text(&outcome.stderr), "done\n");
    assert!(start.elapsed() < Duration::from_secs(15));
}

#[test]
fn background_processes_do_not_survive_the_job() {
    let scratch = Scratch::new();
    let marker = format!("ferry-survivor-{}", std::process::id());
    // A daemon in its own session, detached from stdout/stderr, that would outlive a naive runner.
    let code = format!(
        r#"
import os, subprocess, sys
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "{marker}"],
                 start_new_session=True, stdin=subprocess.DEVNULL,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("started")
"#
    );
    let start = Instant::now();
    let outcome = run(&scratch.spec(&code));
    assert!(outcome.succeeded(), "{outcome:?}");
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        !process_with_marker(&marker),
        "a background process survived"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !process_with_marker(&marker),
        "a background process survived"
    );

    // Also when the job is killed on the wall clock.
    let mut spec = scratch.spec(&format!("{code}\nimport time\ntime.sleep(60)"));
    spec.limits.wall_time = Duration::from_secs(1);
    let outcome = run(&spec);
    assert_eq!(outcome.termination, Termination::TimedOut);
    assert!(
        !process_with_marker(&marker),
        "a background process survived a timeout"
    );
}

#[test]
fn cancellation_kills_the_job() {
    let scratch = Scratch::new();
    let cancel = Arc::new(AtomicBool::new(false));
    let setter = {
        let cancel = Arc::clone(&cancel);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            cancel.store(true, Ordering::SeqCst);
        })
    };
    let start = Instant::now();
    let outcome = run_job(&scratch.spec("import time\ntime.sleep(60)"), &cancel).unwrap();
    setter.join().unwrap();
    assert_eq!(outcome.termination, Termination::Cancelled, "{outcome:?}");
    assert_eq!(outcome.summary(), "cancelled");
    assert!(start.elapsed() < Duration::from_secs(3));
    scratch.assert_cleaned_up();
}

#[test]
fn killed_by_a_signal_is_reported_as_such() {
    let scratch = Scratch::new();
    let outcome = run(&scratch.spec("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)"));
    assert_eq!(
        outcome.termination,
        Termination::Signaled(11),
        "{outcome:?}"
    );
}

#[test]
fn missing_bwrap_fails_closed() {
    let scratch = Scratch::new();
    let ran = scratch.path().join("ran");
    let spec = scratch.spec(&format!(
        "open({:?}, 'w').write('ran')",
        ran.display().to_string()
    ));
    let tools = Tools {
        bwrap: "/nonexistent/bwrap".into(),
        ..Tools::locate()
    };
    let err = run_job_with(&spec, &AtomicBool::new(false), &tools).unwrap_err();
    assert!(matches!(err, SandboxError::SandboxUnavailable(_)), "{err}");
    assert!(err.to_string().contains("install bubblewrap"), "{err}");
    assert!(err.to_string().contains("sandbox = \"off\""), "{err}");
    assert!(!ran.exists(), "the job ran without the sandbox");
    scratch.assert_cleaned_up();
}

#[test]
fn bwrap_unable_to_create_namespaces_fails_closed() {
    let scratch = Scratch::new();
    // What bwrap does where user namespaces are disabled: one line on stderr, status 1, no sandbox.
    let fake = scratch.path().join("bwrap");
    fs::write(
        &fake,
        "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(&fake, fs::Permissions::from_mode(0o755)).unwrap();
    // Made reachable by the unprivileged user the worker switches to when it is root.
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let tools = Tools {
        bwrap: fake,
        ..Tools::locate()
    };
    let err = run_job_with(&scratch.spec("print(1)"), &AtomicBool::new(false), &tools).unwrap_err();
    match err {
        SandboxError::SandboxUnavailable(message) => {
            assert!(message.contains("No permissions"), "{message}")
        }
        other => panic!("expected SandboxUnavailable, got {other}"),
    }
    assert!(matches!(
        ferry_sandbox::check_available_with(&Runtime::python_default(), &tools),
        Err(SandboxError::SandboxUnavailable(_))
    ));
}

#[test]
fn missing_runtime_program_is_reported() {
    let scratch = Scratch::new();
    let mut spec = scratch.spec("print(1)");
    spec.runtime.program = "/usr/bin/python-does-not-exist".into();
    let err = run_job(&spec, &AtomicBool::new(false));
    assert!(
        matches!(err, Err(SandboxError::RuntimeUnavailable { .. })),
        "{err:?}"
    );
}

#[test]
fn bad_asset_names_are_refused() {
    let scratch = Scratch::new();
    let asset = scratch.asset("x", b"x");
    for name in ["../escape", "a/b", ".."] {
        let mut spec = scratch.spec("print(1)");
        spec.inputs = vec![(name.into(), asset.clone())];
        let err = run_job(&spec, &AtomicBool::new(false)).unwrap_err();
        assert!(matches!(err, SandboxError::BadSpec(_)), "{name}: {err}");
    }
}

#[test]
fn private_assets_unreadable_by_the_sandbox_user_are_reported() {
    if !is_root() {
        eprintln!("not root: the worker's own uid runs the job, so this case does not arise");
        return;
    }
    let scratch = Scratch::new();
    let asset = scratch.asset("private.csv", b"secret rows");
    fs::set_permissions(&asset, fs::Permissions::from_mode(0o600)).unwrap();
    let mut spec = scratch.spec("print(open('inputs/private.csv').read())");
    spec.inputs = vec![("private.csv".into(), asset)];
    let err = run_job(&spec, &AtomicBool::new(false)).unwrap_err();
    assert!(
        matches!(err, SandboxError::InputUnavailable { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("chmod 0644"), "{err}");
}

#[test]
fn large_inputs_are_bound_not_copied() {
    let scratch = Scratch::new();
    // A sparse 4 GiB asset: copying it would take seconds and gigabytes.
    let asset = scratch.path().join("assets").join("big.bin");
    let file = fs::File::create(&asset).unwrap();
    file.set_len(4 << 30).unwrap();
    fs::set_permissions(&asset, fs::Permissions::from_mode(0o644)).unwrap();
    let mut spec = scratch.spec("import os\nprint(os.path.getsize('inputs/big.bin'))");
    spec.inputs = vec![("big.bin".into(), asset)];
    let start = Instant::now();
    let outcome = run(&spec);
    assert_eq!(lines(&outcome), [(4u64 << 30).to_string()], "{outcome:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn self_check_passes_here() {
    check_available(&Runtime::python_default()).unwrap();
}

#[test]
fn unsandboxed_runs_are_marked_and_still_limited() {
    let scratch = Scratch::new();
    let mut spec = scratch.spec(
        "import os\nprint(open('inputs/x').read(), sorted(os.environ))\nopen('outputs/r.txt', 'w').write('ok')",
    );
    spec.isolation = Isolation::Unsandboxed;
    spec.inputs = vec![("x".into(), scratch.asset("x", b"data"))];
    let outcome = run(&spec);
    assert!(outcome.unsandboxed);
    assert!(outcome.succeeded(), "{outcome:?}");
    assert_eq!(
        lines(&outcome),
        ["data ['FERRY_JOB_ID', 'HOME', 'LANG', 'PATH']"]
    );
    assert_eq!(outcome.outputs[0].name, "r.txt");
    assert!(outcome.summary().contains("UNSANDBOXED"));

    let mut spec = scratch.spec("import time\ntime.sleep(60)");
    spec.isolation = Isolation::Unsandboxed;
    spec.limits.wall_time = Duration::from_millis(500);
    let outcome = run(&spec);
    assert_eq!(outcome.termination, Termination::TimedOut);
    assert!(outcome.unsandboxed);
    scratch.assert_cleaned_up();
}

/// The checks a non-root worker's sandbox must pass (bwrap running as the worker, mapping it to 65534).
fn unprivileged_worker_checks() {
    let scratch = Scratch::new();
    let code = r#"
import ctypes, os, socket
print("uid", os.getuid())
libc = ctypes.CDLL(None, use_errno=True)
print("new user namespace", libc.unshare(0x10000000) == 0)
try:
    socket.create_connection(("127.0.0.1", 5672), timeout=2)
    print("connected")
except OSError as e:
    print("network", type(e).__name__)
children = 0
for _ in range(100):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        import time
        time.sleep(2)
        os._exit(0)
    children += 1
print("children", children)
open("outputs/r.txt", "w").write("ok")
"#;
    let mut spec = scratch.spec(code);
    spec.limits.max_processes = 16;
    let outcome = run(&spec);
    let out = lines(&outcome);
    assert_eq!(
        out[..3],
        [
            "uid 65534",
            "new user namespace False",
            "network ConnectionRefusedError"
        ],
        "{outcome:?}"
    );
    let children: u64 = out[3].trim_start_matches("children ").parse().unwrap();
    assert!((10..16).contains(&children), "{children}");
    assert_eq!(outcome.outputs[0].data, b"ok");
    scratch.assert_cleaned_up();
}

#[test]
fn unprivileged_worker_runs_jobs_too() {
    if std::env::var_os("FERRY_SANDBOX_TEST_UNPRIVILEGED").is_some() || !is_root() {
        unprivileged_worker_checks();
        return;
    }
    // Running as root (as CI does): run this very test again as `nobody`, from a copy of the test binary
    // that `nobody` can execute.
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let exe = dir.path().join("sandbox-test");
    fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    let output = std::process::Command::new(Tools::locate().setpriv)
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args([
            "--exact",
            "unprivileged_worker_runs_jobs_too",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("FERRY_SANDBOX_TEST_UNPRIVILEGED", "1")
        .env("TMPDIR", "/tmp")
        .current_dir("/")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        text(&output.stdout).contains("1 passed"),
        "{}",
        text(&output.stdout)
    );
}

/// This machine's first non-loopback IPv4 address (or a documentation address when it has none).
fn host_address() -> String {
    let out = std::process::Command::new("hostname").arg("-I").output();
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .find(|a| a.contains('.') && !a.starts_with("127."))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "192.0.2.2".to_string())
}

/// A virtualenv made with `--without-pip` from `base`, outside /tmp (the sandbox hides the host's /tmp): in the
/// target's scratch directory, or in /var/tmp when the checkout itself is under /tmp.
fn virtualenv(base: &str) -> (PathBuf, PathBuf) {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let root = if target.starts_with("/tmp") {
        Path::new("/var/tmp/ferry-tests")
    } else {
        target
    };
    fs::create_dir_all(root).unwrap();
    let dir = root.join(format!(
        "venv-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    let made = std::process::Command::new(base)
        .args(["-m", "venv", "--without-pip"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(made.success(), "{base} -m venv");
    let python = dir.join("bin/python");
    (dir, python)
}

#[test]
fn a_registered_virtualenv_runs_jobs_from_its_own_prefix() {
    let (dir, python) = virtualenv("/usr/bin/python3");
    let env = ferry_sandbox::python::inspect(&python).unwrap();
    assert!(env.is_virtualenv());
    assert_eq!(env.mounts, vec![dir.clone()], "only the venv beyond /usr");
    let runtime = env.runtime("venv");
    ferry_sandbox::python::verify(&env, &runtime).unwrap();
    let scratch = Scratch::new();
    let mut spec = scratch.spec("import sys; print(sys.prefix); print(sys.base_prefix)");
    spec.runtime = runtime;
    let outcome = run(&spec);
    assert!(outcome.succeeded(), "{}", text(&outcome.stderr));
    assert_eq!(
        lines(&outcome),
        vec![dir.display().to_string(), "/usr".to_string()]
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_virtualenv_whose_base_the_sandbox_cannot_see_fails_its_test_start() {
    // A base interpreter outside /usr (pyenv's, here), with only the venv mounted: it cannot start.
    let base = std::process::Command::new("sh")
        .args(["-c", "command -v python3"])
        .output()
        .unwrap();
    let base = String::from_utf8_lossy(&base.stdout).trim().to_string();
    let base = fs::canonicalize(&base).unwrap();
    let (dir, python) = if base.starts_with("/usr") {
        // No interpreter outside /usr here: hide /usr's from a copy of the venv's view instead.
        virtualenv("/usr/bin/python3")
    } else {
        virtualenv(base.to_str().unwrap())
    };
    let env = ferry_sandbox::python::inspect(&python).unwrap();
    let mut runtime =
        ferry_sandbox::python::runtime_with("venv", &python, std::slice::from_ref(&dir));
    if base.starts_with("/usr") {
        runtime.ro_paths.retain(|p| p != Path::new("/usr"));
    }
    let err = ferry_sandbox::python::verify(&env, &runtime).unwrap_err();
    assert!(
        err.to_string().contains("does not start in the sandbox"),
        "{err}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_runtime_device_is_passed_in_and_nothing_else_is() {
    assert!(
        is_root(),
        "making a device node (mknod) needs root, as the tests run in CI"
    );
    let node = PathBuf::from(format!("/dev/ferry-test-null-{}", std::process::id()));
    let made = std::process::Command::new("mknod")
        .arg(&node)
        .args(["-m", "0666", "c", "1", "3"])
        .status()
        .unwrap();
    assert!(made.success(), "mknod");
    let code = format!(
        "import os, stat\np = {:?}\nprint(os.path.exists(p) and stat.S_ISCHR(os.stat(p).st_mode))\n\
         if os.path.exists(p):\n    open(p, 'w').write('x')\n    print(repr(open(p, 'rb').read()))\n",
        node.display().to_string()
    );
    let scratch = Scratch::new();
    let without = run(&scratch.spec(&code));
    let mut spec = scratch.spec(&code);
    spec.runtime.devices = vec![node.clone()];
    let with = run(&spec);
    let mut file = scratch.spec("");
    file.runtime.devices = vec![PathBuf::from("/dev/../etc/passwd")];
    let refused = run_job(&file, &AtomicBool::new(false)).unwrap_err();
    fs::remove_file(&node).unwrap();
    assert_eq!(lines(&without), vec!["False"], "{}", text(&without.stderr));
    assert_eq!(lines(&with), vec!["True", "b''"], "{}", text(&with.stderr));
    assert!(
        refused.to_string().contains("must be a path under /dev"),
        "{refused}"
    );
}
