//! The echo index built in bounded memory, straight into its file: [`EchoIndex::build_file`].
//!
//! Each table's hashes are gathered in a buffer of at most half of [`BuildLimits::memory`]; a full buffer is
//! sorted and written out as a run (u64 little-endian, ascending, repeats kept) in a directory of the build's own
//! under [`BuildLimits::spill_dir`]. At the end the runs are merged ([`FAN_IN`] at a time, in rounds when there
//! are more), the hashes seen `common_rows` times or more dropped on the way, and what is kept written to one
//! more file; three passes over it give the table's entry count, its bucket offsets and its entries, which is
//! the order the file format needs them in. An asset whose hashes fit in the buffer spills nothing and keeps
//! them in memory. Either way the file is byte for byte what [`EchoIndex::build_with_key`] followed by
//! [`EchoIndex::save`] writes, and the build's directory and the temporary index file are removed whether the
//! build succeeds or fails.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::Digest;

use super::{
    bucket_bits_for, bucket_of, check_build_args, drop_common, header_len, io, read_asset,
    write_header, EchoIndex, IndexError, IndexParams, Which, MAX_TABLE_ENTRIES,
};

/// Memory a build holds hashes in before it spills them, both tables together, unless told otherwise.
pub const DEFAULT_BUILD_MEMORY: usize = 16 << 20;
/// Runs merged at once (each read through a buffer of [`RUN_BUFFER`] bytes).
const FAN_IN: usize = 64;
/// Buffer of each run file read or written.
const RUN_BUFFER: usize = 64 << 10;

/// How much memory a bounded build may hold hashes in, and where it may spill them.
#[derive(Clone, Debug)]
pub struct BuildLimits {
    /// Bytes of hashes held in memory, both tables together (at least 16: one hash a table).
    pub memory: usize,
    /// An existing directory on the side's own disk (not `/tmp`): the build makes a directory of its own in it
    /// (`.echo-build-<pid>-<random>`, mode 0700) for its runs and removes it when it ends; one left by a
    /// killed build is removed by the next.
    pub spill_dir: PathBuf,
}

impl BuildLimits {
    /// [`DEFAULT_BUILD_MEMORY`], spilling under `spill_dir`.
    pub fn new(spill_dir: impl Into<PathBuf>) -> BuildLimits {
        BuildLimits {
            memory: DEFAULT_BUILD_MEMORY,
            spill_dir: spill_dir.into(),
        }
    }
}

/// What [`EchoIndex::build_file`] wrote: the index's figures, without its tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSummary {
    /// The asset's name given at build time.
    pub label: String,
    /// What the index was built to recognise.
    pub params: IndexParams,
    /// Size of the indexed asset, in bytes.
    pub asset_bytes: u64,
    /// Lines of the indexed asset.
    pub asset_lines: u64,
    /// Lower-case hex SHA-256 of the indexed asset.
    pub asset_sha256: String,
    /// Entries in the fields-and-records table and in the windows table.
    pub entries: (u64, u64),
    /// Size of the index file, in bytes.
    pub file_len: u64,
    /// Sorted runs spilled to disk while reading the asset (0 when its hashes fitted in memory).
    pub runs: u64,
}

impl EchoIndex {
    /// Builds the index of the asset read from `reader`, like [`EchoIndex::build`], and writes it to `path`
    /// (through a temporary file beside it, renamed into place), holding at most `limits.memory` bytes of
    /// hashes in memory whatever the asset's size.
    pub fn build_file(
        label: &str,
        reader: impl Read,
        params: IndexParams,
        path: &Path,
        limits: &BuildLimits,
    ) -> Result<IndexSummary, IndexError> {
        let key = super::random_bytes("drawing an index key")?;
        EchoIndex::build_file_with_key(label, reader, params, key, path, limits)
    }

    /// [`EchoIndex::build_file`] with a chosen key (tests and reproducible builds).
    pub fn build_file_with_key(
        label: &str,
        reader: impl Read,
        params: IndexParams,
        key: [u8; 16],
        path: &Path,
        limits: &BuildLimits,
    ) -> Result<IndexSummary, IndexError> {
        build_file(label, reader, params, key, path, limits, FAN_IN)
    }
}

fn build_file(
    label: &str,
    reader: impl Read,
    params: IndexParams,
    key: [u8; 16],
    path: &Path,
    limits: &BuildLimits,
    fan_in: usize,
) -> Result<IndexSummary, IndexError> {
    check_build_args(label, params)?;
    if limits.memory < 16 {
        return Err(IndexError::BadParams(format!(
            "a build needs at least 16 bytes of memory for hashes, not {}",
            limits.memory
        )));
    }
    let spill = SpillDir::create(&limits.spill_dir)?;
    let cap = limits.memory / 16;
    let mut fields = Spiller::new("fields", &spill.path, cap);
    let mut windows = Spiller::new("windows", &spill.path, cap);
    let read = read_asset(reader, &key, params, |table, h| match table {
        Which::Fields => fields.push(h),
        Which::Windows => windows.push(h),
    })?;
    let runs = (fields.runs.len() + windows.runs.len()) as u64;
    let fields = fields.finish(params.common_rows, fan_in)?;
    let windows = windows.finish(params.common_rows, fan_in)?;

    let mut header = Vec::new();
    write_header(
        &mut header,
        label,
        params,
        &key,
        read.bytes,
        read.lines,
        &read.sha256,
    );
    let (entries, tables_len) =
        super::write_via_tmp(path, |file| write_file(file, &header, &fields, &windows))?;
    drop(spill);
    Ok(IndexSummary {
        label: label.to_string(),
        params,
        asset_bytes: read.bytes,
        asset_lines: read.lines,
        asset_sha256: hex::encode(read.sha256),
        entries,
        file_len: header_len(label) + tables_len + 32,
        runs,
    })
}

/// Writes the index file into `file`: the header, both tables, the checksum. The entry counts of both tables and
/// the bytes of both tables.
fn write_file(
    file: &mut File,
    header: &[u8],
    fields: &Kept,
    windows: &Kept,
) -> Result<((u64, u64), u64), IndexError> {
    let writing = io("writing the echo index");
    let mut out = BufWriter::with_capacity(
        1 << 20,
        HashingWriter {
            inner: file,
            sha: sha2::Sha256::new(),
        },
    );
    out.write_all(header)
        .map_err(io("writing the echo index"))?;
    let (f_entries, f_len) = write_table(fields, &mut out)?;
    let (w_entries, w_len) = write_table(windows, &mut out)?;
    let HashingWriter { inner: file, sha } =
        out.into_inner().map_err(|e| writing(e.into_error()))?;
    file.write_all(&sha.finalize())
        .map_err(io("writing the echo index"))?;
    Ok(((f_entries, w_entries), f_len + w_len))
}

/// Writes one table as [`super::Table::write`] does: its entry count, bucket bits, offsets and entries. Its
/// entry count and its bytes.
fn write_table(kept: &Kept, out: &mut impl Write) -> Result<(u64, u64), IndexError> {
    let writing = || io("writing the echo index");
    let bits = bucket_bits_for(kept.len());
    let mut scratch = Vec::new();
    let mut n = 0u64;
    kept.for_each_bucket(bits, &mut scratch, |_, entries| {
        n += entries.len() as u64;
        Ok(())
    })?;
    if n > MAX_TABLE_ENTRIES {
        return Err(IndexError::BadParams(format!(
            "the asset gives a table of {n} entries; an index holds at most 2^31"
        )));
    }
    out.write_all(&n.to_le_bytes()).map_err(writing())?;
    out.write_all(&[bits]).map_err(writing())?;
    let buckets = 1usize << bits;
    let (mut b, mut count) = (0usize, 0u32);
    kept.for_each_bucket(bits, &mut scratch, |bucket, entries| {
        while b <= bucket {
            out.write_all(&count.to_le_bytes()).map_err(writing())?;
            b += 1;
        }
        count += entries.len() as u32;
        Ok(())
    })?;
    while b <= buckets {
        out.write_all(&count.to_le_bytes()).map_err(writing())?;
        b += 1;
    }
    kept.for_each_bucket(bits, &mut scratch, |_, entries| {
        for e in entries {
            out.write_all(&e.to_le_bytes()).map_err(writing())?;
        }
        Ok(())
    })?;
    Ok((n, 8 + 1 + 4 * (buckets as u64 + 1) + 4 * n))
}

/// A writer that hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    sha: sha2::Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The name of a build's directory: this prefix, the building process's id, a dash and a random tag.
const BUILD_PREFIX: &str = ".echo-build-";

/// Removes the run directories of builds whose process is gone (killed mid-build): a build of a live process
/// (this one's, or a concurrent `ferry`'s) is left alone.
fn remove_dead_builds(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(BUILD_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The build's own directory of runs, removed with everything in it when dropped.
struct SpillDir {
    path: PathBuf,
}

impl SpillDir {
    fn create(parent: &Path) -> Result<SpillDir, IndexError> {
        use std::os::unix::fs::DirBuilderExt;
        let tag: [u8; 8] = super::random_bytes("naming the index build's directory")?;
        remove_dead_builds(parent);
        let path = parent.join(format!(
            "{BUILD_PREFIX}{}-{}",
            std::process::id(),
            hex::encode(tag)
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|source| IndexError::Io {
                context: format!("creating {}", path.display()),
                source,
            })?;
        Ok(SpillDir { path })
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A file of sorted hashes, u64 little-endian.
struct Run {
    path: PathBuf,
    len: u64,
}

impl Run {
    fn open(&self) -> Result<RunReader, IndexError> {
        let file = File::open(&self.path).map_err(io("opening a run of the echo index build"))?;
        Ok(RunReader {
            reader: BufReader::with_capacity(RUN_BUFFER, file),
            left: self.len,
        })
    }
}

struct RunReader {
    reader: BufReader<File>,
    left: u64,
}

impl RunReader {
    fn next(&mut self) -> Result<Option<u64>, IndexError> {
        if self.left == 0 {
            return Ok(None);
        }
        let mut b = [0u8; 8];
        self.reader
            .read_exact(&mut b)
            .map_err(io("reading a run of the echo index build"))?;
        self.left -= 1;
        Ok(Some(u64::from_le_bytes(b)))
    }
}

/// Writes a run file of the hashes `fill` hands to its writer.
fn write_run(
    path: PathBuf,
    fill: impl FnOnce(&mut RunWriter) -> Result<(), IndexError>,
) -> Result<Run, IndexError> {
    let file = File::create(&path).map_err(io("creating a run of the echo index build"))?;
    let mut w = RunWriter {
        out: BufWriter::with_capacity(RUN_BUFFER, file),
        len: 0,
    };
    fill(&mut w)?;
    w.out
        .flush()
        .map_err(io("writing a run of the echo index build"))?;
    Ok(Run { path, len: w.len })
}

struct RunWriter {
    out: BufWriter<File>,
    len: u64,
}

impl RunWriter {
    fn push(&mut self, h: u64) -> Result<(), IndexError> {
        self.out
            .write_all(&h.to_le_bytes())
            .map_err(io("writing a run of the echo index build"))?;
        self.len += 1;
        Ok(())
    }
}

/// Merges sorted runs, handing `out` every hash of them in ascending order (repeats kept).
fn merge(
    runs: &[Run],
    mut out: impl FnMut(u64) -> Result<(), IndexError>,
) -> Result<(), IndexError> {
    let mut readers = runs.iter().map(Run::open).collect::<Result<Vec<_>, _>>()?;
    let mut heap = BinaryHeap::with_capacity(readers.len());
    for (i, r) in readers.iter_mut().enumerate() {
        if let Some(h) = r.next()? {
            heap.push(std::cmp::Reverse((h, i)));
        }
    }
    while let Some(mut top) = heap.peek_mut() {
        let (h, i) = top.0;
        out(h)?;
        match readers[i].next()? {
            Some(next) => top.0 = (next, i),
            None => {
                std::collections::binary_heap::PeekMut::pop(top);
            }
        }
    }
    Ok(())
}

/// One table's hashes while the asset is read.
struct Spiller<'d> {
    name: &'static str,
    dir: &'d Path,
    buf: Vec<u64>,
    /// Most hashes held in `buf`.
    cap: usize,
    runs: Vec<Run>,
    /// Run files named so far (runs merged away included).
    named: usize,
}

impl<'d> Spiller<'d> {
    fn new(name: &'static str, dir: &'d Path, cap: usize) -> Spiller<'d> {
        Spiller {
            name,
            dir,
            buf: Vec::new(),
            cap: cap.max(1),
            runs: Vec::new(),
            named: 0,
        }
    }

    fn push(&mut self, h: u64) -> Result<(), IndexError> {
        if self.buf.len() == self.buf.capacity() {
            if self.buf.len() >= self.cap {
                self.spill()?;
            } else {
                // Grow, but never past the cap.
                let want = (self.buf.capacity() * 2).max(1024).min(self.cap);
                self.buf.reserve_exact(want - self.buf.len());
            }
        }
        self.buf.push(h);
        Ok(())
    }

    fn run_path(&mut self) -> PathBuf {
        self.named += 1;
        self.dir.join(format!("{}-{}.run", self.name, self.named))
    }

    fn spill(&mut self) -> Result<(), IndexError> {
        self.buf.sort_unstable();
        let path = self.run_path();
        let buf = &self.buf;
        let run = write_run(path, |w| buf.iter().try_for_each(|&h| w.push(h)))?;
        self.runs.push(run);
        self.buf.clear();
        Ok(())
    }

    /// The table's hashes seen fewer than `common` times, one of each, ascending.
    fn finish(mut self, common: u32, fan_in: usize) -> Result<Kept, IndexError> {
        if self.runs.is_empty() {
            let mut hashes = std::mem::take(&mut self.buf);
            hashes.sort_unstable();
            drop_common(&mut hashes, common);
            return Ok(Kept::Memory(hashes));
        }
        if !self.buf.is_empty() {
            self.spill()?;
        }
        self.buf = Vec::new();
        let fan_in = fan_in.max(2);
        while self.runs.len() > fan_in {
            let group: Vec<Run> = self.runs.drain(..fan_in).collect();
            let path = self.run_path();
            let merged = write_run(path, |w| merge(&group, |h| w.push(h)))?;
            for r in &group {
                let _ = std::fs::remove_file(&r.path);
            }
            self.runs.push(merged);
        }
        let path = self.dir.join(format!("{}.kept", self.name));
        let mut last: Option<(u64, u64)> = None;
        let kept = write_run(path, |w| {
            merge(&self.runs, |h| {
                match &mut last {
                    Some((v, seen)) if *v == h => *seen += 1,
                    _ => {
                        if let Some((v, seen)) = last.replace((h, 1)) {
                            if seen < u64::from(common) {
                                w.push(v)?;
                            }
                        }
                    }
                }
                Ok(())
            })?;
            match last {
                Some((v, seen)) if seen < u64::from(common) => w.push(v),
                _ => Ok(()),
            }
        })?;
        for r in &self.runs {
            let _ = std::fs::remove_file(&r.path);
        }
        Ok(Kept::File(kept))
    }
}

/// A table's kept hashes, distinct and ascending: in memory, or in a file when runs were spilled.
enum Kept {
    Memory(Vec<u64>),
    File(Run),
}

impl Kept {
    fn len(&self) -> u64 {
        match self {
            Kept::Memory(v) => v.len() as u64,
            Kept::File(r) => r.len,
        }
    }

    /// Calls `f` with each bucket that holds entries, in order: its number and its fingerprints (the low 32
    /// bits of its hashes), ascending, each once.
    fn for_each_bucket(
        &self,
        bits: u8,
        scratch: &mut Vec<u32>,
        mut f: impl FnMut(usize, &[u32]) -> Result<(), IndexError>,
    ) -> Result<(), IndexError> {
        let mut current: Option<usize> = None;
        scratch.clear();
        let mut on_hash = |h: u64, scratch: &mut Vec<u32>| -> Result<(), IndexError> {
            let b = bucket_of(h, bits);
            if current != Some(b) {
                if let Some(c) = current {
                    flush_bucket(c, scratch, &mut f)?;
                }
                current = Some(b);
            }
            scratch.push(h as u32);
            Ok(())
        };
        match self {
            Kept::Memory(v) => {
                for &h in v {
                    on_hash(h, scratch)?;
                }
            }
            Kept::File(run) => {
                let mut r = run.open()?;
                while let Some(h) = r.next()? {
                    on_hash(h, scratch)?;
                }
            }
        }
        if let Some(c) = current {
            flush_bucket(c, scratch, &mut f)?;
        }
        Ok(())
    }
}

fn flush_bucket(
    bucket: usize,
    scratch: &mut Vec<u32>,
    f: &mut impl FnMut(usize, &[u32]) -> Result<(), IndexError>,
) -> Result<(), IndexError> {
    scratch.sort_unstable();
    scratch.dedup();
    f(bucket, scratch)?;
    scratch.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = *b"fedcba9876543210";

    /// A private CSV of `rows` rows with a long free-text field each; among them a long value in exactly
    /// `common_rows` rows (too common to index) and one in one row fewer (indexed), spread over the file so
    /// that their repeats fall in different runs.
    fn asset(rows: usize) -> String {
        let mut csv = String::from("id,user,text,note\n");
        for i in 0..rows {
            let note = match i % (rows / 10) {
                0 => "a boilerplate note in ten rows of the file",
                1 if i < rows * 9 / 10 => "a rarer note that is in nine rows only",
                _ => "-",
            };
            csv.push_str(&format!(
                "{i},user_{},\"Message number {i} of a private conversation, words {} {}\",{note}\n",
                i * 7919 % 10007,
                i * 31 % 97,
                i * 17 % 89,
            ));
        }
        csv
    }

    fn dir_entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_build_spilling_many_runs_writes_what_the_in_memory_build_writes() {
        let data = asset(3000);
        let params = IndexParams::default();
        let expected =
            EchoIndex::build_with_key("train.csv", data.as_bytes(), params, KEY).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.csv.echo");
        // 64 hashes a table in memory, merged 3 at a time: dozens of runs, merged in rounds.
        let limits = BuildLimits {
            memory: 64 * 16,
            spill_dir: dir.path().to_path_buf(),
        };
        let summary =
            build_file("train.csv", data.as_bytes(), params, KEY, &path, &limits, 3).unwrap();
        assert!(
            summary.runs > 3 * 3,
            "{} runs: too few to merge in rounds",
            summary.runs
        );
        let written = std::fs::read(&path).unwrap();
        assert!(
            written == expected.to_bytes(),
            "the spilled build wrote other bytes"
        );
        assert_eq!(summary.entries, expected.entries());
        assert_eq!(summary.file_len, written.len() as u64);
        assert_eq!(summary.asset_bytes, data.len() as u64);
        assert_eq!(summary.asset_lines, expected.asset_lines());
        assert_eq!(summary.asset_sha256, expected.asset_sha256());
        let loaded = EchoIndex::load(&path, 1 << 30).unwrap();
        assert_eq!(loaded, expected);
        // Counted across runs: the value in ten rows is dropped, the one in nine is kept.
        let scan = loaded.scan(b"a boilerplate note in ten rows of the file\n", 10);
        assert_eq!(scan.lines_hit, 0, "{:?}", scan.hits);
        let scan = loaded.scan(b"a rarer note that is in nine rows only\n", 10);
        assert_eq!(scan.lines_hit, 1);
        let copied = format!(
            "7,someone,\"Message number 1500 of a private conversation, words {} {}\",x\n",
            1500 * 31 % 97,
            1500 * 17 % 89
        );
        let scan = loaded.scan(copied.as_bytes(), 10);
        assert_eq!(scan.lines_hit, 1);
        // Nothing left beside the index: no runs, no build directory, no temporary file.
        assert_eq!(dir_entries(dir.path()), ["train.csv.echo"]);
    }

    #[test]
    fn a_build_that_fits_in_memory_spills_nothing_and_writes_the_same_bytes() {
        for data in [asset(300), String::new(), "one short line".to_string()] {
            let params = IndexParams::default();
            let expected = EchoIndex::build_with_key("a", data.as_bytes(), params, KEY).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("a.echo");
            let summary = EchoIndex::build_file_with_key(
                "a",
                data.as_bytes(),
                params,
                KEY,
                &path,
                &BuildLimits::new(dir.path()),
            )
            .unwrap();
            assert_eq!(summary.runs, 0);
            assert!(std::fs::read(&path).unwrap() == expected.to_bytes());
            assert_eq!(dir_entries(dir.path()), ["a.echo"]);
        }
    }

    /// Hands out `data`, then fails.
    struct FailsAfter<'a>(&'a [u8]);

    impl Read for FailsAfter<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::Error::other("the disk went away"));
            }
            let n = buf.len().min(self.0.len()).min(64 << 10);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn runs_of_a_killed_build_are_removed_by_the_next_and_a_live_builds_are_kept() {
        let data = asset(3000);
        let dir = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22: no process has this id.
        let dead = dir.path().join(format!("{BUILD_PREFIX}999999999-00ff"));
        let live = dir
            .path()
            .join(format!("{BUILD_PREFIX}{}-11ee", std::process::id()));
        for d in [&dead, &live] {
            std::fs::create_dir(d).unwrap();
            std::fs::write(d.join("run-0"), b"12345678").unwrap();
        }
        let limits = BuildLimits {
            memory: 64 * 16,
            spill_dir: dir.path().to_path_buf(),
        };
        let path = dir.path().join("a.echo");
        build_file(
            "a",
            data.as_bytes(),
            IndexParams::default(),
            KEY,
            &path,
            &limits,
            3,
        )
        .unwrap();
        assert!(!dead.exists(), "{:?}", dir_entries(dir.path()));
        assert!(live.join("run-0").exists(), "{:?}", dir_entries(dir.path()));
    }

    #[test]
    fn a_failed_build_leaves_no_run_and_no_index_behind() {
        let data = asset(3000);
        let params = IndexParams::default();
        let dir = tempfile::tempdir().unwrap();
        let limits = BuildLimits {
            memory: 64 * 16,
            spill_dir: dir.path().to_path_buf(),
        };
        // The asset fails to read after runs were spilled.
        let path = dir.path().join("a.echo");
        let err = build_file(
            "a",
            FailsAfter(data.as_bytes()),
            params,
            KEY,
            &path,
            &limits,
            3,
        )
        .unwrap_err();
        assert!(err.to_string().contains("the disk went away"), "{err}");
        assert!(
            dir_entries(dir.path()).is_empty(),
            "{:?}",
            dir_entries(dir.path())
        );
        // The index cannot be written where it was asked for.
        let path = dir.path().join("missing").join("a.echo");
        let err = build_file("a", data.as_bytes(), params, KEY, &path, &limits, 3).unwrap_err();
        assert!(matches!(err, IndexError::Io { .. }), "{err}");
        assert!(
            dir_entries(dir.path()).is_empty(),
            "{:?}",
            dir_entries(dir.path())
        );
        // No room to spill at all.
        let limits = BuildLimits {
            memory: 15,
            spill_dir: dir.path().to_path_buf(),
        };
        let err = build_file("a", data.as_bytes(), params, KEY, &path, &limits, 3).unwrap_err();
        assert!(matches!(err, IndexError::BadParams(_)), "{err}");
        let limits = BuildLimits::new(dir.path().join("missing"));
        assert!(build_file("a", data.as_bytes(), params, KEY, &path, &limits, 3).is_err());
        assert!(dir_entries(dir.path()).is_empty());
    }
}
