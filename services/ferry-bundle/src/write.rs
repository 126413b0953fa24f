//! Writing a bundle: the plaintext is laid out in segments and encrypted, one segment per
//! helper thread, into the age payload; then the segment table and the signed header block
//! are written in front of it.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Mutex, PoisonError, TryLockError};

use crate::age_v1::{self, PayloadKey, ENC_CHUNK_LEN, TAG_LEN};
use crate::format::{
    check_path, encode_header_block, encode_manifest, sign_manifest, Header, HeaderParams, Layout,
    ManifestEntry, HEADER_BLOCK_LEN, PAYLOAD_MAGIC, TAG_END, TAG_ENTRY,
};
use crate::hash::Sha256;
use crate::keys::{recipient_point, PublicIdentity, SideKeys};
use crate::parallel::{self, Ordered};
use crate::{BundleError, FORMAT_VERSION};

/// Where to read an entry from when writing.
#[derive(Clone, Copy, Debug)]
pub enum EntrySource<'a> {
    /// Bytes already in memory.
    Bytes(&'a [u8]),
    /// A regular file, streamed; it must not change size while the bundle is written.
    File(&'a Path),
}

/// One entry to put in a bundle.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    /// Relative `/`-separated path the receiver will see; see [`check_path`].
    pub path: String,
    /// Where the entry's bytes come from.
    pub source: EntrySource<'a>,
}

/// What [`write_bundle`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenBundle {
    /// The signed header as written.
    pub header: Header,
    /// SHA-256 of the 1024-byte header block: the bundle's identity in the channel's
    /// hash chain (the next bundle's `prev_hash`).
    pub bundle_hash: [u8; 32],
}

/// Writes a complete bundle to `out` and returns its header and bundle hash.
///
/// The bundle starts at `out`'s current position. The plaintext's length is known before
/// anything is written (from the entries' lengths), which fixes the layout: the header
/// block and the segment table are reserved as zeros, the age header is written, and the
/// plaintext is encrypted segment by segment (1 MiB each, on helper threads, one per core,
/// each also hashing the ciphertext it produced) while this thread reads the entries
/// into the segment buffers and writes finished segments (in order to a stream; writing a
/// file, each at its place, as it is done). Then the segment table and the signed header
/// block are written over the reserved bytes. `out` is left positioned at the end of the
/// bundle and flushed, but not synced: to make the file durable and atomic (R11), pass
/// `&mut File` of a temporary file, then `sync_all` and rename it.
///
/// If an error occurs the output holds a partial bundle whose header block is still
/// zeroed, which every reader refuses as not a bundle; the caller should delete it.
///
/// Entry paths must pass [`check_path`] and be unique. File entries are read in 64 KiB
/// blocks straight into the buffers they are encrypted in, and never held in memory
/// whole; a file whose size differs from when the bundle was planned, or that changes
/// size while being packed, is an error. Memory use is a few MiB whatever the size.
pub fn write_bundle<W: Write + Seek>(
    out: W,
    keys: &SideKeys,
    peer: &PublicIdentity,
    params: &HeaderParams,
    entries: &[Entry<'_>],
) -> Result<WrittenBundle, BundleError> {
    write_entries_to(out, None, keys, peer, params, entries)
}

/// [`write_bundle`] into a file: the same bundle, but each helper thread writes the
/// segments it encrypted straight to their places in the file (positioned writes, one
/// thread at a time), so that
/// the calling thread only reads the entries. The fastest way to write a bundle
/// to disk; `out` is left positioned at the end of the bundle, which starts at its current
/// position.
pub fn write_bundle_file(
    out: &mut File,
    keys: &SideKeys,
    peer: &PublicIdentity,
    params: &HeaderParams,
    entries: &[Entry<'_>],
) -> Result<WrittenBundle, BundleError> {
    let helpers_file = out
        .try_clone()
        .map_err(|e| BundleError::io("writing the bundle payload", e))?;
    write_entries_to(out, Some(&helpers_file), keys, peer, params, entries)
}

/// Plans the plaintext of `entries` and seals it; `positioned` as in [`seal`].
fn write_entries_to<W: Write + Seek>(
    out: W,
    positioned: Option<&File>,
    keys: &SideKeys,
    peer: &PublicIdentity,
    params: &HeaderParams,
    entries: &[Entry<'_>],
) -> Result<WrittenBundle, BundleError> {
    let mut seen = HashSet::with_capacity(entries.len());
    let mut lens = Vec::with_capacity(entries.len());
    for entry in entries {
        check_path(&entry.path)?;
        if entry.path.len() > usize::from(u16::MAX) {
            return Err(BundleError::BadPath {
                path: entry.path.clone(),
                why: format!("it is {} bytes, longer than 65535", entry.path.len()),
            });
        }
        if !seen.insert(entry.path.as_str()) {
            return Err(BundleError::DuplicateEntry {
                path: entry.path.clone(),
            });
        }
        lens.push(match entry.source {
            EntrySource::Bytes(bytes) => bytes.len() as u64,
            EntrySource::File(path) => regular_file_len(path, path.metadata())?,
        });
    }
    // The plaintext: magic, one record per entry, the end record with the manifest.
    let planned: Vec<ManifestEntry> = entries
        .iter()
        .zip(&lens)
        .map(|(e, &len)| ManifestEntry {
            path: e.path.clone(),
            len,
        })
        .collect();
    let manifest_len = encode_manifest(&params.bundle_id, &planned)?.len() as u64;
    let records: u64 = planned
        .iter()
        .map(|e| 1 + 2 + e.path.len() as u64 + 8 + e.len)
        .sum();
    let plain_len = PAYLOAD_MAGIC.len() as u64 + records + 1 + 4 + manifest_len + 64;

    seal(out, positioned, keys, peer, params, plain_len, |plain| {
        write_entries(plain, keys, &params.bundle_id, entries, &lens)
    })
}

/// Seals an arbitrary plaintext in a genuine, signed envelope (for tests, and the fuzzer).
#[cfg(test)]
pub(crate) fn write_envelope<W: Write + Seek>(
    out: W,
    keys: &SideKeys,
    peer: &PublicIdentity,
    params: &HeaderParams,
    plaintext: &[u8],
) -> Result<WrittenBundle, BundleError> {
    seal(
        out,
        None,
        keys,
        peer,
        params,
        plaintext.len() as u64,
        |plain| plain.write_all(plaintext),
    )
}

/// Seals an arbitrary plaintext in a genuine, signed envelope, for the fuzzer to reach the
/// plaintext parser past the signature and segment hashes. Only with the `fuzzing`
/// feature: real bundles are written by [`write_bundle`], which checks what it writes.
#[cfg(feature = "fuzzing")]
pub fn seal_plaintext_for_fuzzing(
    keys: &SideKeys,
    peer: &PublicIdentity,
    params: &HeaderParams,
    plaintext: &[u8],
) -> Result<Vec<u8>, BundleError> {
    let mut out = io::Cursor::new(Vec::new());
    seal(
        &mut out,
        None,
        keys,
        peer,
        params,
        plaintext.len() as u64,
        |plain| plain.write_all(plaintext),
    )?;
    Ok(out.into_inner())
}

/// Writes a segment at its place in the bundle file, if it can take the write turn now
/// (or, with `wait`, once it can); whether it wrote.
type Place<'p> = dyn Fn(&Segment, bool) -> Result<bool, BundleError> + Sync + 'p;

/// A segment on its way through the helper threads.
struct Segment {
    index: u64,
    /// The segment's chunks at multiples of [`ENC_CHUNK_LEN`], each chunk's plaintext
    /// followed by room for its tag; encrypted in place.
    buf: Vec<u8>,
    /// SHA-256 of the ciphertext, once encrypted.
    hash: [u8; 32],
    /// Written to its place in the file (positioned writes) by the thread that encrypted it.
    written: bool,
}

/// Writes the header block, segment table and age payload around a plaintext of exactly
/// `plain_len` bytes, which `body` writes. With `positioned` (the file `out` writes to),
/// the helpers write each encrypted segment at its offset in that file themselves, and
/// this thread takes segments back in whatever order they are done; otherwise this thread
/// writes them to `out` in order.
fn seal<W: Write + Seek>(
    out: W,
    positioned: Option<&File>,
    keys: &SideKeys,
    peer: &PublicIdentity,
    params: &HeaderParams,
    plain_len: u64,
    body: impl FnOnce(&mut PlainWriter<'_, '_, W>) -> Result<(), BundleError>,
) -> Result<WrittenBundle, BundleError> {
    let recipient = recipient_point(&peer.recipient)?;
    let (age_header, key) = age_v1::new_header(&recipient)?;
    let sealer = Sealer {
        age_header: &age_header,
        key: &key,
        helpers: None,
        defer_writes: false,
    };
    sealer.seal(out, positioned, keys, params, plain_len, body)
}

/// The age header and payload key a bundle is sealed with, and how many helper threads
/// encrypt it (`None`: [`parallel::helpers_for`] its segments). Tests seal the same
/// plaintext under the same key with and without helpers, to compare the bytes.
pub(crate) struct Sealer<'k> {
    pub(crate) age_header: &'k [u8],
    pub(crate) key: &'k PayloadKey,
    pub(crate) helpers: Option<usize>,
    /// Writing to a file, leave every segment's write to the calling thread, as when its
    /// encrypter finds the write turn taken (for tests; else `false`).
    pub(crate) defer_writes: bool,
}

impl Sealer<'_> {
    /// [`seal`] with this age header, key and number of helpers.
    pub(crate) fn seal<W: Write + Seek>(
        &self,
        mut out: W,
        positioned: Option<&File>,
        keys: &SideKeys,
        params: &HeaderParams,
        plain_len: u64,
        body: impl FnOnce(&mut PlainWriter<'_, '_, W>) -> Result<(), BundleError>,
    ) -> Result<WrittenBundle, BundleError> {
        let Sealer {
            age_header,
            key,
            helpers,
            defer_writes,
        } = *self;
        let werr = |e| BundleError::io("writing the bundle payload", e);
        let layout = Layout::for_plaintext(plain_len, age_header.len())?;
        let start = out
            .stream_position()
            .map_err(|e| BundleError::io("finding the bundle's start", e))?;
        // Reserved: the header block stays zero until the very end.
        let reserved = HEADER_BLOCK_LEN as u64 + layout.table_len();
        io::copy(&mut io::repeat(0).take(reserved), &mut out)
            .map_err(|e| BundleError::io("reserving the bundle header", e))?;
        out.write_all(age_header).map_err(werr)?;
        let mut table = Vec::with_capacity(layout.table_len() as usize);
        table.extend_from_slice(&Sha256::digest(age_header));
        // Filled at each segment's place as it is taken back (in any order when writing to a file).
        table.resize(layout.table_len() as usize, 0);

        let payload_start = start + HEADER_BLOCK_LEN as u64 + layout.table_len();
        // One thread writes to the file at a time. Two concurrent writers of one file
        // contend in the kernel (its inode lock, which a waiting writer spins on, and the
        // page cache's locks): measured on 2 cores, 1 GiB, taking turns cut pack's CPU time
        // by about 16% and its wall time by about 10%. A helper that finds the turn taken
        // does not wait for it: it leaves the write to the calling thread, which writes the
        // segment when it takes it back (`place` with `wait`), and goes on encrypting.
        let write_turn = Mutex::new(());
        let place = |segment: &Segment, wait: bool| -> Result<bool, BundleError> {
            let Some(file) = positioned else {
                return Ok(false);
            };
            // Nothing is guarded but the turn itself, so a poisoned lock is still a turn.
            let _turn = match write_turn.try_lock() {
                Ok(turn) => turn,
                Err(TryLockError::Poisoned(turn)) => turn.into_inner(),
                Err(TryLockError::WouldBlock) if wait => {
                    write_turn.lock().unwrap_or_else(PoisonError::into_inner)
                }
                Err(TryLockError::WouldBlock) => return Ok(false),
            };
            let (at, len) = layout.segment(segment.index);
            let mut offset = payload_start + at;
            for piece in segment.buf[..len].chunks(WRITE_LEN) {
                file.write_all_at(piece, offset).map_err(werr)?;
                offset += piece.len() as u64;
            }
            Ok(true)
        };
        let encrypt = |segment: &mut Segment| {
            segment.hash = encrypt_segment(key, &layout, segment.index, &mut segment.buf);
            segment.written = !defer_writes && place(segment, false)?;
            Ok(())
        };
        let segments = layout.segments - 1;
        parallel::run(
            helpers.unwrap_or_else(|| parallel::helpers_for(segments)),
            queue_depth(&layout),
            &encrypt,
            |ordered| {
                let mut plain = PlainWriter {
                    layout: &layout,
                    ordered,
                    out: &mut out,
                    table: &mut table,
                    free: Vec::new(),
                    allocated: 0,
                    depth: queue_depth(&layout),
                    filling: None,
                    positioned: positioned.map(|_| &place as &Place<'_>),
                    index: 1,
                    chunk: 0,
                    pos: 0,
                    written: 0,
                };
                body(&mut plain)?;
                plain.finish()
            },
        )?;

        let header = Header {
            version: FORMAT_VERSION,
            bundle_id: params.bundle_id,
            channel: params.channel,
            seq: params.seq,
            prev_hash: params.prev_hash,
            created_at: params.created_at,
            expires_at: params.expires_at,
            signer: keys.public().signing,
            payload_len: layout.payload_len,
            stream_offset: layout.stream_offset as u32,
            segment_chunks: layout.segment_chunks as u32,
            table_sha256: Sha256::digest(&table),
        };
        let block = encode_header_block(&header, keys)?;
        let end = start + layout.bundle_len();
        out.seek(SeekFrom::Start(start + HEADER_BLOCK_LEN as u64))
            .and_then(|_| out.write_all(&table))
            .and_then(|()| out.seek(SeekFrom::Start(start)))
            .and_then(|_| out.write_all(&block))
            .and_then(|()| out.seek(SeekFrom::Start(end)))
            .and_then(|_| out.flush())
            .map_err(|e| BundleError::io("writing the bundle header", e))?;
        Ok(WrittenBundle {
            header,
            bundle_hash: Sha256::digest(&block),
        })
    }
}

/// Bytes per write of the output: whole segments cost the kernel more to copy into the
/// page cache than pieces that stay in the CPU's cache (measured: about 2.5 times).
const WRITE_LEN: usize = 64 * 1024;

/// Segments in flight (being filled, queued, encrypted or waiting to be written): enough
/// to keep every core busy, about 8 MiB.
fn queue_depth(layout: &Layout) -> usize {
    ((8 << 20) / layout.max_segment_len().max(1)).clamp(2, 8)
}

/// Encrypts segment `index` in place, chunk by chunk, hashing each chunk as soon as it is
/// encrypted (while it is still in cache); returns the ciphertext's SHA-256.
fn encrypt_segment(key: &PayloadKey, layout: &Layout, index: u64, buf: &mut [u8]) -> [u8; 32] {
    let (first, count) = layout.chunks_of(index);
    let mut hasher = Sha256::new();
    for c in 0..count {
        let chunk = first + c as u64;
        let plain = layout.chunk_plain_len(chunk);
        let at = c * ENC_CHUNK_LEN;
        let tag = key.seal_chunk(chunk, chunk + 1 == layout.chunks, &mut buf[at..at + plain]);
        buf[at + plain..at + plain + TAG_LEN].copy_from_slice(&tag);
        hasher.update(&buf[at..at + plain + TAG_LEN]);
    }
    hasher.finalize()
}

/// The plaintext's writer: fills segment buffers chunk by chunk, hands full segments to
/// the helpers, and writes encrypted segments to the output (in order, or each at its
/// place in a file).
pub(crate) struct PlainWriter<'a, 'w, W> {
    layout: &'a Layout,
    ordered: &'a mut Ordered<'w, Segment>,
    out: &'a mut W,
    table: &'a mut Vec<u8>,
    /// Buffers back from the output, ready to fill.
    free: Vec<Vec<u8>>,
    allocated: usize,
    depth: usize,
    /// The segment being filled.
    filling: Option<Vec<u8>>,
    /// Writing to a file: the encrypting thread writes each segment at its place, or else
    /// this (with `wait`) when it takes the segment back.
    positioned: Option<&'a Place<'a>>,
    /// Its index (segments after the last one: everything was handed over).
    index: u64,
    /// The chunk being filled in it, and how many plaintext bytes it has.
    chunk: usize,
    pos: usize,
    /// Plaintext bytes written so far.
    written: u64,
}

impl<W: Write> PlainWriter<'_, '_, W> {
    /// Appends `data` to the plaintext.
    pub(crate) fn write_all(&mut self, mut data: &[u8]) -> Result<(), BundleError> {
        while !data.is_empty() {
            let space = self.space()?;
            let n = space.len().min(data.len());
            space[..n].copy_from_slice(&data[..n]);
            data = &data[n..];
            self.advance(n)?;
        }
        Ok(())
    }

    /// Appends exactly `len` bytes read from `source`, reading straight into the segment
    /// buffer (where a helper encrypts them in place). Fewer bytes than `len` is `shrank`.
    fn copy_from(
        &mut self,
        source: &mut dyn Read,
        len: u64,
        shrank: impl Fn() -> BundleError,
        context: impl Fn() -> String,
    ) -> Result<(), BundleError> {
        let mut remaining = len;
        while remaining > 0 {
            let space = self.space()?;
            let want = space.len().min(remaining.min(usize::MAX as u64) as usize);
            let n =
                read_some(source, &mut space[..want]).map_err(|e| BundleError::io(context(), e))?;
            if n == 0 {
                return Err(shrank());
            }
            remaining -= n as u64;
            self.advance(n)?;
        }
        Ok(())
    }

    /// The unfilled rest of the current chunk (never empty), starting a segment if needed.
    fn space(&mut self) -> Result<&mut [u8], BundleError> {
        if self.written >= self.layout.plain_len {
            return Err(planned_length_differs());
        }
        if self.filling.is_none() {
            let buf = self.buffer()?;
            self.filling = Some(buf);
        }
        let (first, _) = self.layout.chunks_of(self.index);
        let cap = self.layout.chunk_plain_len(first + self.chunk as u64);
        let at = self.chunk * ENC_CHUNK_LEN;
        let buf = self.filling.as_mut().expect("a segment is being filled");
        Ok(&mut buf[at + self.pos..at + cap])
    }

    /// Records that `n` bytes of [`PlainWriter::space`] were filled; hands the segment
    /// over once its last chunk is full.
    fn advance(&mut self, n: usize) -> Result<(), BundleError> {
        self.written += n as u64;
        self.pos += n;
        let (first, count) = self.layout.chunks_of(self.index);
        if self.pos == self.layout.chunk_plain_len(first + self.chunk as u64) {
            self.chunk += 1;
            self.pos = 0;
            if self.chunk == count {
                self.hand_over()?;
            }
        }
        Ok(())
    }

    fn hand_over(&mut self) -> Result<(), BundleError> {
        let buf = match self.filling.take() {
            Some(buf) => buf,
            None => self.buffer()?,
        };
        self.ordered.submit(Segment {
            index: self.index,
            buf,
            hash: [0; 32],
            written: false,
        })?;
        self.index += 1;
        self.chunk = 0;
        Ok(())
    }

    /// An empty segment buffer: one back from the output, a new one while fewer than
    /// `depth` exist, or else the next encrypted segment's, once it is written.
    fn buffer(&mut self) -> Result<Vec<u8>, BundleError> {
        loop {
            if let Some(buf) = self.free.pop() {
                return Ok(buf);
            }
            if self.allocated < self.depth {
                self.allocated += 1;
                return Ok(vec![0; self.layout.max_segment_len()]);
            }
            self.write_next()?;
        }
    }

    /// Takes a segment back and writes it out: writing to a file, any one that is
    /// encrypted (each has its place), else the oldest in flight, waiting for it.
    fn write_next(&mut self) -> Result<(), BundleError> {
        let next = if self.positioned.is_some() {
            self.ordered.next_any()
        } else {
            self.ordered.next()
        };
        let segment = match next {
            Some(done) => done?,
            None => return Err(planned_length_differs()),
        };
        if let Some(place) = self.positioned {
            if !segment.written {
                place(&segment, true)?;
            }
        } else {
            let (_, len) = self.layout.segment(segment.index);
            for piece in segment.buf[..len].chunks(WRITE_LEN) {
                self.out
                    .write_all(piece)
                    .map_err(|e| BundleError::io("writing the bundle payload", e))?;
            }
        }
        let at = segment.index as usize * segment.hash.len();
        self.table[at..at + segment.hash.len()].copy_from_slice(&segment.hash);
        self.free.push(segment.buf);
        Ok(())
    }

    /// Checks that the whole plaintext was written, hands over the last segment (only an
    /// empty plaintext leaves one unfilled) and writes every segment still in flight.
    fn finish(mut self) -> Result<(), BundleError> {
        if self.written != self.layout.plain_len {
            return Err(planned_length_differs());
        }
        while self.index < self.layout.segments {
            self.hand_over()?;
        }
        while self.ordered.pending() > 0 {
            self.write_next()?;
        }
        Ok(())
    }
}

fn planned_length_differs() -> BundleError {
    BundleError::io(
        "writing the bundle payload",
        io::Error::other("the plaintext is not the length the bundle was planned for"),
    )
}

/// The length of the regular file at `path`, from its metadata.
fn regular_file_len(path: &Path, meta: io::Result<std::fs::Metadata>) -> Result<u64, BundleError> {
    let context = || format!("reading entry file {}", path.display());
    match meta {
        Ok(meta) if meta.is_file() => Ok(meta.len()),
        Ok(_) => Err(BundleError::io(
            context(),
            io::Error::other("not a regular file"),
        )),
        Err(e) => Err(BundleError::io(context(), e)),
    }
}

/// Writes the plaintext: magic, one record per entry, then the signed manifest.
fn write_entries<W: Write>(
    plain: &mut PlainWriter<'_, '_, W>,
    keys: &SideKeys,
    bundle_id: &[u8; 16],
    entries: &[Entry<'_>],
    lens: &[u64],
) -> Result<(), BundleError> {
    plain.write_all(PAYLOAD_MAGIC)?;
    let mut manifest = Vec::with_capacity(entries.len());

    for (entry, &planned) in entries.iter().zip(lens) {
        let mut file;
        let mut slice;
        let context = || match entry.source {
            EntrySource::Bytes(_) => format!("reading entry `{}`", entry.path),
            EntrySource::File(path) => format!("reading entry file {}", path.display()),
        };
        let (len, source): (u64, &mut dyn Read) = match entry.source {
            EntrySource::Bytes(bytes) => {
                slice = bytes;
                (bytes.len() as u64, &mut slice)
            }
            EntrySource::File(path) => {
                file = File::open(path).map_err(|e| BundleError::io(context(), e))?;
                (regular_file_len(path, file.metadata())?, &mut file)
            }
        };
        let changed = |how: &str| {
            BundleError::io(
                context(),
                io::Error::other(format!("the file {how} while it was being packed")),
            )
        };
        if len != planned {
            return Err(changed("changed size"));
        }

        plain.write_all(&[TAG_ENTRY])?;
        plain.write_all(&(entry.path.len() as u16).to_le_bytes())?;
        plain.write_all(entry.path.as_bytes())?;
        plain.write_all(&len.to_le_bytes())?;
        plain.copy_from(source, len, || changed("shrank"), context)?;
        if read_some(source, &mut [0u8; 1]).map_err(|e| BundleError::io(context(), e))? != 0 {
            return Err(changed("grew"));
        }
        manifest.push(ManifestEntry {
            path: entry.path.clone(),
            len,
        });
    }

    plain.write_all(&end_record(keys, bundle_id, &manifest)?)
}

/// The end record: tag, manifest length, manifest, manifest signature.
pub(crate) fn end_record(
    keys: &SideKeys,
    bundle_id: &[u8; 16],
    manifest: &[ManifestEntry],
) -> Result<Vec<u8>, BundleError> {
    let bytes = encode_manifest(bundle_id, manifest)?;
    let len = u32::try_from(bytes.len())
        .map_err(|_| BundleError::Malformed("manifest is larger than 4 GiB".to_owned()))?;
    let signature = sign_manifest(keys, &bytes);
    let mut record = Vec::with_capacity(1 + 4 + bytes.len() + 64);
    record.push(TAG_END);
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&bytes);
    record.extend_from_slice(&signature);
    Ok(record)
}

/// `read`, retried on `Interrupted`.
fn read_some(source: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match source.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
