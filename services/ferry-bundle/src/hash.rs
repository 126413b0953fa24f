//! SHA-256 helpers: the hash itself, a counting, hashing writer, and a hasher that runs on
//! a second core.
//!
//! SHA-256 without CPU SHA extensions is several times slower than age's
//! ChaCha20-Poly1305, and a bundle hashes every byte twice (entry plaintext and payload
//! ciphertext). Hashing the entries on a helper thread lets the two hashes run side by
//! side on a two-core machine.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::{self, JoinHandle};

use crate::BundleError;

/// SHA-256 (FIPS 180-4) for bulk data: `sha2`, or ring's assembly with the `ring-sha256`
/// feature. Both give the same digests; only the speed differs.
#[derive(Clone)]
pub(crate) struct Sha256(
    #[cfg(not(feature = "ring-sha256"))] sha2::Sha256,
    #[cfg(feature = "ring-sha256")] ring::digest::Context,
);

impl Sha256 {
    pub(crate) fn new() -> Sha256 {
        #[cfg(not(feature = "ring-sha256"))]
        return Sha256(<sha2::Sha256 as sha2::Digest>::new());
        #[cfg(feature = "ring-sha256")]
        return Sha256(ring::digest::Context::new(&ring::digest::SHA256));
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        #[cfg(not(feature = "ring-sha256"))]
        sha2::Digest::update(&mut self.0, data);
        #[cfg(feature = "ring-sha256")]
        self.0.update(data);
    }

    pub(crate) fn finalize(self) -> [u8; 32] {
        #[cfg(not(feature = "ring-sha256"))]
        return sha2::Digest::finalize(self.0).into();
        #[cfg(feature = "ring-sha256")]
        {
            let mut out = [0u8; 32];
            out.copy_from_slice(self.0.finish().as_ref());
            out
        }
    }

    /// Returns the digest so far and starts over.
    pub(crate) fn finalize_reset(&mut self) -> [u8; 32] {
        std::mem::replace(self, Sha256::new()).finalize()
    }

    /// The digest of one byte string.
    pub(crate) fn digest(data: &[u8]) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(data);
        hasher.finalize()
    }
}

/// Below this many bytes, the helper thread costs more than it saves.
pub(crate) const PARALLEL_THRESHOLD: u64 = 4 << 20;
/// Size of the buffers handed to the helper thread.
const HANDOFF_LEN: usize = 256 * 1024;
/// Buffers in flight between the threads; bounds memory to a few MiB.
const HANDOFF_DEPTH: usize = 4;

/// A writer that hashes and counts everything written through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub(crate) fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Returns the inner writer, the SHA-256 and the number of bytes written.
    pub(crate) fn finish(self) -> (W, [u8; 32], u64) {
        (self.inner, self.hasher.finalize(), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Job {
    Data(Vec<u8>, usize),
    Finish,
}

/// Hashes a sequence of byte strings (one per entry), either inline or on a helper thread.
pub(crate) enum EntryHasher {
    /// Hash on the calling thread.
    Inline(Sha256),
    /// Hash on a helper thread.
    Threaded(Helper),
}

/// The helper thread's channels.
pub(crate) struct Helper {
    jobs: Option<SyncSender<Job>>,
    digests: Receiver<[u8; 32]>,
    free: Receiver<Vec<u8>>,
    allocated: usize,
    thread: Option<JoinHandle<()>>,
}

impl EntryHasher {
    /// A hasher that uses a helper thread if `total` bytes are expected to pass through it
    /// and the thread can be started; otherwise hashes inline.
    pub(crate) fn for_total(total: u64) -> EntryHasher {
        if total < PARALLEL_THRESHOLD {
            return EntryHasher::Inline(Sha256::new());
        }
        match Helper::start() {
            Ok(helper) => EntryHasher::Threaded(helper),
            Err(_) => EntryHasher::Inline(Sha256::new()),
        }
    }

    /// Adds bytes to the current entry's hash.
    pub(crate) fn update(&mut self, data: &[u8]) -> Result<(), BundleError> {
        match self {
            EntryHasher::Inline(hasher) => {
                hasher.update(data);
                Ok(())
            }
            EntryHasher::Threaded(helper) => helper.update(data),
        }
    }

    /// Returns the current entry's hash and starts a new one.
    pub(crate) fn finish_entry(&mut self) -> Result<[u8; 32], BundleError> {
        match self {
            EntryHasher::Inline(hasher) => Ok(hasher.finalize_reset()),
            EntryHasher::Threaded(helper) => helper.finish_entry(),
        }
    }
}

impl Helper {
    fn start() -> io::Result<Helper> {
        let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(HANDOFF_DEPTH);
        let (digest_tx, digest_rx) = mpsc::channel();
        let (free_tx, free_rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("ferry-bundle-sha256".to_owned())
            .spawn(move || run_helper(jobs_rx, digest_tx, free_tx))?;
        Ok(Helper {
            jobs: Some(jobs_tx),
            digests: digest_rx,
            free: free_rx,
            allocated: 0,
            thread: Some(thread),
        })
    }

    fn update(&mut self, mut data: &[u8]) -> Result<(), BundleError> {
        while !data.is_empty() {
            let mut buf = self.buffer()?;
            let n = data.len().min(HANDOFF_LEN);
            buf[..n].copy_from_slice(&data[..n]);
            self.send(Job::Data(buf, n))?;
            data = &data[n..];
        }
        Ok(())
    }

    fn finish_entry(&mut self) -> Result<[u8; 32], BundleError> {
        self.send(Job::Finish)?;
        self.digests.recv().map_err(|_| helper_died())
    }

    /// A free handoff buffer: recycled if one is back, new while under the cap, else
    /// waits for the helper to return one.
    fn buffer(&mut self) -> Result<Vec<u8>, BundleError> {
        if let Ok(buf) = self.free.try_recv() {
            return Ok(buf);
        }
        if self.allocated < HANDOFF_DEPTH + 2 {
            self.allocated += 1;
            return Ok(vec![0; HANDOFF_LEN]);
        }
        self.free.recv().map_err(|_| helper_died())
    }

    fn send(&self, job: Job) -> Result<(), BundleError> {
        self.jobs
            .as_ref()
            .ok_or_else(helper_died)?
            .send(job)
            .map_err(|_| helper_died())
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        // Closing the job channel ends the helper's loop.
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run_helper(jobs: Receiver<Job>, digests: Sender<[u8; 32]>, free: Sender<Vec<u8>>) {
    let mut hasher = Sha256::new();
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Data(buf, n) => {
                hasher.update(&buf[..n]);
                // The owner may have stopped listening; then the buffer is simply dropped.
                let _ = free.send(buf);
            }
            Job::Finish => {
                if digests.send(hasher.finalize_reset()).is_err() {
                    return;
                }
            }
        }
    }
}

fn helper_died() -> BundleError {
    BundleError::io(
        "hashing entries",
        io::Error::other("the SHA-256 helper thread stopped unexpectedly"),
    )
}
