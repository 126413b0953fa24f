//! Researcher accounts on the low side's broker: `ferry researcher add|list|remove|password`, through RabbitMQ's
//! management HTTP API (so the broker may be on another host), as the side's service account unless
//! `[broker] management_url` names another. There is no `rabbitmqctl` fallback: the API is the one way.
//!
//! A researcher is a broker user with no tags whose permissions on the low side's vhost are exactly
//! [`researcher_permissions`]: configure nothing, write only to the requests exchange, read only their own results
//! queue. Only such a user is listed, removed or given a new password, so that these commands can never touch
//! the service account or an administrator.
//!
//! `add` is transactional: everything that can be checked is checked before anything is made, each step that
//! then fails undoes the steps before it (in reverse), and the new account is proved by logging in with it.
//! Re-adding an existing user is refused (use `password` to change a password, `remove` to start over).

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use ferry_broker::management::{Management, Permissions};
use ferry_core::{names, wire, Side};
use ferry_transfer::SideDir;

/// The permissions that confine researcher `name` on the low side's vhost.
pub fn researcher_permissions(name: &str) -> Permissions {
    Permissions {
        configure: "^$".to_string(),
        write: format!("^{}$", regex_escape(wire::REQUESTS_EXCHANGE)),
        read: format!("^{}$", regex_escape(&wire::results_queue(name))),
    }
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

/// A test-only fault: in a debug build, `FERRY_FAILPOINT=NAME` makes the step named NAME fail, so that the
/// broker tests can prove what a failure part-way leaves. Release builds have no failpoints.
fn failpoint(name: &str) -> Result<()> {
    if cfg!(debug_assertions) && std::env::var("FERRY_FAILPOINT").as_deref() == Ok(name) {
        bail!("failpoint {name}");
    }
    Ok(())
}

/// The low side, its vhost and a management client for its broker.
struct Broker {
    side: SideDir,
    vhost: String,
    api: Management,
}

impl Broker {
    fn open(config_path: &Path, command: &str) -> Result<Broker> {
        let side = SideDir::open(config_path)?;
        side.require(Side::Low, command)?;
        let parts = ferry_broker::url_parts(&side.config.amqp_url)?;
        let Some(url) = side.config.management_url() else {
            bail!(
                "{} names a broker on another host and no management API: set [broker] management_url \
                 (e.g. \"http://BROKER-HOST:15672\") in {}",
                ferry_core::config::redact_url(&side.config.amqp_url),
                config_path.display()
            );
        };
        let api = Management::new(&url, &parts.user, &parts.password)?;
        // Is it there, and may this account manage users? Asked before anything is done.
        let me = api.whoami()?;
        if !me.tags.iter().any(|t| t == "administrator") {
            bail!(
                "the management account {} (at {}) has not the `administrator` tag, which RabbitMQ requires to \
                 manage users: `rabbitmqctl set_user_tags {} administrator`, or name another account in \
                 [broker] management_url",
                me.name,
                api.url(),
                me.name
            );
        }
        Ok(Broker {
            side,
            vhost: parts.vhost,
            api,
        })
    }

    fn require_vhost(&self, config_path: &Path) -> Result<()> {
        if !self.api.vhost_exists(&self.vhost)? {
            bail!(
                "the broker has no vhost {} (the low side's, from {}): `ferry init --provision --side low --dir \
                 {}` creates it and the service account",
                self.vhost,
                config_path.display(),
                self.side.config.dir.display()
            );
        }
        Ok(())
    }

    /// Whether `name` exists and is one of this side's researchers; refuses a user that exists but is not. With
    /// `half_made`, a user with no tags and no permissions on any vhost counts too: what an `add` whose undo
    /// failed leaves between making the user and giving it its permissions.
    fn researcher_exists(&self, name: &str, half_made: bool) -> Result<bool> {
        let Some(user) = self.api.find_user(name)? else {
            return Ok(false);
        };
        let perms = self.api.permissions(&self.vhost, name)?;
        if user.tags.is_empty() && perms.as_ref() == Some(&researcher_permissions(name)) {
            return Ok(true);
        }
        if half_made && user.tags.is_empty() && self.api.user_permissions(name)?.is_empty() {
            return Ok(true);
        }
        bail!(
            "broker user {name} is not a researcher of this side (it has {}): left as it is",
            if !user.tags.is_empty() {
                format!("the tags {}", user.tags.join(", "))
            } else if perms.is_some() {
                format!("other permissions on vhost {}", self.vhost)
            } else {
                format!("no permissions on vhost {}", self.vhost)
            }
        );
    }

    /// The AMQP URL of the side's broker with `user` and `password` in place of the service account's.
    fn url_as(&self, user: &str, password: &str) -> String {
        with_account(&self.side.config.amqp_url, user, password)
    }
}

/// `url` (an AMQP URL) with its user information replaced by `user:password`, both percent-encoded.
fn with_account(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("amqp", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = rest[..end]
        .rsplit_once('@')
        .map_or(&rest[..end], |(_, h)| h);
    format!(
        "{scheme}://{}:{}@{host}{}",
        pct(user),
        pct(password),
        &rest[end..]
    )
}

fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The password on stdin (one line; a trailing newline is not part of it).
fn read_password() -> Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']).to_string();
    if password.len() < 8 {
        bail!("the password (read from stdin) must be at least 8 characters");
    }
    if password.contains(['\n', '\r']) {
        bail!("the password (read from stdin) must be one line");
    }
    Ok(password)
}

/// Logs in as `user` and closes again: proves the account and its access to the vhost.
async fn prove_login(broker: &Broker, user: &str, password: &str) -> Result<()> {
    let session = ferry_broker::Session::connect(&broker.url_as(user, password)).await?;
    session.close().await;
    Ok(())
}

/// What `add` made so far, undone in reverse when a later step fails.
enum Made {
    Queue(String),
    User(String),
}

/// `ferry researcher add --config LOW NAME`, password on stdin.
pub async fn add(config_path: &Path, name: &str) -> Result<()> {
    names::researcher(name)?;
    let password = read_password()?;
    let broker = Broker::open(config_path, "`ferry researcher add`")?;
    // Every check first: nothing is made unless all of them pass.
    broker.require_vhost(config_path)?;
    if broker.api.find_user(name)?.is_some() {
        bail!(
            "broker user {name} exists already: nothing was changed (`ferry researcher password` gives a \
             researcher a new password; `ferry researcher remove` removes one, to add it again)"
        );
    }
    let queue = wire::results_queue(name);
    let queue_was_there = broker.api.queue_exists(&broker.vhost, &queue)?;
    let service = ferry_broker::Session::connect(&broker.side.config.amqp_url)
        .await
        .context(
            "logging in as the side's service account, which declares the researcher's queue",
        )?;

    let mut made = Vec::new();
    let outcome = add_steps(
        &broker,
        &service,
        name,
        &password,
        queue_was_there,
        &mut made,
    )
    .await;
    service.close().await;
    if let Err(err) = outcome {
        let left = undo(&broker, made);
        if left.is_empty() {
            return Err(err.context(format!(
                "adding researcher {name} failed part-way; what was made is undone, so the same command can \
                 be run again"
            )));
        }
        return Err(err.context(format!(
            "adding researcher {name} failed part-way, and undoing it failed too: {} remain; `ferry researcher \
             remove --config {} {name}` removes them",
            left.join(", "),
            config_path.display()
        )));
    }
    println!(
        "researcher {name} can now publish requests and read {queue} on vhost {}",
        broker.vhost
    );
    Ok(())
}

async fn add_steps(
    broker: &Broker,
    service: &ferry_broker::Session,
    name: &str,
    password: &str,
    queue_was_there: bool,
    made: &mut Vec<Made>,
) -> Result<()> {
    let queue_type = broker.side.config.broker.queue_type;
    ferry_broker::topology::declare_low(service, queue_type).await?;
    ferry_broker::topology::declare_results_queue(service, name, queue_type).await?;
    if !queue_was_there {
        made.push(Made::Queue(wire::results_queue(name)));
    }
    failpoint("researcher-add:after-queue")?;
    broker.api.put_user(name, password, &[])?;
    made.push(Made::User(name.to_string()));
    failpoint("researcher-add:after-user")?;
    broker
        .api
        .set_permissions(&broker.vhost, name, &researcher_permissions(name))?;
    failpoint("researcher-add:after-permissions")?;
    prove_login(broker, name, password)
        .await
        .with_context(|| format!("logging in as the new researcher {name}"))?;
    Ok(())
}

/// Undoes `made` in reverse; returns what could not be undone, for people.
fn undo(broker: &Broker, made: Vec<Made>) -> Vec<String> {
    let mut left = Vec::new();
    for step in made.into_iter().rev() {
        match step {
            Made::User(user) => {
                if let Err(e) = broker.api.delete_user(&user) {
                    tracing::warn!("undoing researcher add: deleting user {user}: {e}");
                    left.push(format!("broker user {user}"));
                }
            }
            Made::Queue(queue) => {
                if let Err(e) = broker.api.delete_queue(&broker.vhost, &queue) {
                    tracing::warn!("undoing researcher add: deleting queue {queue}: {e}");
                    left.push(format!("queue {queue}"));
                }
            }
        }
    }
    left
}

/// A researcher as `ferry researcher list --json` prints them.
#[derive(serde::Serialize)]
struct ResearcherJson {
    name: String,
    results_queue: String,
    /// Whether their results queue exists (it should; `ferry researcher add` again after `remove` remakes it).
    queue_exists: bool,
    /// Results waiting in it, not yet read.
    messages_waiting: u64,
}

/// `ferry researcher list --config LOW [--json]`.
pub fn list(config_path: &Path, json: bool) -> Result<()> {
    let broker = Broker::open(config_path, "`ferry researcher list`")?;
    let Some(perms) = broker.api.vhost_permissions(&broker.vhost)? else {
        broker.require_vhost(config_path)?;
        bail!("vhost {} vanished while listing it", broker.vhost);
    };
    let queues = broker.api.queues(&broker.vhost)?;
    let mut list: Vec<ResearcherJson> = perms
        .into_iter()
        .filter(|p| {
            names::researcher(&p.user).is_ok() && p.permissions == researcher_permissions(&p.user)
        })
        .map(|p| {
            let results_queue = wire::results_queue(&p.user);
            let queue = queues.iter().find(|(q, _)| *q == results_queue);
            ResearcherJson {
                queue_exists: queue.is_some(),
                messages_waiting: queue.map_or(0, |(_, n)| *n),
                name: p.user,
                results_queue,
            }
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("no researchers on vhost {}", broker.vhost);
    } else {
        println!(
            "{:<32} {:<48} {:>8}",
            "RESEARCHER", "RESULTS QUEUE", "WAITING"
        );
        for r in list {
            let queue = if r.queue_exists {
                r.results_queue
            } else {
                format!("{} (missing)", r.results_queue)
            };
            println!("{:<32} {:<48} {:>8}", r.name, queue, r.messages_waiting);
        }
    }
    Ok(())
}

/// `ferry researcher remove --config LOW NAME`: the broker user and their results queue go; their jobs stay in
/// the state store.
pub fn remove(config_path: &Path, name: &str) -> Result<()> {
    names::researcher(name)?;
    let broker = Broker::open(config_path, "`ferry researcher remove`")?;
    broker.require_vhost(config_path)?;
    let queue = wire::results_queue(name);
    let had_user = broker.researcher_exists(name, true)?;
    let had_queue = broker.api.queue_exists(&broker.vhost, &queue)?;
    if !had_user && !had_queue {
        bail!(
            "there is no researcher {name} on vhost {} (`ferry researcher list` lists them)",
            broker.vhost
        );
    }
    // The account first: once it is gone nobody can log in as them, whatever happens to the queue.
    if had_user {
        broker.api.delete_user(name)?;
        // RabbitMQ closes a deleted user's connections itself; this makes sure of it on any version.
        broker.api.close_connections(name)?;
    }
    if had_queue {
        broker
            .api
            .delete_queue(&broker.vhost, &queue)
            .with_context(|| {
                format!("the account {name} is removed, but not its queue {queue}: run this again")
            })?;
    }
    println!(
        "removed researcher {name}{}{}; their jobs stay in the state store",
        if had_user {
            ": the broker account"
        } else {
            ": no broker account was left"
        },
        if had_queue {
            format!(" and queue {queue}")
        } else {
            String::new()
        }
    );
    Ok(())
}

/// `ferry researcher password --config LOW NAME`, the new password on stdin.
pub async fn password(config_path: &Path, name: &str) -> Result<()> {
    names::researcher(name)?;
    let password = read_password()?;
    let broker = Broker::open(config_path, "`ferry researcher password`")?;
    broker.require_vhost(config_path)?;
    if !broker.researcher_exists(name, false)? {
        bail!(
            "there is no researcher {name} on vhost {} (`ferry researcher add` makes one)",
            broker.vhost
        );
    }
    broker.api.put_user(name, &password, &[])?;
    // Whoever was logged in with the old password is not left connected.
    broker.api.close_connections(name)?;
    prove_login(&broker, name, &password)
        .await
        .with_context(|| format!("logging in as {name} with the new password"))?;
    println!("researcher {name} has a new password; their open connections were closed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_anchored_and_escaped() {
        assert_eq!(
            researcher_permissions("alice"),
            Permissions {
                configure: "^$".into(),
                write: "^ferry\\.requests$".into(),
                read: "^ferry\\.results\\.alice$".into(),
            }
        );
    }

    #[test]
    fn an_account_is_put_into_the_url_encoded() {
        assert_eq!(
            with_account("amqp://svc:pw@h:5672/ferry-low", "alice", "p@ss:/word"),
            "amqp://alice:p%40ss%3A%2Fword@h:5672/ferry-low"
        );
        assert_eq!(
            with_account("amqp://h/%2f", "bob", "pw"),
            "amqp://bob:pw@h/%2f"
        );
        let url = with_account("amqp://svc:pw@h:5672/v", "alice", "s3cret-pw");
        assert!(!ferry_core::config::redact_url(&url).contains("s3cret"));
    }
}
