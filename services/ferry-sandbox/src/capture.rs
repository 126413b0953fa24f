//! Capturing stdout and stderr: keep the first bytes up to a cap, drain and drop the rest.
//!
//! Each stream gets a thread that reads until end of file. It never stops reading, so a job that prints
//! without end never blocks on a full pipe (which would stall it until the wall clock, and hide how it
//! ended); memory stays at the cap plus one 64 KiB buffer whatever the job prints. A job printing forever
//! is stopped by the wall clock like any other.

use std::io::{ErrorKind, Read};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// What was kept of one stream.
#[derive(Default)]
struct Kept {
    data: Vec<u8>,
    truncated: bool,
}

/// A stream being captured.
pub(crate) struct Capture {
    kept: Arc<Mutex<Kept>>,
    /// Disconnected when the reader thread ends.
    done: Receiver<()>,
}

impl Capture {
    /// Starts reading `stream` on a new thread, keeping at most `cap` bytes.
    pub(crate) fn start(
        name: &str,
        mut stream: impl Read + Send + 'static,
        cap: u64,
    ) -> std::io::Result<Capture> {
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        let kept = Arc::new(Mutex::new(Kept::default()));
        let shared = Arc::clone(&kept);
        let (done_tx, done) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name(format!("ferry-{name}"))
            .spawn(move || {
                let _done = done_tx;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match stream.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        Err(_) => break,
                    };
                    let mut kept = lock(&shared);
                    let room = cap.saturating_sub(kept.data.len());
                    let take = n.min(room);
                    kept.data.extend_from_slice(&buf[..take]);
                    if take < n {
                        kept.truncated = true;
                    }
                }
            })?;
        Ok(Capture { kept, done })
    }

    /// Waits until the stream ends, or until `deadline` (a process outside any namespace may hold the pipe
    /// open; what it prints after that is lost), and returns what was kept and whether it was truncated.
    pub(crate) fn finish(self, deadline: Instant) -> (Vec<u8>, bool) {
        // Nothing is ever sent: this returns when the thread drops its sender, or at the deadline.
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let mut kept = lock(&self.kept);
        (std::mem::take(&mut kept.data), kept.truncated)
    }
}

/// A poisoned lock only means a reader thread panicked mid-append; the bytes kept so far are still fine.
fn lock(kept: &Mutex<Kept>) -> MutexGuard<'_, Kept> {
    kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keeps_the_head_and_drains_the_rest() {
        let data = vec![b'x'; 1 << 20];
        let capture = Capture::start("test", std::io::Cursor::new(data), 1000).unwrap();
        let (kept, truncated) = capture.finish(Instant::now() + Duration::from_secs(5));
        assert_eq!(kept.len(), 1000);
        assert!(truncated);
    }

    #[test]
    fn short_streams_are_kept_whole() {
        let capture = Capture::start("test", &b"hello\n"[..], 1000).unwrap();
        let (kept, truncated) = capture.finish(Instant::now() + Duration::from_secs(5));
        assert_eq!(kept, b"hello\n");
        assert!(!truncated);
    }
}
