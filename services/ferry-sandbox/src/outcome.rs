//! How a job that ran ended, and what it left: `JobOutcome`, `Termination`, `OutputFile`, `RefusedOutput`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::Limits;

/// One result file the job wrote under `outputs/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    /// Path relative to `outputs/`, with `/` between components (e.g. `sub/b.json`). Always valid UTF-8,
    /// never absolute, never containing `.` or `..` components.
    pub name: String,
    /// The file's content.
    pub data: Vec<u8>,
}

/// A file or directory under `outputs/` that was not collected because its name breaks the output-name
/// rule (`ferry_core::names::output_path`) or collides with an earlier output's (`OutputNames`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedOutput {
    /// Its path under `outputs/`, escaped for display (`ferry_review::escape::line`; invalid UTF-8 as
    /// `\xNN`), cut at 120 characters; a directory's ends with `/`.
    pub name_escaped: String,
    /// Exactly what is wrong with the name.
    pub why: String,
}

/// Which of `outputs/`'s caps a job passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputCap {
    /// The sum of the files' sizes passed `max_output_bytes`.
    Bytes,
    /// More files and directories than [`crate::MAX_OUTPUT_ENTRIES`].
    Entries,
    /// Directories nested deeper than [`crate::MAX_OUTPUT_DEPTH`].
    Depth,
}

/// How the job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Termination {
    /// The job exited with this status (0 is success).
    Exited(i32),
    /// The job was killed by this signal: `SIGXCPU` (24) at the CPU-time limit (`SIGKILL` a second later if
    /// the job catches it), `SIGKILL` (9) from the kernel's out-of-memory killer, or a signal the job sent
    /// itself. Under the sandbox, bubblewrap reports death by signal N as status 128+N, as shells do, so a
    /// job exiting with a status from 129 to 192 is reported here too.
    Signaled(i32),
    /// The wall-clock limit was reached and the job's whole process tree was killed.
    TimedOut,
    /// The caller cancelled the job and its whole process tree was killed.
    Cancelled,
    /// `outputs/` grew past `max_output_bytes` (or past its entry or depth caps) and the job was killed;
    /// [`JobOutcome::output_limit`] says which cap.
    OutputLimit,
    /// The job as a whole (every process, its shared memory and scratch) reached the memory limit of its
    /// cgroup, and the kernel killed a process of it.
    JobMemoryLimit,
}

/// What a job that ran did.
#[derive(Clone, Debug)]
pub struct JobOutcome {
    /// How it ended.
    pub termination: Termination,
    /// The first `max_stdio_bytes` of its stdout.
    pub stdout: Vec<u8>,
    /// The first `max_stdio_bytes` of its stderr.
    pub stderr: Vec<u8>,
    /// Whether stdout was longer than what is kept.
    pub stdout_truncated: bool,
    /// Whether stderr was longer than what is kept.
    pub stderr_truncated: bool,
    /// The files under `outputs/`, sorted by name. Only regular files are collected (symbolic links, FIFOs
    /// and the like are skipped). After [`Termination::OutputLimit`] this holds only the files that fit
    /// under the cap.
    pub outputs: Vec<OutputFile>,
    /// Files and directories under `outputs/` left out because of their names, with why.
    pub refused_outputs: Vec<RefusedOutput>,
    /// Which cap of `outputs/` was passed, when one was (some files were then left out).
    pub output_limit: Option<OutputCap>,
    /// True when the job ran without isolation ([`crate::Isolation::Unsandboxed`], development only).
    pub unsandboxed: bool,
    /// The cgroup version (`"v2"` or `"v1"`) of the cgroup the job ran in as a whole, or `None` when this host
    /// gave it none (the per-process bounds then hold alone; see ISOLATION.md).
    pub cgroup: Option<&'static str>,
    /// The kernel killed a process of the job because the job as a whole reached its cgroup's memory limit
    /// (when that process was the job's own, the termination is [`Termination::JobMemoryLimit`]).
    pub job_memory_limit_hit: bool,
    /// From start to end of the job's process tree.
    pub duration: Duration,
    /// The limits it ran under, for reports.
    pub limits: Limits,
}

/// The memory limit of a job's cgroup: what one process may map, plus its two scratch tmpfs.
pub(crate) fn job_memory_limit(limits: &Limits) -> u64 {
    limits
        .memory_bytes
        .saturating_add(limits.max_output_bytes.saturating_mul(2))
}

impl JobOutcome {
    /// The exit status, when the job exited on its own.
    pub fn exit_code(&self) -> Option<i32> {
        match self.termination {
            Termination::Exited(code) => Some(code),
            _ => None,
        }
    }

    /// Whether the job exited with status 0.
    pub fn succeeded(&self) -> bool {
        self.termination == Termination::Exited(0)
    }

    /// One line for people, e.g. `exited with status 1` or `killed: wall-clock limit of 5s reached`.
    pub fn summary(&self) -> String {
        let mut line = match self.termination {
            Termination::Exited(code) => format!("exited with status {code}"),
            Termination::Signaled(signal) => {
                let mut s = format!("killed by signal {signal}");
                if let Some(name) = signal_name(signal) {
                    let _ = write!(s, " ({name})");
                }
                if signal == SIGXCPU {
                    let _ = write!(
                        s,
                        ": CPU-time limit of {}s reached",
                        self.limits.cpu_seconds
                    );
                }
                s
            }
            Termination::TimedOut => format!(
                "killed: wall-clock limit of {} reached",
                human_duration(self.limits.wall_time)
            ),
            Termination::Cancelled => "cancelled".to_string(),
            Termination::JobMemoryLimit => format!(
                "killed: the job as a whole reached its memory limit of {} ({} per process plus its /tmp and \
                 /dev/shm)",
                human_bytes(job_memory_limit(&self.limits)),
                human_bytes(self.limits.memory_bytes)
            ),
            Termination::OutputLimit => match self.output_limit {
                Some(OutputCap::Bytes) | None => format!(
                    "killed: outputs exceeded the limit of {}",
                    human_bytes(self.limits.max_output_bytes)
                ),
                Some(OutputCap::Entries) => format!(
                    "killed: outputs exceeded the limit of {} files and directories",
                    crate::MAX_OUTPUT_ENTRIES
                ),
                Some(OutputCap::Depth) => format!(
                    "killed: outputs nested deeper than the limit of {} directories",
                    crate::MAX_OUTPUT_DEPTH
                ),
            },
        };
        if self.job_memory_limit_hit && self.termination != Termination::JobMemoryLimit {
            let _ = write!(
                line,
                "; a process of the job was killed at the job's memory limit of {}",
                human_bytes(job_memory_limit(&self.limits))
            );
        }
        if !self.refused_outputs.is_empty() {
            // Named here, escaped, so that the owner and the researcher both see which files did not cross and
            // why: a lookalike of another output's name is visible as what it is.
            let _ = write!(
                line,
                "; {} output(s) not collected: {}",
                self.refused_outputs.len(),
                self.refused_outputs
                    .iter()
                    .map(|r| format!("{} ({})", r.name_escaped, r.why))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        if self.unsandboxed {
            line.push_str(" (UNSANDBOXED run)");
        }
        line
    }
}

const SIGXCPU: i32 = 24;

fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return None,
    })
}

/// `5s`, `1500ms`, `2m30s`.
pub(crate) fn human_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.as_secs() == 0 {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    if secs >= 60 && !secs.is_multiple_of(60) {
        format!("{}m{}s", secs / 60, secs % 60)
    } else if secs >= 60 {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// `10 MiB`, `1 GiB`, `1500 bytes`.
pub(crate) fn human_bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
    }
    format!("{n} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(termination: Termination) -> JobOutcome {
        JobOutcome {
            termination,
            stdout: Vec::new(),
            stderr: Vec::new(),
            stdout_truncated: false,
            stderr_truncated: false,
            outputs: Vec::new(),
            refused_outputs: Vec::new(),
            output_limit: None,
            unsandboxed: false,
            cgroup: None,
            job_memory_limit_hit: false,
            duration: Duration::ZERO,
            limits: Limits {
                wall_time: Duration::from_secs(5),
                max_output_bytes: 10 << 20,
                ..Limits::default()
            },
        }
    }

    #[test]
    fn summaries_read_well() {
        assert_eq!(
            outcome(Termination::Exited(1)).summary(),
            "exited with status 1"
        );
        assert_eq!(
            outcome(Termination::TimedOut).summary(),
            "killed: wall-clock limit of 5s reached"
        );
        assert_eq!(
            outcome(Termination::OutputLimit).summary(),
            "killed: outputs exceeded the limit of 10 MiB"
        );
        assert_eq!(
            outcome(Termination::Signaled(24)).summary(),
            "killed by signal 24 (SIGXCPU): CPU-time limit of 60s reached"
        );
        assert_eq!(
            outcome(Termination::Signaled(11)).summary(),
            "killed by signal 11 (SIGSEGV)"
        );
        let mut o = outcome(Termination::Exited(0));
        o.unsandboxed = true;
        assert_eq!(o.summary(), "exited with status 0 (UNSANDBOXED run)");
        assert!(o.succeeded());
        assert_eq!(o.exit_code(), Some(0));
        assert_eq!(outcome(Termination::Cancelled).exit_code(), None);
    }

    #[test]
    fn a_kill_at_the_job_memory_limit_names_the_limit_of_the_job_as_a_whole() {
        let mut o = outcome(Termination::JobMemoryLimit);
        o.job_memory_limit_hit = true;
        assert_eq!(
            o.summary(),
            "killed: the job as a whole reached its memory limit of 1044 MiB (1 GiB per process plus its /tmp \
             and /dev/shm)"
        );
        // The job's own process survived the kill of one of its children: said after its status.
        o.termination = Termination::Exited(0);
        assert_eq!(
            o.summary(),
            "exited with status 0; a process of the job was killed at the job's memory limit of 1044 MiB"
        );
    }

    #[test]
    fn entry_and_depth_caps_are_reported_under_their_own_names() {
        let mut o = outcome(Termination::OutputLimit);
        o.output_limit = Some(OutputCap::Bytes);
        assert_eq!(o.summary(), "killed: outputs exceeded the limit of 10 MiB");
        o.output_limit = Some(OutputCap::Entries);
        assert_eq!(
            o.summary(),
            "killed: outputs exceeded the limit of 10000 files and directories"
        );
        o.output_limit = Some(OutputCap::Depth);
        assert_eq!(
            o.summary(),
            "killed: outputs nested deeper than the limit of 32 directories"
        );
    }

    #[test]
    fn the_summary_names_each_output_left_out_for_its_name() {
        let mut o = outcome(Termination::Exited(0));
        o.refused_outputs = vec![RefusedOutput {
            name_escaped: "summary\\u{200b}.txt".into(),
            why: "it contains the invisible character \\u{200b} (character 8)".into(),
        }];
        assert_eq!(
            o.summary(),
            "exited with status 0; 1 output(s) not collected: summary\\u{200b}.txt (it contains the invisible \
             character \\u{200b} (character 8))"
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(human_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(human_duration(Duration::from_secs(150)), "2m30s");
        assert_eq!(human_duration(Duration::from_secs(300)), "5m");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(1500), "1500 bytes");
    }
}
