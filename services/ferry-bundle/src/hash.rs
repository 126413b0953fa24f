//! SHA-256 helpers: the hash itself, a counting, hashing writer, and a hasher that runs on
//! another core.
//!
//! SHA-256 without CPU SHA extensions is several times slower than age's
//! ChaCha20-Poly1305, and a bundle hashes every byte twice (entry plaintext and payload
//! ciphertext). Each of those hashes can run on a helper thread of its own, fed through a
//! short queue of large buffers, so that on a two-core machine the two hashes and the
//! encryption share both cores instead of queueing on one.

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

/// Below this many bytes, a helper thread costs more than it saves.
pub(crate) const PARALLEL_THRESHOLD: u64 = 4 << 20;
/// Size of the buffers handed to a helper thread. Large buffers keep the per-handoff cost
/// (a channel send and a wake-up) negligible next to hashing 1 MiB (a few milliseconds).
const HANDOFF_LEN: usize = 1024 * 1024;
/// Full buffers queued for a helper thread. With the one being hashed and the one being
/// filled, a helper holds at most `HANDOFF_DEPTH + 2` buffers (6 MiB): enough slack to
/// ride out the scheduler on a busy two-core machine, small next to the 64 MiB target.
const HANDOFF_DEPTH: usize = 4;

/// A writer that hashes and counts everything written through it, hashing on a helper
/// thread when a lot of data is expected (the ciphertext of a large bundle).
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: EntryHasher,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    /// `expected` is about how many bytes will pass through; it only decides whether a
    /// helper thread is worth starting.
    pub(crate) fn new(inner: W, expected: u64) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: EntryHasher::for_total(expected),
            count: 0,
        }
    }

    /// Returns the inner writer, the SHA-256 and the number of bytes written.
    pub(crate) fn finish(mut self) -> Result<(W, [u8; 32], u64), BundleError> {
        let hash = self.hasher.finish_entry()?;
        Ok((self.inner, hash, self.count))
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher
            .update(&buf[..n])
            .map_err(|_| io::Error::other("the SHA-256 helper thread stopped unexpectedly"))?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

enum Job {
    /// Bytes to add to the current hash (the whole `Vec`, which is then recycled).
    Data(Vec<u8>),
    /// Send the current hash back and start a new one.
    Finish,
}

/// Hashes a sequence of byte strings (one per entry), either inline or on a helper thread.
pub(crate) enum EntryHasher {
    /// Hash on the calling thread.
    Inline(Sha256),
    /// Hash on a helper thread.
    Threaded(Helper),
}

/// The helper thread's channels, and the buffer being filled for it.
pub(crate) struct Helper {
    jobs: Option<SyncSender<Job>>,
    digests: Receiver<[u8; 32]>,
    free: Receiver<Vec<u8>>,
    /// Bytes gathered for the next handoff; sent when full or at the end of an entry.
    filling: Vec<u8>,
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
            filling: Vec::new(),
            allocated: 0,
            thread: Some(thread),
        })
    }

    fn update(&mut self, mut data: &[u8]) -> Result<(), BundleError> {
        while !data.is_empty() {
            if self.filling.capacity() == 0 {
                self.filling = self.buffer()?;
            }
            let n = data.len().min(HANDOFF_LEN - self.filling.len());
            self.filling.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.filling.len() == HANDOFF_LEN {
                self.hand_off()?;
            }
        }
        Ok(())
    }

    fn finish_entry(&mut self) -> Result<[u8; 32], BundleError> {
        if !self.filling.is_empty() {
            self.hand_off()?;
        }
        self.send(Job::Finish)?;
        self.digests.recv().map_err(|_| helper_died())
    }

    /// Sends the buffer being filled to the helper.
    fn hand_off(&mut self) -> Result<(), BundleError> {
        let full = std::mem::take(&mut self.filling);
        self.send(Job::Data(full))
    }

    /// An empty handoff buffer of `HANDOFF_LEN` capacity: recycled if one is back, new
    /// while under the cap, else waits for the helper to return one.
    fn buffer(&mut self) -> Result<Vec<u8>, BundleError> {
        if let Ok(buf) = self.free.try_recv() {
            return Ok(buf);
        }
        if self.allocated < HANDOFF_DEPTH + 2 {
            self.allocated += 1;
            return Ok(Vec::with_capacity(HANDOFF_LEN));
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
            Job::Data(mut buf) => {
                hasher.update(&buf);
                buf.clear();
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
