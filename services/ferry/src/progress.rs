//! Progress on stderr for long operations: a bar redrawn in place on a terminal; one line per task otherwise.

use std::io::{IsTerminal, Write};

/// A terminal progress bar for [`ferry_transfer::media::Progress`].
pub struct Bar {
    total: u64,
    done: u64,
    label: String,
    tty: bool,
    last_percent: u64,
}

impl Bar {
    /// A bar that draws itself only when stderr is a terminal.
    pub fn new() -> Bar {
        Bar {
            total: 1,
            done: 0,
            label: String::new(),
            tty: std::io::stderr().is_terminal(),
            last_percent: u64::MAX,
        }
    }
}

impl ferry_transfer::media::Progress for Bar {
    fn start(&mut self, label: &str, total: u64) {
        self.total = total.max(1);
        self.done = 0;
        self.label = label.to_string();
        self.last_percent = u64::MAX;
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        let percent = (self.done * 100 / self.total).min(100);
        if self.tty && percent != self.last_percent {
            let filled = (percent / 5) as usize;
            eprint!(
                "\r{:<40} [{}{}] {:>3}% {}",
                self.label,
                "#".repeat(filled),
                " ".repeat(20 - filled),
                percent,
                human(self.done)
            );
            let _ = std::io::stderr().flush();
            self.last_percent = percent;
        }
    }

    fn finish(&mut self, note: &str) {
        if self.tty {
            eprintln!();
        }
        eprintln!("{}: {} {note}", self.label, human(self.done));
    }
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
