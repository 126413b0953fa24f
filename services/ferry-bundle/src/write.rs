//! Writing a bundle: entries are streamed through age into the output, then the signed
//! header block is written in front of them.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::iter;
use std::path::Path;

use crate::format::{
    check_path, encode_header_block, encode_manifest, sign_manifest, Header, HeaderParams,
    ManifestEntry, HEADER_BLOCK_LEN, PAYLOAD_MAGIC, TAG_END, TAG_ENTRY,
};
use crate::hash::{EntryHasher, HashingWriter, Sha256};
use crate::keys::{age_recipient, PublicIdentity, SideKeys};
use crate::{BundleError, FORMAT_VERSION};

/// Buffer size for reading entry files and for writing the bundle.
const IO_BUF_LEN: usize = 256 * 1024;

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

/// The age payload writer stack: plaintext -> age -> hash and count -> buffer -> output.
type PayloadWriter<'w, W> = age::stream::StreamWriter<HashingWriter<BufWriter<&'w mut W>>>;

/// Writes a complete bundle to `out` and returns its header and bundle hash.
///
/// The bundle starts at `out`'s current position. Writing goes in three steps: a zeroed
/// 1024-byte header block is reserved; the entries are streamed through age (encrypted to
/// `peer.recipient`) while the ciphertext is hashed; then the header is signed with
/// `keys` and written over the reserved block. `out` is left positioned at the end of
/// the bundle and flushed, but not synced: to make the file durable and atomic (R11),
/// pass `&mut File` of a temporary file, then `sync_all` and rename it.
///
/// If an error occurs the output holds a partial bundle whose header block is still
/// zeroed, which every reader refuses as not a bundle; the caller should delete it.
///
/// Entry paths must pass [`check_path`] and be unique. File entries are read in
/// 256 KiB blocks and never held in memory whole; a file that changes size while being
/// packed is an error.
pub fn write_bundle<W: Write + Seek>(
    out: W,
    keys: &SideKeys,
    peer: &PublicIdentity,
    params: &HeaderParams,
    entries: &[Entry<'_>],
) -> Result<WrittenBundle, BundleError> {
    let mut seen = HashSet::with_capacity(entries.len());
    let mut total: u64 = 0;
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
        // Sizes here only decide whether hashing is worth a helper thread; the length
        // written is taken again when the file is opened.
        total = total.saturating_add(match entry.source {
            EntrySource::Bytes(bytes) => bytes.len() as u64,
            EntrySource::File(path) => path.metadata().map(|m| m.len()).unwrap_or(0),
        });
    }

    write_envelope_sized(out, keys, peer, params, total, |payload| {
        write_entries(payload, keys, &params.bundle_id, entries, total)
    })
}

/// Writes the header block around a payload produced by `body`, which receives the
/// age-encrypting writer and must write the whole plaintext.
#[cfg(test)]
pub(crate) fn write_envelope<W: Write + Seek>(
    out: W,
    keys: &SideKeys,
    peer: &PublicIdentity,
    params: &HeaderParams,
    body: impl FnOnce(&mut PayloadWriter<'_, W>) -> Result<(), BundleError>,
) -> Result<WrittenBundle, BundleError> {
    write_envelope_sized(out, keys, peer, params, 0, body)
}

/// Seals an arbitrary plaintext in a genuine, signed envelope, for the fuzzer to reach the
/// plaintext parser past the signature and payload hash. Only with the `fuzzing` feature:
/// real bundles are written by [`write_bundle`], which checks what it writes.
#[cfg(feature = "fuzzing")]
pub fn seal_plaintext_for_fuzzing(
    keys: &SideKeys,
    peer: &PublicIdentity,
    params: &HeaderParams,
    plaintext: &[u8],
) -> Result<Vec<u8>, BundleError> {
    let mut out = io::Cursor::new(Vec::new());
    write_envelope_sized(&mut out, keys, peer, params, 0, |payload| {
        payload
            .write_all(plaintext)
            .map_err(|e| BundleError::io("writing the bundle payload", e))
    })?;
    Ok(out.into_inner())
}

/// Like `write_envelope`, but told about how many plaintext bytes `body` will write, which
/// decides whether the ciphertext is hashed on a helper thread.
fn write_envelope_sized<W: Write + Seek>(
    mut out: W,
    keys: &SideKeys,
    peer: &PublicIdentity,
    params: &HeaderParams,
    expected: u64,
    body: impl FnOnce(&mut PayloadWriter<'_, W>) -> Result<(), BundleError>,
) -> Result<WrittenBundle, BundleError> {
    let recipient = age_recipient(&peer.recipient)?;
    let start = out
        .stream_position()
        .map_err(|e| BundleError::io("finding the bundle's start", e))?;
    out.write_all(&[0u8; HEADER_BLOCK_LEN])
        .map_err(|e| BundleError::io("reserving the bundle header", e))?;

    let (payload_len, payload_sha256) = {
        // The ciphertext hash runs on a helper thread of its own (for large bundles), so
        // that this thread only reads, encrypts and writes while the entry hash and the
        // ciphertext hash use the machine's other cores.
        let sink = HashingWriter::new(BufWriter::with_capacity(IO_BUF_LEN, &mut out), expected);
        let encryptor =
            age::Encryptor::with_recipients(iter::once(&recipient as &dyn age::Recipient))
                .map_err(|e| {
                    BundleError::Malformed(format!("cannot set up age encryption: {e}"))
                })?;
        let mut payload = encryptor
            .wrap_output(sink)
            .map_err(|e| BundleError::io("writing the age header", e))?;
        body(&mut payload)?;
        let sink = payload
            .finish()
            .map_err(|e| BundleError::io("writing the bundle payload", e))?;
        let (mut buffered, hash, len) = sink.finish()?;
        buffered
            .flush()
            .map_err(|e| BundleError::io("writing the bundle payload", e))?;
        (len, hash)
    };

    let header = Header {
        version: FORMAT_VERSION,
        bundle_id: params.bundle_id,
        channel: params.channel,
        seq: params.seq,
        prev_hash: params.prev_hash,
        created_at: params.created_at,
        expires_at: params.expires_at,
        signer: keys.public().signing,
        payload_len,
        payload_sha256,
    };
    let block = encode_header_block(&header, keys)?;
    let end = start + HEADER_BLOCK_LEN as u64 + payload_len;
    out.seek(SeekFrom::Start(start))
        .and_then(|_| out.write_all(&block))
        .and_then(|()| out.seek(SeekFrom::Start(end)))
        .and_then(|_| out.flush())
        .map_err(|e| BundleError::io("writing the bundle header", e))?;
    Ok(WrittenBundle {
        header,
        bundle_hash: Sha256::digest(&block),
    })
}

/// Writes the plaintext: magic, one record per entry, then the signed manifest.
fn write_entries<P: Write>(
    payload: &mut P,
    keys: &SideKeys,
    bundle_id: &[u8; 16],
    entries: &[Entry<'_>],
    total: u64,
) -> Result<(), BundleError> {
    let werr = |e| BundleError::io("writing the bundle payload", e);
    payload.write_all(PAYLOAD_MAGIC).map_err(werr)?;
    let mut hasher = EntryHasher::for_total(total);
    let mut buf = vec![0u8; IO_BUF_LEN];
    let mut manifest = Vec::with_capacity(entries.len());

    for entry in entries {
        let mut file;
        let mut slice;
        let (len, source): (u64, &mut dyn Read) = match entry.source {
            EntrySource::Bytes(bytes) => {
                slice = bytes;
                (bytes.len() as u64, &mut slice)
            }
            EntrySource::File(path) => {
                let context = || format!("reading entry file {}", path.display());
                file = File::open(path).map_err(|e| BundleError::io(context(), e))?;
                let meta = file.metadata().map_err(|e| BundleError::io(context(), e))?;
                if !meta.is_file() {
                    return Err(BundleError::io(
                        context(),
                        io::Error::other("not a regular file"),
                    ));
                }
                (meta.len(), &mut file)
            }
        };
        let context = || match entry.source {
            EntrySource::Bytes(_) => format!("reading entry `{}`", entry.path),
            EntrySource::File(path) => format!("reading entry file {}", path.display()),
        };

        payload.write_all(&[TAG_ENTRY]).map_err(werr)?;
        payload
            .write_all(&(entry.path.len() as u16).to_le_bytes())
            .map_err(werr)?;
        payload.write_all(entry.path.as_bytes()).map_err(werr)?;
        payload.write_all(&len.to_le_bytes()).map_err(werr)?;

        let mut remaining = len;
        while remaining > 0 {
            let want = remaining.min(buf.len() as u64) as usize;
            let n =
                read_some(source, &mut buf[..want]).map_err(|e| BundleError::io(context(), e))?;
            if n == 0 {
                return Err(BundleError::io(
                    context(),
                    io::Error::other("the file shrank while it was being packed"),
                ));
            }
            hasher.update(&buf[..n])?;
            payload.write_all(&buf[..n]).map_err(werr)?;
            remaining -= n as u64;
        }
        if read_some(source, &mut buf[..1]).map_err(|e| BundleError::io(context(), e))? != 0 {
            return Err(BundleError::io(
                context(),
                io::Error::other("the file grew while it was being packed"),
            ));
        }
        manifest.push(ManifestEntry {
            path: entry.path.clone(),
            len,
            sha256: hasher.finish_entry()?,
        });
    }

    write_end(payload, keys, bundle_id, &manifest)
}

/// Writes the end record: tag, manifest length, manifest, manifest signature.
pub(crate) fn write_end<P: Write>(
    payload: &mut P,
    keys: &SideKeys,
    bundle_id: &[u8; 16],
    manifest: &[ManifestEntry],
) -> Result<(), BundleError> {
    let bytes = encode_manifest(bundle_id, manifest)?;
    let len = u32::try_from(bytes.len())
        .map_err(|_| BundleError::Malformed("manifest is larger than 4 GiB".to_owned()))?;
    let signature = sign_manifest(keys, &bytes);
    let werr = |e| BundleError::io("writing the bundle payload", e);
    payload.write_all(&[TAG_END]).map_err(werr)?;
    payload.write_all(&len.to_le_bytes()).map_err(werr)?;
    payload.write_all(&bytes).map_err(werr)?;
    payload.write_all(&signature).map_err(werr)
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
