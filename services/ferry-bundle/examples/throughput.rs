//! Packs and unpacks one file, one step per process, so that `scripts/bench-bundle` can time
//! each step and read its peak memory against the `age` CLI on the same file:
//!
//! ```text
//! throughput keys DIR                 generate sender (DIR/low) and receiver (DIR/high) keys
//! throughput pack DIR IN BUNDLE       pack IN as one entry, signed by low, encrypted to high
//! throughput unpack DIR BUNDLE OUT    verify, decrypt and write the entry to OUT (on disk)
//! throughput stages IN MIB DIR       one-core throughput of each stage (SHA-256,
//!                                     ChaCha20-Poly1305, file read and write) on IN
//! ```
//!
//! Build with `cargo build --release -p ferry-bundle --example throughput`.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use ferry_bundle::{
    new_bundle_id, open_file, write_bundle_file, BundleError, Channel, Entry, EntrySink,
    EntrySource, HeaderParams, OpenOptions, SideKeys,
};

/// Writes the single entry of a bundle to a staging file beside `out`, and renames it into
/// place only on `commit`, as an import stages what it receives.
struct FileSink {
    out: PathBuf,
    staging: PathBuf,
    file: Option<File>,
}

impl FileSink {
    fn new(out: PathBuf) -> FileSink {
        let mut staging = out.clone().into_os_string();
        staging.push(".part");
        FileSink {
            out,
            staging: staging.into(),
            file: None,
        }
    }
}

fn io_error(context: &str, source: io::Error) -> BundleError {
    BundleError::Io {
        context: context.to_owned(),
        source,
    }
}

impl EntrySink for FileSink {
    fn begin(&mut self, _path: &str, _len: u64) -> Result<(), BundleError> {
        if self.file.is_some() {
            return Err(BundleError::Malformed(
                "this benchmark sink takes one entry".to_owned(),
            ));
        }
        let file = File::create(&self.staging).map_err(|e| io_error("creating the entry", e))?;
        // Unbuffered: the reader hands over whole 64 KiB STREAM chunks.
        self.file = Some(file);
        Ok(())
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), BundleError> {
        let file = self.file.as_mut().expect("begin was called");
        file.write_all(chunk)
            .map_err(|e| io_error("writing the entry", e))
    }

    fn end(&mut self) -> Result<(), BundleError> {
        let file = self.file.as_mut().expect("begin was called");
        file.flush().map_err(|e| io_error("writing the entry", e))
    }

    fn commit(&mut self) -> Result<(), BundleError> {
        // Not synced, to compare like for like with `age -d -o`, which does not sync.
        self.file = None;
        fs::rename(&self.staging, &self.out).map_err(|e| io_error("committing the entry", e))
    }

    fn abort(&mut self) {
        self.file = None;
        let _ = fs::remove_file(&self.staging);
    }
}

fn params() -> HeaderParams {
    HeaderParams {
        bundle_id: new_bundle_id(),
        channel: Channel::HighToLow,
        seq: 1,
        prev_hash: [0; 32],
        created_at: 0,
        expires_at: i64::MAX,
    }
}

fn keys(dir: &Path) -> Result<(), BundleError> {
    SideKeys::generate().save(&dir.join("low"))?;
    SideKeys::generate().save(&dir.join("high"))
}

fn pack(dir: &Path, input: &Path, bundle: &Path) -> Result<(), BundleError> {
    let low = SideKeys::load(&dir.join("low"))?;
    let high = SideKeys::load(&dir.join("high"))?.public();
    let mut out = File::create(bundle).map_err(|e| io_error("creating the bundle", e))?;
    let entries = [Entry {
        path: "result.bin".into(),
        source: EntrySource::File(input),
    }];
    // Not synced, to compare like for like with the `age` CLI, which does not sync either.
    write_bundle_file(&mut out, &low, &high, &params(), &entries)?;
    Ok(())
}

fn unpack(dir: &Path, bundle: &Path, out: &Path) -> Result<(), BundleError> {
    let low = SideKeys::load(&dir.join("low"))?.public();
    let high = SideKeys::load(&dir.join("high"))?;
    let file = File::open(bundle).map_err(|e| io_error("opening the bundle", e))?;
    let mut sink = FileSink::new(out.to_owned());
    open_file(&file, OpenOptions::new(low.signing, &[&high], &mut sink))?;
    Ok(())
}

/// Prints the throughput of each stage a bundle's bytes go through, on one core, over the
/// first `mib` MiB of `input` held in memory (more than the CPU caches hold, so that the
/// rates are those of streaming data, not of one cached block hashed again and again):
/// SHA-256 and ChaCha20-Poly1305 as the bundle code runs them (64 KiB chunks sealed and
/// opened in place), and reading and writing files through the page cache as `pack` and
/// `unpack` do (`scratch` is a directory for the write test). Each stage runs three times,
/// interleaved, and the best rate is printed: on a shared machine the best is the closest
/// to what the stage itself costs.
fn stages(input: &Path, mib: usize, scratch: &Path) -> Result<(), BundleError> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
    const CHUNK: usize = 64 * 1024;
    let mut data = Vec::with_capacity(mib << 20);
    File::open(input)
        .and_then(|f| f.take((mib as u64) << 20).read_to_end(&mut data))
        .map_err(|e| io_error("reading the input", e))?;
    let bytes = data.len() as f64;
    let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &[7; 32]).expect("32 bytes"));
    let nonce = |i: usize| {
        let mut n = [0u8; 12];
        n[3..11].copy_from_slice(&(i as u64).to_be_bytes());
        Nonce::assume_unique_for_key(n)
    };
    // Ciphertext laid out as in a payload: each chunk followed by its tag.
    let mut sealed = Vec::with_capacity(data.len() + data.len() / 4096 + 16);
    let mut work = data.clone();
    let mut buf = vec![0u8; 1 << 20];
    let scratch_file = scratch.join("stage-write.tmp");
    // Best MB/s of: sha2, ring, seal, open, read, write.
    let mut best = [0f64; 6];
    let mut record = |stage: usize, start: Instant| {
        best[stage] = best[stage].max(bytes / start.elapsed().as_secs_f64() / 1e6);
    };

    for _ in 0..3 {
        let t = Instant::now();
        let mut sha2 = <sha2::Sha256 as sha2::Digest>::new();
        data.chunks(1 << 20)
            .for_each(|c| sha2::Digest::update(&mut sha2, c));
        std::hint::black_box(sha2::Digest::finalize(sha2));
        record(0, t);

        #[cfg(feature = "ring-sha256")]
        {
            let t = Instant::now();
            let mut ring = ring::digest::Context::new(&ring::digest::SHA256);
            data.chunks(1 << 20).for_each(|c| ring.update(c));
            std::hint::black_box(ring.finish());
            record(1, t);
        }

        work.copy_from_slice(&data);
        sealed.clear();
        let t = Instant::now();
        for (i, chunk) in work.chunks_mut(CHUNK).enumerate() {
            let tag = key
                .seal_in_place_separate_tag(nonce(i), Aad::empty(), chunk)
                .expect("a chunk seals");
            std::hint::black_box(tag.as_ref());
        }
        record(2, t);
        for (i, chunk) in data.chunks(CHUNK).enumerate() {
            let mut c = chunk.to_vec();
            let tag = key
                .seal_in_place_separate_tag(nonce(i), Aad::empty(), &mut c)
                .expect("a chunk seals");
            sealed.extend_from_slice(&c);
            sealed.extend_from_slice(tag.as_ref());
        }

        let mut opened = sealed.clone();
        let t = Instant::now();
        for (i, chunk) in opened.chunks_mut(CHUNK + 16).enumerate() {
            key.open_in_place(nonce(i), Aad::empty(), chunk)
                .map_err(|_| BundleError::Decrypt("a chunk does not open".to_owned()))?;
        }
        record(3, t);

        // Reading the input file from the page cache, in 1 MiB reads.
        let t = Instant::now();
        let mut file = File::open(input).map_err(|e| io_error("reading the input", e))?;
        let mut left = data.len();
        while left > 0 {
            let n = file
                .read(&mut buf[..left.min(1 << 20)])
                .map_err(|e| io_error("reading the input", e))?;
            if n == 0 {
                break;
            }
            left -= n;
        }
        record(4, t);

        // Writing a new file into the page cache, in 64 KiB writes, not synced.
        let t = Instant::now();
        let mut out = File::create(&scratch_file).map_err(|e| io_error("writing", e))?;
        for chunk in data.chunks(CHUNK) {
            out.write_all(chunk).map_err(|e| io_error("writing", e))?;
        }
        drop(out);
        record(5, t);
        fs::remove_file(&scratch_file).map_err(|e| io_error("writing", e))?;
    }

    let [sha2_rate, ring_rate, seal_rate, open_rate, read_rate, write_rate] = best;
    println!(
        "stage throughput, one core, streaming {mib} MiB of the input from memory, best of 3:"
    );
    println!("  sha256 (sha2 crate)          {sha2_rate:7.0} MB/s");
    if cfg!(feature = "ring-sha256") {
        println!("  sha256 (ring, used here)     {ring_rate:7.0} MB/s");
    } else {
        println!("  (sha2 is the SHA-256 this build uses; ring-sha256 is off)");
    }
    println!("  chacha20-poly1305 seal       {seal_rate:7.0} MB/s");
    println!("  chacha20-poly1305 open       {open_rate:7.0} MB/s");
    println!("  file read (page cache)       {read_rate:7.0} MB/s");
    println!("  file write (page cache)      {write_rate:7.0} MB/s");
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match args.as_slice() {
        ["keys", dir] => keys(dir.as_ref()),
        ["pack", dir, input, bundle] => pack(dir.as_ref(), input.as_ref(), bundle.as_ref()),
        ["unpack", dir, bundle, out] => unpack(dir.as_ref(), bundle.as_ref(), out.as_ref()),
        ["stages", input, mib, scratch] => match mib.parse() {
            Ok(mib) => stages(input.as_ref(), mib, scratch.as_ref()),
            Err(_) => Err(BundleError::Malformed(format!("not a size in MiB: {mib}"))),
        },
        _ => {
            eprintln!(
                "usage: throughput keys DIR | pack DIR IN BUNDLE | unpack DIR BUNDLE OUT | \
                 stages IN MIB SCRATCH_DIR"
            );
            return ExitCode::from(2);
        }
    };
    // The process's own peak resident set, exact (the benchmark also samples it from
    // outside, as it must for the age CLI).
    let measured = matches!(args.first(), Some(&"pack" | &"unpack"));
    if let Some(hwm) = fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("VmHWM:"))
            .map(str::to_owned)
            .filter(|_| measured)
    }) {
        println!("{}", hwm.split_whitespace().collect::<Vec<_>>().join(" "));
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
