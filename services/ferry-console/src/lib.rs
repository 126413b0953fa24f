//! The owner's review console (`ferry console`): the queue, each job's code and (on the high side) every byte
//! its release would carry, the decisions, and the audit trail, as server-rendered pages on a loopback port.
//!
//! Boundary and invariants:
//!
//! - **Same code path as the command line.** Decisions go through [`ferry_transfer::review::decide`] and
//!   [`ferry_transfer::review::release`], signed with the console's reviewer key, recorded under
//!   [`ferry_transfer::review::owner_actor`]; the files shown are [`ferry_transfer::review::job_files`], the
//!   bytes a release records the SHA-256 of and an export carries. The console holds no state of its own: every
//!   request reads the side's state store afresh.
//! - **Nothing untrusted runs.** Every value reaches the page through maud, which escapes it for HTML, and every
//!   character `ferry review show` escapes for a terminal is shown as that escape here ([`render`]). No page has
//!   a script; the Content-Security-Policy forbids any (`default-src 'none'`), styles come from one served file,
//!   images only from this console's image route, which serves PNG, JPEG and GIF by their magic bytes and
//!   nothing else; SVG and HTML outputs are text. Downloads are `Content-Disposition: attachment`.
//! - **One owner.** The printed URL carries a one-time sign-in token, exchanged for an HttpOnly, SameSite=Strict
//!   session cookie; every other request without that cookie is refused (401), every POST without the session's
//!   CSRF token too (403), and every request whose `Host` is not this loopback address (403: DNS rebinding).
//!   [`auth`] holds the rules. One console per side ([`lock`]).
//! - **No stale decisions.** Each decision form carries the state the page showed; a decision on a job that
//!   changed since is refused, changing nothing (409).

pub mod auth;
mod handlers;
pub mod lock;
mod pages;
pub mod render;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ferry_core::decision::ReviewerKey;
use ferry_core::Side;
use ferry_transfer::SideDir;

/// Why the console could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Another console serves this side.
    #[error(
        "another `ferry console` is serving this side already (process {holder}; it holds {}): use that one, or \
         stop it first",
        path.display()
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// What the lock file says: the holder's process id.
        holder: String,
    },
    /// `--listen` named an address other than loopback.
    #[error("--listen {0}: the console serves loopback only (127.0.0.1 or [::1])")]
    NotLoopback(SocketAddr),
    /// A file or socket failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file, or the address.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The side could not be opened, or a decision failed.
    #[error(transparent)]
    Transfer(#[from] ferry_transfer::TransferError),
}

/// How to run a console.
#[derive(Debug)]
pub struct Options {
    /// The side's ferry.toml.
    pub config: PathBuf,
    /// The reviewer key decisions are signed with (required where the side has reviewers).
    pub key: Option<ReviewerKey>,
    /// Who decides, for the audit trail (`owner:<login>`).
    pub actor: String,
    /// Where to listen: a loopback address; port 0 picks a free one.
    pub listen: SocketAddr,
}

/// What the handlers share.
pub(crate) struct App {
    pub(crate) config: PathBuf,
    pub(crate) side: Side,
    pub(crate) key: Option<ReviewerKey>,
    pub(crate) actor: String,
    /// Who the key makes the decisions as, or why decisions will be refused.
    pub(crate) reviewer: Result<Option<String>, String>,
    pub(crate) port: u16,
    pub(crate) auth: Mutex<auth::Auth>,
    /// Held for the whole of a decision, so that two of this console's never interleave.
    pub(crate) deciding: Mutex<()>,
}

/// A console bound to its port, with the side locked; [`Console::serve`] runs it.
pub struct Console {
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    lock: lock::SideLock,
    url: String,
}

impl Console {
    /// Opens the side, takes its console lock and binds the port.
    pub async fn bind(options: Options) -> Result<Console, ConsoleError> {
        if !options.listen.ip().is_loopback() {
            return Err(ConsoleError::NotLoopback(options.listen));
        }
        let side = SideDir::open(&options.config)?;
        let reviewer = ferry_transfer::review::reviewer_for(&side, options.key.as_ref())
            .map_err(|e| ferry_review::escape::line(&e.to_string()).into_owned());
        let lock = lock::SideLock::take(side.layout.dir())?;
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|source| ConsoleError::Io {
                context: "listening on",
                path: options.listen.to_string().into(),
                source,
            })?;
        let local = listener.local_addr().map_err(|source| ConsoleError::Io {
            context: "reading the address of",
            path: options.listen.to_string().into(),
            source,
        })?;
        let auth = auth::Auth::new();
        let token = auth
            .login_token()
            .expect("a new console has its sign-in token")
            .expose()
            .to_string();
        let host = match local {
            SocketAddr::V4(a) => format!("{}:{}", a.ip(), a.port()),
            SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        };
        let app = Arc::new(App {
            config: options.config,
            side: side.config.side,
            key: options.key,
            actor: options.actor,
            reviewer,
            port: local.port(),
            auth: Mutex::new(auth),
            deciding: Mutex::new(()),
        });
        Ok(Console {
            listener,
            app,
            lock,
            url: format!("http://{host}/login?token={token}"),
        })
    }

    /// The sign-in URL, with its one-time token: for the owner's eyes only (never logged).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.app.port
    }

    /// The lock file it holds.
    pub fn lock_path(&self) -> &std::path::Path {
        self.lock.path()
    }

    /// The console's routes, for tests that call them without a socket.
    pub fn router(&self) -> axum::Router {
        handlers::router(self.app.clone())
    }

    /// Serves until `shutdown` completes; the side stays locked until then.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ConsoleError> {
        let router = handlers::router(self.app.clone());
        let local = self.listener.local_addr().ok();
        tracing::info!(
            port = self.app.port,
            side = self.app.side.as_str(),
            "console serving"
        );
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        drop(self.lock);
        served.map_err(|source| ConsoleError::Io {
            context: "serving on",
            path: local.map(|a| a.to_string()).unwrap_or_default().into(),
            source,
        })
    }
}
