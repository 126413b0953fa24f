//! The errors of the gap protocol's local operations (as opposed to [`crate::Refusal`], which says why a bundle
//! from the other side was not accepted).

use std::path::{Path, PathBuf};

use thiserror::Error;

/// A local operation failed: the side's files, its state store, or a bundle this side writes.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TransferError {
    /// A file or directory of the side could not be read or written.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done ("reading", "creating", ...).
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A local fault while handling a bundle (reading it, staging its entries): the disk, not the bundle.
    #[error("{context}: {source}")]
    Local {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The side's configuration could not be loaded.
    #[error("loading configuration {}: {source}", path.display())]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: ferry_core::config::ConfigError,
    },
    /// The state store failed.
    #[error("state store: {0}")]
    Store(#[from] ferry_core::StoreError),
    /// The bundle library refused or failed.
    #[error("{context}: {source}")]
    Bundle {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: ferry_bundle::BundleError,
    },
    /// A command meant for the other side.
    #[error("{what} is a {want}-side command, but {} is the {have} side's configuration", config.display())]
    WrongSide {
        /// The command.
        what: String,
        /// The side it needs.
        want: &'static str,
        /// The side this is.
        have: &'static str,
        /// The configuration file.
        config: PathBuf,
    },
    /// The other side's identity is not pinned yet.
    #[error("no peer identity pinned in {} (pin it with `ferry trust add`)", path.display())]
    NoPeer {
        /// Where it would be.
        path: PathBuf,
    },
    /// A job id or prefix matched nothing, or several jobs.
    #[error("{0}")]
    JobLookup(String),
    /// A release refused because findings of a `[review] block_on` kind concern files it would carry.
    #[error(
        "job {job_id} has {} finding(s) of a kind [review] block_on makes blocking: {}; withhold the files \
         concerned, or release with an override and its reason, which the audit trail records",
        findings.len(),
        findings.join("; ")
    )]
    Blocked {
        /// The job.
        job_id: String,
        /// The blocking findings, each as `kind output: detail`.
        findings: Vec<String>,
    },
    /// The side has reviewers, and a decision was made without a reviewer's key.
    #[error("this side has registered reviewers: a decision must be signed with a reviewer's key")]
    NeedsReviewerKey,
    /// The request cannot be carried out as asked; the message says why.
    #[error("{0}")]
    Invalid(String),
}

impl TransferError {
    /// An I/O error on `path` while doing `context`.
    pub fn io(context: &'static str, path: &Path, source: std::io::Error) -> TransferError {
        TransferError::Io {
            context,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A bundle-library error while doing `context`.
    pub fn bundle(context: impl Into<String>, source: ferry_bundle::BundleError) -> TransferError {
        TransferError::Bundle {
            context: context.into(),
            source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = TransferError> = std::result::Result<T, E>;

/// Adds the path and what was being done to an I/O result.
pub(crate) trait IoContext<T> {
    fn at(self, context: &'static str, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, context: &'static str, path: &Path) -> Result<T> {
        self.map_err(|e| TransferError::io(context, path, e))
    }
}
