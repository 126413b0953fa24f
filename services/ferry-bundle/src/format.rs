//! The bundle's wire format: header block, payload records, manifest, limits and path rules.
//!
//! `schemas/bundle-format.md` is the normative description; this module is the one place
//! that encodes and decodes those bytes.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

use crate::age_v1::{self, ENC_CHUNK_LEN};
use crate::keys::{verifying_key, SideKeys};
use crate::{BundleError, FORMAT_VERSION};

/// Magic at the start of every bundle file.
pub const BUNDLE_MAGIC: &[u8; 8] = b"FERRYBDL";
/// Magic at the start of the decrypted payload.
pub const PAYLOAD_MAGIC: &[u8; 8] = b"FERRYPL1";
/// Size of the fixed header block; the segment table starts at this offset.
pub const HEADER_BLOCK_LEN: usize = 1024;
/// Largest `header_len` that fits in the header block next to the prefix and signature.
pub const MAX_HEADER_LEN: u16 = (HEADER_BLOCK_LEN - PREFIX_LEN - SIGNATURE_LEN) as u16;
/// Hard cap on the manifest record, whatever the limits; readers also refuse a manifest
/// longer than the entries they read can need (see `schemas/bundle-format.md`).
pub const MAX_MANIFEST_LEN: u32 = 16 * 1024 * 1024;

/// Longest segment table: 32768 segment hashes (512 GiB of payload at the largest segments).
pub const MAX_TABLE_LEN: u32 = 1 << 20;
/// Most STREAM chunks in one segment (16 MiB of plaintext), so that a reader never holds
/// more than a few segments of that size.
pub const MAX_SEGMENT_CHUNKS: u32 = 256;
/// Longest age header plus nonce (the payload's first segment) a reader accepts.
pub const MAX_STREAM_OFFSET: u32 = 64 * 1024;
/// STREAM chunks per segment in the bundles this build writes, unless the payload is so
/// large that its table would exceed [`MAX_TABLE_LEN`]: 16 chunks, 1 MiB of plaintext.
pub(crate) const SEGMENT_CHUNKS: u32 = 16;
/// Bytes of one segment hash in the table.
pub(crate) const SEGMENT_HASH_LEN: usize = 32;

/// Domain separation for the header signature.
pub(crate) const HEADER_DOMAIN: &[u8] = b"ferry-bundle/v3 header\0";
/// Domain separation for the manifest signature.
pub(crate) const MANIFEST_DOMAIN: &[u8] = b"ferry-bundle/v3 manifest\0";
/// Payload record tag: one entry follows.
pub(crate) const TAG_ENTRY: u8 = 1;
/// Payload record tag: the manifest and its signature follow, then the payload ends.
pub(crate) const TAG_END: u8 = 2;

/// magic + version + header_len + table_len.
pub(crate) const PREFIX_LEN: usize = 8 + 2 + 2 + 4;
const SIGNATURE_LEN: usize = 64;

/// The direction a bundle travels. A key signs only its own direction (R8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Channel {
    /// From the low side (researchers) into the air-gapped high side.
    LowToHigh,
    /// From the high side back out to the low side.
    HighToLow,
}

impl Channel {
    /// Stable text name: `"low-to-high"` or `"high-to-low"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::LowToHigh => "low-to-high",
            Channel::HighToLow => "high-to-low",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = BundleError;

    fn from_str(s: &str) -> Result<Channel, BundleError> {
        match s {
            "low-to-high" => Ok(Channel::LowToHigh),
            "high-to-low" => Ok(Channel::HighToLow),
            other => Err(BundleError::Malformed(format!(
                "unknown channel `{other}` (expected low-to-high or high-to-low)"
            ))),
        }
    }
}

/// The signed bundle header.
///
/// This crate only checks that it is authentic; whether its sequence number, expiry and
/// channel are acceptable is the caller's policy (R3–R5, R8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version, [`FORMAT_VERSION`] when written by this build.
    pub version: u16,
    /// Random unique id of this bundle.
    pub bundle_id: [u8; 16],
    /// Direction of travel.
    pub channel: Channel,
    /// Sequence number on this channel.
    pub seq: u64,
    /// Names the previous bundle on this channel (Ferry puts its content hash here), zeros for the first (R6).
    pub prev_hash: [u8; 32],
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Expiry time, unix seconds (R5).
    pub expires_at: i64,
    /// Ed25519 public key of the signer.
    pub signer: [u8; 32],
    /// Length of the payload (the age file) that follows the segment table.
    pub payload_len: u64,
    /// Where the first STREAM chunk starts in the payload: the age header's length plus
    /// its 16-byte nonce. These bytes are segment 0.
    pub stream_offset: u32,
    /// STREAM chunks in each later segment (the last may have fewer).
    pub segment_chunks: u32,
    /// SHA-256 of the segment table, which holds the SHA-256 of every payload segment.
    pub table_sha256: [u8; 32],
}

impl Header {
    /// The bundle id as a UUID, for display and ledgers.
    pub fn bundle_uuid(&self) -> uuid::Uuid {
        uuid::Uuid::from_bytes(self.bundle_id)
    }

    /// Length of the segment table that this header describes, if its layout is valid.
    pub fn table_len(&self) -> Option<u64> {
        Layout::of(self).ok().map(|l| l.table_len())
    }

    /// Length of the whole bundle file (header block, segment table and payload), if the
    /// header's layout is valid.
    pub fn bundle_len(&self) -> Option<u64> {
        Layout::of(self).ok().map(|l| l.bundle_len())
    }
}

/// Where a payload's segments and STREAM chunks are, from the signed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Bytes of the age file.
    pub(crate) payload_len: u64,
    /// Bytes of segment 0: the age header and nonce.
    pub(crate) stream_offset: u64,
    /// STREAM chunks per later segment.
    pub(crate) segment_chunks: u64,
    /// STREAM chunks in the payload.
    pub(crate) chunks: u64,
    /// Segments, segment 0 included.
    pub(crate) segments: u64,
    /// Plaintext bytes.
    pub(crate) plain_len: u64,
}

impl Layout {
    /// The layout a header declares, or why it is impossible.
    pub(crate) fn of(header: &Header) -> Result<Layout, BundleError> {
        let bad = |why: String| BundleError::Malformed(format!("header layout: {why}"));
        let stream_offset = u64::from(header.stream_offset);
        if header.stream_offset == 0 || header.stream_offset > MAX_STREAM_OFFSET {
            return Err(bad(format!(
                "stream_offset {} is not between 1 and {MAX_STREAM_OFFSET}",
                header.stream_offset
            )));
        }
        if header.segment_chunks == 0 || header.segment_chunks > MAX_SEGMENT_CHUNKS {
            return Err(bad(format!(
                "segment_chunks {} is not between 1 and {MAX_SEGMENT_CHUNKS}",
                header.segment_chunks
            )));
        }
        let stream_len = header
            .payload_len
            .checked_sub(stream_offset)
            .ok_or_else(|| bad("payload_len is shorter than stream_offset".to_owned()))?;
        let plain_len = age_v1::plain_len(stream_len).ok_or_else(|| {
            bad(format!(
                "{stream_len} bytes after stream_offset are not a whole age STREAM"
            ))
        })?;
        let chunks = stream_len.div_ceil(ENC_CHUNK_LEN as u64);
        let segment_chunks = u64::from(header.segment_chunks);
        let segments = 1 + chunks.div_ceil(segment_chunks);
        if segments * SEGMENT_HASH_LEN as u64 > u64::from(MAX_TABLE_LEN) {
            return Err(bad(format!(
                "{segments} segments need a table longer than {MAX_TABLE_LEN} bytes"
            )));
        }
        Ok(Layout {
            payload_len: header.payload_len,
            stream_offset,
            segment_chunks,
            chunks,
            segments,
            plain_len,
        })
    }

    /// The layout this build writes for `plain_len` plaintext bytes behind an age header
    /// and nonce of `stream_offset` bytes: 16 chunks a segment, more if the table would be
    /// too long.
    pub(crate) fn for_plaintext(
        plain_len: u64,
        stream_offset: usize,
    ) -> Result<Layout, BundleError> {
        let chunks = age_v1::chunk_count(plain_len);
        let mut segment_chunks = SEGMENT_CHUNKS;
        while (1 + chunks.div_ceil(u64::from(segment_chunks))) * SEGMENT_HASH_LEN as u64
            > u64::from(MAX_TABLE_LEN)
        {
            segment_chunks *= 2;
            if segment_chunks > MAX_SEGMENT_CHUNKS {
                return Err(BundleError::Malformed(format!(
                    "{plain_len} bytes are more than one bundle can carry"
                )));
            }
        }
        let payload_len = stream_offset as u64 + plain_len + chunks * age_v1::TAG_LEN as u64;
        Layout::of(&Header {
            version: FORMAT_VERSION,
            bundle_id: [0; 16],
            channel: Channel::LowToHigh,
            seq: 0,
            prev_hash: [0; 32],
            created_at: 0,
            expires_at: 0,
            signer: [0; 32],
            payload_len,
            stream_offset: u32::try_from(stream_offset).unwrap_or(u32::MAX),
            segment_chunks,
            table_sha256: [0; 32],
        })
    }

    /// Bytes of the segment table.
    pub(crate) fn table_len(&self) -> u64 {
        self.segments * SEGMENT_HASH_LEN as u64
    }

    /// Bytes of the whole bundle file.
    pub(crate) fn bundle_len(&self) -> u64 {
        HEADER_BLOCK_LEN as u64 + self.table_len() + self.payload_len
    }

    /// Bytes of the largest segment after segment 0.
    pub(crate) fn max_segment_len(&self) -> usize {
        (self.segment_chunks.min(self.chunks) as usize) * ENC_CHUNK_LEN
    }

    /// Offset in the payload and length of segment `index`.
    pub(crate) fn segment(&self, index: u64) -> (u64, usize) {
        if index == 0 {
            return (0, self.stream_offset as usize);
        }
        let span = self.segment_chunks * ENC_CHUNK_LEN as u64;
        let start = self.stream_offset + (index - 1) * span;
        let end = (start + span).min(self.payload_len);
        (start, (end - start) as usize)
    }

    /// The first STREAM chunk of segment `index` (at least 1) and how many it holds.
    pub(crate) fn chunks_of(&self, index: u64) -> (u64, usize) {
        let first = (index - 1) * self.segment_chunks;
        (first, self.segment_chunks.min(self.chunks - first) as usize)
    }

    /// Plaintext bytes in STREAM chunk `chunk`.
    pub(crate) fn chunk_plain_len(&self, chunk: u64) -> usize {
        let full = age_v1::CHUNK_LEN as u64;
        (self.plain_len - chunk * full).min(full) as usize
    }
}

/// The caller-chosen parts of a header; the writer fills in the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderParams {
    /// Random unique id; see [`new_bundle_id`].
    pub bundle_id: [u8; 16],
    /// Direction of travel.
    pub channel: Channel,
    /// Sequence number on this channel.
    pub seq: u64,
    /// Names the previous bundle on this channel (Ferry puts its content hash here), zeros for the first.
    pub prev_hash: [u8; 32],
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Expiry time, unix seconds.
    pub expires_at: i64,
}

/// A fresh random bundle id (a version 4 UUID).
pub fn new_bundle_id() -> [u8; 16] {
    uuid::Uuid::new_v4().into_bytes()
}

/// Receiver-side caps, all enforced before allocating and while streaming (R7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most entries in one bundle.
    pub max_entries: u32,
    /// Longest single entry, in bytes.
    pub max_entry_len: u64,
    /// Most bytes of entry data in one bundle.
    pub max_total_len: u64,
    /// Longest entry path, in bytes (the format allows at most 65535).
    pub max_path_len: u32,
}

impl Default for Limits {
    /// 10 000 entries, 4 GiB per entry, 16 GiB in total, 255-byte paths.
    fn default() -> Limits {
        Limits {
            max_entries: 10_000,
            max_entry_len: 4 << 30,
            max_total_len: 16 << 30,
            max_path_len: 255,
        }
    }
}

/// The postcard encoding of [`Header`]. Field order is the wire order; never reorder.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireHeader {
    version: u16,
    bundle_id: [u8; 16],
    channel: Channel,
    seq: u64,
    prev_hash: [u8; 32],
    created_at: i64,
    expires_at: i64,
    signer: [u8; 32],
    payload_len: u64,
    stream_offset: u32,
    segment_chunks: u32,
    table_sha256: [u8; 32],
}

impl From<&Header> for WireHeader {
    fn from(h: &Header) -> WireHeader {
        WireHeader {
            version: h.version,
            bundle_id: h.bundle_id,
            channel: h.channel,
            seq: h.seq,
            prev_hash: h.prev_hash,
            created_at: h.created_at,
            expires_at: h.expires_at,
            signer: h.signer,
            payload_len: h.payload_len,
            stream_offset: h.stream_offset,
            segment_chunks: h.segment_chunks,
            table_sha256: h.table_sha256,
        }
    }
}

impl From<WireHeader> for Header {
    fn from(w: WireHeader) -> Header {
        Header {
            version: w.version,
            bundle_id: w.bundle_id,
            channel: w.channel,
            seq: w.seq,
            prev_hash: w.prev_hash,
            created_at: w.created_at,
            expires_at: w.expires_at,
            signer: w.signer,
            payload_len: w.payload_len,
            stream_offset: w.stream_offset,
            segment_chunks: w.segment_chunks,
            table_sha256: w.table_sha256,
        }
    }
}

/// Encodes and signs the 1024-byte header block.
pub(crate) fn encode_header_block(
    header: &Header,
    keys: &SideKeys,
) -> Result<[u8; HEADER_BLOCK_LEN], BundleError> {
    let bytes = postcard::to_stdvec(&WireHeader::from(header))
        .map_err(|e| BundleError::Malformed(format!("cannot encode header: {e}")))?;
    if bytes.len() > usize::from(MAX_HEADER_LEN) {
        // Impossible with today's fixed-size fields; kept so a future field cannot overflow.
        return Err(BundleError::HeaderTooLarge {
            len: u16::try_from(bytes.len()).unwrap_or(u16::MAX),
            max: MAX_HEADER_LEN,
        });
    }
    let table_len = u32::try_from(Layout::of(header)?.table_len())
        .map_err(|_| BundleError::Malformed("the segment table is too long".to_owned()))?;
    let mut block = [0u8; HEADER_BLOCK_LEN];
    block[..8].copy_from_slice(BUNDLE_MAGIC);
    block[8..10].copy_from_slice(&header.version.to_le_bytes());
    block[10..12].copy_from_slice(&(bytes.len() as u16).to_le_bytes());
    block[12..16].copy_from_slice(&table_len.to_le_bytes());
    let end = PREFIX_LEN + bytes.len();
    block[PREFIX_LEN..end].copy_from_slice(&bytes);
    let signature = keys.sign(&signed_header_message(&block[..end]));
    block[end..end + SIGNATURE_LEN].copy_from_slice(&signature);
    Ok(block)
}

/// A header block that passed the structural checks, not yet authenticated.
pub(crate) struct RawHeaderBlock<'b> {
    /// magic || version || header_len || table_len || header bytes: what the signature
    /// covers.
    pub(crate) signed: &'b [u8],
    /// The declared length of the segment table that follows the block.
    pub(crate) table_len: u32,
    /// The postcard header bytes.
    pub(crate) header_bytes: &'b [u8],
    /// The Ed25519 signature.
    pub(crate) signature: [u8; 64],
}

/// Checks magic, version, lengths and padding, in that order, without touching the
/// signature or parsing the header bytes. `filled` is how many bytes of `block` the file
/// actually provided.
pub(crate) fn split_header_block(
    block: &[u8; HEADER_BLOCK_LEN],
    filled: usize,
) -> Result<RawHeaderBlock<'_>, BundleError> {
    let magic_seen = filled.min(BUNDLE_MAGIC.len());
    if block[..magic_seen] != BUNDLE_MAGIC[..magic_seen] {
        return Err(BundleError::NotABundle);
    }
    if filled < HEADER_BLOCK_LEN {
        // A prefix of a bundle (including an empty file) is a half-written bundle.
        return Err(BundleError::Truncated);
    }
    let version = u16::from_le_bytes([block[8], block[9]]);
    if version > FORMAT_VERSION {
        return Err(BundleError::NewerVersion { found: version });
    }
    if version == 0 {
        return Err(BundleError::Malformed(
            "format version 0 does not exist".to_owned(),
        ));
    }
    if version < FORMAT_VERSION {
        return Err(BundleError::OldVersion { found: version });
    }
    let header_len = u16::from_le_bytes([block[10], block[11]]);
    if header_len > MAX_HEADER_LEN {
        return Err(BundleError::HeaderTooLarge {
            len: header_len,
            max: MAX_HEADER_LEN,
        });
    }
    if header_len == 0 {
        return Err(BundleError::Malformed("header length is zero".to_owned()));
    }
    let table_len = u32::from_le_bytes([block[12], block[13], block[14], block[15]]);
    if !table_len.is_multiple_of(SEGMENT_HASH_LEN as u32)
        || table_len < 2 * SEGMENT_HASH_LEN as u32
        || table_len > MAX_TABLE_LEN
    {
        return Err(BundleError::Malformed(format!(
            "segment table length {table_len} is not a multiple of 32 between 64 and \
             {MAX_TABLE_LEN}"
        )));
    }
    let end = PREFIX_LEN + usize::from(header_len);
    // The padding is not signed but is part of the bundle hash, so it must be exactly
    // zero: otherwise one signed header would have many bundle hashes.
    if block[end + SIGNATURE_LEN..].iter().any(|&b| b != 0) {
        return Err(BundleError::Malformed(
            "header block padding is not all zero".to_owned(),
        ));
    }
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&block[end..end + SIGNATURE_LEN]);
    Ok(RawHeaderBlock {
        signed: &block[..end],
        table_len,
        header_bytes: &block[PREFIX_LEN..end],
        signature,
    })
}

/// Parses the header bytes (after the signature was checked, or for `inspect`).
pub(crate) fn parse_header(raw: &RawHeaderBlock<'_>) -> Result<Header, BundleError> {
    let (wire, rest) = postcard::take_from_bytes::<WireHeader>(raw.header_bytes)
        .map_err(|e| BundleError::Malformed(format!("cannot decode header: {e}")))?;
    if !rest.is_empty() {
        return Err(BundleError::Malformed(format!(
            "{} unexpected bytes after the header fields",
            rest.len()
        )));
    }
    let header = Header::from(wire);
    let version = u16::from_le_bytes([raw.signed[8], raw.signed[9]]);
    if header.version != version {
        return Err(BundleError::Malformed(format!(
            "header says version {} but the block says version {version}",
            header.version
        )));
    }
    let table_len = Layout::of(&header)?.table_len();
    if table_len != u64::from(raw.table_len) {
        return Err(BundleError::Malformed(format!(
            "the block declares a {}-byte segment table, but the header's layout needs \
             {table_len} bytes",
            raw.table_len
        )));
    }
    Ok(header)
}

/// Authenticates a structurally valid header block against the pinned signer, then parses it.
///
/// The signature is checked with the pinned key before the header bytes are parsed (R1).
/// Only when it fails are the bytes parsed, to tell "signed by another key" apart from
/// "forged or corrupted"; nothing from that parse is accepted.
pub(crate) fn authenticate_header(
    raw: &RawHeaderBlock<'_>,
    trusted_signer: &[u8; 32],
) -> Result<Header, BundleError> {
    let trusted = verifying_key(trusted_signer)?;
    let message = signed_header_message(raw.signed);
    let signature = Signature::from_bytes(&raw.signature);
    if trusted.verify_strict(&message, &signature).is_err() {
        if let Ok(claimed) = parse_header(raw) {
            let signed_by_claimed = claimed.signer != *trusted_signer
                && verifying_key(&claimed.signer)
                    .is_ok_and(|k| k.verify_strict(&message, &signature).is_ok());
            if signed_by_claimed {
                return Err(BundleError::UntrustedSigner {
                    found: hex::encode(claimed.signer),
                });
            }
        }
        return Err(BundleError::BadSignature);
    }
    let header = parse_header(raw)?;
    if header.signer != *trusted_signer {
        // Signed by the pinned key but naming another signer: refuse rather than guess.
        return Err(BundleError::UntrustedSigner {
            found: hex::encode(header.signer),
        });
    }
    Ok(header)
}

fn signed_header_message(signed: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(HEADER_DOMAIN.len() + signed.len());
    message.extend_from_slice(HEADER_DOMAIN);
    message.extend_from_slice(signed);
    message
}

/// One entry as the manifest lists it: its path and length. (Its bytes are authenticated
/// by the segment table, which the header signs, before they are decrypted; format version
/// 2 also listed each entry's SHA-256, a second hash of every byte that proved nothing more.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Relative `/`-separated path.
    pub path: String,
    /// Length in bytes.
    pub len: u64,
}

/// The postcard encoding of the inner manifest.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireManifest {
    bundle_id: [u8; 16],
    entries: Vec<(String, u64)>,
}

/// Encodes the manifest record body.
pub(crate) fn encode_manifest(
    bundle_id: &[u8; 16],
    entries: &[ManifestEntry],
) -> Result<Vec<u8>, BundleError> {
    let wire = WireManifest {
        bundle_id: *bundle_id,
        entries: entries.iter().map(|e| (e.path.clone(), e.len)).collect(),
    };
    postcard::to_stdvec(&wire)
        .map_err(|e| BundleError::Malformed(format!("cannot encode manifest: {e}")))
}

/// Signs manifest bytes with the side's signing key.
pub(crate) fn sign_manifest(keys: &SideKeys, manifest: &[u8]) -> [u8; 64] {
    keys.sign(&signed_manifest_message(manifest))
}

/// Verifies the manifest signature with the pinned key, then decodes the manifest.
pub(crate) fn open_manifest(
    manifest: &[u8],
    signature: &[u8; 64],
    trusted_signer: &[u8; 32],
) -> Result<([u8; 16], Vec<ManifestEntry>), BundleError> {
    let trusted = verifying_key(trusted_signer)?;
    trusted
        .verify_strict(
            &signed_manifest_message(manifest),
            &Signature::from_bytes(signature),
        )
        .map_err(|_| BundleError::BadManifestSignature)?;
    let (wire, rest) = postcard::take_from_bytes::<WireManifest>(manifest)
        .map_err(|e| BundleError::ManifestMismatch(format!("cannot decode manifest: {e}")))?;
    if !rest.is_empty() {
        return Err(BundleError::ManifestMismatch(format!(
            "{} unexpected bytes after the manifest",
            rest.len()
        )));
    }
    let entries = wire
        .entries
        .into_iter()
        .map(|(path, len)| ManifestEntry { path, len })
        .collect();
    Ok((wire.bundle_id, entries))
}

fn signed_manifest_message(manifest: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(MANIFEST_DOMAIN.len() + manifest.len());
    message.extend_from_slice(MANIFEST_DOMAIN);
    message.extend_from_slice(manifest);
    message
}

/// The largest manifest an honest writer can produce for the entries already read, so
/// that a lying `manifest_len` cannot make the reader allocate more than the entries
/// justify.
pub(crate) fn manifest_len_bound(entries: &[ManifestEntry]) -> u64 {
    // bundle_id + varint count (at most 5 bytes), then per entry a varint path length
    // (at most 3 bytes for a u16), the path and a varint u64 (at most 10).
    let per_entry: u64 = entries.iter().map(|e| 3 + e.path.len() as u64 + 10).sum();
    16 + 5 + per_entry
}

/// Checks that `path` is a safe relative path (R2): non-empty `/`-separated components,
/// none of them `.` or `..`, no leading `/`, no backslash, NUL or other control character.
pub fn check_path(path: &str) -> Result<(), BundleError> {
    let why = if path.is_empty() {
        Some("it is empty")
    } else if path.starts_with('/') {
        Some("it is absolute (starts with `/`)")
    } else if path.contains('\\') {
        Some("it contains a backslash")
    } else if path.contains('\0') {
        Some("it contains a NUL byte")
    } else if path.chars().any(char::is_control) {
        Some("it contains a control character")
    } else {
        path.split('/').find_map(|component| match component {
            "" => Some("it has an empty component (`//` or a trailing `/`)"),
            "." => Some("it has a `.` component"),
            ".." => Some("it has a `..` component"),
            _ => None,
        })
    };
    match why {
        Some(why) => Err(BundleError::BadPath {
            path: path.escape_debug().to_string(),
            why: why.to_owned(),
        }),
        None => Ok(()),
    }
}
