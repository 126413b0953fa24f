//! Why a job could not be run (as opposed to how a job that ran ended, which is a `Termination`).

use std::path::PathBuf;

/// The hint shown with every [`SandboxError::SandboxUnavailable`].
pub(crate) const UNAVAILABLE_HINT: &str =
    "install bubblewrap (Debian: apt-get install bubblewrap) and allow user namespaces, \
     or set sandbox = \"off\" for development only";

/// A job could not be run, or its results could not be collected. Nothing of the job is kept.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The job specification is invalid: a bad job id, an asset name with `/` or `..`, a duplicate asset, a
    /// zero limit, a runtime whose program is not under its `ro_paths`, an `ro_path` of `/`.
    #[error("invalid job specification: {0}")]
    BadSpec(String),

    /// An input is missing, is neither a regular file nor a directory, or cannot be read by the sandbox's unprivileged
    /// user (when the worker runs as root, jobs run as uid 65534, so assets must be readable by it, e.g.
    /// mode 0644; the directories above them may stay private).
    #[error("input {name:?} ({}): {reason}", path.display())]
    InputUnavailable {
        /// The asset name.
        name: String,
        /// The host file.
        path: PathBuf,
        /// What is wrong, with the fix when known.
        reason: String,
    },

    /// The runtime's program does not exist or is not an executable file.
    #[error("runtime {name:?} is unavailable: {reason}")]
    RuntimeUnavailable {
        /// The runtime's name.
        name: String,
        /// What is wrong.
        reason: String,
    },

    /// Isolation cannot be set up: `bwrap` or `prlimit` is missing, user namespaces are disabled, or
    /// bubblewrap failed to build the sandbox. Ferry fails closed: it never falls back to running the job
    /// unsandboxed.
    #[error("sandbox unavailable: {0}; {hint}", hint = UNAVAILABLE_HINT)]
    SandboxUnavailable(String),

    /// The job's processes could not be confirmed dead after being killed; its outputs are not collected.
    #[error("could not stop the job's processes: {0}")]
    KillFailed(String),

    /// A host-side operation failed (creating the job directory, starting the process, reading outputs).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl SandboxError {
    /// An [`SandboxError::Io`] with its context.
    pub(crate) fn io(context: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        SandboxError::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}
