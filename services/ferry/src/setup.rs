//! Setting up a side: `ferry init`, `trust add`, `researcher add`, `asset add` and `asset list`.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ferry_bundle::{PublicIdentity, SideKeys};
use ferry_core::store::AssetRow;
use ferry_core::{names, Config, Side, Store};

use crate::side::SideDir;

/// `ferry init --side S --dir DIR [--amqp URL]`.
pub fn init(side: Side, dir: &Path, amqp: &str) -> Result<()> {
    let config_path = dir.join("ferry.toml");
    if config_path.exists() {
        bail!(
            "{} exists already: refusing to overwrite a side's configuration and keys",
            config_path.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let config = Config::new(side, &dir, amqp);
    for d in config.all_dirs() {
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    let keys = SideKeys::generate();
    keys.save(&config.keys_dir())
        .with_context(|| format!("writing keys into {}", config.keys_dir().display()))?;
    let public = keys.public();
    std::fs::write(config.public_file(), public.to_text(side.as_str()))
        .with_context(|| format!("writing {}", config.public_file().display()))?;
    Store::open(&config.state_db())
        .with_context(|| format!("creating {}", config.state_db().display()))?;
    std::fs::write(&config_path, config.to_toml())
        .with_context(|| format!("writing {}", config_path.display()))?;
    println!(
        "initialised the {} side in {} (key {}); hand {} to the other side's owner",
        side.as_str(),
        dir.display(),
        public.key_id(),
        config.public_file().display()
    );
    Ok(())
}

/// `ferry trust add --config CFG PEER_PUBLIC_TXT`.
pub fn trust_add(config_path: &Path, peer_file: &Path) -> Result<()> {
    let side = SideDir::open(config_path)?;
    let text = std::fs::read_to_string(peer_file)
        .with_context(|| format!("reading {}", peer_file.display()))?;
    let peer =
        PublicIdentity::parse(&text).with_context(|| format!("parsing {}", peer_file.display()))?;
    let own = side.keys()?.public();
    if own.signing == peer.signing {
        bail!(
            "{} is this side's own identity: pin the other side's public.txt",
            peer_file.display()
        );
    }
    if let Ok(existing) = side.peer() {
        if existing != peer {
            bail!(
                "a different peer ({}) is pinned already in {}; replacing a pinned key is a key rotation, not a trust add",
                existing.key_id(),
                side.config.peer_file().display()
            );
        }
    }
    let target = side.config.peer_file();
    std::fs::write(&target, peer.to_text(side.config.side.peer().as_str()))
        .with_context(|| format!("writing {}", target.display()))?;
    println!(
        "pinned the {} side's key {} in {}",
        side.config.side.peer().as_str(),
        peer.key_id(),
        target.display()
    );
    Ok(())
}

/// The vhost named in an AMQP URL (`%2f` and an empty path mean `/`).
fn vhost_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    if path.is_empty() {
        "/".to_string()
    } else {
        path.replace("%2f", "/").replace("%2F", "/")
    }
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
        bail!("rabbitmqctl {} failed: {}", args[0], text.trim());
    }
    Ok(text)
}

/// `ferry researcher add --config LOW NAME`, password on stdin.
pub async fn researcher_add(config_path: &Path, name: &str) -> Result<()> {
    let side = SideDir::open(config_path)?;
    side.require(Side::Low, "`ferry researcher add`")?;
    names::researcher(name)?;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.len() < 8 {
        bail!("the password (read from stdin) must be at least 8 characters");
    }
    let vhost = vhost_of(&side.config.amqp_url);
    let users = rabbitmqctl(&["list_users", "--quiet"], None)?;
    if users
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
    {
        bail!("broker user {name:?} exists already");
    }
    rabbitmqctl(&["add_user", name], Some(&format!("{password}\n")))?;
    // Confined: configure nothing, write only to the requests exchange, read only their own results queue
    // (direct reply-to, used for calls, needs no read permission).
    let write = format!("^{}$", regex_escape(ferry_core::wire::REQUESTS_EXCHANGE));
    let read = format!("^{}$", regex_escape(&ferry_core::wire::results_queue(name)));
    rabbitmqctl(
        &["set_permissions", "-p", &vhost, name, "^$", &write, &read],
        None,
    )?;
    let session = ferry_broker::Session::connect(&side.config.amqp_url).await?;
    ferry_broker::topology::declare_low(&session).await?;
    ferry_broker::topology::declare_results_queue(&session, name).await?;
    session.close().await;
    println!(
        "researcher {name} can now publish requests and read {} on vhost {vhost}",
        ferry_core::wire::results_queue(name)
    );
    Ok(())
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

/// `ferry asset add --config HIGH NAME --private PATH --mock PATH [--description TEXT]`.
pub fn asset_add(
    config_path: &Path,
    name: &str,
    private: &Path,
    mock: &Path,
    description: &str,
) -> Result<()> {
    let mut side = SideDir::open(config_path)?;
    side.require(Side::High, "`ferry asset add`")?;
    names::asset(name)?;
    let private = private
        .canonicalize()
        .with_context(|| format!("private file {}", private.display()))?;
    if !private.is_file() {
        bail!("private file {} is not a regular file", private.display());
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private)?.permissions().mode();
        if mode & 0o004 == 0 {
            bail!(
                "private file {} is not readable by others (mode {:o}): sandboxed jobs run as an unprivileged user \
                 (uid {}); `chmod o+r` the file and keep its directory closed (0700) instead",
                private.display(),
                mode & 0o777,
                ferry_sandbox::SANDBOX_UID
            );
        }
    }
    let mock_data =
        std::fs::read(mock).with_context(|| format!("reading mock {}", mock.display()))?;
    // Mocks are kept by content hash: a bundle that is resent later still finds the mock it carried.
    let mock_path = mock_store_path(&side.config, &ferry_core::sha256_hex(&mock_data))?;
    write_atomically(&mock_path, &mock_data)?;
    let row = AssetRow {
        name: name.to_string(),
        description: description.to_string(),
        private_path: Some(private.display().to_string()),
        mock_path: mock_path.display().to_string(),
        mock_size: mock_data.len() as u64,
        mock_sha256: ferry_core::sha256_hex(&mock_data),
        updated_at: ferry_core::now(),
    };
    let tx = side.store.begin(Side::High)?;
    tx.put_asset(&row)?;
    tx.commit()?;
    println!(
        "registered asset {name}: private file {} stays here; its mock ({} bytes) travels with the next export",
        private.display(),
        mock_data.len()
    );
    Ok(())
}

/// `ferry asset list --config CFG [--json]`.
pub fn asset_list(config_path: &Path, json: bool) -> Result<()> {
    let side = SideDir::open(config_path)?;
    let assets = side.store.assets()?;
    if json {
        let list: Vec<_> = assets
            .iter()
            .map(|a| {
                serde_json::json!({
                    "name": a.name, "description": a.description, "mock_size": a.mock_size,
                    "mock_sha256": a.mock_sha256, "private_path": a.private_path,
                })
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

/// Where a mock with this SHA-256 is kept: `assets/mocks/<sha256>.mock`.
pub fn mock_store_path(config: &ferry_core::Config, sha256: &str) -> Result<std::path::PathBuf> {
    let dir = config.assets_dir().join("mocks");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir.join(format!("{sha256}.mock")))
}

/// Writes `data` to `path` through a temporary file, fsync and rename.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(data)
        .with_context(|| format!("writing {}", tmp.display()))?;
    f.sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vhosts() {
        assert_eq!(vhost_of("amqp://g:g@127.0.0.1:5672/%2f"), "/");
        assert_eq!(vhost_of("amqp://g:g@127.0.0.1:5672/ferry-low"), "ferry-low");
        assert_eq!(vhost_of("amqp://127.0.0.1"), "/");
    }

    #[test]
    fn permissions_are_anchored_and_escaped() {
        assert_eq!(
            regex_escape("ferry.results.alice"),
            "ferry\\.results\\.alice"
        );
    }
}
