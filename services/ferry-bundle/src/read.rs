//! Reading a bundle: inspect the header; verify the signature, the segment table and each
//! payload segment before it is decrypted; decrypt segments on helper threads and stream
//! the entries into a sink under caps, in one pass over the file.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::FileExt;

use crate::age_v1::{self, PayloadKey, ENC_CHUNK_LEN};
use crate::format::{
    authenticate_header, check_path, manifest_len_bound, open_manifest, parse_header,
    split_header_block, Header, Layout, Limits, ManifestEntry, HEADER_BLOCK_LEN, MAX_MANIFEST_LEN,
    PAYLOAD_MAGIC, SEGMENT_HASH_LEN, TAG_END, TAG_ENTRY,
};
use crate::hash::Sha256;
use crate::keys::SideKeys;
use crate::parallel::{self, Ordered};
use crate::BundleError;

/// Largest chunk handed to an [`EntrySink`] (a STREAM chunk's plaintext).
const SINK_CHUNK_LEN: usize = age_v1::CHUNK_LEN;

/// Receives entries while a bundle is opened; the reader calls `begin`, `write`... `end`
/// per entry, then exactly one of `commit` (everything verified) or `abort`.
///
/// Entry data arrives before the manifest at the end of the payload has been checked, so
/// a sink must stage what it receives and make nothing visible or durable before
/// `commit` (nothing is partially imported). `len` is the declared length, already
/// checked against the [`Limits`]; the reader guarantees that exactly `len` bytes are
/// written before `end`.
pub trait EntrySink {
    /// Starts an entry of `len` bytes at the already-validated relative `path`.
    fn begin(&mut self, path: &str, len: u64) -> Result<(), BundleError>;
    /// Receives the next chunk (at most 64 KiB) of the current entry.
    fn write(&mut self, chunk: &[u8]) -> Result<(), BundleError>;
    /// Ends the current entry.
    fn end(&mut self) -> Result<(), BundleError>;
    /// Called once after every check passed: make the staged entries visible.
    fn commit(&mut self) -> Result<(), BundleError> {
        Ok(())
    }
    /// Called once when the bundle is refused: discard everything staged.
    fn abort(&mut self) {}
}

/// A sink that collects entries in memory, up to a total byte cap of its own.
///
/// Entries move to `entries` only on `commit`; a refused bundle leaves it unchanged.
#[derive(Debug)]
pub struct MemorySink {
    /// Committed entries, in bundle order.
    pub entries: Vec<(String, Vec<u8>)>,
    max_bytes: u64,
    committed_bytes: u64,
    staged_bytes: u64,
    staged: Vec<(String, Vec<u8>)>,
    current: Option<(String, Vec<u8>, u64)>,
}

impl MemorySink {
    /// A sink that refuses to hold more than `max_bytes` of entry data in total.
    pub fn new(max_bytes: u64) -> MemorySink {
        MemorySink {
            entries: Vec::new(),
            max_bytes,
            committed_bytes: 0,
            staged_bytes: 0,
            staged: Vec::new(),
            current: None,
        }
    }
}

impl EntrySink for MemorySink {
    fn begin(&mut self, path: &str, len: u64) -> Result<(), BundleError> {
        if self.current.is_some() {
            return Err(BundleError::Malformed(
                "entry started before the previous one ended".to_owned(),
            ));
        }
        let after = self
            .committed_bytes
            .saturating_add(self.staged_bytes)
            .saturating_add(len);
        if after > self.max_bytes {
            return Err(BundleError::TotalTooLarge {
                max: self.max_bytes,
            });
        }
        self.staged_bytes += len;
        // `len` is within the cap checked just above, so this allocation is bounded.
        let data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        self.current = Some((path.to_owned(), data, len));
        Ok(())
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), BundleError> {
        let (path, data, len) = self
            .current
            .as_mut()
            .ok_or_else(|| BundleError::Malformed("entry data outside an entry".to_owned()))?;
        if data.len() as u64 + chunk.len() as u64 > *len {
            return Err(BundleError::Malformed(format!(
                "entry `{path}` is longer than its declared {len} bytes"
            )));
        }
        data.extend_from_slice(chunk);
        Ok(())
    }

    fn end(&mut self) -> Result<(), BundleError> {
        let (path, data, len) = self
            .current
            .take()
            .ok_or_else(|| BundleError::Malformed("entry ended twice".to_owned()))?;
        if data.len() as u64 != len {
            return Err(BundleError::Malformed(format!(
                "entry `{path}` is shorter than its declared {len} bytes"
            )));
        }
        self.staged.push((path, data));
        Ok(())
    }

    fn commit(&mut self) -> Result<(), BundleError> {
        self.committed_bytes += self.staged_bytes;
        self.staged_bytes = 0;
        self.entries.append(&mut self.staged);
        Ok(())
    }

    fn abort(&mut self) {
        self.staged.clear();
        self.staged_bytes = 0;
        self.current = None;
    }
}

/// What [`open`] verified and delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedBundle {
    /// The authenticated header; its policy fields are for the caller to check.
    pub header: Header,
    /// SHA-256 of the 1024-byte header block.
    pub bundle_hash: [u8; 32],
    /// The entries, as listed by the verified manifest.
    pub entries: Vec<ManifestEntry>,
}

/// Reads and parses the fixed header block WITHOUT verifying the signature (for
/// `ferry bundle inspect`).
///
/// Structural checks still apply (magic, version, lengths, zero padding, a consistent
/// layout). Nothing in the result is authenticated: never base a decision on it.
pub fn inspect<R: Read>(mut r: R) -> Result<Header, BundleError> {
    let (block, filled) = read_header_block(&mut r)?;
    let raw = split_header_block(&block, filled)?;
    parse_header(&raw)
}

/// Verification only (signature, segment table and every payload segment, no
/// decryption) for `ferry bundle verify`; the segments are hashed on every core.
///
/// The bundle starts at `r`'s current position and must end exactly where its header
/// says. Returns the authenticated header and the bundle hash.
pub fn verify_bundle<R: Read>(
    mut r: R,
    trusted_signer: &[u8; 32],
) -> Result<(Header, [u8; 32]), BundleError> {
    let (header, bundle_hash, layout) = read_header(&mut r, trusted_signer)?;
    let table = read_table(&mut r, &header, &layout)?;
    let check = |segment: &mut Segment| check_segment(&table, segment);
    parallel::run(
        parallel::helpers_for(layout.segments),
        queue_depth(&layout),
        &check,
        |ordered| {
            let mut segments = Segments::new(&mut r, &layout, 0);
            loop {
                segments.read_ahead(ordered)?;
                match ordered.next() {
                    Some(done) => segments.recycle(done?.buf),
                    None => return Ok(()),
                }
            }
        },
    )?;
    Ok((header, bundle_hash))
}

/// The caller's policy on an authenticated header: see [`OpenOptions::header_check`].
pub type HeaderCheck<'a, E> = Box<dyn FnOnce(&Header, &[u8; 32]) -> Result<(), E> + 'a>;

/// Everything [`open`] needs besides the bundle itself: whom to trust, which keys to
/// decrypt with, what to accept, what to check before decrypting, and where the entries go.
///
/// Start from [`OpenOptions::new`] and adjust with [`OpenOptions::limits`] and
/// [`OpenOptions::header_check`], or fill in the fields directly.
pub struct OpenOptions<'a, E = BundleError> {
    /// The Ed25519 key pinned for the sender; the header must be signed by it (R1).
    pub trusted_signer: [u8; 32],
    /// The age identities to decrypt with, all tried against the age header in one pass:
    /// this side's current keys first, then keys it retired, for bundles encrypted to an
    /// old recipient while a rotation is in flight. None fits → [`BundleError::NotForUs`]
    /// (also when the list is empty).
    pub identities: &'a [&'a SideKeys],
    /// Receiver caps, enforced before allocating and while streaming (R7).
    pub limits: Limits,
    /// The caller's policy (channel, replay, sequence, chain, expiry), called with the
    /// authenticated header and the bundle hash after the header's signature has been
    /// verified and before anything is decrypted. Its error refuses the bundle as it is.
    pub header_check: Option<HeaderCheck<'a, E>>,
    /// Receives the entries: `commit` once everything verified, `abort` on any refusal.
    pub sink: &'a mut dyn EntrySink,
}

impl<'a> OpenOptions<'a, BundleError> {
    /// Options with the default [`Limits`] and no header check.
    pub fn new(
        trusted_signer: [u8; 32],
        identities: &'a [&'a SideKeys],
        sink: &'a mut dyn EntrySink,
    ) -> OpenOptions<'a, BundleError> {
        OpenOptions {
            trusted_signer,
            identities,
            limits: Limits::default(),
            header_check: None,
            sink,
        }
    }
}

impl<'a, E> OpenOptions<'a, E> {
    /// Replaces the receiver caps.
    pub fn limits(mut self, limits: Limits) -> OpenOptions<'a, E> {
        self.limits = limits;
        self
    }

    /// Sets the header check; its error type becomes the error type of [`open`], which
    /// must be able to hold a [`BundleError`] too.
    pub fn header_check<F, E2>(self, check: F) -> OpenOptions<'a, E2>
    where
        F: FnOnce(&Header, &[u8; 32]) -> Result<(), E2> + 'a,
    {
        OpenOptions {
            trusted_signer: self.trusted_signer,
            identities: self.identities,
            limits: self.limits,
            header_check: Some(Box::new(check)),
            sink: self.sink,
        }
    }
}

/// Opens a bundle, in one pass over `r`, and returns its verified header, bundle hash and
/// manifest.
///
/// In order: the header block's signature is verified against `options.trusted_signer`
/// and the header decoded; `options.header_check` runs; the segment table is read and
/// checked against the header's `table_sha256`. Then the payload is read segment by
/// segment, each one checked against its SHA-256 in the table BEFORE any of it is
/// decrypted (R1): segment 0 is the age header, opened with `options.identities`; every
/// later segment is verified and decrypted on a helper thread (one per core), and its
/// plaintext parsed here, in order, streaming the entries into `options.sink` under
/// `options.limits` and checking them against the signed manifest at the end. A segment
/// that fails its hash is refused before any plaintext of it reaches the sink.
///
/// The bundle starts at `r`'s current position and must end exactly where its header says;
/// `r` need not be buffered (reads are of whole segments, 1 MiB). Memory use is a few MiB
/// whatever the size. On success the sink's `commit` has been called; on any refusal its
/// `abort` has, and the error says why. Replay, sequence, expiry and channel direction are
/// the caller's to check against its ledger, in the header check.
pub fn open<R, E>(r: R, options: OpenOptions<'_, E>) -> Result<OpenedBundle, E>
where
    R: Read,
    E: From<BundleError>,
{
    open_from(r, None, options)
}

/// [`open`] for a bundle in a file: the same checks in the same order, with the same
/// results, but each helper thread reads the segments it verifies and decrypts itself
/// (positioned reads), so that the calling thread only parses the plaintext and feeds the
/// sink. The fastest way to open a bundle on disk. The bundle starts at `file`'s current
/// position and must end exactly where its header says; where `file` is left positioned
/// afterwards is unspecified.
pub fn open_file<E>(file: &File, options: OpenOptions<'_, E>) -> Result<OpenedBundle, E>
where
    E: From<BundleError>,
{
    let mut r = file;
    open_from(&mut r, Some(file), options)
}

/// [`open`], with the payload's segments read by the helpers from `positioned` (the file
/// `r` reads) when it is given.
fn open_from<R, E>(
    mut r: R,
    positioned: Option<&File>,
    options: OpenOptions<'_, E>,
) -> Result<OpenedBundle, E>
where
    R: Read,
    E: From<BundleError>,
{
    let OpenOptions {
        trusted_signer,
        identities,
        limits,
        header_check,
        sink,
    } = options;
    let result = (|| {
        let (header, bundle_hash, layout) = read_header(&mut r, &trusted_signer)?;
        if let Some(check) = header_check {
            check(&header, &bundle_hash)?;
        }
        let input = Input {
            r: &mut r,
            file: positioned,
        };
        let entries = decrypt_and_stream(
            input,
            &header,
            &layout,
            &trusted_signer,
            identities,
            &limits,
            sink,
        )?;
        sink.commit()?;
        Ok(OpenedBundle {
            header,
            bundle_hash,
            entries,
        })
    })();
    if result.is_err() {
        sink.abort();
    }
    result
}

/// Reads the header block and authenticates it. Returns the header, the bundle hash and
/// the payload's layout.
fn read_header<R: Read>(
    r: &mut R,
    trusted_signer: &[u8; 32],
) -> Result<(Header, [u8; 32], Layout), BundleError> {
    let (block, filled) = read_header_block(r)?;
    let raw = split_header_block(&block, filled)?;
    let header = authenticate_header(&raw, trusted_signer)?;
    let layout = Layout::of(&header)?;
    Ok((header, Sha256::digest(&block), layout))
}

/// Reads the segment table that follows the header block and checks it against the
/// header's `table_sha256`. Its length was capped by the format before this allocation.
fn read_table<R: Read>(
    r: &mut R,
    header: &Header,
    layout: &Layout,
) -> Result<Vec<u8>, BundleError> {
    let mut table = vec![0u8; layout.table_len() as usize];
    read_exact(r, &mut table)?;
    if Sha256::digest(&table) != header.table_sha256 {
        return Err(BundleError::SegmentTableMismatch);
    }
    Ok(table)
}

/// Verifies the table, then the age header (segment 0), then decrypts and parses the
/// rest of the payload, streaming its entries into `sink`.
fn decrypt_and_stream<R: Read>(
    input: Input<'_, R>,
    header: &Header,
    layout: &Layout,
    trusted_signer: &[u8; 32],
    identities: &[&SideKeys],
    limits: &Limits,
    sink: &mut dyn EntrySink,
) -> Result<Vec<ManifestEntry>, BundleError> {
    let Input { r, file } = input;
    let table = read_table(r, header, layout)?;
    let payload = match file {
        Some(mut file) => {
            let start = file
                .stream_position()
                .map_err(|e| BundleError::io("reading the bundle payload", e))?;
            Some(Positioned { file, start })
        }
        None => None,
    };
    let mut age_header = Segment {
        index: 0,
        buf: vec![0u8; layout.stream_offset as usize],
    };
    read_exact(r, &mut age_header.buf)?;
    check_segment(&table, &mut age_header)?;
    // Only now, with the age header authenticated, is anything decrypted (R1).
    let identities = identities
        .iter()
        .map(|keys| keys.x25519_identity())
        .collect::<Result<Vec<_>, _>>()?;
    let key = age_v1::open_header(&age_header.buf, &identities)?;
    drop(identities);

    let decrypt = |segment: &mut Segment| {
        if let Some(payload) = &payload {
            payload.read_segment(layout, segment)?;
        }
        check_segment(&table, segment)?;
        decrypt_segment(&key, layout, segment)
    };
    parallel::run(
        parallel::helpers_for(layout.segments - 1),
        queue_depth(layout),
        &decrypt,
        |ordered| {
            let mut segments = Segments::new(r, layout, 1);
            segments.positioned = payload.as_ref();
            let mut plain = PlainStream {
                segments,
                ordered,
                current: None,
                chunk: 0,
                pos: 0,
            };
            read_payload(&mut plain, header, trusted_signer, limits, sink)
        },
    )
}

/// A payload segment on its way through the helper threads: ciphertext as read, then (for
/// segments after 0) its chunks decrypted in place.
struct Segment {
    index: u64,
    buf: Vec<u8>,
}

/// Where [`decrypt_and_stream`] reads the bundle from, after its header block: `r`, in
/// order; with `file` (the file `r` reads), the helpers read each segment after 0
/// themselves.
struct Input<'i, R> {
    r: &'i mut R,
    file: Option<&'i File>,
}

/// The payload of a bundle in a file, for the helpers to read their segments from.
struct Positioned<'f> {
    file: &'f File,
    /// Where the payload starts in the file.
    start: u64,
}

impl Positioned<'_> {
    /// Reads segment `segment.index` into its buffer, which has the segment's length.
    fn read_segment(&self, layout: &Layout, segment: &mut Segment) -> Result<(), BundleError> {
        let (at, _) = layout.segment(segment.index);
        self.file
            .read_exact_at(&mut segment.buf, self.start + at)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => BundleError::Truncated,
                _ => BundleError::io("reading the bundle", e),
            })
    }

    /// Whether any byte follows the payload.
    fn trailing(&self, layout: &Layout) -> Result<bool, BundleError> {
        let end = self.start + layout.payload_len;
        loop {
            match self.file.read_at(&mut [0u8; 1], end) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BundleError::io("reading the bundle payload", e)),
                Ok(n) => return Ok(n != 0),
            }
        }
    }
}

/// Checks a segment's bytes against its hash in the table.
fn check_segment(table: &[u8], segment: &mut Segment) -> Result<(), BundleError> {
    let at = segment.index as usize * SEGMENT_HASH_LEN;
    if Sha256::digest(&segment.buf)[..] != table[at..at + SEGMENT_HASH_LEN] {
        return Err(BundleError::PayloadHashMismatch {
            segment: segment.index,
        });
    }
    Ok(())
}

/// Decrypts a verified segment's STREAM chunks in place.
fn decrypt_segment(
    key: &PayloadKey,
    layout: &Layout,
    segment: &mut Segment,
) -> Result<(), BundleError> {
    let (first, count) = layout.chunks_of(segment.index);
    for c in 0..count {
        let chunk = first + c as u64;
        let at = c * ENC_CHUNK_LEN;
        let end = (at + ENC_CHUNK_LEN).min(segment.buf.len());
        key.open_chunk(chunk, chunk + 1 == layout.chunks, &mut segment.buf[at..end])?;
    }
    Ok(())
}

/// Segments read ahead and in flight: enough to keep every core busy, about 8 MiB.
fn queue_depth(layout: &Layout) -> usize {
    ((8 << 20) / layout.max_segment_len().max(1)).clamp(2, 8)
}

/// Reads the payload's segments, in order, into a bounded set of buffers.
struct Segments<'a, R> {
    r: &'a mut R,
    layout: &'a Layout,
    /// The next segment to read.
    next: u64,
    free: Vec<Vec<u8>>,
    allocated: usize,
    depth: usize,
    /// The helpers read the segments from here: only hand them buffers of the right length.
    positioned: Option<&'a Positioned<'a>>,
}

impl<'a, R: Read> Segments<'a, R> {
    fn new(r: &'a mut R, layout: &'a Layout, first: u64) -> Segments<'a, R> {
        Segments {
            r,
            layout,
            next: first,
            free: Vec::new(),
            allocated: 0,
            depth: queue_depth(layout),
            positioned: None,
        }
    }

    /// Reads segments and submits them while buffers are free; after the last one, makes
    /// sure that nothing follows it.
    fn read_ahead(&mut self, ordered: &mut Ordered<'_, Segment>) -> Result<(), BundleError> {
        while self.next < self.layout.segments {
            let mut buf = match self.free.pop() {
                Some(buf) => buf,
                None if self.allocated < self.depth => {
                    self.allocated += 1;
                    Vec::with_capacity(
                        self.layout
                            .max_segment_len()
                            .max(self.layout.stream_offset as usize),
                    )
                }
                None => return Ok(()),
            };
            let (_, len) = self.layout.segment(self.next);
            buf.resize(len, 0);
            let last = self.next + 1 == self.layout.segments;
            let trailing = match self.positioned {
                Some(payload) => last && payload.trailing(self.layout)?,
                None => {
                    read_exact(self.r, &mut buf)?;
                    last && read_some(self.r, &mut [0u8; 1])
                        .map_err(|e| BundleError::io("reading the bundle payload", e))?
                        != 0
                }
            };
            if trailing {
                return Err(BundleError::TrailingData);
            }
            ordered.submit(Segment {
                index: self.next,
                buf,
            })?;
            self.next += 1;
        }
        Ok(())
    }

    fn recycle(&mut self, buf: Vec<u8>) {
        self.free.push(buf);
    }
}

/// The decrypted plaintext, segment after segment, in order; entry data is handed out as
/// slices of the segment buffers, never copied.
struct PlainStream<'a, 'o, 'w, R> {
    segments: Segments<'a, R>,
    ordered: &'o mut Ordered<'w, Segment>,
    /// The decrypted segment being read, and the position in it: chunk, then offset in
    /// that chunk's plaintext.
    current: Option<Segment>,
    chunk: usize,
    pos: usize,
}

impl<R: Read> PlainStream<'_, '_, '_, R> {
    /// The next plaintext bytes, at most `max` (and at least one); [`BundleError::Truncated`]
    /// if the plaintext has ended.
    fn slice(&mut self, max: usize) -> Result<&[u8], BundleError> {
        loop {
            if let Some(segment) = &self.current {
                let (first, count) = self.segments.layout.chunks_of(segment.index);
                if self.chunk < count {
                    let len = self
                        .segments
                        .layout
                        .chunk_plain_len(first + self.chunk as u64);
                    if self.pos < len {
                        let at = self.chunk * ENC_CHUNK_LEN + self.pos;
                        let n = max.min(len - self.pos);
                        self.pos += n;
                        if self.pos == len {
                            self.chunk += 1;
                            self.pos = 0;
                        }
                        let segment = self.current.as_ref().expect("checked above");
                        return Ok(&segment.buf[at..at + n]);
                    }
                    // Only the chunk of an empty plaintext is empty.
                    self.chunk += 1;
                    self.pos = 0;
                    continue;
                }
            }
            if !self.advance()? {
                return Err(BundleError::Truncated);
            }
        }
    }

    /// Moves to the next decrypted segment; `false` after the last one.
    fn advance(&mut self) -> Result<bool, BundleError> {
        if let Some(done) = self.current.take() {
            self.segments.recycle(done.buf);
        }
        self.segments.read_ahead(self.ordered)?;
        match self.ordered.next() {
            Some(done) => {
                self.current = Some(done?);
                self.chunk = 0;
                self.pos = 0;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn exact(&mut self, mut buf: &mut [u8]) -> Result<(), BundleError> {
        while !buf.is_empty() {
            let got = self.slice(buf.len())?;
            let n = got.len();
            buf[..n].copy_from_slice(got);
            buf = &mut buf[n..];
        }
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, BundleError> {
        let mut b = [0u8; 1];
        self.exact(&mut b)?;
        Ok(b[0])
    }

    fn u16(&mut self) -> Result<u16, BundleError> {
        let mut b = [0u8; 2];
        self.exact(&mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    fn u32(&mut self) -> Result<u32, BundleError> {
        let mut b = [0u8; 4];
        self.exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> Result<u64, BundleError> {
        let mut b = [0u8; 8];
        self.exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// True if the plaintext has no more bytes.
    fn at_end(&mut self) -> Result<bool, BundleError> {
        match self.slice(1) {
            Ok(_) => Ok(false),
            Err(BundleError::Truncated) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

/// Reads up to 1024 bytes; returns the block and how many bytes the file provided.
fn read_header_block<R: Read>(r: &mut R) -> Result<([u8; HEADER_BLOCK_LEN], usize), BundleError> {
    let mut block = [0u8; HEADER_BLOCK_LEN];
    let mut filled = 0;
    while filled < HEADER_BLOCK_LEN {
        let n = read_some(r, &mut block[filled..])
            .map_err(|e| BundleError::io("reading the bundle header", e))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok((block, filled))
}

/// Parses the decrypted payload, streaming entries into `sink` (R2, R7).
fn read_payload<R: Read>(
    plain: &mut PlainStream<'_, '_, '_, R>,
    header: &Header,
    trusted_signer: &[u8; 32],
    limits: &Limits,
    sink: &mut dyn EntrySink,
) -> Result<Vec<ManifestEntry>, BundleError> {
    let mut magic = [0u8; 8];
    plain.exact(&mut magic)?;
    if &magic != PAYLOAD_MAGIC {
        return Err(BundleError::Malformed(
            "the decrypted payload does not start with FERRYPL1".to_owned(),
        ));
    }

    let mut seen: Vec<ManifestEntry> = Vec::new();
    let mut paths: HashSet<String> = HashSet::new();
    let mut total: u64 = 0;

    loop {
        match plain.u8()? {
            TAG_ENTRY => {
                if seen.len() >= limits.max_entries as usize {
                    return Err(BundleError::TooManyEntries {
                        max: limits.max_entries,
                    });
                }
                let path = read_path(plain, limits)?;
                if paths.contains(&path) {
                    return Err(BundleError::DuplicateEntry { path });
                }
                let len = plain.u64()?;
                if len > limits.max_entry_len {
                    return Err(BundleError::EntryTooLarge {
                        path,
                        len,
                        max: limits.max_entry_len,
                    });
                }
                total = match total.checked_add(len) {
                    Some(t) if t <= limits.max_total_len => t,
                    _ => {
                        return Err(BundleError::TotalTooLarge {
                            max: limits.max_total_len,
                        })
                    }
                };

                sink.begin(&path, len)?;
                // Straight from the decrypted segment, whose ciphertext was checked against
                // the signed segment table before it was decrypted.
                let mut remaining = len;
                while remaining > 0 {
                    let data = plain.slice(remaining.min(SINK_CHUNK_LEN as u64) as usize)?;
                    sink.write(data)?;
                    remaining -= data.len() as u64;
                }
                sink.end()?;
                seen.push(ManifestEntry {
                    path: path.clone(),
                    len,
                });
                paths.insert(path);
            }
            TAG_END => {
                let manifest_len = plain.u32()?;
                if manifest_len > MAX_MANIFEST_LEN {
                    return Err(BundleError::Malformed(format!(
                        "manifest record is {manifest_len} bytes, more than the limit of \
                         {MAX_MANIFEST_LEN}"
                    )));
                }
                // Bound it by what the entries carried can need, so that a lying length
                // cannot make us allocate more than the entries justify.
                let bound = manifest_len_bound(&seen);
                if u64::from(manifest_len) > bound {
                    return Err(BundleError::ManifestMismatch(format!(
                        "the manifest is {manifest_len} bytes, longer than any manifest of \
                         the {} entries carried can be (it lists entries that are missing)",
                        seen.len()
                    )));
                }
                let mut manifest = vec![0u8; manifest_len as usize];
                plain.exact(&mut manifest)?;
                let mut signature = [0u8; 64];
                plain.exact(&mut signature)?;
                if !plain.at_end()? {
                    return Err(BundleError::TrailingData);
                }
                let (bundle_id, listed) = open_manifest(&manifest, &signature, trusted_signer)?;
                if bundle_id != header.bundle_id {
                    return Err(BundleError::ManifestMismatch(format!(
                        "the manifest is for bundle {}, but the header is for bundle {}",
                        uuid::Uuid::from_bytes(bundle_id),
                        header.bundle_uuid()
                    )));
                }
                compare_manifest(&listed, &seen)?;
                return Ok(seen);
            }
            tag => {
                return Err(BundleError::Malformed(format!(
                    "unknown payload record tag {tag}"
                )))
            }
        }
    }
}

/// Reads and validates an entry path, checking its length before allocating.
fn read_path<R: Read>(
    plain: &mut PlainStream<'_, '_, '_, R>,
    limits: &Limits,
) -> Result<String, BundleError> {
    let len = plain.u16()?;
    if u32::from(len) > limits.max_path_len {
        return Err(BundleError::BadPath {
            path: format!("<{len} bytes>"),
            why: format!(
                "it is {len} bytes, longer than the limit of {}",
                limits.max_path_len
            ),
        });
    }
    let mut bytes = vec![0u8; usize::from(len)];
    plain.exact(&mut bytes)?;
    let path = String::from_utf8(bytes).map_err(|e| BundleError::BadPath {
        path: String::from_utf8_lossy(e.as_bytes())
            .escape_debug()
            .to_string(),
        why: "it is not valid UTF-8".to_owned(),
    })?;
    check_path(&path)?;
    Ok(path)
}

/// The manifest must list exactly the entries seen, in order, with equal length.
fn compare_manifest(listed: &[ManifestEntry], seen: &[ManifestEntry]) -> Result<(), BundleError> {
    for i in 0..listed.len().max(seen.len()) {
        let why = match (listed.get(i), seen.get(i)) {
            (Some(l), Some(s)) if l.path != s.path => format!(
                "entry {i} is `{}` in the payload but `{}` in the manifest",
                s.path, l.path
            ),
            (Some(l), Some(s)) if l.len != s.len => format!(
                "entry `{}` is {} bytes, but the manifest says {}",
                s.path, s.len, l.len
            ),
            (Some(_), Some(_)) => continue,
            (None, Some(s)) => format!("entry `{}` is not listed in the manifest", s.path),
            (Some(l), None) => format!("the manifest lists `{}`, which is missing", l.path),
            (None, None) => unreachable!("i is below the longer length"),
        };
        return Err(BundleError::ManifestMismatch(why));
    }
    Ok(())
}

/// `read_exact`, with the end of the file reported as truncation.
fn read_exact<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<(), BundleError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => BundleError::Truncated,
        _ => BundleError::io("reading the bundle", e),
    })
}

/// `read`, retried on `Interrupted`.
fn read_some<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
