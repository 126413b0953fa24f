//! Reading a bundle: inspect the header, verify signature and payload hash, then decrypt
//! and stream the entries into a sink under caps.

use std::collections::HashSet;
use std::io::{self, BufReader, Read, Seek, SeekFrom};

use crate::format::{
    authenticate_header, check_path, manifest_len_bound, open_manifest, parse_header,
    split_header_block, Header, Limits, ManifestEntry, HEADER_BLOCK_LEN, MAX_MANIFEST_LEN,
    PAYLOAD_MAGIC, TAG_END, TAG_ENTRY,
};
use crate::hash::{EntryHasher, Sha256};
use crate::keys::SideKeys;
use crate::BundleError;

/// Buffer size for hashing and decrypting the payload.
const IO_BUF_LEN: usize = 256 * 1024;
/// Size of the chunks handed to an [`EntrySink`].
const SINK_CHUNK_LEN: usize = 64 * 1024;

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
/// Structural checks still apply (magic, version, lengths, zero padding). Nothing in the
/// result is authenticated: never base a decision on it.
pub fn inspect<R: Read>(mut r: R) -> Result<Header, BundleError> {
    let (block, filled) = read_header_block(&mut r)?;
    let raw = split_header_block(&block, filled)?;
    parse_header(&raw)
}

/// Verification only (signature + payload hash, no decryption) for `ferry bundle verify`.
///
/// The bundle starts at `r`'s current position and must end exactly where its header
/// says. Returns the authenticated header and the bundle hash.
pub fn verify_bundle<R: Read + Seek>(
    mut r: R,
    trusted_signer: &[u8; 32],
) -> Result<(Header, [u8; 32]), BundleError> {
    let (header, bundle_hash, _) = verify_at(&mut r, trusted_signer)?;
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

/// Opens a bundle: verifies the header signature against `options.trusted_signer`, runs
/// `options.header_check`, verifies the payload against the signed header BEFORE
/// decrypting anything, then decrypts with `options.identities` and streams the entries
/// into `options.sink`, checking every cap and the inner manifest. Returns the verified
/// header, bundle hash and manifest.
///
/// The bundle starts at `r`'s current position; reading needs `Seek` to hash the payload
/// first and then go back to decrypt it. `r` need not be buffered (reads are 256 KiB). On
/// success the sink's `commit` has been called; on any refusal its `abort` has, and the
/// error says why. Replay, sequence, expiry and channel direction are the caller's to check
/// against its ledger, in the header check.
pub fn open<R, E>(mut r: R, options: OpenOptions<'_, E>) -> Result<OpenedBundle, E>
where
    R: Read + Seek,
    E: From<BundleError>,
{
    let OpenOptions {
        trusted_signer,
        identities,
        limits,
        header_check,
        sink,
    } = options;
    let check = |header: &Header, hash: &[u8; 32]| match header_check {
        Some(check) => check(header, hash),
        None => Ok(()),
    };
    let result = open_and_stream(&mut r, &trusted_signer, identities, &limits, sink, check)
        .and_then(|opened| sink.commit().map(|()| opened).map_err(E::from));
    if result.is_err() {
        sink.abort();
    }
    result
}

fn open_and_stream<R, E, F>(
    r: &mut R,
    trusted_signer: &[u8; 32],
    keys: &[&SideKeys],
    limits: &Limits,
    sink: &mut dyn EntrySink,
    check: F,
) -> Result<OpenedBundle, E>
where
    R: Read + Seek,
    E: From<BundleError>,
    F: FnOnce(&Header, &[u8; 32]) -> Result<(), E>,
{
    let (header, bundle_hash, start) = verify_at(r, trusted_signer)?;
    check(&header, &bundle_hash)?;
    let entries = decrypt_and_stream(r, start, &header, trusted_signer, keys, limits, sink)?;
    Ok(OpenedBundle {
        header,
        bundle_hash,
        entries,
    })
}

/// Decrypts the (already authenticated) payload and streams its entries into `sink`.
fn decrypt_and_stream<R: Read + Seek>(
    r: &mut R,
    start: u64,
    header: &Header,
    trusted_signer: &[u8; 32],
    keys: &[&SideKeys],
    limits: &Limits,
    sink: &mut dyn EntrySink,
) -> Result<Vec<ManifestEntry>, BundleError> {
    // Only now, with the ciphertext authenticated, is anything decrypted (R1).
    r.seek(SeekFrom::Start(start + HEADER_BLOCK_LEN as u64))
        .map_err(|e| BundleError::io("seeking to the bundle payload", e))?;
    let ciphertext = BufReader::with_capacity(IO_BUF_LEN, r.take(header.payload_len));
    let decryptor = age::Decryptor::new_buffered(ciphertext).map_err(decrypt_error)?;
    let plaintext = decryptor
        .decrypt(keys.iter().map(|k| &k.age as &dyn age::Identity))
        .map_err(decrypt_error)?;
    read_payload(
        &mut PlainReader(plaintext),
        header,
        trusted_signer,
        limits,
        sink,
    )
}

/// Reads the header block, authenticates it, and hashes the payload that follows.
/// Returns the header, the bundle hash and the bundle's start offset.
fn verify_at<R: Read + Seek>(
    r: &mut R,
    trusted_signer: &[u8; 32],
) -> Result<(Header, [u8; 32], u64), BundleError> {
    let start = r
        .stream_position()
        .map_err(|e| BundleError::io("finding the bundle's start", e))?;
    let (block, filled) = read_header_block(r)?;
    let raw = split_header_block(&block, filled)?;
    let header = authenticate_header(&raw, trusted_signer)?;
    let bundle_hash = Sha256::digest(&block);

    // Hashed on a helper thread for large payloads, so that reading (from a cold disk or
    // removable media) overlaps hashing instead of alternating with it.
    let mut hasher = EntryHasher::for_total(header.payload_len);
    let mut buf = vec![0u8; IO_BUF_LEN];
    let mut remaining = header.payload_len;
    while remaining > 0 {
        let want = remaining.min(buf.len() as u64) as usize;
        let n = read_some(r, &mut buf[..want])
            .map_err(|e| BundleError::io("reading the bundle payload", e))?;
        if n == 0 {
            return Err(BundleError::Truncated);
        }
        hasher.update(&buf[..n])?;
        remaining -= n as u64;
    }
    if read_some(r, &mut buf[..1]).map_err(|e| BundleError::io("reading the bundle payload", e))?
        != 0
    {
        return Err(BundleError::TrailingData);
    }
    if hasher.finish_entry()? != header.payload_sha256 {
        return Err(BundleError::PayloadHashMismatch);
    }
    Ok((header, bundle_hash, start))
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
    plain: &mut PlainReader<R>,
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

    let mut hasher = EntryHasher::for_total(header.payload_len);
    let mut buf = vec![0u8; SINK_CHUNK_LEN];
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
                let mut remaining = len;
                while remaining > 0 {
                    let n = remaining.min(buf.len() as u64) as usize;
                    plain.exact(&mut buf[..n])?;
                    hasher.update(&buf[..n])?;
                    sink.write(&buf[..n])?;
                    remaining -= n as u64;
                }
                sink.end()?;
                seen.push(ManifestEntry {
                    path: path.clone(),
                    len,
                    sha256: hasher.finish_entry()?,
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
fn read_path<R: Read>(plain: &mut PlainReader<R>, limits: &Limits) -> Result<String, BundleError> {
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

/// The manifest must list exactly the entries seen, in order, with equal length and hash.
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
            (Some(l), Some(s)) if l.sha256 != s.sha256 => {
                format!(
                    "entry `{}` does not match its SHA-256 in the manifest",
                    s.path
                )
            }
            (Some(_), Some(_)) => continue,
            (None, Some(s)) => format!("entry `{}` is not listed in the manifest", s.path),
            (Some(l), None) => format!("the manifest lists `{}`, which is missing", l.path),
            (None, None) => unreachable!("i is below the longer length"),
        };
        return Err(BundleError::ManifestMismatch(why));
    }
    Ok(())
}

/// The decrypted payload, with errors mapped to bundle refusals.
struct PlainReader<R>(R);

impl<R: Read> PlainReader<R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<(), BundleError> {
        self.0.read_exact(buf).map_err(plaintext_error)
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

    /// True if the payload has no more bytes.
    fn at_end(&mut self) -> Result<bool, BundleError> {
        let mut b = [0u8; 1];
        Ok(read_some(&mut self.0, &mut b).map_err(plaintext_error)? == 0)
    }
}

/// Maps an error from reading the decrypted stream: a short stream is truncation, a
/// failed chunk is a decryption failure.
fn plaintext_error(e: io::Error) -> BundleError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => BundleError::Truncated,
        io::ErrorKind::InvalidData => BundleError::Decrypt(e.to_string()),
        _ => BundleError::io("reading the bundle payload", e),
    }
}

fn decrypt_error(e: age::DecryptError) -> BundleError {
    match e {
        age::DecryptError::NoMatchingKeys => BundleError::NotForUs,
        age::DecryptError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            BundleError::Truncated
        }
        other => BundleError::Decrypt(other.to_string()),
    }
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
