//! Parts: splitting a bundle file across several removable media, and joining it back.
//!
//! A part is a file made of a signed 512-byte part header followed by a slice of the
//! bundle file. Every part header commits to the part's own bytes and to the SHA-256 of
//! the whole bundle file, so a joined bundle is committed to by any one signed part
//! header, and a corrupted, foreign, duplicate or missing part is named before anything
//! is trusted. The layout is specified in `schemas/bundle-format.md`, section "Parts".

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ed25519_dalek::Signature;
use serde::{Deserialize, Serialize};

use crate::format::{authenticate_header, split_header_block, HEADER_BLOCK_LEN};
use crate::hash::Sha256;
use crate::keys::{verifying_key, SideKeys};
use crate::BundleError;

/// Magic at the start of every part file.
pub const PART_MAGIC: &[u8; 8] = b"FERRYPRT";
/// The part format version this build writes, and the newest it reads.
pub const PART_FORMAT_VERSION: u16 = 1;
/// Size of the fixed part header; the part's slice of the bundle starts at this offset.
pub const PART_HEADER_LEN: usize = 512;
/// Largest `info_len` that fits in the part header next to the prefix and signature.
pub const MAX_PART_INFO_LEN: u16 = (PART_HEADER_LEN - PREFIX_LEN - SIGNATURE_LEN) as u16;
/// Most parts one bundle may be split into (and most part files one join accepts).
pub const MAX_PARTS: u32 = 100_000;

/// `--max-part-size dvd`: a single-layer DVD. Nominally 4.7 GB, but a DVD+R holds 4,700,372,992 bytes and its
/// file system (UDF reserves more than 256 sectors) needs room too, so parts stay 10 MB below.
pub const PART_SIZE_DVD: u64 = 4_690_000_000;
/// `--max-part-size bluray`: a single-layer Blu-ray disc, 25 GB.
pub const PART_SIZE_BLURAY: u64 = 25_000_000_000;
/// `--max-part-size fat32`: FAT32's largest file, 4 GiB − 1 byte.
pub const PART_SIZE_FAT32: u64 = (4 << 30) - 1;

/// Domain separation for the part header signature.
const PART_DOMAIN: &[u8] = b"ferry-bundle/v1 part\0";
/// magic + version + info_len.
const PREFIX_LEN: usize = 8 + 2 + 2;
const SIGNATURE_LEN: usize = 64;
/// Buffer size for copying part bodies.
const IO_BUF_LEN: usize = 256 * 1024;

/// What a part's signed header says about it and about the bundle it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartInfo {
    /// The bundle's id (from the bundle's own header), shared by all its parts.
    pub bundle_id: [u8; 16],
    /// Which part this is, 1-based.
    pub index: u32,
    /// How many parts the bundle was split into.
    pub count: u32,
    /// Length of this part's slice of the bundle (the bytes after the part header).
    pub part_len: u64,
    /// SHA-256 of this part's slice of the bundle.
    pub part_sha256: [u8; 32],
    /// Length of the whole bundle file.
    pub bundle_len: u64,
    /// SHA-256 of the whole bundle file, as it is after joining.
    pub bundle_sha256: [u8; 32],
    /// Ed25519 public key that signed the part header.
    pub signer: [u8; 32],
}

impl PartInfo {
    /// The bundle id as a UUID, for display.
    pub fn bundle_uuid(&self) -> uuid::Uuid {
        uuid::Uuid::from_bytes(self.bundle_id)
    }

    /// The fields every part of one split shares.
    fn split_key(&self) -> ([u8; 16], u32, u64, [u8; 32], [u8; 32]) {
        (
            self.bundle_id,
            self.count,
            self.bundle_len,
            self.bundle_sha256,
            self.signer,
        )
    }
}

/// The postcard encoding of [`PartInfo`]. Field order is the wire order; never reorder.
#[derive(Serialize, Deserialize)]
struct WirePartInfo {
    bundle_id: [u8; 16],
    index: u32,
    count: u32,
    part_len: u64,
    part_sha256: [u8; 32],
    bundle_len: u64,
    bundle_sha256: [u8; 32],
    signer: [u8; 32],
}

impl From<&PartInfo> for WirePartInfo {
    fn from(p: &PartInfo) -> WirePartInfo {
        WirePartInfo {
            bundle_id: p.bundle_id,
            index: p.index,
            count: p.count,
            part_len: p.part_len,
            part_sha256: p.part_sha256,
            bundle_len: p.bundle_len,
            bundle_sha256: p.bundle_sha256,
            signer: p.signer,
        }
    }
}

impl From<WirePartInfo> for PartInfo {
    fn from(w: WirePartInfo) -> PartInfo {
        PartInfo {
            bundle_id: w.bundle_id,
            index: w.index,
            count: w.count,
            part_len: w.part_len,
            part_sha256: w.part_sha256,
            bundle_len: w.bundle_len,
            bundle_sha256: w.bundle_sha256,
            signer: w.signer,
        }
    }
}

/// Splits the bundle file at `bundle` into parts of at most `max_part_size` bytes each
/// (part header included), written to `out_dir` (created if missing) as
/// `<bundle file stem>.part-<index>-of-<count>`, and returns their paths in index order.
///
/// The index is zero-padded to the width of the count (`x.part-03-of-12`) so that a
/// directory listing shows the parts in order; readers never rely on names. The bundle's
/// header must verify with `keys`' own signing key (a side only vouches, in the part
/// headers, for bundles it signed); its payload is not re-hashed here, since the receiver
/// verifies the joined bundle in full.
///
/// The bundle is read once, in 256 KiB blocks; no part is held in memory. Each part is
/// written under a temporary name (`.<name>.tmp`) with a zeroed header, and only when the
/// whole file has been hashed are the signed headers written, the parts synced and renamed
/// into place, in index order, then `out_dir` synced (R11). An existing file with a
/// part's name is replaced. On error, every file this call created is removed.
pub fn split_bundle(
    bundle: &Path,
    max_part_size: u64,
    out_dir: &Path,
    keys: &SideKeys,
) -> Result<Vec<PathBuf>, BundleError> {
    let mut file = File::open(bundle)
        .map_err(|e| BundleError::io(format!("opening bundle {}", bundle.display()), e))?;

    // Authenticate the bundle's header: its id names the parts in every message, and its
    // layout tells how long the file must be.
    let mut block = [0u8; HEADER_BLOCK_LEN];
    let filled = read_full(&mut file, &mut block)
        .map_err(|e| BundleError::io(format!("reading bundle {}", bundle.display()), e))?;
    let raw = split_header_block(&block, filled)?;
    let signer = keys.public().signing;
    let header = authenticate_header(&raw, &signer)?;
    let bundle_len = header
        .bundle_len()
        .ok_or_else(|| BundleError::Malformed("the header's layout is invalid".to_owned()))?;
    let actual_len = file
        .metadata()
        .map_err(|e| BundleError::io(format!("reading bundle {}", bundle.display()), e))?
        .len();
    if actual_len < bundle_len {
        return Err(BundleError::Truncated);
    }
    if actual_len > bundle_len {
        return Err(BundleError::TrailingData);
    }

    let count = part_count(bundle_len, max_part_size)?;
    let body_max = max_part_size - PART_HEADER_LEN as u64;
    fs::create_dir_all(out_dir)
        .map_err(|e| BundleError::io(format!("creating {}", out_dir.display()), e))?;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| BundleError::io(format!("reading bundle {}", bundle.display()), e))?;

    let stem = bundle
        .file_stem()
        .map(OsString::from)
        .unwrap_or_else(|| OsString::from("bundle"));
    let width = count.to_string().len();
    let mut staged = StagedParts::default();
    let result = (|| {
        let mut whole = Sha256::new();
        let mut buf = vec![0u8; IO_BUF_LEN];
        let mut remaining = bundle_len;
        for index in 1..=count {
            let mut name = stem.clone();
            name.push(format!(".part-{index:0width$}-of-{count}"));
            let final_path = out_dir.join(&name);
            let mut tmp_name = OsString::from(".");
            tmp_name.push(&name);
            tmp_name.push(".tmp");
            let tmp_path = out_dir.join(tmp_name);

            let part_len = remaining.min(body_max);
            let mut out = File::create(&tmp_path)
                .map_err(|e| BundleError::io(format!("creating {}", tmp_path.display()), e))?;
            staged.tmp.push(tmp_path.clone());
            // The header is written last, once the whole-file hash is known; until then
            // the part starts with zeros, which every reader refuses.
            out.write_all(&[0u8; PART_HEADER_LEN])
                .map_err(|e| BundleError::io(format!("writing {}", tmp_path.display()), e))?;
            let mut part = Sha256::new();
            let mut left = part_len;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = read_some(&mut file, &mut buf[..want]).map_err(|e| {
                    BundleError::io(format!("reading bundle {}", bundle.display()), e)
                })?;
                if n == 0 {
                    // The file shrank while being split.
                    return Err(BundleError::Truncated);
                }
                part.update(&buf[..n]);
                whole.update(&buf[..n]);
                out.write_all(&buf[..n])
                    .map_err(|e| BundleError::io(format!("writing {}", tmp_path.display()), e))?;
                left -= n as u64;
            }
            remaining -= part_len;
            staged
                .parts
                .push((tmp_path, final_path, part_len, part.finalize()));
        }
        if read_some(&mut file, &mut buf[..1])
            .map_err(|e| BundleError::io(format!("reading bundle {}", bundle.display()), e))?
            != 0
        {
            // The file grew while being split.
            return Err(BundleError::TrailingData);
        }
        let bundle_sha256 = whole.finalize();

        let mut paths = Vec::with_capacity(staged.parts.len());
        for (i, (tmp_path, final_path, part_len, part_sha256)) in staged.parts.iter().enumerate() {
            let info = PartInfo {
                bundle_id: header.bundle_id,
                index: i as u32 + 1,
                count,
                part_len: *part_len,
                part_sha256: *part_sha256,
                bundle_len,
                bundle_sha256,
                signer,
            };
            let block = encode_part_header(&info, keys)?;
            let mut out = OpenOptions::new()
                .write(true)
                .open(tmp_path)
                .map_err(|e| BundleError::io(format!("opening {}", tmp_path.display()), e))?;
            out.write_all(&block)
                .and_then(|()| out.sync_all())
                .map_err(|e| BundleError::io(format!("writing {}", tmp_path.display()), e))?;
            drop(out);
            fs::rename(tmp_path, final_path).map_err(|e| {
                BundleError::io(format!("renaming into {}", final_path.display()), e)
            })?;
            staged.renamed.push(final_path.clone());
            paths.push(final_path.clone());
        }
        sync_dir(out_dir)?;
        Ok(paths)
    })();
    match result {
        Ok(paths) => Ok(paths),
        Err(e) => {
            staged.remove();
            Err(e)
        }
    }
}

/// Files created by a split, to remove if it fails.
#[derive(Default)]
struct StagedParts {
    /// Temporary files created so far.
    tmp: Vec<PathBuf>,
    /// (temporary path, final path, part_len, part_sha256) of every part body written.
    parts: Vec<(PathBuf, PathBuf, u64, [u8; 32])>,
    /// Final paths already renamed into place.
    renamed: Vec<PathBuf>,
}

impl StagedParts {
    fn remove(&self) {
        for path in self.tmp.iter().chain(&self.renamed) {
            // Already-renamed temporary files are simply not found.
            let _ = fs::remove_file(path);
        }
    }
}

/// How many parts a `bundle_len`-byte file needs at `max_part_size`, refusing sizes that
/// leave no room for data or need more than [`MAX_PARTS`] parts.
fn part_count(bundle_len: u64, max_part_size: u64) -> Result<u32, BundleError> {
    let min = PART_HEADER_LEN as u64 + bundle_len.div_ceil(u64::from(MAX_PARTS)).max(1);
    if max_part_size < min {
        return Err(BundleError::PartSizeTooSmall { max_part_size, min });
    }
    let count = bundle_len.div_ceil(max_part_size - PART_HEADER_LEN as u64);
    // `max_part_size >= min` bounds the count by MAX_PARTS.
    Ok(u32::try_from(count).unwrap_or(MAX_PARTS).max(1))
}

/// Reads and verifies a part's header (signature against `trusted_signer`) without
/// reading its body; the file's length must match the header.
///
/// Checks, in order: the `FERRYPRT` magic ([`BundleError::NotAPart`]), a complete header,
/// the version, `info_len` and zero padding; then the signature with the pinned key
/// ([`BundleError::BadPartSignature`], or [`BundleError::UntrustedPartSigner`] if it is
/// genuine but from another key) before the fields are decoded; then the fields (index in
/// `1..=count`, count at most [`MAX_PARTS`], lengths) and the file length. Every error
/// names the file.
pub fn read_part_info(path: &Path, trusted_signer: &[u8; 32]) -> Result<PartInfo, BundleError> {
    let mut file = File::open(path)
        .map_err(|e| BundleError::io(format!("opening part {}", path.display()), e))?;
    let mut block = [0u8; PART_HEADER_LEN];
    let filled = read_full(&mut file, &mut block)
        .map_err(|e| BundleError::io(format!("reading part {}", path.display()), e))?;
    let info = decode_part_header(&block, filled, path, trusted_signer)?;
    let file_len = file
        .metadata()
        .map_err(|e| BundleError::io(format!("reading part {}", path.display()), e))?
        .len();
    let expected = PART_HEADER_LEN as u64 + info.part_len;
    if file_len != expected {
        let what = if file_len < expected {
            "truncated or half-copied"
        } else {
            "extra bytes at its end"
        };
        return Err(bad_part(
            path,
            format!(
                "it is {file_len} bytes, but its header says {PART_HEADER_LEN} + {} ({what})",
                info.part_len
            ),
        ));
    }
    Ok(info)
}

/// True if the file at `path` starts with the `FERRYPRT` magic. Says nothing about
/// whether the part is authentic; unreadable files are not parts.
pub fn is_part_file(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    File::open(path)
        .and_then(|mut f| read_full(&mut f, &mut magic))
        .is_ok_and(|n| n == magic.len() && &magic == PART_MAGIC)
}

/// Joins the parts of one bundle, given in any order, into the bundle file `out`, and
/// returns the signed header of part 1 (whose bundle fields describe the joined file).
///
/// Before any body is read, every part's header is verified ([`read_part_info`]) and
/// the set is checked: all parts must be of the same split of the same bundle (the split
/// most of the given files belong to; each other file is refused as
/// [`BundleError::ForeignPart`]), each index `1..=count` exactly once
/// ([`BundleError::DuplicatePart`], [`BundleError::MissingParts`]), and the lengths must
/// add up. Then the bodies are streamed in index order into `.<out name>.tmp` beside
/// `out`, hashing each part ([`BundleError::PartHashMismatch`] names a corrupted file) and
/// the whole; the temporary file is synced and renamed to `out` (replacing any file
/// there), and the directory synced (R11). On error the temporary file is removed.
///
/// The joined file is still only a bundle file: the caller verifies it as usual (header
/// signature, segment table and segments) before trusting anything in it.
pub fn join_parts(
    parts: &[PathBuf],
    trusted_signer: &[u8; 32],
    out: &Path,
) -> Result<PartInfo, BundleError> {
    let invalid = |why: &str| {
        BundleError::io(
            "joining bundle parts",
            io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()),
        )
    };
    if parts.is_empty() {
        return Err(invalid("no part files were given"));
    }
    if parts.len() > MAX_PARTS as usize {
        return Err(invalid("more than 100000 part files were given"));
    }

    let infos = parts
        .iter()
        .map(|path| read_part_info(path, trusted_signer))
        .collect::<Result<Vec<_>, _>>()?;
    let order = check_part_set(parts, &infos)?;
    let first = infos[order[0]].clone();

    let file_name = out.file_name().ok_or_else(|| {
        BundleError::io(
            format!("joining into {}", out.display()),
            io::Error::new(io::ErrorKind::InvalidInput, "the output has no file name"),
        )
    })?;
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp_name = OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(".tmp");
    let tmp_path = dir.join(tmp_name);

    let result = (|| {
        let mut joined = File::create(&tmp_path)
            .map_err(|e| BundleError::io(format!("creating {}", tmp_path.display()), e))?;
        let mut whole = Sha256::new();
        let mut buf = vec![0u8; IO_BUF_LEN];
        for &k in &order {
            copy_part_body(
                &parts[k],
                &infos[k],
                &mut joined,
                &tmp_path,
                &mut whole,
                &mut buf,
            )?;
        }
        if whole.finalize() != first.bundle_sha256 {
            // Each part matched its own hash, so the signer vouched for inconsistent
            // parts, or a file changed between its check and its copy.
            return Err(BundleError::Malformed(format!(
                "the joined parts of bundle {} do not match the whole-file SHA-256 their \
                 signed headers give",
                first.bundle_uuid()
            )));
        }
        joined
            .sync_all()
            .map_err(|e| BundleError::io(format!("syncing {}", tmp_path.display()), e))?;
        drop(joined);
        fs::rename(&tmp_path, out)
            .map_err(|e| BundleError::io(format!("renaming into {}", out.display()), e))?;
        sync_dir(dir)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp_path);
        return Err(e);
    }
    Ok(first)
}

/// Checks that the verified part headers form exactly one complete split, and returns the
/// positions of the parts in `infos` in index order.
fn check_part_set(parts: &[PathBuf], infos: &[PartInfo]) -> Result<Vec<usize>, BundleError> {
    // The reference split is the one most files belong to (the earliest given on a tie),
    // so that the one odd file is the one named, whatever the order.
    let mut tally: HashMap<_, (usize, usize)> = HashMap::new();
    for (k, info) in infos.iter().enumerate() {
        tally.entry(info.split_key()).or_insert((0, k)).0 += 1;
    }
    let (_, reference_at) = tally
        .values()
        .copied()
        .max_by_key(|&(n, first)| (n, std::cmp::Reverse(first)))
        .expect("at least one part was given");
    let reference = &infos[reference_at];
    let id = reference.bundle_uuid();

    for (path, info) in parts.iter().zip(infos) {
        if info.bundle_id != reference.bundle_id {
            return Err(BundleError::ForeignPart {
                file: path.clone(),
                why: format!(
                    "it is part {} of {} of bundle {}, but the other parts are of bundle {id}",
                    info.index,
                    info.count,
                    info.bundle_uuid()
                ),
            });
        }
        if info.split_key() != reference.split_key() {
            return Err(BundleError::ForeignPart {
                file: path.clone(),
                why: format!(
                    "it is from another split of bundle {id}: its header says {} parts of a \
                     {}-byte file with SHA-256 {}, the other parts say {} parts of a {}-byte \
                     file with SHA-256 {}",
                    info.count,
                    info.bundle_len,
                    hex::encode(&info.bundle_sha256[..8]),
                    reference.count,
                    reference.bundle_len,
                    hex::encode(&reference.bundle_sha256[..8]),
                ),
            });
        }
    }

    // `count` is at most MAX_PARTS, checked when the header was read.
    let count = reference.count;
    let mut slots: Vec<Option<usize>> = vec![None; count as usize];
    for (k, info) in infos.iter().enumerate() {
        let slot = &mut slots[info.index as usize - 1];
        if let Some(earlier) = *slot {
            return Err(BundleError::DuplicatePart {
                bundle_id: id.to_string(),
                index: info.index,
                count,
                first: parts[earlier].clone(),
                second: parts[k].clone(),
            });
        }
        *slot = Some(k);
    }
    let missing: Vec<u32> = (1..=count)
        .zip(&slots)
        .filter_map(|(index, slot)| slot.is_none().then_some(index))
        .collect();
    if !missing.is_empty() {
        return Err(BundleError::MissingParts {
            bundle_id: id.to_string(),
            count,
            missing,
        });
    }
    let order: Vec<usize> = slots.into_iter().flatten().collect();

    let total = order
        .iter()
        .try_fold(0u64, |sum, &k| sum.checked_add(infos[k].part_len));
    if total != Some(reference.bundle_len) {
        return Err(BundleError::Malformed(format!(
            "the {count} parts of bundle {id} do not add up to the {}-byte bundle their \
             signed headers describe",
            reference.bundle_len
        )));
    }
    Ok(order)
}

/// Appends the body of the part at `path` to `joined`, checking its length and hash.
fn copy_part_body(
    path: &Path,
    info: &PartInfo,
    joined: &mut File,
    joined_path: &Path,
    whole: &mut Sha256,
    buf: &mut [u8],
) -> Result<(), BundleError> {
    let reading = |e: io::Error| BundleError::io(format!("reading part {}", path.display()), e);
    let mut file = File::open(path).map_err(reading)?;
    file.seek(SeekFrom::Start(PART_HEADER_LEN as u64))
        .map_err(reading)?;
    let mut part = Sha256::new();
    let mut left = info.part_len;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = read_some(&mut file, &mut buf[..want]).map_err(reading)?;
        if n == 0 {
            return Err(bad_part(
                path,
                "it became shorter while being joined".to_owned(),
            ));
        }
        part.update(&buf[..n]);
        whole.update(&buf[..n]);
        joined
            .write_all(&buf[..n])
            .map_err(|e| BundleError::io(format!("writing {}", joined_path.display()), e))?;
        left -= n as u64;
    }
    if read_some(&mut file, &mut buf[..1]).map_err(reading)? != 0 {
        return Err(bad_part(
            path,
            "it became longer while being joined".to_owned(),
        ));
    }
    if part.finalize() != info.part_sha256 {
        return Err(BundleError::PartHashMismatch {
            file: path.to_owned(),
        });
    }
    Ok(())
}

/// Encodes and signs the 512-byte part header.
fn encode_part_header(
    info: &PartInfo,
    keys: &SideKeys,
) -> Result<[u8; PART_HEADER_LEN], BundleError> {
    let bytes = postcard::to_stdvec(&WirePartInfo::from(info))
        .map_err(|e| BundleError::Malformed(format!("cannot encode part header: {e}")))?;
    // At most about 160 bytes with today's fields; kept so a future field cannot overflow.
    if bytes.len() > usize::from(MAX_PART_INFO_LEN) {
        return Err(BundleError::Malformed(format!(
            "part header is {} bytes, more than the {MAX_PART_INFO_LEN} that fit",
            bytes.len()
        )));
    }
    let mut block = [0u8; PART_HEADER_LEN];
    block[..8].copy_from_slice(PART_MAGIC);
    block[8..10].copy_from_slice(&PART_FORMAT_VERSION.to_le_bytes());
    block[10..12].copy_from_slice(&(bytes.len() as u16).to_le_bytes());
    let end = PREFIX_LEN + bytes.len();
    block[PREFIX_LEN..end].copy_from_slice(&bytes);
    let signature = keys.sign(&signed_part_message(&block[..end]));
    block[end..end + SIGNATURE_LEN].copy_from_slice(&signature);
    Ok(block)
}

/// Checks a part header block structurally, then its signature, then decodes and checks
/// its fields. `filled` is how many bytes of `block` the file provided.
fn decode_part_header(
    block: &[u8; PART_HEADER_LEN],
    filled: usize,
    path: &Path,
    trusted_signer: &[u8; 32],
) -> Result<PartInfo, BundleError> {
    let magic_seen = filled.min(PART_MAGIC.len());
    if block[..magic_seen] != PART_MAGIC[..magic_seen] {
        return Err(BundleError::NotAPart {
            file: path.to_owned(),
        });
    }
    if filled < PART_HEADER_LEN {
        return Err(bad_part(
            path,
            format!(
                "it is {filled} bytes, shorter than the {PART_HEADER_LEN}-byte part header \
                 (truncated or half-copied)"
            ),
        ));
    }
    let version = u16::from_le_bytes([block[8], block[9]]);
    if version > PART_FORMAT_VERSION {
        return Err(BundleError::NewerPartVersion {
            file: path.to_owned(),
            found: version,
        });
    }
    if version == 0 {
        return Err(bad_part(
            path,
            "part format version 0 does not exist".to_owned(),
        ));
    }
    let info_len = u16::from_le_bytes([block[10], block[11]]);
    if info_len == 0 || info_len > MAX_PART_INFO_LEN {
        return Err(bad_part(
            path,
            format!("its header length {info_len} is not within 1..={MAX_PART_INFO_LEN}"),
        ));
    }
    let end = PREFIX_LEN + usize::from(info_len);
    // The padding is not signed, so it must be exactly zero for a part to have one form.
    if block[end + SIGNATURE_LEN..].iter().any(|&b| b != 0) {
        return Err(bad_part(
            path,
            "its header padding is not all zero".to_owned(),
        ));
    }
    let signed = &block[..end];
    let info_bytes = &block[PREFIX_LEN..end];
    let mut signature = [0u8; SIGNATURE_LEN];
    signature.copy_from_slice(&block[end..end + SIGNATURE_LEN]);
    let signature = Signature::from_bytes(&signature);

    // The signature is checked with the pinned key before the fields are decoded (R1).
    // Only when it fails are they decoded, to tell "signed by another key" apart from
    // "forged or corrupted"; nothing from that decoding is accepted.
    let trusted = verifying_key(trusted_signer)?;
    let message = signed_part_message(signed);
    if trusted.verify_strict(&message, &signature).is_err() {
        if let Ok(claimed) = parse_part_info(info_bytes) {
            let signed_by_claimed = claimed.signer != *trusted_signer
                && verifying_key(&claimed.signer)
                    .is_ok_and(|k| k.verify_strict(&message, &signature).is_ok());
            if signed_by_claimed {
                return Err(BundleError::UntrustedPartSigner {
                    file: path.to_owned(),
                    found: hex::encode(claimed.signer),
                });
            }
        }
        return Err(BundleError::BadPartSignature {
            file: path.to_owned(),
        });
    }
    let info = parse_part_info(info_bytes).map_err(|why| bad_part(path, why))?;
    if info.signer != *trusted_signer {
        // Signed by the pinned key but naming another signer: refuse rather than guess.
        return Err(BundleError::UntrustedPartSigner {
            file: path.to_owned(),
            found: hex::encode(info.signer),
        });
    }
    let why = if info.count == 0 || info.count > MAX_PARTS {
        Some(format!(
            "its header says the bundle has {} parts, not within 1..={MAX_PARTS}",
            info.count
        ))
    } else if info.index == 0 || info.index > info.count {
        Some(format!(
            "its header says it is part {} of {}",
            info.index, info.count
        ))
    } else if info.part_len == 0 || info.part_len > info.bundle_len {
        Some(format!(
            "its header says it holds {} bytes of a {}-byte bundle",
            info.part_len, info.bundle_len
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(bad_part(path, why)),
        None => Ok(info),
    }
}

/// Decodes the postcard part fields, refusing bytes left over.
fn parse_part_info(bytes: &[u8]) -> Result<PartInfo, String> {
    let (wire, rest) = postcard::take_from_bytes::<WirePartInfo>(bytes)
        .map_err(|e| format!("its header cannot be decoded: {e}"))?;
    if !rest.is_empty() {
        return Err(format!(
            "{} unexpected bytes after its header fields",
            rest.len()
        ));
    }
    Ok(PartInfo::from(wire))
}

fn signed_part_message(signed: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(PART_DOMAIN.len() + signed.len());
    message.extend_from_slice(PART_DOMAIN);
    message.extend_from_slice(signed);
    message
}

fn bad_part(path: &Path, why: String) -> BundleError {
    BundleError::BadPart {
        file: path.to_owned(),
        why,
    }
}

/// Parses a `--max-part-size` value: a preset (`dvd` = 4 690 000 000 bytes, a
/// single-layer DVD; `bluray` = 25 000 000 000, a single-layer Blu-ray; `fat32` =
/// 4 GiB − 1, FAT32's largest file) or a whole number of bytes with an optional suffix:
/// `K`, `M`, `G`, `T` (or `KB`...: powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers
/// of 1024). Case is ignored, `_` may separate digits, and the size must exceed the
/// 512-byte part header.
///
/// Presets are the nominal media capacities; leave room for the file system (a disc
/// formatted as ISO 9660 without UDF holds no file of 4 GiB or more: use `fat32`).
pub fn parse_part_size(s: &str) -> Result<u64, String> {
    let text = s.trim().to_ascii_lowercase();
    let size = match text.as_str() {
        "dvd" => PART_SIZE_DVD,
        "bluray" | "blu-ray" => PART_SIZE_BLURAY,
        "fat32" => PART_SIZE_FAT32,
        _ => {
            let expected = || {
                format!(
                    "`{s}` is not a part size: expected dvd, bluray, fat32, or a whole number \
                     of bytes with an optional K, M, G, KiB, MiB or GiB suffix"
                )
            };
            let split = text
                .find(|c: char| !c.is_ascii_digit() && c != '_')
                .unwrap_or(text.len());
            let (digits, suffix) = text.split_at(split);
            let digits: String = digits.chars().filter(|&c| c != '_').collect();
            if digits.is_empty() {
                return Err(expected());
            }
            let multiplier: u64 = match suffix.trim() {
                "" | "b" => 1,
                "k" | "kb" => 1_000,
                "m" | "mb" => 1_000_000,
                "g" | "gb" => 1_000_000_000,
                "t" | "tb" => 1_000_000_000_000,
                "kib" => 1 << 10,
                "mib" => 1 << 20,
                "gib" => 1 << 30,
                "tib" => 1 << 40,
                _ => return Err(expected()),
            };
            digits
                .parse::<u64>()
                .ok()
                .and_then(|n| n.checked_mul(multiplier))
                .ok_or_else(|| format!("part size `{s}` is too large"))?
        }
    };
    if size <= PART_HEADER_LEN as u64 {
        return Err(format!(
            "part size `{s}` is {size} bytes; it must be larger than the \
             {PART_HEADER_LEN}-byte part header"
        ));
    }
    Ok(size)
}

/// Fills `buf` as far as the reader allows; returns how many bytes were read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = read_some(r, &mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
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

/// Syncs a directory so that renames into it survive a crash.
fn sync_dir(dir: &Path) -> Result<(), BundleError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BundleError::io(format!("syncing directory {}", dir.display()), e))
}
