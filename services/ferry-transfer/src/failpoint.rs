//! Named crash points, for the fault tests: built with the `failpoints` feature, [`hit`] kills the process with
//! SIGKILL (no destructor, no flush: what `kill -9` or a power cut does) when `FERRY_FAILPOINT` names the point.
//! Without the feature it does nothing and compiles to nothing. The points:
//!
//! - `export-after-write`: the bundle is written and fsynced under its temporary name, nothing committed;
//! - `export-after-commit`: the export is committed, the file not yet renamed into place;
//! - `import-after-stage`: the bundle is verified, decrypted and staged, nothing applied;
//! - `import-after-commit`: the records are applied and committed, the file not yet moved out of `inbox/`.

/// Every point, in the order a bundle passes them.
pub const POINTS: [&str; 4] = [
    "export-after-write",
    "export-after-commit",
    "import-after-stage",
    "import-after-commit",
];

/// Dies here when `FERRY_FAILPOINT` is `name` (with the `failpoints` feature).
#[inline]
pub fn hit(name: &str) {
    #[cfg(feature = "failpoints")]
    if std::env::var("FERRY_FAILPOINT").as_deref() == Ok(name) {
        debug_assert!(POINTS.contains(&name), "unknown failpoint {name}");
        // SAFETY: kill(2) on our own pid with a valid signal number; nothing after it runs.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}
