//! Runtimes: the owner's `ferry runtime add|list|remove` (high side), the researcher's `ferry runtimes` and
//! `ferry runtime install`, and how `ferry run --mock` picks its interpreter.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ferry_core::records::RuntimeTransfer;
use ferry_core::store::RuntimeRow;
use ferry_core::wire::{Call, RuntimeInfo};
use ferry_core::Side;
use ferry_review::escape;
use ferry_sandbox::python::PythonEnv;
use ferry_transfer::SideDir;

use super::researcher::call;

/// What `ferry runtime add` registers.
pub struct Registration<'a> {
    /// The name jobs give.
    pub name: &'a str,
    /// The interpreter.
    pub python: &'a Path,
    /// For researchers.
    pub description: &'a str,
    /// Device nodes to pass into the sandbox.
    pub devices: &'a [PathBuf],
}

/// `ferry runtime add --config HIGH NAME --python PATH`: inspects the interpreter, test-starts it in the
/// sandbox, records it. Nothing is registered unless every step passed.
pub fn add(config_path: &Path, reg: &Registration<'_>) -> Result<()> {
    let mut side = SideDir::open(config_path)?;
    if side.config.side != Side::High {
        bail!("runtimes are registered on the high side, where jobs run; this is the low side's configuration");
    }
    ferry_core::names::runtime(reg.name)?;
    if side.config.runtimes.contains_key(reg.name) {
        bail!(
            "runtime {} is configured in {} already ([runtimes.{}]); pick another name",
            reg.name,
            config_path.display(),
            reg.name
        );
    }
    if side.store.runtime(reg.name)?.is_some() {
        bail!(
            "a runtime named {} is registered already (`ferry runtime remove` it first)",
            reg.name
        );
    }
    let env = ferry_sandbox::python::inspect(reg.python)
        .with_context(|| format!("runtime {} is not registered", reg.name))?;
    let mut runtime = env.runtime(reg.name);
    runtime.devices = reg.devices.to_vec();
    match ferry_serve::jobrun::isolation(&side.config.worker) {
        ferry_sandbox::Isolation::Sandbox => {
            let _checking = crate::progress::Activity::start(
                format!("test-starting {} in the sandbox", reg.name),
                || None,
            );
            ferry_sandbox::python::verify(&env, &runtime)
                .with_context(|| format!("runtime {} is not registered", reg.name))?;
        }
        ferry_sandbox::Isolation::Unsandboxed => eprintln!(
            "ferry: warning: worker.sandbox = \"off\": {} was not test-started in the sandbox",
            reg.name
        ),
    }
    let sha256 = {
        let _hashing =
            crate::progress::Activity::start(format!("hashing {}", env.prefix.display()), || None);
        env.content_sha256()?
    };
    let row = RuntimeRow {
        info: RuntimeTransfer {
            name: reg.name.to_string(),
            description: reg.description.to_string(),
            python: env.version.clone(),
            packages: env.packages.clone(),
            sha256: sha256.clone(),
            devices: reg
                .devices
                .iter()
                .map(|d| d.display().to_string())
                .collect(),
            added_at: ferry_core::now(),
        },
        program: Some(reg.python.display().to_string()),
        mounts: env.mounts.iter().map(|m| m.display().to_string()).collect(),
    };
    let tx = side.store.begin(Side::High)?;
    tx.add_runtime(&row, &super::review::owner_actor())?;
    tx.commit()?;
    println!(
        "runtime {} registered: Python {}, {} package(s), sha256 {}; the sandbox mounts {}. The low side offers it \
         after the next export; a running `ferry serve` takes its jobs once restarted.",
        reg.name,
        env.version,
        env.packages.len(),
        &sha256[..16],
        if env.mounts.is_empty() {
            "nothing beyond the system's paths".to_string()
        } else {
            env.mounts
                .iter()
                .map(|m| m.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    Ok(())
}

/// `ferry runtime remove --config HIGH NAME`.
pub fn remove(config_path: &Path, name: &str) -> Result<()> {
    let mut side = SideDir::open(config_path)?;
    let tx = side.store.begin(side.config.side)?;
    tx.remove_runtime(name, &super::review::owner_actor())?;
    tx.commit()?;
    println!("runtime {name} removed; jobs naming it fail from now on, saying so");
    Ok(())
}

/// `ferry runtime list --config CFG [--json]`: configured and registered (or received) runtimes.
pub fn list(config_path: &Path, json: bool) -> Result<()> {
    let side = SideDir::open(config_path)?;
    let mut infos: Vec<(RuntimeInfo, Option<String>)> = side
        .config
        .runtimes
        .iter()
        .map(|(name, rt)| {
            (
                RuntimeInfo::configured(name),
                Some(rt.program.display().to_string()),
            )
        })
        .collect();
    for row in side.store.runtimes()? {
        infos.push((RuntimeInfo::from(row.info), row.program));
    }
    infos.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    if json {
        let list: Vec<serde_json::Value> = infos
            .into_iter()
            .map(|(info, program)| {
                let mut v = serde_json::to_value(info).expect("serializes");
                v["program"] = program.map_or(serde_json::Value::Null, Into::into);
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for (info, program) in infos {
        println!(
            "{:<20} {:<11} {:<8} {:>3} package(s)  {}{}",
            escape::line(&info.name),
            info.origin,
            if info.python.is_empty() {
                "-"
            } else {
                &info.python
            },
            info.packages.len(),
            program.unwrap_or_default(),
            if info.description.is_empty() {
                String::new()
            } else {
                format!("  {}", escape::line(&info.description))
            }
        );
    }
    Ok(())
}

/// `ferry runtimes [--json]` (researchers).
pub async fn runtimes(url: &str, json: bool) -> Result<()> {
    let list = catalog(url).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for rt in list {
        println!(
            "{}  ({}{})",
            escape::line(&rt.name),
            if rt.python.is_empty() {
                "Python 3".to_string()
            } else {
                format!("Python {}", escape::line(&rt.python))
            },
            if rt.packages.is_empty() {
                String::new()
            } else {
                format!(", {} package(s)", rt.packages.len())
            }
        );
        if !rt.description.is_empty() {
            println!("  {}", escape::line(&rt.description));
        }
        if !rt.packages.is_empty() {
            let shown: Vec<String> = rt
                .packages
                .iter()
                .map(|p| format!("{} {}", escape::line(&p.name), escape::line(&p.version)))
                .collect();
            println!("  packages: {}", shown.join(", "));
        }
        if let Some(local) = installed(&rt.name)? {
            println!("  installed here: {}", local.display());
        }
    }
    Ok(())
}

async fn catalog(url: &str) -> Result<Vec<RuntimeInfo>> {
    call(url, &Call::Runtimes)
        .await?
        .runtime_details
        .context("the low side's reply lists no runtimes")
}

/// Where installed runtimes are remembered: `$XDG_DATA_HOME/ferry/runtimes` (default
/// `~/.local/share/ferry/runtimes`), one file per runtime holding its interpreter's path.
fn registry_dir() -> Result<PathBuf> {
    let base =
        match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(std::env::var_os("HOME").context(
                "neither XDG_DATA_HOME nor HOME is set: give --dir and run with --python",
            )?)
            .join(".local/share"),
        };
    Ok(base.join("ferry/runtimes"))
}

/// The interpreter `ferry runtime install NAME` made, if it did.
fn installed(name: &str) -> Result<Option<PathBuf>> {
    let file = registry_dir()?.join(format!("{name}.path"));
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(Some(PathBuf::from(text.trim()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
    }
}

/// A base interpreter of the runtime's version (`python3.11` for 3.11.x) where one is installed, else `python3`.
fn base_python(version: &str) -> PathBuf {
    let minor: Vec<&str> = version.split('.').take(2).collect();
    let wanted = format!("python{}", minor.join("."));
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(&wanted);
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from("/usr/bin/python3")
}

/// `ferry runtime install NAME [--dir DIR]` (researchers): a virtualenv with the catalog's package versions.
pub async fn install(url: &str, name: &str, dir: Option<&Path>) -> Result<()> {
    ferry_core::names::runtime(name)?;
    let rt = catalog(url)
        .await?
        .into_iter()
        .find(|r| r.name == name)
        .with_context(|| {
            format!("the low side offers no runtime {name:?} (`ferry runtimes` lists them)")
        })?;
    if rt.origin == "configured" {
        bail!(
            "{name} is the lab's configured interpreter, with no package list to install: run with --runtime {name} \
             as it is"
        );
    }
    let dir = match dir {
        Some(d) => d.to_path_buf(),
        None => registry_dir()?.join(name),
    };
    let dir = std::path::absolute(&dir).with_context(|| format!("resolving {}", dir.display()))?;
    if dir.exists() {
        bail!(
            "{} exists already: remove it or give another --dir",
            dir.display()
        );
    }
    let base = base_python(&rt.python);
    let _making = crate::progress::Activity::start(
        format!(
            "installing {} package(s) of runtime {name} into {}",
            rt.packages.len(),
            dir.display()
        ),
        || None,
    );
    let made = std::process::Command::new(&base)
        .args(["-m", "venv"])
        .arg(&dir)
        .output()
        .with_context(|| format!("running {} -m venv", base.display()))?;
    if !made.status.success() {
        bail!(
            "{} -m venv {} failed: {}",
            base.display(),
            dir.display(),
            String::from_utf8_lossy(&made.stderr).trim()
        );
    }
    let python = dir.join("bin/python");
    let pins: Vec<String> = rt
        .packages
        .iter()
        .filter(|p| p.name != "pip")
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect();
    if !pins.is_empty() {
        let pip = std::process::Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--no-deps",
                "--disable-pip-version-check",
            ])
            .args(&pins)
            .output()
            .context("running pip")?;
        if !pip.status.success() {
            let _ = std::fs::remove_dir_all(&dir);
            bail!(
                "pip could not install the runtime's packages (nothing was kept): {}",
                String::from_utf8_lossy(&pip.stderr).trim()
            );
        }
    }
    let registry = registry_dir()?;
    std::fs::create_dir_all(&registry)
        .with_context(|| format!("creating {}", registry.display()))?;
    let file = registry.join(format!("{name}.path"));
    std::fs::write(&file, format!("{}\n", python.display()))
        .with_context(|| format!("writing {}", file.display()))?;
    drop(_making);
    let local = ferry_sandbox::python::inspect(&python)?;
    println!(
        "runtime {name} installed in {} (Python {}); `ferry run --mock --runtime {name}` uses it",
        dir.display(),
        local.version
    );
    warn_if_different(&rt, &local);
    Ok(())
}

/// The sandbox runtime `ferry run --mock` uses for `name`: `--python PATH` when given, else the interpreter
/// `ferry runtime install` made, else the default Python for `python`. Warns when the local environment differs
/// from the catalog's.
pub async fn for_mock_run(
    url: &str,
    name: &str,
    python: Option<&Path>,
) -> Result<ferry_sandbox::Runtime> {
    ferry_core::names::runtime(name)?;
    let program = match python {
        Some(p) => Some(p.to_path_buf()),
        None => installed(name)?,
    };
    let Some(program) = program else {
        if name == "python" {
            let config = ferry_core::Config::new(Side::Low, Path::new("/"), "amqp://unused");
            return Ok(ferry_serve::jobrun::runtime(
                "python",
                &config.runtimes["python"],
            ));
        }
        bail!(
            "runtime {name} is not installed here: `ferry runtime install {name}` makes a local copy of it, or give \
             --python PATH to use an interpreter of your own"
        );
    };
    let local = ferry_sandbox::python::inspect(&program)?;
    match catalog(url).await {
        Ok(list) => match list.iter().find(|r| r.name == name) {
            Some(rt) => warn_if_different(rt, &local),
            None => eprintln!(
                "ferry: warning: the low side offers no runtime {name}; `ferry submit --runtime {name}` would be \
                 refused"
            ),
        },
        Err(e) => eprintln!("ferry: warning: could not compare with the lab's runtimes: {e:#}"),
    }
    Ok(local.runtime(name))
}

/// Prints, on stderr, how `local` differs from the catalog's runtime (Python version, packages), if it does.
fn warn_if_different(rt: &RuntimeInfo, local: &PythonEnv) {
    if rt.origin == "configured" {
        return;
    }
    let mut diffs = Vec::new();
    if rt.python != local.version {
        diffs.push(format!(
            "Python {} here, {} there",
            local.version,
            escape::line(&rt.python)
        ));
    }
    let ours: std::collections::BTreeMap<&str, &str> = local
        .packages
        .iter()
        .filter(|(n, _)| n != "pip")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let theirs: std::collections::BTreeMap<&str, &str> = rt
        .packages
        .iter()
        .filter(|p| p.name != "pip")
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    for (name, version) in &theirs {
        match ours.get(name) {
            None => diffs.push(format!("{} missing here", escape::line(name))),
            Some(v) if v != version => diffs.push(format!(
                "{} {} here, {} there",
                escape::line(name),
                v,
                escape::line(version)
            )),
            Some(_) => {}
        }
    }
    for name in ours.keys().filter(|n| !theirs.contains_key(*n)) {
        diffs.push(format!("{name} only here"));
    }
    if !diffs.is_empty() {
        eprintln!(
            "ferry: warning: your environment differs from the lab's runtime {}: {}",
            escape::line(&rt.name),
            diffs.join("; ")
        );
    }
}
