//! The README's quickstart, run as written: every `sh` block of its "Quickstart" section, in order, in one shell,
//! from the repository's top directory, with only the place (`QS_DIR`) and the broker names' tag (`QS_TAG`)
//! chosen by the test. It must end with the released answer.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{patience, unique, BrokerNames};

/// The `sh` blocks of the README section whose heading starts with `## Quickstart`.
fn quickstart_blocks(readme: &str) -> Vec<String> {
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Quickstart"))
        .expect("README.md has a Quickstart section");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed block in the quickstart");
    blocks
}

/// Kills the script's process group (the services it started in the background) when dropped, unless the script
/// ended well (its clean-up block stopped them).
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pgid) = self
            .0
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::TERM);
        }
    }
}

#[test]
fn the_readme_quickstart_runs_as_written_and_ends_with_the_released_answer() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let blocks = quickstart_blocks(&std::fs::read_to_string(repo.join("README.md")).unwrap());
    assert!(blocks.len() >= 5, "{blocks:?}");
    let tag = unique("qs");
    let _names = BrokerNames {
        vhosts: vec![format!("ferry-low-{tag}"), format!("ferry-high-{tag}")],
        users: vec![
            format!("ferry-low-{tag}"),
            format!("ferry-high-{tag}"),
            format!("alice-{tag}"),
        ],
    };
    let work = tempfile::tempdir().unwrap();
    let qs_dir = work.path().join("quickstart");
    let script = format!("set -euo pipefail\n{}", blocks.join("\n"));
    let bin_dir: PathBuf = crate::ferry_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let stdout_file = work.path().join("stdout");
    let stderr_file = work.path().join("stderr");
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&repo)
        .env("PATH", path)
        .env("QS_DIR", &qs_dir)
        .env("QS_TAG", &tag)
        .env_remove("FERRY_AMQP_URL")
        .env_remove("FERRY_CONFIG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_file).unwrap())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    let mut group = Group(Some(child.id()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if start.elapsed() > patience() {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = std::fs::read_to_string(&stdout_file).unwrap();
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    let logs = ["low", "high"]
        .map(|s| std::fs::read_to_string(qs_dir.join(s).join("serve.log")).unwrap_or_default())
        .join("\n");
    if status.is_some_and(|s| s.success()) {
        group.0 = None;
    }
    assert!(
        status.is_some_and(|s| s.success()),
        "the quickstart failed ({status:?})\nstdout:\n{stdout}\nstderr:\n{stderr}\nserve logs:\n{logs}"
    );
    // The released answer: the sources of the private data that mention the agents, and the report file.
    let answer = stdout
        .rsplit_once("released")
        .or_else(|| stdout.rsplit_once("delivered"))
        .map(|(_, after)| after)
        .unwrap_or_else(|| panic!("no released result in:\n{stdout}"));
    assert!(
        answer.contains("subtilis: forum-crawl (2 rows)"),
        "{stdout}"
    );
    let job = stdout
        .lines()
        .rev()
        .find_map(|l| {
            l.strip_prefix("job ")
                .and_then(|r| r.split_whitespace().next())
        })
        .unwrap()
        .to_string();
    let report = std::fs::read_to_string(qs_dir.join("results").join(&job).join("report.json"))
        .unwrap_or_else(|e| panic!("results/{job}/report.json: {e}\n{stdout}"));
    assert!(report.contains("forum-crawl"), "{report}");
    // The clean-up block removed what the quickstart made on the broker.
    let vhosts = crate::harness::rabbitmqctl_lines(&["list_vhosts"]);
    assert!(!vhosts.contains(&format!("ferry-low-{tag}")), "{vhosts:?}");
    assert!(!logs.contains("WARN"), "{logs}");
}
