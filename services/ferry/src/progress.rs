//! Progress on stderr for long operations, drawn only when stderr is a terminal and `--quiet` was not given:
//! [`Bar`] when the library reports bytes ([`ferry_transfer::media::Progress`]), [`Activity`] when the command
//! can only watch (what it measures, and the time). Nothing is drawn otherwise: a pipe or a log gets no
//! carriage returns.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: no progress at all.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether progress is drawn: on a terminal, unless `--quiet`.
fn drawing() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// Clears the line the cursor is on.
const CLEAR: &str = "\r\x1b[K";

/// A terminal progress bar for [`ferry_transfer::media::Progress`]. Each task shows its own size as its total
/// (a read-back pass is a second pass over the same bytes, not more bytes), and ends with one line saying what
/// was done.
pub struct Bar {
    total: u64,
    done: u64,
    label: String,
    phase: String,
    tty: bool,
    last_percent: u64,
}

impl Bar {
    /// A bar that draws itself only on a terminal, unless `--quiet`.
    pub fn new() -> Bar {
        Bar {
            total: 0,
            done: 0,
            label: String::new(),
            phase: String::new(),
            tty: drawing(),
            last_percent: u64::MAX,
        }
    }

    fn draw(&mut self) {
        let percent = (self.done.saturating_mul(100) / self.total.max(1)).min(100);
        if !self.tty || percent == self.last_percent {
            return;
        }
        let filled = (percent / 5) as usize;
        eprint!(
            "{CLEAR}{} {:<9} [{}{}] {:>3}% {} of {}",
            self.label,
            self.phase,
            "#".repeat(filled),
            " ".repeat(20 - filled),
            percent,
            human(self.done),
            human(self.total)
        );
        let _ = std::io::stderr().flush();
        self.last_percent = percent;
    }
}

impl ferry_transfer::media::Progress for Bar {
    fn start(&mut self, label: &str, total: u64) {
        self.total = total;
        self.done = 0;
        self.label = label.to_string();
        self.phase = "copying".into();
        self.last_percent = u64::MAX;
        self.draw();
    }

    fn phase(&mut self, what: &str) {
        self.phase = what.to_string();
        self.done = 0;
        self.last_percent = u64::MAX;
        self.draw();
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        self.draw();
    }

    fn finish(&mut self, note: &str) {
        if self.tty {
            eprintln!("{CLEAR}{}: {} {note}", self.label, human(self.total));
        }
    }
}

/// A line redrawn in place while an operation runs: its label, what `measure` reports (bytes so far) and the
/// time taken. Cleared when finished or dropped.
pub struct Activity {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Activity {
    /// Starts drawing (the first frame at once) when progress is drawn; otherwise does nothing.
    pub fn start(label: String, measure: impl Fn() -> Option<u64> + Send + 'static) -> Activity {
        let stop = Arc::new(AtomicBool::new(false));
        if !drawing() {
            return Activity { stop, thread: None };
        }
        let started = Instant::now();
        let frame = move || {
            let so_far = measure()
                .map(|b| format!("  {}", human(b)))
                .unwrap_or_default();
            eprint!(
                "{CLEAR}{label}{so_far}  {:.0} s",
                started.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        };
        frame();
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                if !flag.load(Ordering::Relaxed) {
                    frame();
                }
            }
        });
        Activity {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Activity {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
            eprint!("{CLEAR}");
            let _ = std::io::stderr().flush();
        }
    }
}

/// The bytes of the regular files in `dir` (not below it) whose names start with `.`: the temporary files a
/// writer fills before renaming them into place.
pub fn temporary_bytes(dir: &std::path::Path) -> Option<u64> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(
        entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum(),
    )
}

/// Bytes an unprivileged user may still write on the file system holding `dir`; `None` when it cannot be read.
pub fn free_bytes(dir: &std::path::Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Total bytes of the file system holding `dir`.
pub fn total_bytes(dir: &std::path::Path) -> Option<u64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    Some(s.f_blocks.saturating_mul(s.f_frsize))
}

/// A byte count for people: `512 B`, `1.5 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_sizes() {
        assert_eq!(super::human(512), "512 B");
        assert_eq!(super::human(1536), "1.5 KiB");
        assert_eq!(super::human(3 << 30), "3.0 GiB");
    }
}
