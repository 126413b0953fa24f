//! Names that carry the pid of the process that made them (`LABEL<sep>PID<sep>N`: job cgroups, job directories),
//! so that a worker starting beside others removes only what a process no longer running left behind.

use std::path::Path;

/// The pid in `name` when it ends `<sep>PID<sep>N` after a non-empty label.
pub(crate) fn pid_in(name: &str, sep: char) -> Option<u32> {
    let mut fields = name.rsplitn(3, sep);
    fields.next()?.parse::<u64>().ok()?;
    let pid = fields.next()?.parse().ok()?;
    fields.next().filter(|label| !label.is_empty())?;
    Some(pid)
}

/// Whether the process `pid` is running (this one, or any other this pid namespace shows).
pub(crate) fn alive(pid: u32) -> bool {
    pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists()
}
