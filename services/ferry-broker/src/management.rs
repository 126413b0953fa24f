//! RabbitMQ's management HTTP API (the `rabbitmq_management` plugin, port 15672): users, their permissions on a
//! vhost, vhosts and queues, for researcher accounts on a broker that may be on another host. Blocking (a CLI's
//! few requests); plain HTTP only.
//!
//! The account is sent as HTTP basic authentication, never in a URL, so that no error or log line can carry its
//! password; a password given to [`Management::put_user`] travels only in the request body.

use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A management API failure. No variant holds a password.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ManagementError {
    /// The base URL is not one this client can use.
    #[error("{url} is not a management API URL: {reason}")]
    BadUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered (connection refused, no route, timeout).
    #[error(
        "the broker's management API at {url} does not answer ({reason}): is the rabbitmq_management plugin \
         enabled there (`rabbitmq-plugins enable rabbitmq_management`) and [broker] management_url right?"
    )]
    Unreachable {
        /// The base URL.
        url: String,
        /// What the transport said.
        reason: String,
    },
    /// The API refused the account (401) or the operation (403).
    #[error(
        "the broker's management API at {url} refused {user:?} for {operation} (HTTP {status}: {reason}); the \
         account needs the `administrator` tag (`rabbitmqctl set_user_tags {user} administrator`)"
    )]
    Refused {
        /// The base URL.
        url: String,
        /// The account used.
        user: String,
        /// What was being done.
        operation: String,
        /// 401 or 403.
        status: u16,
        /// What RabbitMQ said.
        reason: String,
    },
    /// Any other HTTP error.
    #[error("{operation}: the management API answered HTTP {status}: {reason}")]
    Http {
        /// What was being done.
        operation: String,
        /// The status code.
        status: u16,
        /// What RabbitMQ said.
        reason: String,
    },
    /// A reply that is not the JSON expected.
    #[error("{operation}: the management API's reply is not what was expected: {reason}")]
    BadReply {
        /// What was being done.
        operation: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A user's permissions on one vhost: three regular expressions over resource names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permissions {
    /// Declare and delete.
    pub configure: String,
    /// Publish to, bind to.
    pub write: String,
    /// Consume from, bind from.
    pub read: String,
}

/// One user's permissions on a vhost, as `GET /api/vhosts/V/permissions` lists them.
#[derive(Clone, Debug, Deserialize)]
pub struct UserPermissions {
    /// The user.
    pub user: String,
    /// Their permissions.
    #[serde(flatten)]
    pub permissions: Permissions,
}

/// A user as the API shows it (without its password hash).
#[derive(Clone, Debug)]
pub struct User {
    /// The name.
    pub name: String,
    /// Its management tags (`administrator`, `management`, ...); a researcher has none.
    pub tags: Vec<String>,
}

#[derive(Deserialize)]
struct UserJson {
    name: String,
    #[serde(default)]
    tags: Tags,
}

/// RabbitMQ 3.x gives tags as a comma-separated string in some versions and as a list in others.
#[derive(Default, Deserialize)]
#[serde(untagged)]
enum Tags {
    #[default]
    None,
    Text(String),
    List(Vec<String>),
}

impl Tags {
    fn into_vec(self) -> Vec<String> {
        match self {
            Tags::None => Vec::new(),
            Tags::Text(t) => t
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect(),
            Tags::List(l) => l,
        }
    }
}

/// A client of one broker's management API, as one account.
pub struct Management {
    base: String,
    user: String,
    authorization: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("base", &self.base)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// `s` percent-encoded as one URL path segment (vhost `/` is `%2F`).
fn segment(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (user information in a URL).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Management {
    /// A client of the API at `url` (`http://host:15672`, with an optional path prefix), as `user`, unless the URL
    /// names its own account (`http://USER:PASSWORD@host:15672`), which then wins.
    pub fn new(url: &str, user: &str, password: &str) -> Result<Management, ManagementError> {
        let bad = |reason: &str| ManagementError::BadUrl {
            url: ferry_core::config::redact_url(url),
            reason: reason.to_string(),
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("it must start with http:// (https is not built in)"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (account, host) = match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let (u, p) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                (Some((percent_decode(u), percent_decode(p))), host)
            }
            None => (None, authority),
        };
        if host.is_empty() {
            return Err(bad("it names no host"));
        }
        let (user, password) = account.unwrap_or_else(|| (user.to_string(), password.to_string()));
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Ok(Management {
            base: format!("http://{host}{path}"),
            user,
            authorization: format!("Basic {token}"),
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                .timeout(Duration::from_secs(60))
                .redirects(0)
                .build(),
        })
    }

    /// The base URL (it holds no account).
    pub fn url(&self) -> &str {
        &self.base
    }

    /// The account used.
    pub fn user(&self) -> &str {
        &self.user
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("{}/api/{path}", self.base))
            .set("Authorization", &self.authorization)
    }

    /// Runs `req` (with `body` as JSON, if any); Ok(None) for a 404.
    fn send(
        &self,
        operation: &str,
        req: ureq::Request,
        body: Option<serde_json::Value>,
    ) -> Result<Option<ureq::Response>, ManagementError> {
        let sent = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        match sent {
            Ok(resp) => Ok(Some(resp)),
            Err(ureq::Error::Status(404, _)) => Ok(None),
            Err(ureq::Error::Status(status, resp)) => {
                let reason = reason_of(resp);
                if status == 401 || status == 403 {
                    Err(ManagementError::Refused {
                        url: self.base.clone(),
                        user: self.user.clone(),
                        operation: operation.to_string(),
                        status,
                        reason,
                    })
                } else {
                    Err(ManagementError::Http {
                        operation: operation.to_string(),
                        status,
                        reason,
                    })
                }
            }
            Err(ureq::Error::Transport(t)) => Err(ManagementError::Unreachable {
                url: self.base.clone(),
                reason: t.to_string(),
            }),
        }
    }

    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        operation: &str,
        path: &str,
    ) -> Result<Option<T>, ManagementError> {
        let Some(resp) = self.send(operation, self.request("GET", path), None)? else {
            return Ok(None);
        };
        resp.into_json()
            .map(Some)
            .map_err(|e| ManagementError::BadReply {
                operation: operation.to_string(),
                reason: e.to_string(),
            })
    }

    /// The account in use, with its tags: checks that the API answers and accepts it.
    pub fn whoami(&self) -> Result<User, ManagementError> {
        let op = "checking the management account";
        let me: UserJson =
            self.get_json(op, "whoami")?
                .ok_or_else(|| ManagementError::BadReply {
                    operation: op.to_string(),
                    reason: "no /api/whoami (is this a RabbitMQ management API?)".into(),
                })?;
        Ok(User {
            name: me.name,
            tags: me.tags.into_vec(),
        })
    }

    /// Whether `vhost` exists.
    pub fn vhost_exists(&self, vhost: &str) -> Result<bool, ManagementError> {
        let op = format!("looking up vhost {vhost}");
        Ok(self
            .get_json::<serde_json::Value>(&op, &format!("vhosts/{}", segment(vhost)))?
            .is_some())
    }

    /// User `name`, if it exists.
    pub fn find_user(&self, name: &str) -> Result<Option<User>, ManagementError> {
        let op = format!("looking up user {name}");
        Ok(self
            .get_json::<UserJson>(&op, &format!("users/{}", segment(name)))?
            .map(|u| User {
                name: u.name,
                tags: u.tags.into_vec(),
            }))
    }

    /// Creates user `name`, or gives an existing one this password and these tags.
    pub fn put_user(
        &self,
        name: &str,
        password: &str,
        tags: &[&str],
    ) -> Result<(), ManagementError> {
        let op = format!("writing user {name}");
        let body = serde_json::json!({ "password": password, "tags": tags.join(",") });
        self.send(
            &op,
            self.request("PUT", &format!("users/{}", segment(name))),
            Some(body),
        )?
        .ok_or_else(|| ManagementError::Http {
            operation: op,
            status: 404,
            reason: "Not Found".into(),
        })?;
        Ok(())
    }

    /// Deletes user `name` (and with it their permissions); false when there was no such user.
    pub fn delete_user(&self, name: &str) -> Result<bool, ManagementError> {
        let op = format!("deleting user {name}");
        Ok(self
            .send(
                &op,
                self.request("DELETE", &format!("users/{}", segment(name))),
                None,
            )?
            .is_some())
    }

    /// Every user's permissions on `vhost`; None when the vhost does not exist.
    pub fn vhost_permissions(
        &self,
        vhost: &str,
    ) -> Result<Option<Vec<UserPermissions>>, ManagementError> {
        let op = format!("listing the permissions on vhost {vhost}");
        self.get_json(&op, &format!("vhosts/{}/permissions", segment(vhost)))
    }

    /// `user`'s permissions on `vhost`, if they have any.
    pub fn permissions(
        &self,
        vhost: &str,
        user: &str,
    ) -> Result<Option<Permissions>, ManagementError> {
        let op = format!("looking up {user}'s permissions on vhost {vhost}");
        self.get_json(
            &op,
            &format!("permissions/{}/{}", segment(vhost), segment(user)),
        )
    }

    /// `user`'s permissions on every vhost (empty when they have none, or there is no such user).
    pub fn user_permissions(&self, user: &str) -> Result<Vec<UserPermissions>, ManagementError> {
        let op = format!("listing {user}'s permissions");
        Ok(self
            .get_json(&op, &format!("users/{}/permissions", segment(user)))?
            .unwrap_or_default())
    }

    /// Sets `user`'s permissions on `vhost`.
    pub fn set_permissions(
        &self,
        vhost: &str,
        user: &str,
        permissions: &Permissions,
    ) -> Result<(), ManagementError> {
        let op = format!("setting {user}'s permissions on vhost {vhost}");
        let body = serde_json::to_value(permissions).expect("permissions serialize");
        self.send(
            &op,
            self.request(
                "PUT",
                &format!("permissions/{}/{}", segment(vhost), segment(user)),
            ),
            Some(body),
        )?
        .ok_or_else(|| ManagementError::Http {
            operation: op,
            status: 404,
            reason: "no such vhost or user".into(),
        })?;
        Ok(())
    }

    /// Whether `queue` exists on `vhost`.
    pub fn queue_exists(&self, vhost: &str, queue: &str) -> Result<bool, ManagementError> {
        let op = format!("looking up queue {queue} on vhost {vhost}");
        Ok(self
            .get_json::<serde_json::Value>(
                &op,
                &format!("queues/{}/{}", segment(vhost), segment(queue)),
            )?
            .is_some())
    }

    /// Names of the queues on `vhost`, with their message counts.
    pub fn queues(&self, vhost: &str) -> Result<Vec<(String, u64)>, ManagementError> {
        #[derive(Deserialize)]
        struct Q {
            name: String,
            #[serde(default)]
            messages: u64,
        }
        let op = format!("listing the queues on vhost {vhost}");
        let list: Vec<Q> = self
            .get_json(
                &op,
                &format!("queues/{}?columns=name,messages", segment(vhost)),
            )?
            .unwrap_or_default();
        Ok(list.into_iter().map(|q| (q.name, q.messages)).collect())
    }

    /// Deletes `queue` on `vhost`, messages and all; false when there was no such queue.
    pub fn delete_queue(&self, vhost: &str, queue: &str) -> Result<bool, ManagementError> {
        let op = format!("deleting queue {queue} on vhost {vhost}");
        Ok(self
            .send(
                &op,
                self.request(
                    "DELETE",
                    &format!("queues/{}/{}", segment(vhost), segment(queue)),
                ),
                None,
            )?
            .is_some())
    }
}

impl Management {
    /// Closes every connection `user` has open (RabbitMQ keeps them open when a user is deleted or given a new
    /// password).
    pub fn close_connections(&self, user: &str) -> Result<(), ManagementError> {
        let op = format!("closing {user}'s connections");
        self.send(
            &op,
            self.request("DELETE", &format!("connections/username/{}", segment(user)))
                .set("X-Reason", "account removed or password changed by ferry"),
            None,
        )?;
        Ok(())
    }
}

/// RabbitMQ's `reason` from an error reply, or the status text.
fn reason_of(resp: ureq::Response) -> String {
    let status_text = resp.status_text().to_string();
    #[derive(Deserialize)]
    struct ErrorJson {
        #[serde(default)]
        error: String,
        #[serde(default)]
        reason: serde_json::Value,
    }
    match resp.into_json::<ErrorJson>() {
        Ok(e) => match e.reason {
            serde_json::Value::String(r) if !r.is_empty() => r,
            serde_json::Value::Null => e.error,
            other => other.to_string(),
        },
        Err(_) => status_text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("/"), "%2F");
        assert_eq!(segment("ferry.results.alice"), "ferry.results.alice");
        assert_eq!(segment("a b"), "a%20b");
    }

    #[test]
    fn an_account_in_the_url_wins_and_never_shows() {
        let m = Management::new("http://admin:s%40cret@h:15672/", "svc", "svcpw").unwrap();
        assert_eq!(m.user(), "admin");
        assert_eq!(m.url(), "http://h:15672");
        let token = base64::engine::general_purpose::STANDARD.encode("admin:s@cret");
        assert_eq!(m.authorization, format!("Basic {token}"));
        assert!(!format!("{m:?}").contains("cret"));
        let m = Management::new("http://h:15672/rmq", "svc", "svcpw").unwrap();
        assert_eq!((m.user(), m.url()), ("svc", "http://h:15672/rmq"));
        let err = Management::new("https://a:pw@h", "u", "p")
            .unwrap_err()
            .to_string();
        assert!(err.contains("http://") && !err.contains("pw@"), "{err}");
    }

    #[test]
    fn nothing_listening_is_unreachable() {
        // A port just freed: the connection is refused at once (or the network is down: also a transport error).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(9);
        let m = Management::new(&format!("http://127.0.0.1:{port}"), "u", "secret-pw").unwrap();
        let err = m.whoami().unwrap_err();
        assert!(matches!(err, ManagementError::Unreachable { .. }), "{err}");
        assert!(!err.to_string().contains("secret-pw"));
    }
}
