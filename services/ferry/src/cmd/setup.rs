//! Setting up a side: `ferry init`, `trust add`, `asset add` and `asset list` (`researcher ...` is in
//! [`super::accounts`]).

use std::path::Path;

use anyhow::{bail, Context, Result};
use ferry_core::Side;
use ferry_transfer::SideDir;

/// The broker URL `ferry init` writes when given none: the local broker's guest account on the side's own vhost.
fn default_amqp_url(side: Side) -> String {
    format!("amqp://guest:guest@127.0.0.1:5672/ferry-{}", side.as_str())
}

/// `ferry init --side S --dir DIR [--amqp URL] [--provision]`.
pub fn init(side: Side, dir: &Path, amqp: Option<&str>, provision: bool) -> Result<()> {
    let config_path = ferry_transfer::Layout::new(dir).config_file();
    if provision && config_path.exists() {
        // A side made before: provision the broker its configuration names (idempotent).
        let made = SideDir::open(&config_path)?;
        made.require(side, "`ferry init --provision`")?;
        if let Some(url) = amqp.filter(|u| *u != made.config.amqp_url) {
            bail!(
                "{} names another broker URL than --amqp {}: edit amqp_url there, or leave --amqp out",
                config_path.display(),
                ferry_core::config::redact_url(url)
            );
        }
        let done = provision_broker(side, &made.config.amqp_url)?;
        println!(
            "the {} side in {} exists already; its broker is provisioned: {done}",
            side.as_str(),
            made.config.dir.display()
        );
        return Ok(());
    }
    let amqp = amqp
        .map(str::to_string)
        .unwrap_or_else(|| default_amqp_url(side));
    ferry_broker::url_parts(&amqp)?;
    let provisioned = if provision && !config_path.exists() {
        Some(provision_broker(side, &amqp)?)
    } else {
        None
    };
    let made = ferry_transfer::setup::init(side, dir, &amqp)?;
    println!(
        "initialised the {} side in {} (key {}); hand {} to the other side's owner",
        side.as_str(),
        made.dir.display(),
        made.key_id,
        made.public_file.display()
    );
    let cfg = made.config_file.display().to_string();
    let broker = ferry_broker::url_parts(&amqp)?;
    println!("broker: vhost {} as {}", broker.vhost, broker.user);
    match provisioned {
        Some(done) => println!("provisioned: {done}"),
        None => println!(
            "  the broker needs that vhost and account, with every permission on it: run this again with \
             --provision (as root), or see deploy/README.md"
        ),
    }
    let peer = side.peer().as_str();
    println!("next steps:");
    println!("  ferry trust add --config {cfg} {peer}-public.txt   # the {peer} side's public.txt");
    match side {
        Side::High => {
            println!("  ferry asset add --config {cfg} NAME --private FILE --mock FILE --description TEXT");
            println!("  ferry serve --config {cfg}          # the dispatcher and workers, leave it running");
            println!("  ferry export --config {cfg}         # the catalog, to carry to the low side's inbox/");
        }
        Side::Low => {
            println!("  ferry researcher add --config {cfg} NAME < password.txt");
            println!("  ferry serve --config {cfg}          # intake and researchers' calls, leave it running");
            println!("  ferry import --config {cfg}         # bundles carried into inbox/ (serve does it too)");
        }
    }
    Ok(())
}

/// `ferry init --side worker --dir DIR --amqp URL --assets DIR`: a stateless worker's ferry.toml (no keys, no
/// state database; the high side's broker and the asset store are all it needs).
pub fn init_worker(
    dir: &Path,
    amqp: Option<&str>,
    assets: Option<&Path>,
    provision: bool,
) -> Result<()> {
    if provision {
        bail!("--provision is for a side: give the worker an account on the high side's vhost (see deploy/README.md)");
    }
    let amqp = amqp.context(
        "--side worker needs --amqp URL: the high side's broker (its vhost, with the worker's account)",
    )?;
    let assets = assets.context(
        "--side worker needs --assets DIR: the asset store (shared storage, read-only) the high side's assets are in",
    )?;
    ferry_broker::url_parts(amqp)?;
    let config_path = ferry_transfer::Layout::new(dir).config_file();
    if config_path.exists() {
        bail!(
            "{} exists already: a worker is made once",
            config_path.display()
        );
    }
    let assets = assets.canonicalize().with_context(|| {
        format!(
            "--assets {}: the asset store cannot be opened",
            assets.display()
        )
    })?;
    std::fs::create_dir_all(dir.join("work"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let config = ferry_core::config::WorkerSideConfig::new(dir, amqp, &assets);
    std::fs::write(&config_path, config.to_toml())
        .with_context(|| format!("writing {}", config_path.display()))?;
    let cfg = config_path.display();
    let broker = ferry_broker::url_parts(amqp)?;
    println!(
        "initialised a worker in {} (broker: vhost {} as {}; assets from {})",
        dir.display(),
        broker.vhost,
        broker.user,
        assets.display()
    );
    println!("it holds no keys and no state: edit [runtimes] there to the interpreters this machine has, then");
    println!("  ferry worker --config {cfg}   # leave it running; the high side's ferry serve commits the results");
    Ok(())
}

/// Makes sure the broker has the vhost and account `url` names, the account with every permission on the vhost
/// (it declares the side's topology), through `rabbitmqctl`. On the low side the account also gets the
/// `administrator` tag, which RabbitMQ's management API requires of the account that `ferry researcher ...`
/// manages researchers with (its other tags are kept). Idempotent: what exists is left as it is, but an existing
/// account must accept the URL's password. Returns what it did, for people.
fn provision_broker(side: Side, url: &str) -> Result<String> {
    let parts = ferry_broker::url_parts(url)?;
    if parts.user.is_empty() || parts.password.is_empty() {
        bail!("--provision needs the URL to name an account and its password (amqp://USER:PASSWORD@host/VHOST)");
    }
    let mut done = Vec::new();
    if vhost_exists(&parts.vhost)? {
        done.push(format!("vhost {} was there", parts.vhost));
    } else {
        rabbitmqctl(&["add_vhost", &parts.vhost], None)?;
        done.push(format!("vhost {} created", parts.vhost));
    }
    let password = format!("{}\n", parts.password);
    if user_exists(&parts.user)? {
        rabbitmqctl(&["authenticate_user", &parts.user], Some(&password)).with_context(|| {
            format!(
                "the broker has an account {} already, and it refuses the URL's password: give that \
                 account's password, or name another account",
                parts.user
            )
        })?;
        done.push(format!("account {} was there", parts.user));
    } else {
        rabbitmqctl(&["add_user", &parts.user], Some(&password))?;
        done.push(format!("account {} created", parts.user));
    }
    rabbitmqctl(
        &[
            "set_permissions",
            "-p",
            &parts.vhost,
            &parts.user,
            ".*",
            ".*",
            ".*",
        ],
        None,
    )?;
    done.push(format!(
        "{} may configure, write and read on {}",
        parts.user, parts.vhost
    ));
    if side == Side::Low {
        let mut tags = user_tags(&parts.user)?;
        if tags.iter().any(|t| t == "administrator") {
            done.push(format!("{} had the administrator tag", parts.user));
        } else {
            tags.push("administrator".to_string());
            let mut args = vec!["set_user_tags", parts.user.as_str()];
            args.extend(tags.iter().map(String::as_str));
            rabbitmqctl(&args, None)?;
            done.push(format!(
                "{} has the administrator tag (it manages researcher accounts through the management API)",
                parts.user
            ));
        }
    }
    Ok(done.join(", "))
}

/// The tags of `user`, as `rabbitmqctl list_users` shows them (`name [tag1, tag2]`).
fn user_tags(user: &str) -> Result<Vec<String>> {
    let list = rabbitmqctl(&["list_users", "--quiet", "--no-table-headers"], None)?;
    Ok(list
        .lines()
        .find(|l| l.split_whitespace().next() == Some(user))
        .and_then(|l| l.split_once('['))
        .map(|(_, rest)| {
            rest.trim_end()
                .trim_end_matches(']')
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

fn vhost_exists(vhost: &str) -> Result<bool> {
    let list = rabbitmqctl(&["list_vhosts", "--quiet", "--no-table-headers"], None)?;
    Ok(list.lines().any(|l| l.trim() == vhost))
}

fn user_exists(user: &str) -> Result<bool> {
    let list = rabbitmqctl(&["list_users", "--quiet", "--no-table-headers"], None)?;
    Ok(list
        .lines()
        .any(|l| l.split_whitespace().next() == Some(user)))
}

/// `ferry trust add --config CFG PEER_PUBLIC_TXT`.
pub fn trust_add(config_path: &Path, peer_file: &Path) -> Result<()> {
    let side = SideDir::open(config_path)?;
    let peer = ferry_transfer::setup::trust_add(&side, peer_file)?;
    println!(
        "pinned the {} side's key {} in {}",
        side.config.side.peer().as_str(),
        peer.key_id(),
        side.layout.peer_file().display()
    );
    Ok(())
}

fn rabbitmqctl(args: &[&str], stdin: Option<&str>) -> Result<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("rabbitmqctl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context(
            "running rabbitmqctl (it must be on PATH, and run as root or the rabbitmq user)",
        )?;
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .context("writing to rabbitmqctl")?;
    } else {
        drop(child.stdin.take());
    }
    let out = child
        .wait_with_output()
        .context("waiting for rabbitmqctl")?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        // rabbitmqctl's own words, on one line, without its banner and prompts.
        let said: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.ends_with("...") && !l.ends_with(':'))
            .collect();
        bail!("rabbitmqctl {} failed: {}", args[0], said.join("; "));
    }
    Ok(text)
}

/// `ferry asset add --config HIGH NAME --private PATH --mock PATH [--description TEXT] [--canary TEXT]...`.
pub fn asset_add(
    config_path: &Path,
    name: &str,
    private: &Path,
    mock: &Path,
    description: &str,
    canaries: &[String],
) -> Result<()> {
    let mut side = SideDir::open(config_path)?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mocks = side.layout.mocks_dir();
    let registering = crate::progress::Activity::start(
        format!(
            "registering {} (private file {}, mock {})",
            ferry_review::escape::line(name),
            crate::progress::human(size(private)),
            crate::progress::human(size(mock))
        ),
        move || crate::progress::temporary_bytes(&mocks),
    );
    let row = ferry_transfer::setup::asset_add(
        &mut side,
        name,
        private,
        mock,
        description,
        canaries,
        ferry_sandbox::SANDBOX_UID,
    );
    drop(registering);
    let row = row?;
    println!(
        "registered asset {name}: private file {} stays here (indexed for the disclosure checks{}); its mock \
         ({} bytes) travels with the next export",
        row.private_path.as_deref().unwrap_or("?"),
        match canaries.len() {
            0 => String::new(),
            n => format!(", {n} canary string(s)"),
        },
        row.mock_size
    );
    Ok(())
}

/// `ferry asset remove --config HIGH NAME`.
pub fn asset_remove(config_path: &Path, name: &str) -> Result<()> {
    let mut side = SideDir::open(config_path)?;
    if side.config.side != ferry_core::Side::High {
        anyhow::bail!("assets are registered and removed on the high side; this is the low side's configuration");
    }
    let tx = side.store.begin(ferry_core::Side::High)?;
    tx.remove_asset(name)?;
    tx.audit_append(&super::review::owner_actor(), "asset-remove", None, name)?;
    tx.commit()?;
    println!("asset {name} removed; the low side's catalog drops it with the next export");
    Ok(())
}

/// An asset as `ferry asset list --json` prints it.
#[derive(serde::Serialize)]
struct AssetJson<'a> {
    name: &'a str,
    description: &'a str,
    mock_size: u64,
    mock_sha256: &'a str,
    private_path: Option<&'a str>,
}

/// `ferry asset list --config CFG [--json]`.
pub fn asset_list(config_path: &Path, json: bool) -> Result<()> {
    let side = SideDir::open(config_path)?;
    let assets = side.store.assets()?;
    if json {
        let list: Vec<AssetJson<'_>> = assets
            .iter()
            .map(|a| AssetJson {
                name: &a.name,
                description: &a.description,
                mock_size: a.mock_size,
                mock_sha256: &a.mock_sha256,
                private_path: a.private_path.as_deref(),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if assets.is_empty() {
        println!("no assets registered");
    } else {
        for a in assets {
            println!(
                "{:<24} mock {:>10} bytes  {}",
                a.name, a.mock_size, a.description
            );
        }
    }
    Ok(())
}
