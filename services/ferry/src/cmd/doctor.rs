//! `ferry doctor --config CFG`: every check an operator would make of a side, one line each, each problem with a
//! hint; exit 1 when any check found a problem.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use ferry_core::{Config, Side};
use ferry_review::escape;
use ferry_transfer::{Layout, SideDir};

/// What one check found.
enum Finding {
    Ok(String),
    /// Worth knowing, not a fault.
    Note(String),
    /// A fault, and how to fix it.
    Problem(String, String),
}

struct Report {
    findings: Vec<(&'static str, Finding)>,
}

impl Report {
    fn add(&mut self, what: &'static str, finding: Finding) {
        self.findings.push((what, finding));
    }

    fn problems(&self) -> usize {
        self.findings
            .iter()
            .filter(|(_, f)| matches!(f, Finding::Problem(..)))
            .count()
    }

    fn print(&self) {
        for (what, f) in &self.findings {
            match f {
                Finding::Ok(s) => println!("ok       {what}: {}", escape::line(s)),
                Finding::Note(s) => println!("note     {what}: {}", escape::line(s)),
                Finding::Problem(s, hint) => {
                    println!("PROBLEM  {what}: {}", escape::line(s));
                    println!("         hint: {}", escape::line(hint));
                }
            }
        }
    }
}

/// Runs every check; returns the exit code (0 healthy, 1 a problem).
pub async fn doctor(config_path: &Path) -> Result<i32> {
    let mut r = Report {
        findings: Vec::new(),
    };
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            r.add(
                "configuration",
                Finding::Problem(
                    e.to_string(),
                    "`ferry init --side low|high --dir DIR` writes a valid ferry.toml".into(),
                ),
            );
            r.print();
            eprintln!("error: 1 problem(s) found");
            return Ok(1);
        }
    };
    println!(
        "ferry doctor: the {} side in {}",
        config.side.as_str(),
        escape::line(&config.dir.display().to_string())
    );
    r.add(
        "configuration",
        Finding::Ok(format!("{} loads", config_path.display())),
    );
    let layout = Layout::new(&config.dir);
    directories(&mut r, &layout);
    match SideDir::from_config(config.clone()) {
        Err(e) => r.add(
            "state store",
            Finding::Problem(
                e.to_string(),
                "the state store must be readable and writable by this user; a newer ferry's is refused".into(),
            ),
        ),
        Ok(side) => {
            r.add(
                "state store",
                Finding::Ok(format!(
                    "schema version {}",
                    ferry_core::store::SCHEMA_VERSION
                )),
            );
            keys(&mut r, &side, &layout);
            clock(&mut r, &side);
        }
    }
    runtimes(&mut r, &config);
    if config.side == Side::High && config.worker.sandbox == "on" {
        job_cgroups(&mut r);
    }
    disk(&mut r, &config.dir);
    broker(&mut r, &config).await;
    r.print();
    let n = r.problems();
    if n > 0 {
        eprintln!("error: {n} problem(s) found");
        return Ok(1);
    }
    println!("healthy");
    Ok(0)
}

fn directories(r: &mut Report, layout: &Layout) {
    let missing: Vec<String> = layout
        .all_dirs()
        .into_iter()
        .filter(|d| !d.is_dir())
        .map(|d| d.display().to_string())
        .collect();
    if !missing.is_empty() {
        r.add(
            "directories",
            Finding::Problem(
                format!("missing: {}", missing.join(", ")),
                "recreate them (mkdir) or run `ferry init` on a fresh directory".into(),
            ),
        );
        return;
    }
    let keys = layout.keys_dir();
    match std::fs::metadata(&keys).map(|m| m.permissions().mode() & 0o777) {
        Ok(mode) if mode & 0o077 != 0 => r.add(
            "directories",
            Finding::Problem(
                format!("{} is open to others (mode {mode:o})", keys.display()),
                format!("chmod 700 {}", keys.display()),
            ),
        ),
        _ => r.add(
            "directories",
            Finding::Ok("every directory is there".into()),
        ),
    }
}

fn keys(r: &mut Report, side: &SideDir, layout: &Layout) {
    let open: Vec<String> = std::fs::read_dir(layout.keys_dir())
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| {
                    e.metadata()
                        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o077 != 0)
                })
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    if !open.is_empty() {
        r.add(
            "keys",
            Finding::Problem(
                format!("readable by others: {}", open.join(", ")),
                "chmod 600 each of them: a side's secret keys are its own".into(),
            ),
        );
    } else {
        match side.keys() {
            Ok(k) => r.add(
                "keys",
                Finding::Ok(format!("this side's key is {}", k.public().key_id())),
            ),
            Err(e) => r.add(
                "keys",
                Finding::Problem(
                    e.to_string(),
                    "restore keys/ from backup; a new key is a key rotation the other side must accept".into(),
                ),
            ),
        }
    }
    match side.peer() {
        Ok(p) => r.add(
            "peer",
            Finding::Ok(format!(
                "the {} side's key {} is pinned",
                side.config.side.peer().as_str(),
                p.key_id()
            )),
        ),
        Err(e) => r.add(
            "peer",
            Finding::Problem(
                e.to_string(),
                "pin the other side's public.txt with `ferry trust add --config CFG FILE`".into(),
            ),
        ),
    }
}

fn clock(r: &mut Report, side: &SideDir) {
    let newest = side
        .store
        .audit_entries(None)
        .ok()
        .and_then(|e| e.iter().map(|e| e.at).max());
    let now = ferry_core::now();
    match newest {
        Some(at) if at > now + 300 => r.add(
            "clock",
            Finding::Problem(
                format!(
                    "this machine's clock is {} s behind the newest entry of the audit log",
                    at - now
                ),
                "set the clock (bundles carry their creation and expiry times)".into(),
            ),
        ),
        _ => r.add("clock", Finding::Ok(ferry_core::time::rfc3339(now))),
    }
}

/// Whether this process could give each job a cgroup of its own, as the worker would.
fn job_cgroups(r: &mut Report) {
    let finding = match ferry_sandbox::job_cgroups() {
        Ok(version) => Finding::Ok(format!(
            "each job runs in a cgroup of its own (cgroup {version}): the job as a whole is bounded"
        )),
        Err(why) => Finding::Note(format!(
            "jobs run without a cgroup of their own ({why}); each process is bounded alone (ISOLATION.md); \
             under systemd, Delegate=memory pids on the unit gives them one"
        )),
    };
    r.add("job cgroups", finding);
}

fn runtimes(r: &mut Report, config: &Config) {
    for (name, rt) in &config.runtimes {
        let runnable = std::fs::metadata(&rt.program)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        if !runnable {
            r.add(
                "runtimes",
                Finding::Problem(
                    format!(
                        "runtime {name}: {} is not an executable file",
                        rt.program.display()
                    ),
                    format!("install it, or point runtimes.{name}.program at the interpreter"),
                ),
            );
            continue;
        }
        // The high side runs jobs: its sandbox must start every runtime.
        if config.side == Side::High && config.worker.sandbox == "on" {
            match ferry_sandbox::check_available(&ferry_serve::jobrun::runtime(name, rt)) {
                Ok(()) => r.add(
                    "sandbox",
                    Finding::Ok(format!("runtime {name} starts in the sandbox")),
                ),
                Err(e) => r.add(
                    "sandbox",
                    Finding::Problem(
                        format!("runtime {name}: {e}"),
                        "bubblewrap must be installed and able to create namespaces (ISOLATION.md)"
                            .into(),
                    ),
                ),
            }
        } else {
            r.add(
                "runtimes",
                Finding::Ok(format!("runtime {name}: {}", rt.program.display())),
            );
        }
    }
    if config.side == Side::High && config.worker.sandbox != "on" {
        r.add(
            "sandbox",
            Finding::Problem(
                "worker.sandbox is off: jobs run WITHOUT isolation".into(),
                "set worker.sandbox = \"on\" anywhere but a developer's machine".into(),
            ),
        );
    }
}

fn disk(r: &mut Report, dir: &Path) {
    let (Some(free), Some(total)) = (
        crate::progress::free_bytes(dir),
        crate::progress::total_bytes(dir),
    ) else {
        r.add(
            "disk",
            Finding::Note("could not read the free space".into()),
        );
        return;
    };
    let shown = format!(
        "{} free of {}",
        crate::progress::human(free),
        crate::progress::human(total)
    );
    if free < 1 << 30 {
        r.add(
            "disk",
            Finding::Problem(
                shown,
                "free space: an import stages a bundle's entries in work/ before it applies them"
                    .into(),
            ),
        );
    } else {
        r.add("disk", Finding::Ok(shown));
    }
}

async fn broker(r: &mut Report, config: &Config) {
    let url = ferry_core::config::redact_url(&config.amqp_url);
    let connected = tokio::time::timeout(
        Duration::from_secs(15),
        ferry_broker::Session::connect(&config.amqp_url),
    )
    .await;
    let session = match connected {
        Err(_) => {
            r.add(
                "broker",
                Finding::Problem(
                    format!("{url}: no answer within 15 s"),
                    "is RabbitMQ running and reachable from here?".into(),
                ),
            );
            return;
        }
        Ok(Err(e)) => {
            // The same hint as any other command's, chosen from the typed cause.
            let hint = crate::hint::broker_hint(&e).unwrap_or(
                "is RabbitMQ running and reachable from here? check the URL's host and port",
            );
            r.add("broker", Finding::Problem(e.to_string(), hint.into()));
            return;
        }
        Ok(Ok(s)) => s,
    };
    r.add(
        "broker",
        Finding::Ok(format!("{url} accepts this side's account")),
    );
    match ferry_broker::topology::missing(&session, config.side).await {
        Ok(missing) if missing.is_empty() => r.add(
            "topology",
            Finding::Ok("every exchange and queue is declared".into()),
        ),
        Ok(missing) => r.add(
            "topology",
            Finding::Note(format!(
                "not declared yet: {} (`ferry serve` declares them when it starts)",
                missing.join(", ")
            )),
        ),
        Err(e) => r.add(
            "topology",
            Finding::Problem(
                e.to_string(),
                "the account needs configure rights on ^ferry\\.".into(),
            ),
        ),
    }
    session.close().await;
}
