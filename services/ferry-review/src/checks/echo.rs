//! The private-echo index: what of a private input would be recognised if a job copied it into an
//! output, built once per asset version and kept in a file, so that checking an output is a pass over
//! the output with table lookups, never a scan of the asset.
//!
//! # What counts as an echo
//!
//! The asset and every output are read as lines (split at `\n`, a trailing `\r` dropped; a line longer
//! than [`MAX_LINE_BYTES`] is taken in pieces of that size). For each line:
//!
//! - **fields**: a line that starts with `{` or `[` and is JSON gives its string values (at any depth);
//!   any other line is split as CSV (tab-separated when it holds a tab, else comma-separated, double
//!   quotes honoured; [`crate::preview::split_fields`]). A field of at least `field_min` characters,
//!   with surrounding ASCII white space trimmed, is an entry.
//! - **records**: a line with no such field, of at least `field_min` characters once trimmed, is an
//!   entry as a whole (a row of short values copied whole is an echo; so is a line of prose).
//! - **windows**: the hashes of every `window`-byte span of the line are winnowed (the rightmost minimum
//!   of every `winnow` consecutive hashes, or of all of them when the line has fewer): any span of at
//!   least `window + winnow - 1` bytes that the asset and an output share inside a line is found
//!   whatever else the lines hold; a shorter shared span (down to `window` bytes) is found when it
//!   holds the line's selected window, which a whole copied line always does.
//!
//! A value or window that occurs `common_rows` times or more in the asset is dropped from the index: a
//! category name, a boilerplate sentence or a header repeated in many rows says nothing about any one
//! of them. So `source,count` over categories of a private file is not an echo, even for long category
//! names, while a copied row is.
//!
//! # Hashes and false positives
//!
//! Windows are hashed with a polynomial hash modulo 2^64 whose odd base comes from a random key stored
//! in the index (a job cannot aim at it), rolled byte by byte, and each value mixed (splitmix64); whole
//! values with a keyed multiply-and-shift over 8-byte words. Each table keeps, per entry, 32 bits of
//! the 64-bit hash in a bucket chosen by `bucket_bits` more: with 4 to 8 entries a
//! bucket a lookup that should miss hits with probability below 2^-29 (two in a billion). Checking a
//! 64 MiB output makes on the order of a million lookups, so a false `private_echo` on such an output
//! has odds of about 1 in 500, and on ordinary outputs far less; candidates are not confirmed against
//! the asset. Every finding names the output line and shows its text, so the owner can judge it.
//!
//! # Size
//!
//! Per entry 4 bytes, plus 4 bytes per bucket (an eighth to a quarter as many buckets as entries):
//! 4.5 to 5 bytes per long field, per long record without one, and per selected window (about one per
//! line of at least `window` bytes, and 2 per `winnow + 1` bytes beyond). `scripts/bench checks`
//! measured, for a 1 GiB CSV of 181-byte rows with one free-text field each, an index of 5.2% of the
//! asset (4.7 bytes per entry, two entries per row). Both builds read the asset in 1 MiB blocks.
//! [`EchoIndex::build`] holds the hashes in memory before sorting them: about 10 bytes per entry at peak
//! (120 MiB for that asset). [`EchoIndex::build_file`], which `ferry asset add` uses, holds at most
//! [`BuildLimits::memory`] bytes of them (16 MiB by default), spilling sorted runs to disk and merging
//! them into the file (the same bytes): `scripts/bench checks` measured a peak of 19.2 MiB for that asset,
//! in 1.64 times `sha256sum`'s time, and `scripts/bench mocks` 26.7 MiB for all of `ferry asset add` with a
//! 1 GiB private CSV and a 1 GiB mock.
//!
//! # File format (version 1, little-endian)
//!
//! ```text
//! magic         8 bytes  "FERRYEIX"
//! version       u16      1
//! flags         u16      0
//! label_len     u16      ≤ 255, then label_len bytes of UTF-8 (the asset's name)
//! window        u32      params, see IndexParams
//! winnow        u32
//! field_min     u32
//! common_rows   u32
//! key           16 bytes hash key
//! asset_bytes   u64      size of the indexed asset
//! asset_lines   u64      lines read
//! asset_sha256  32 bytes SHA-256 of the indexed asset
//! 2 tables, fields then windows, each:
//!   entries     u64      N ≤ 2^31
//!   bucket_bits u8       b ≤ 27
//!   offsets     (2^b + 1) × u32, non-decreasing from 0 to N: bucket i is entries offsets[i]..offsets[i+1]
//!   entries     N × u32  the low 32 bits of each hash, ascending within a bucket
//! checksum      32 bytes SHA-256 of every byte before it
//! ```
//!
//! A reader checks the magic, version, flags, every length against the caps and against what is left of
//! the file before allocating, the offsets' order, and the checksum.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::Path;

use sha2::Digest;

mod spill;

pub use spill::{BuildLimits, IndexSummary, DEFAULT_BUILD_MEMORY};

/// First bytes of an index file.
pub const INDEX_MAGIC: &[u8; 8] = b"FERRYEIX";
/// The format version this build writes and reads.
pub const INDEX_VERSION: u16 = 1;
/// Longest line taken as one; longer lines are taken in pieces of this size.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Most entries in one table.
pub const MAX_TABLE_ENTRIES: u64 = 1 << 31;
/// Largest `bucket_bits`.
const MAX_BUCKET_BITS: u8 = 27;
/// Longest label, in bytes.
pub const MAX_LABEL_BYTES: usize = 255;

/// Why an index could not be built, read or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// Reading the asset or the index, or writing the index, failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an index of a version this build reads, or it is damaged.
    #[error("not a usable echo index: {0}")]
    Malformed(String),
    /// Parameters out of their range.
    #[error("invalid echo index parameters: {0}")]
    BadParams(String),
}

/// `N` bytes from the system's random source (an index key, a build directory's tag).
pub(crate) fn random_bytes<const N: usize>(context: &str) -> Result<[u8; N], IndexError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes).map_err(|e| IndexError::Io {
        context: context.into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    Ok(bytes)
}

/// Writes an index file at `path` whole or not at all: `write` fills `PATH.tmp`, which is synced and renamed into
/// place, or removed when anything fails.
pub(crate) fn write_via_tmp<T>(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<T, IndexError>,
) -> Result<T, IndexError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let written = (|| {
        let mut file = std::fs::File::create(&tmp).map_err(io("creating the echo index"))?;
        let done = write(&mut file)?;
        file.sync_all().map_err(io("syncing the echo index"))?;
        std::fs::rename(&tmp, path).map_err(io("renaming the echo index into place"))?;
        Ok(done)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        context: context.to_string(),
        source,
    }
}

/// What an index recognises; see the module documentation. Fixed when the index is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexParams {
    /// Bytes of a window (`[review] echo_window`), 16 to 1024.
    pub window: u32,
    /// Windows per winnowing window, 1 to 4096: spans of `window + winnow - 1` bytes are always found.
    pub winnow: u32,
    /// Characters of the shortest field or record indexed whole (`[review] echo_field_min`), 8 to 4096.
    pub field_min: u32,
    /// Occurrences from which a value or window is too common to be indexed, at least 2.
    pub common_rows: u32,
}

impl Default for IndexParams {
    /// 64-byte windows winnowed by 256 (spans of 319 bytes always found), fields of 32 characters,
    /// values in 10 or more rows dropped.
    fn default() -> IndexParams {
        IndexParams {
            window: 64,
            winnow: 256,
            field_min: 32,
            common_rows: 10,
        }
    }
}

impl IndexParams {
    /// Checks every parameter's range.
    pub fn validate(&self) -> Result<(), IndexError> {
        let bad = |what: &str| Err(IndexError::BadParams(what.to_string()));
        if !(16..=1024).contains(&self.window) {
            return bad("window must be 16 to 1024 bytes");
        }
        if !(1..=4096).contains(&self.winnow) {
            return bad("winnow must be 1 to 4096");
        }
        if !(8..=4096).contains(&self.field_min) {
            return bad("field_min must be 8 to 4096 characters");
        }
        if self.common_rows < 2 {
            return bad("common_rows must be at least 2");
        }
        Ok(())
    }
}

#[inline]
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The keyed hash functions of one index.
#[derive(Clone, Debug)]
struct Hasher {
    /// Odd multiplier of the rolling hash.
    base: u64,
    /// Mixed into every finished hash.
    mix: u64,
    /// Multiplier of the value hash.
    value_mul: u64,
    window: usize,
    /// `(b + 1) * base^(window - 1)` for each byte value: what leaves the window.
    out: Box<[u64; 256]>,
}

impl Hasher {
    fn new(key: &[u8; 16], window: usize) -> Hasher {
        let k0 = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(key[8..].try_into().expect("8 bytes"));
        let base = splitmix(k0) | 1;
        let mut pow = 1u64;
        for _ in 1..window {
            pow = pow.wrapping_mul(base);
        }
        let mut out = Box::new([0u64; 256]);
        for (b, slot) in out.iter_mut().enumerate() {
            *slot = (b as u64 + 1).wrapping_mul(pow);
        }
        Hasher {
            base,
            mix: splitmix(k1),
            value_mul: splitmix(k1 ^ k0) | 1,
            window,
            out,
        }
    }

    /// A whole field's or record's hash: 8 bytes at a time, multiplied and mixed, then finished with
    /// the length.
    fn value(&self, bytes: &[u8]) -> u64 {
        let mut h = self.mix;
        let mut chunks = bytes.chunks_exact(8);
        for c in chunks.by_ref() {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            h = (h ^ w).wrapping_mul(self.value_mul);
            h ^= h >> 32;
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            h = (h ^ u64::from_le_bytes(last)).wrapping_mul(self.value_mul);
            h ^= h >> 32;
        }
        splitmix(h ^ (bytes.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Every window's hash in `line`, in order, into `out` (cleared first): a polynomial hash modulo
    /// 2^64 with the odd `base`, rolled one byte at a time, each value then mixed.
    fn windows(&self, line: &[u8], out: &mut Vec<u64>) {
        out.clear();
        let w = self.window;
        if line.len() < w {
            return;
        }
        out.reserve(line.len() - w + 1);
        let mut h = 0u64;
        for &b in &line[..w] {
            h = h.wrapping_mul(self.base).wrapping_add(u64::from(b) + 1);
        }
        out.push(splitmix(h ^ self.mix));
        for (&leaving, &entering) in line.iter().zip(&line[w..]) {
            h = h
                .wrapping_sub(self.out[usize::from(leaving)])
                .wrapping_mul(self.base)
                .wrapping_add(u64::from(entering) + 1);
            out.push(splitmix(h ^ self.mix));
        }
    }
}

/// Whether `bytes` holds at least `min` characters, counting each invalid byte as one.
fn at_least_chars(bytes: &[u8], min: usize) -> bool {
    // A character is at most 4 bytes.
    bytes.len() >= min.saturating_mul(4)
        || (bytes.len() >= min && bytes.iter().filter(|&&b| (b & 0xc0) != 0x80).count() >= min)
}

fn trim(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// What one line holds, as the index sees it. Shared by the build and the check, so both cut lines
/// and fields the same way.
struct LineScanner {
    hasher: Hasher,
    params: IndexParams,
    hashes: Vec<u64>,
    deque: VecDeque<(u64, usize)>,
    /// A quoted field with doubled quotes, unescaped.
    scratch: Vec<u8>,
}

/// What [`LineScanner::scan`] reports.
enum Item<'a> {
    /// A long field or record: its hash, its bytes (a slice of the line, or decoded from it), its kind.
    Value(u64, &'a [u8], EchoKind),
    /// A selected window: its hash and its offset in the line.
    Window(u64, usize),
}

/// A whole value found in a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EchoKind {
    /// A field (CSV/TSV field or JSON string value).
    Field,
    /// The whole line.
    Record,
    /// A span of `window` bytes.
    Window,
}

impl LineScanner {
    fn new(key: &[u8; 16], params: IndexParams) -> LineScanner {
        LineScanner {
            hasher: Hasher::new(key, params.window as usize),
            params,
            hashes: Vec::new(),
            deque: VecDeque::new(),
            scratch: Vec::new(),
        }
    }

    /// Reports each long field, the record when it counts, and each selected window of `line`. The
    /// record counts when the line has no long field, or is too short to have a window.
    fn scan(&mut self, line: &[u8], mut emit: impl FnMut(Item<'_>)) {
        let min = self.params.field_min as usize;
        let trimmed = trim(line);
        if trimmed.len() >= min {
            let mut long_field = false;
            let hasher = &self.hasher;
            let scratch = &mut self.scratch;
            let mut on_field = |v: &[u8]| {
                let v = trim(v);
                if at_least_chars(v, min) {
                    long_field = true;
                    emit(Item::Value(hasher.value(v), v, EchoKind::Field));
                }
            };
            let json = matches!(trimmed.first(), Some(b'{' | b'['))
                && json_strings(trimmed, &mut |s| on_field(s.as_bytes()));
            if !json {
                let delimiter = if memchr::memchr(b'\t', line).is_some() {
                    b'\t'
                } else {
                    b','
                };
                if memchr::memchr(delimiter, line).is_some() {
                    for_each_field(line, delimiter, scratch, &mut on_field);
                }
            }
            let short = line.len() < self.params.window as usize;
            if (!long_field || short) && at_least_chars(trimmed, min) {
                emit(Item::Value(
                    self.hasher.value(trimmed),
                    trimmed,
                    EchoKind::Record,
                ));
            }
        }
        self.winnow(line, &mut emit);
    }

    fn winnow(&mut self, line: &[u8], emit: &mut impl FnMut(Item<'_>)) {
        self.hasher.windows(line, &mut self.hashes);
        let hashes = &self.hashes;
        let w = self.params.winnow as usize;
        if hashes.is_empty() {
            return;
        }
        if hashes.len() <= w {
            let (mut best, mut at) = (u64::MAX, 0);
            for (i, &h) in hashes.iter().enumerate() {
                if h <= best {
                    (best, at) = (h, i);
                }
            }
            emit(Item::Window(best, at));
            return;
        }
        let deque = &mut self.deque;
        deque.clear();
        let mut last = usize::MAX;
        for (i, &h) in hashes.iter().enumerate() {
            while deque.back().is_some_and(|&(v, _)| v >= h) {
                deque.pop_back();
            }
            deque.push_back((h, i));
            if deque.front().is_some_and(|&(_, at)| at + w <= i) {
                deque.pop_front();
            }
            if i + 1 >= w {
                let (v, at) = *deque.front().expect("the window holds a hash");
                if at != last {
                    emit(Item::Window(v, at));
                    last = at;
                }
            }
        }
    }
}

/// Calls `f` with each field of a CSV line, as [`crate::preview::split_fields`] cuts and unquotes them, without
/// allocating unless a quoted field holds a doubled quote.
fn for_each_field(line: &[u8], delimiter: u8, scratch: &mut Vec<u8>, f: &mut impl FnMut(&[u8])) {
    let mut i = 0;
    loop {
        if line.get(i) == Some(&b'"') {
            // Find the closing quote, skipping doubled ones.
            let start = i + 1;
            let mut j = start;
            let mut doubled = false;
            let close = loop {
                match memchr::memchr(b'"', &line[j..]) {
                    None => break line.len(),
                    Some(at) if line.get(j + at + 1) == Some(&b'"') => {
                        doubled = true;
                        j += at + 2;
                    }
                    Some(at) => break j + at,
                }
            };
            let after = (close + 1).min(line.len());
            let end = memchr::memchr(delimiter, &line[after..]).map_or(line.len(), |at| after + at);
            if doubled || after < end {
                scratch.clear();
                let mut k = start;
                while k < close {
                    scratch.push(line[k]);
                    k += if line[k] == b'"' { 2 } else { 1 };
                }
                scratch.extend_from_slice(&line[after..end]);
                f(scratch);
            } else {
                f(&line[start..close]);
            }
            i = end;
        } else {
            let end = memchr::memchr(delimiter, &line[i..]).map_or(line.len(), |at| i + at);
            f(&line[i..end]);
            i = end;
        }
        if i >= line.len() {
            return;
        }
        i += 1;
        if i == line.len() {
            f(&line[i..]);
            return;
        }
    }
}

/// Calls `f` with every string value in the JSON text; false if it is not JSON.
fn json_strings(text: &[u8], f: &mut impl FnMut(&str)) -> bool {
    fn walk(v: &serde_json::Value, f: &mut impl FnMut(&str)) {
        match v {
            serde_json::Value::String(s) => f(s),
            serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, f)),
            serde_json::Value::Object(map) => map.values().for_each(|i| walk(i, f)),
            _ => {}
        }
    }
    match serde_json::from_slice::<serde_json::Value>(text) {
        Ok(v) => {
            walk(&v, f);
            true
        }
        Err(_) => false,
    }
}

/// Calls `f` with each line of `data` (without `\n` and a trailing `\r`), cutting longer lines into
/// pieces of [`MAX_LINE_BYTES`].
fn for_each_line(data: &[u8], mut f: impl FnMut(&[u8])) {
    let mut start = 0;
    while start < data.len() {
        let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |at| start + at);
        for_each_piece(&data[start..end], &mut f);
        start = end + 1;
    }
}

/// Calls `f` with one line (without its `\n`), in pieces of at most [`MAX_LINE_BYTES`], its trailing
/// `\r` dropped; at least once, even for an empty line.
fn for_each_piece(mut line: &[u8], f: &mut impl FnMut(&[u8])) {
    while line.len() > MAX_LINE_BYTES {
        f(&line[..MAX_LINE_BYTES]);
        line = &line[MAX_LINE_BYTES..];
    }
    f(line.strip_suffix(b"\r").unwrap_or(line));
}

/// One table of 64-bit hashes, kept as 32-bit fingerprints in `2^bits` buckets.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Table {
    bits: u8,
    offsets: Vec<u32>,
    entries: Vec<u32>,
}

impl Table {
    /// From hashes in any order, dropping those that occur `common` times or more.
    fn build(mut hashes: Vec<u64>, common: u32) -> Table {
        hashes.sort_unstable();
        drop_common(&mut hashes, common);
        let kept = hashes;
        let bits = bucket_bits_for(kept.len() as u64);
        let buckets = 1usize << bits;
        let mut offsets = vec![0u32; buckets + 1];
        let mut entries = Vec::with_capacity(kept.len());
        // `kept` is sorted by the full hash, so by bucket (the top bits) too.
        let mut b = 0usize;
        let mut start = 0usize;
        while start < kept.len() {
            let bucket = bucket_of(kept[start], bits);
            let mut end = start;
            while end < kept.len() && bucket_of(kept[end], bits) == bucket {
                end += 1;
            }
            while b <= bucket {
                offsets[b] = entries.len() as u32;
                b += 1;
            }
            let first = entries.len();
            entries.extend(kept[start..end].iter().map(|&h| h as u32));
            entries[first..].sort_unstable();
            // Two hashes of one bucket may share their low 32 bits: keep the fingerprint once.
            let (mut last, mut k) = (first, first + 1);
            while k < entries.len() {
                if entries[k] != entries[last] {
                    last += 1;
                    entries[last] = entries[k];
                }
                k += 1;
            }
            entries.truncate(last + 1);
            start = end;
        }
        while b <= buckets {
            offsets[b] = entries.len() as u32;
            b += 1;
        }
        Table {
            bits,
            offsets,
            entries,
        }
    }

    #[inline]
    fn contains(&self, h: u64) -> bool {
        let b = bucket_of(h, self.bits);
        let (start, end) = (self.offsets[b] as usize, self.offsets[b + 1] as usize);
        self.entries[start..end].contains(&(h as u32))
    }

    fn file_len(&self) -> u64 {
        8 + 1 + 4 * (self.offsets.len() as u64) + 4 * (self.entries.len() as u64)
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        out.push(self.bits);
        for &o in &self.offsets {
            out.extend_from_slice(&o.to_le_bytes());
        }
        for &e in &self.entries {
            out.extend_from_slice(&e.to_le_bytes());
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Table, IndexError> {
        let n = r.u64()?;
        if n > MAX_TABLE_ENTRIES {
            return Err(malformed(format!(
                "a table of {n} entries (the cap is 2^31)"
            )));
        }
        let bits = r.u8()?;
        if bits > MAX_BUCKET_BITS {
            return Err(malformed(format!("{bits} bucket bits (the cap is 27)")));
        }
        let buckets = 1usize << bits;
        let need = 4 * (buckets as u64 + 1) + 4 * n;
        if need > r.left() as u64 {
            return Err(malformed(format!(
                "a table needs {need} bytes but {} are left",
                r.left()
            )));
        }
        let offsets = r.u32s(buckets + 1)?;
        if offsets[0] != 0
            || u64::from(offsets[buckets]) != n
            || offsets.windows(2).any(|w| w[0] > w[1])
        {
            return Err(malformed("bucket offsets out of order".into()));
        }
        let entries = r.u32s(n as usize)?;
        Ok(Table {
            bits,
            offsets,
            entries,
        })
    }
}

/// Keeps one of each hash of the sorted `hashes` seen fewer than `common` times, compacting in place.
fn drop_common(hashes: &mut Vec<u64>, common: u32) {
    let (mut i, mut kept) = (0, 0);
    while i < hashes.len() {
        let mut j = i + 1;
        while j < hashes.len() && hashes[j] == hashes[i] {
            j += 1;
        }
        if j - i < common as usize {
            hashes[kept] = hashes[i];
            kept += 1;
        }
        i = j;
    }
    hashes.truncate(kept);
}

/// The bucket bits of a table of `n` distinct hashes: 4 to 8 entries a bucket.
fn bucket_bits_for(n: u64) -> u8 {
    let mut bits = 0u8;
    while bits < MAX_BUCKET_BITS && (1u64 << (bits + 1)) * 4 <= n {
        bits += 1;
    }
    bits
}

#[inline]
fn bucket_of(h: u64, bits: u8) -> usize {
    if bits == 0 {
        0
    } else {
        (h >> (64 - u32::from(bits))) as usize
    }
}

fn malformed(why: String) -> IndexError {
    IndexError::Malformed(why)
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn left(&self) -> usize {
        self.data.len() - self.at
    }
    fn take(&mut self, n: usize) -> Result<&[u8], IndexError> {
        if n > self.left() {
            return Err(malformed("the file ends early".into()));
        }
        let s = &self.data[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, IndexError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, IndexError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    fn u32(&mut self) -> Result<u32, IndexError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn u64(&mut self) -> Result<u64, IndexError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn u32s(&mut self, n: usize) -> Result<Vec<u32>, IndexError> {
        let bytes = self.take(n * 4)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
            .collect())
    }
}

/// The index of one private input (one asset version).
#[derive(Clone, Debug)]
pub struct EchoIndex {
    label: String,
    params: IndexParams,
    key: [u8; 16],
    asset_bytes: u64,
    asset_lines: u64,
    asset_sha256: [u8; 32],
    fields: Table,
    windows: Table,
}

impl PartialEq for EchoIndex {
    fn eq(&self, other: &EchoIndex) -> bool {
        (
            &self.label,
            self.params,
            self.key,
            self.asset_bytes,
            self.asset_lines,
            self.asset_sha256,
        ) == (
            &other.label,
            other.params,
            other.key,
            other.asset_bytes,
            other.asset_lines,
            other.asset_sha256,
        ) && self.fields == other.fields
            && self.windows == other.windows
    }
}

/// One place where an output repeats a private input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EchoHit {
    /// 1-based line of the output.
    pub line: u64,
    /// A whole field, a whole record, or a window.
    pub kind: EchoKind,
    /// Byte offset of the span in its line, when the span is a slice of it (not a quoted CSV field
    /// or a JSON string, which are decoded).
    pub column: Option<usize>,
    /// Length of the span in bytes.
    pub len: usize,
    /// The start of the span as the owner may see it (escaped, at most 60 characters).
    pub excerpt: String,
}

/// What [`EchoIndex::scan`] found in one output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EchoScan {
    /// Lines with at least one hit.
    pub lines_hit: u64,
    /// The first hits (at most one a line, the longest kind first: record, field, window), up to the cap
    /// given to `scan`.
    pub hits: Vec<EchoHit>,
}

fn excerpt(span: &[u8]) -> String {
    let cut = &span[..span.len().min(240)];
    let escaped = crate::escape::line_bytes(cut);
    let mut chars = escaped.chars();
    let mut s: String = chars.by_ref().take(60).collect();
    if chars.next().is_some() || cut.len() < span.len() {
        s.push_str("...");
    }
    s
}

/// Which table a hash goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    /// Fields and records.
    Fields,
    /// Selected windows.
    Windows,
}

/// What reading the asset found, besides its hashes.
struct AssetRead {
    bytes: u64,
    lines: u64,
    sha256: [u8; 32],
}

/// Checks a build's parameters and label.
fn check_build_args(label: &str, params: IndexParams) -> Result<(), IndexError> {
    params.validate()?;
    if label.len() > MAX_LABEL_BYTES {
        return Err(IndexError::BadParams(format!(
            "the label is {} bytes; the cap is {MAX_LABEL_BYTES}",
            label.len()
        )));
    }
    Ok(())
}

/// Reads the asset once, in 1 MiB blocks, and hands every hash the index needs to `sink`, with the table it
/// belongs to, in the asset's order. The first error `sink` returns ends the read (at the end of its block).
fn read_asset(
    mut reader: impl Read,
    key: &[u8; 16],
    params: IndexParams,
    mut sink: impl FnMut(Which, u64) -> Result<(), IndexError>,
) -> Result<AssetRead, IndexError> {
    let mut scanner = LineScanner::new(key, params);
    let mut sha = sha2::Sha256::new();
    let mut asset_bytes = 0u64;
    let mut asset_lines = 0u64;
    let mut block = vec![0u8; 1 << 20];
    // A partial last line carried to the next block (at most MAX_LINE_BYTES).
    let mut carry: Vec<u8> = Vec::new();
    // The sink's first error; nothing more is handed to it after one.
    let mut failed: Option<IndexError> = None;
    let mut process = |line: &[u8], scanner: &mut LineScanner, failed: &mut Option<IndexError>| {
        asset_lines += 1;
        scanner.scan(line, |item| {
            let (table, h) = match item {
                Item::Value(h, _, _) => (Which::Fields, h),
                Item::Window(h, _) => (Which::Windows, h),
            };
            if failed.is_none() {
                if let Err(e) = sink(table, h) {
                    *failed = Some(e);
                }
            }
        });
    };
    loop {
        if let Some(e) = failed.take() {
            return Err(e);
        }
        let n = match reader.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("reading the asset")(e)),
        };
        let data = &block[..n];
        sha.update(data);
        asset_bytes += n as u64;
        let mut start = 0;
        while let Some(at) = memchr::memchr(b'\n', &data[start..]) {
            let piece = &data[start..start + at];
            if carry.is_empty() {
                for_each_piece(piece, &mut |l| process(l, &mut scanner, &mut failed));
            } else {
                carry.extend_from_slice(piece);
                for_each_piece(&carry, &mut |l| process(l, &mut scanner, &mut failed));
                carry.clear();
            }
            start += at + 1;
        }
        carry.extend_from_slice(&data[start..]);
        while carry.len() > MAX_LINE_BYTES {
            process(&carry[..MAX_LINE_BYTES], &mut scanner, &mut failed);
            carry.drain(..MAX_LINE_BYTES);
        }
    }
    if !carry.is_empty() {
        for_each_piece(&carry, &mut |l| process(l, &mut scanner, &mut failed));
    }
    if let Some(e) = failed.take() {
        return Err(e);
    }
    Ok(AssetRead {
        bytes: asset_bytes,
        lines: asset_lines,
        sha256: sha.finalize().into(),
    })
}

/// Bytes of an index file before its tables.
fn header_len(label: &str) -> u64 {
    8 + 2 + 2 + 2 + label.len() as u64 + 16 + 16 + 8 + 8 + 32
}

/// Appends an index file's bytes before its tables (the label already checked against its cap).
fn write_header(
    out: &mut Vec<u8>,
    label: &str,
    params: IndexParams,
    key: &[u8; 16],
    asset_bytes: u64,
    asset_lines: u64,
    asset_sha256: &[u8; 32],
) {
    out.extend_from_slice(INDEX_MAGIC);
    out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(label.len() as u16).to_le_bytes());
    out.extend_from_slice(label.as_bytes());
    for p in [
        params.window,
        params.winnow,
        params.field_min,
        params.common_rows,
    ] {
        out.extend_from_slice(&p.to_le_bytes());
    }
    out.extend_from_slice(key);
    out.extend_from_slice(&asset_bytes.to_le_bytes());
    out.extend_from_slice(&asset_lines.to_le_bytes());
    out.extend_from_slice(asset_sha256);
}

impl EchoIndex {
    /// Builds the index of the asset read from `reader` (read once, in 1 MiB blocks), named `label`
    /// (at most 255 bytes; the asset's name, for reports), with a fresh random key.
    pub fn build(
        label: &str,
        reader: impl Read,
        params: IndexParams,
    ) -> Result<EchoIndex, IndexError> {
        EchoIndex::build_with_key(label, reader, params, random_bytes("drawing an index key")?)
    }

    /// [`EchoIndex::build`] with a chosen key (tests and reproducible builds).
    pub fn build_with_key(
        label: &str,
        reader: impl Read,
        params: IndexParams,
        key: [u8; 16],
    ) -> Result<EchoIndex, IndexError> {
        check_build_args(label, params)?;
        let (mut values, mut windows) = (Vec::new(), Vec::new());
        let read = read_asset(reader, &key, params, |table, h| {
            match table {
                Which::Fields => values.push(h),
                Which::Windows => windows.push(h),
            }
            Ok(())
        })?;
        let fields = Table::build(values, params.common_rows);
        let windows = Table::build(windows, params.common_rows);
        Ok(EchoIndex {
            label: label.to_string(),
            params,
            key,
            asset_bytes: read.bytes,
            asset_lines: read.lines,
            asset_sha256: read.sha256,
            fields,
            windows,
        })
    }

    /// The asset's name given at build time.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// What the index was built to recognise.
    pub fn params(&self) -> IndexParams {
        self.params
    }

    /// Size of the indexed asset, in bytes.
    pub fn asset_bytes(&self) -> u64 {
        self.asset_bytes
    }

    /// Lines of the indexed asset.
    pub fn asset_lines(&self) -> u64 {
        self.asset_lines
    }

    /// Lower-case hex SHA-256 of the indexed asset, to match the index to an asset version.
    pub fn asset_sha256(&self) -> String {
        hex::encode(self.asset_sha256)
    }

    /// Entries in the fields-and-records table and in the windows table.
    pub fn entries(&self) -> (u64, u64) {
        (
            self.fields.entries.len() as u64,
            self.windows.entries.len() as u64,
        )
    }

    /// Size of the index file, in bytes.
    pub fn file_len(&self) -> u64 {
        header_len(&self.label) + self.fields.file_len() + self.windows.file_len() + 32
    }

    /// The index file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.file_len() as usize);
        write_header(
            &mut out,
            &self.label,
            self.params,
            &self.key,
            self.asset_bytes,
            self.asset_lines,
            &self.asset_sha256,
        );
        self.fields.write(&mut out);
        self.windows.write(&mut out);
        let checksum = sha2::Sha256::digest(&out);
        out.extend_from_slice(&checksum);
        out
    }

    /// Writes the index file to `w`.
    pub fn write_to(&self, mut w: impl Write) -> Result<(), IndexError> {
        w.write_all(&self.to_bytes())
            .and_then(|()| w.flush())
            .map_err(io("writing the echo index"))
    }

    /// Writes the index to `path` (through a temporary file beside it, renamed into place).
    pub fn save(&self, path: &Path) -> Result<(), IndexError> {
        write_via_tmp(path, |file| self.write_to(file))
    }

    /// Reads an index file of at most `max_len` bytes.
    pub fn load(path: &Path, max_len: u64) -> Result<EchoIndex, IndexError> {
        let file = std::fs::File::open(path).map_err(io("opening the echo index"))?;
        let len = file
            .metadata()
            .map_err(io("reading the echo index's size"))?
            .len();
        if len > max_len {
            return Err(malformed(format!(
                "the file is {len} bytes; the cap is {max_len}"
            )));
        }
        let mut data = Vec::with_capacity(len as usize);
        file.take(max_len + 1)
            .read_to_end(&mut data)
            .map_err(io("reading the echo index"))?;
        EchoIndex::from_bytes(&data)
    }

    /// Parses an index file's bytes.
    pub fn from_bytes(data: &[u8]) -> Result<EchoIndex, IndexError> {
        if data.len() < 8 + 32 || &data[..8] != INDEX_MAGIC {
            return Err(malformed("no FERRYEIX magic".into()));
        }
        let (body, checksum) = data.split_at(data.len() - 32);
        let mut r = Reader { data: body, at: 8 };
        let version = r.u16()?;
        if version != INDEX_VERSION {
            return Err(malformed(format!(
                "version {version} (this build reads version {INDEX_VERSION}; rebuild the index)"
            )));
        }
        if r.u16()? != 0 {
            return Err(malformed("unknown flags".into()));
        }
        if sha2::Sha256::digest(body).as_slice() != checksum {
            return Err(malformed("checksum mismatch: the file is damaged".into()));
        }
        let label_len = usize::from(r.u16()?);
        if label_len > MAX_LABEL_BYTES {
            return Err(malformed(format!("a label of {label_len} bytes")));
        }
        let label = std::str::from_utf8(r.take(label_len)?)
            .map_err(|_| malformed("the label is not UTF-8".into()))?
            .to_string();
        let params = IndexParams {
            window: r.u32()?,
            winnow: r.u32()?,
            field_min: r.u32()?,
            common_rows: r.u32()?,
        };
        params.validate().map_err(|e| malformed(e.to_string()))?;
        let key: [u8; 16] = r.take(16)?.try_into().expect("16");
        let asset_bytes = r.u64()?;
        let asset_lines = r.u64()?;
        let asset_sha256: [u8; 32] = r.take(32)?.try_into().expect("32");
        let fields = Table::read(&mut r)?;
        let windows = Table::read(&mut r)?;
        if r.left() != 0 {
            return Err(malformed(format!("{} bytes after the tables", r.left())));
        }
        Ok(EchoIndex {
            label,
            params,
            key,
            asset_bytes,
            asset_lines,
            asset_sha256,
            fields,
            windows,
        })
    }

    /// Looks for this index's private input in `data` (an output, stdout or stderr), keeping at most
    /// `max_hits` hits.
    pub fn scan(&self, data: &[u8], max_hits: usize) -> EchoScan {
        let mut scanner = LineScanner::new(&self.key, self.params);
        let mut result = EchoScan::default();
        let mut line_no = 0u64;
        let window = self.params.window as usize;
        for_each_line(data, |line| {
            line_no += 1;
            let mut best: Option<EchoHit> = None;
            let base = line.as_ptr() as usize;
            scanner.scan(line, |item| {
                let (kind, column, span) = match item {
                    Item::Value(h, span, kind) if self.fields.contains(h) => {
                        // Where the span is in the line, when it is a slice of it (not decoded).
                        let column = (span.as_ptr() as usize)
                            .checked_sub(base)
                            .filter(|at| at.checked_add(span.len()) <= Some(line.len()));
                        (kind, column, span)
                    }
                    Item::Window(h, at) if self.windows.contains(h) => {
                        (EchoKind::Window, Some(at), &line[at..at + window])
                    }
                    _ => return,
                };
                let rank = |k: EchoKind| match k {
                    EchoKind::Record => 0,
                    EchoKind::Field => 1,
                    EchoKind::Window => 2,
                };
                if best.as_ref().is_none_or(|b| rank(kind) < rank(b.kind)) {
                    best = Some(EchoHit {
                        line: line_no,
                        kind,
                        column,
                        len: span.len(),
                        excerpt: excerpt(span),
                    });
                }
            });
            if let Some(hit) = best {
                result.lines_hit += 1;
                if result.hits.len() < max_hits {
                    result.hits.push(hit);
                }
            }
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preview::split_fields;

    const KEY: [u8; 16] = *b"0123456789abcdef";

    /// A private CSV of `rows` rows, each with a long free-text field.
    fn private_csv(rows: usize) -> String {
        let sources = ["wiki", "forum", "news", "chat"];
        let mut csv = String::from("id,user,source,text,score\n");
        for i in 0..rows {
            csv.push_str(&format!(
                "{i},user_{},{},\"Message number {i} from a private conversation, with words {} {}\",{}\n",
                i * 7919 % 10007,
                sources[i % 4],
                i * 31 % 97,
                i * 17 % 89,
                i % 5
            ));
        }
        csv
    }

    fn index(data: &str) -> EchoIndex {
        EchoIndex::build_with_key("train.csv", data.as_bytes(), IndexParams::default(), KEY)
            .unwrap()
    }

    #[test]
    fn rolling_window_hashes_match_hashing_each_window_afresh() {
        let h = Hasher::new(&KEY, 16);
        let line: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        let mut rolled = Vec::new();
        h.windows(&line, &mut rolled);
        assert_eq!(rolled.len(), 200 - 16 + 1);
        for (i, &r) in rolled.iter().enumerate() {
            let mut fresh = Vec::new();
            h.windows(&line[i..i + 16], &mut fresh);
            assert_eq!(fresh, [r], "window {i}");
        }
    }

    #[test]
    fn tables_drop_common_hashes_and_share_equal_fingerprints() {
        let mut hashes: Vec<u64> = (0..1000u64).map(splitmix).collect();
        // Seen 3 times with common = 3: dropped; seen twice: kept once.
        hashes.extend([7, 7, 7, 9, 9]);
        // Same bucket and low 32 bits, other middle bits: one fingerprint for both.
        let twin_a = splitmix(5000);
        let twin_b = twin_a ^ (1 << 40);
        hashes.extend([twin_a, twin_b]);
        let t = Table::build(hashes, 3);
        assert!(t.bits >= 6, "{} bucket bits for ~1000 entries", t.bits);
        for i in 0..1000 {
            assert!(t.contains(splitmix(i)));
        }
        assert!(!t.contains(7));
        assert!(t.contains(9));
        assert!(t.contains(twin_a) && t.contains(twin_b));
        assert_eq!(t.entries.len(), 1000 + 1 + 1);
        assert_eq!(*t.offsets.last().unwrap() as usize, t.entries.len());
        let misses = (1_000_000..1_100_000u64)
            .filter(|&i| t.contains(splitmix(i)))
            .count();
        assert_eq!(misses, 0, "false hits in 100000 lookups");
    }

    #[test]
    fn the_field_walker_cuts_fields_like_split_fields() {
        let lines: [&[u8]; 8] = [
            b"a,b,c",
            b"\"x,y\",z",
            b"\"say \"\"hi\"\"\",2",
            b"\"open quote,runs",
            b"\"q\"tail,next",
            b",,",
            b"trailing,",
            b"",
        ];
        for line in lines {
            let expected: Vec<Vec<u8>> = split_fields(line, b',')
                .iter()
                .map(|f| f.to_vec())
                .collect();
            let mut got = Vec::new();
            for_each_field(line, b',', &mut Vec::new(), &mut |f| got.push(f.to_vec()));
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn a_copied_row_is_an_echo() {
        let csv = private_csv(1000);
        let idx = index(&csv);
        let row = csv.lines().nth(500).unwrap();
        let output = format!("result,value\nmean,0.42\n{row}\n");
        let scan = idx.scan(output.as_bytes(), 10);
        assert_eq!(scan.lines_hit, 1);
        assert_eq!(scan.hits[0].line, 3);
        assert_eq!(scan.hits[0].kind, EchoKind::Field);
        assert!(scan.hits[0].excerpt.starts_with("Message number 499 from"));
    }

    #[test]
    fn a_row_of_short_values_copied_whole_is_an_echo() {
        let mut csv = String::from("id,first,last,city,zip\n");
        for i in 0..500 {
            csv.push_str(&format!(
                "{i},Ann{i},Lee{},Springfield,{:05}\n",
                i * 3,
                i * 11
            ));
        }
        let idx = index(&csv);
        let row = csv.lines().nth(42).unwrap();
        assert!(row.len() >= 32, "{row}");
        let scan = idx.scan(format!("x\n{row}\r\n").as_bytes(), 10);
        assert_eq!(scan.lines_hit, 1);
        assert_eq!(scan.hits[0].kind, EchoKind::Record);
        assert_eq!(scan.hits[0].line, 2);
    }

    #[test]
    fn an_aggregate_with_category_counts_is_not_an_echo() {
        let csv = private_csv(1000);
        let idx = index(&csv);
        let aggregate = "source,count\nwiki,250\nforum,250\nnews,250\nchat,250\n";
        assert_eq!(idx.scan(aggregate.as_bytes(), 10), EchoScan::default());
        // Even category names long enough to be fields: they occur in many rows, so they are not indexed.
        let mut csv = String::from("id,category\n");
        for i in 0..1000 {
            csv.push_str(&format!(
                "{i},{}\n",
                [
                    "Customer complaints about delivery times",
                    "Questions about billing and invoices"
                ][i % 2]
            ));
        }
        let idx = index(&csv);
        let aggregate = "category,count\nCustomer complaints about delivery times,500\n\
                         Questions about billing and invoices,500\n";
        assert_eq!(idx.scan(aggregate.as_bytes(), 10).lines_hit, 0);
    }

    #[test]
    fn a_long_span_inside_other_text_is_found_by_winnowing() {
        // One long private line (a document); the output quotes 400 bytes of it inside its own text.
        let doc: String = (0..300)
            .map(|i| {
                format!(
                    "sentence {i} of a private document about topic {};",
                    i * 13 % 71
                )
            })
            .collect();
        let idx = index(&format!("{doc}\n"));
        let quote = &doc[5000..5400];
        let output = format!("The model said: <<{quote}>> and nothing else.\n");
        let scan = idx.scan(output.as_bytes(), 10);
        assert_eq!(scan.lines_hit, 1);
        assert_eq!(scan.hits[0].kind, EchoKind::Window);
        // A span shorter than the winnowing guarantee inside unrelated text need not be found, but an
        // unrelated line never is.
        assert_eq!(
            idx.scan(
                b"an unrelated line of text that is long enough to have windows in it, surely\n",
                10
            )
            .lines_hit,
            0
        );
    }

    #[test]
    fn unrelated_outputs_of_the_same_shape_are_not_flagged() {
        let idx = index(&private_csv(20_000));
        // Same columns, same kind of text, other values: every line has fields, a record and windows.
        let mut other = String::from("id,user,source,text,score\n");
        for i in 0..20_000 {
            other.push_str(&format!(
                "{},user_{},wiki,\"Reply number {i} to a public thread, with words {} {}\",{}\n",
                i + 50_000,
                i * 13 % 10007,
                i % 97,
                i % 89,
                i % 5
            ));
        }
        assert_eq!(idx.scan(other.as_bytes(), 10), EchoScan::default());
    }

    #[test]
    fn json_string_values_are_fields_on_both_sides() {
        let csv = private_csv(100);
        let idx = index(&csv);
        let row = csv.lines().nth(43).unwrap();
        let text = String::from_utf8(split_fields(row.as_bytes(), b',')[3].to_vec()).unwrap();
        assert!(text.starts_with("Message number 42 from a private conversation, with words"));
        let output = format!("{{\"id\": 1, \"sample\": {{\"text\": \"{text}\"}}}}\n");
        let scan = idx.scan(output.as_bytes(), 10);
        assert_eq!(scan.lines_hit, 1);
        assert_eq!(scan.hits[0].kind, EchoKind::Field);
        // Tab-separated output of a comma-separated asset.
        let row = csv.lines().nth(10).unwrap();
        let tsv: String = split_fields(row.as_bytes(), b',')
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect::<Vec<_>>()
            .join("\t");
        assert_eq!(idx.scan(tsv.as_bytes(), 10).lines_hit, 1);
    }

    #[test]
    fn the_file_round_trips_and_damage_is_refused() {
        let idx = index(&private_csv(300));
        let bytes = idx.to_bytes();
        assert_eq!(bytes.len() as u64, idx.file_len());
        assert_eq!(&bytes[..8], INDEX_MAGIC);
        let back = EchoIndex::from_bytes(&bytes).unwrap();
        assert_eq!(back, idx);
        assert_eq!(back.label(), "train.csv");
        let mut bad = bytes.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        assert!(EchoIndex::from_bytes(&bad)
            .unwrap_err()
            .to_string()
            .contains("checksum"));
        let mut v2 = bytes.clone();
        v2[8] = 2;
        assert!(EchoIndex::from_bytes(&v2)
            .unwrap_err()
            .to_string()
            .contains("version 2"));
        assert!(EchoIndex::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(EchoIndex::from_bytes(b"FERRYEIX").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.eix");
        idx.save(&path).unwrap();
        assert_eq!(EchoIndex::load(&path, 1 << 30).unwrap(), idx);
        assert!(EchoIndex::load(&path, 100)
            .unwrap_err()
            .to_string()
            .contains("cap"));
    }

    #[test]
    fn a_lying_table_length_is_refused_before_allocating() {
        let idx = index("short asset\n");
        let mut bytes = idx.to_bytes();
        // The fields table's entry count sits right after the fixed header.
        let at = 8 + 2 + 2 + 2 + idx.label().len() + 16 + 16 + 8 + 8 + 32;
        bytes[at..at + 8].copy_from_slice(&(1u64 << 31).to_le_bytes());
        let body_len = bytes.len() - 32;
        let sum = sha2::Sha256::digest(&bytes[..body_len]);
        bytes[body_len..].copy_from_slice(&sum);
        let e = EchoIndex::from_bytes(&bytes).unwrap_err().to_string();
        assert!(e.contains("bytes but"), "{e}");
    }

    #[test]
    fn the_build_streams_lines_across_blocks_like_the_scan_cuts_them() {
        // A reader that hands out a few bytes at a time must give the same index as one read.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(7);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let csv = private_csv(200);
        let whole = index(&csv);
        let trickled = EchoIndex::build_with_key(
            "train.csv",
            Trickle(csv.as_bytes()),
            IndexParams::default(),
            KEY,
        )
        .unwrap();
        assert_eq!(whole, trickled);
        assert_eq!(whole.asset_lines(), 201);
        assert_eq!(whole.asset_bytes(), csv.len() as u64);
        assert_eq!(
            whole.asset_sha256(),
            hex::encode(sha2::Sha256::digest(csv.as_bytes()))
        );
    }

    #[test]
    fn params_are_validated() {
        let bad = IndexParams {
            window: 8,
            ..IndexParams::default()
        };
        assert!(EchoIndex::build_with_key("x", &b""[..], bad, KEY).is_err());
        assert!(
            EchoIndex::build_with_key(&"x".repeat(256), &b""[..], IndexParams::default(), KEY)
                .is_err()
        );
    }
}
