//! Tests with real age, real Ed25519 and real temporary files, and their shared helpers.

mod age_v1;
mod crafted;
mod interop;
mod keys;
mod mutations;
mod parallel;
mod parts;
mod refusals;
mod rotation;
mod round_trip;
mod segments;
mod spec;
mod vectors;

use std::fs;
use std::io::{Cursor, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::format::{
    encode_header_block, encode_manifest, sign_manifest, Layout, TAG_END, TAG_ENTRY,
};
use crate::write::{end_record, write_envelope};
use crate::*;

/// Sender and receiver keys for one low-to-high channel.
struct Pair {
    low: SideKeys,
    high: SideKeys,
}

fn pair() -> Pair {
    Pair {
        low: SideKeys::generate(),
        high: SideKeys::generate(),
    }
}

fn params() -> HeaderParams {
    HeaderParams {
        bundle_id: new_bundle_id(),
        channel: Channel::LowToHigh,
        seq: 7,
        prev_hash: [3; 32],
        created_at: 1_700_000_000,
        expires_at: 1_700_086_400,
    }
}

/// Deterministic pseudo-random bytes (xorshift), cheap enough for multi-MiB files.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_vec(p: &Pair, params: &HeaderParams, entries: &[Entry<'_>]) -> (Vec<u8>, WrittenBundle) {
    let mut out = Cursor::new(Vec::new());
    let written = write_bundle(&mut out, &p.low, &p.high.public(), params, entries).unwrap();
    (out.into_inner(), written)
}

fn small_bundle(p: &Pair) -> Vec<u8> {
    let entries = [
        Entry {
            path: "job/code.py".into(),
            source: EntrySource::Bytes(b"print('subtilis')\n"),
        },
        Entry {
            path: "job/request.json".into(),
            source: EntrySource::Bytes(b"{\"asset\":\"instruct\"}"),
        },
    ];
    write_vec(p, &params(), &entries).0
}

/// Opens `bytes` as the high side with a fresh memory sink (from memory with [`open`], and
/// from a file with [`open_file`], which must agree: see [`open_both`]).
fn open_vec(
    p: &Pair,
    bytes: &[u8],
    limits: &Limits,
) -> (Result<OpenedBundle, BundleError>, MemorySink) {
    open_both(
        p,
        bytes,
        limits,
        || MemorySink::new(1 << 30),
        |s| s.entries.clone(),
    )
}

/// Opens `bytes` as the high side twice, into a fresh sink each time: from memory with
/// [`open`], then from a file (after a few bytes of something else) with [`open_file`],
/// whose helpers read their own segments. Asserts that both ways give the same result, or
/// the same refusal, and leave the same in their sinks (`seen`; but see truncation
/// below); returns the first.
fn open_both<S: EntrySink, T: PartialEq + std::fmt::Debug>(
    p: &Pair,
    bytes: &[u8],
    limits: &Limits,
    sink: impl Fn() -> S,
    seen: impl Fn(&S) -> T,
) -> (Result<OpenedBundle, BundleError>, S) {
    let identities = [&p.high];
    let signer = p.low.public().signing;
    let mut from_memory = sink();
    let result = open(
        Cursor::new(bytes),
        OpenOptions::new(signer, &identities, &mut from_memory).limits(limits.clone()),
    );

    let mut file = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut file, b"xyz").unwrap();
    std::io::Write::write_all(&mut file, bytes).unwrap();
    file.seek(SeekFrom::Start(3)).unwrap();
    let mut from_file = sink();
    let file_result = open_file(
        &file,
        OpenOptions::new(signer, &identities, &mut from_file).limits(limits.clone()),
    );
    match (&result, &file_result) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "open and open_file opened different bundles"),
        (Err(a), Err(b)) => assert_eq!(
            (a.kind(), a.to_string()),
            (b.kind(), b.to_string()),
            "open and open_file refused differently"
        ),
        (a, b) => panic!("open gave {a:?} but open_file {b:?}"),
    }
    // Reading a truncated bundle from memory fails as soon as a read passes the end, ahead
    // of the segments still in flight; in a file, the helper reading the missing segment
    // fails, in the segment's turn. Either way it is refused and nothing is committed, but
    // the sinks may have seen different amounts before the refusal.
    if !matches!(&result, Err(BundleError::Truncated)) {
        assert_eq!(
            seen(&from_memory),
            seen(&from_file),
            "open and open_file left different entries in their sinks"
        );
    }
    (result, from_memory)
}

/// Asserts that opening fails with `kind` and that nothing was committed.
fn refused(p: &Pair, bytes: &[u8], kind: &str) -> BundleError {
    refused_with(p, bytes, &Limits::default(), kind)
}

fn refused_with(p: &Pair, bytes: &[u8], limits: &Limits, kind: &str) -> BundleError {
    let (result, sink) = open_vec(p, bytes, limits);
    let err = result.expect_err("bundle should be refused");
    assert_eq!(err.kind(), kind, "unexpected error: {err}");
    assert!(
        sink.entries.is_empty(),
        "a refused bundle reached the sink's committed state"
    );
    err
}

/// A sink that records whether anything at all reached it, for "verify before decrypt".
#[derive(Default)]
struct CountingSink {
    calls: usize,
}

impl EntrySink for CountingSink {
    fn begin(&mut self, _: &str, _: u64) -> Result<(), BundleError> {
        self.calls += 1;
        Ok(())
    }
    fn write(&mut self, _: &[u8]) -> Result<(), BundleError> {
        self.calls += 1;
        Ok(())
    }
    fn end(&mut self) -> Result<(), BundleError> {
        self.calls += 1;
        Ok(())
    }
}

/// Builds hand-crafted plaintexts, which the writer itself would never produce.
struct Plaintext {
    bytes: Vec<u8>,
}

impl Plaintext {
    fn new() -> Plaintext {
        Plaintext {
            bytes: PAYLOAD_MAGIC.to_vec(),
        }
    }

    fn entry(mut self, path: &str, data: &[u8]) -> Plaintext {
        self.bytes.push(TAG_ENTRY);
        self.bytes
            .extend_from_slice(&(path.len() as u16).to_le_bytes());
        self.bytes.extend_from_slice(path.as_bytes());
        self.bytes
            .extend_from_slice(&(data.len() as u64).to_le_bytes());
        self.bytes.extend_from_slice(data);
        self
    }

    fn raw(mut self, bytes: &[u8]) -> Plaintext {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// Appends a correctly signed end record listing `listed`.
    fn end(mut self, keys: &SideKeys, bundle_id: &[u8; 16], listed: &[(&str, &[u8])]) -> Plaintext {
        let manifest: Vec<ManifestEntry> = listed
            .iter()
            .map(|(path, data)| manifest_entry(path, data))
            .collect();
        self.bytes
            .extend_from_slice(&end_record(keys, bundle_id, &manifest).unwrap());
        self
    }
}

fn manifest_entry(path: &str, data: &[u8]) -> ManifestEntry {
    ManifestEntry {
        path: path.to_owned(),
        len: data.len() as u64,
    }
}

/// A validly signed and encrypted bundle around an arbitrary plaintext.
fn crafted(p: &Pair, params: &HeaderParams, plaintext: &Plaintext) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    write_envelope(&mut out, &p.low, &p.high.public(), params, &plaintext.bytes).unwrap();
    out.into_inner()
}

/// `age -d` of `bundle`'s payload, written to `dir/payload.age`, with the age identity saved under `dir/keys`: the
/// auditor's recipe, with the real age CLI.
fn age_decrypt(dir: &Path, bundle: &[u8]) -> std::process::Output {
    let payload = dir.join("payload.age");
    fs::write(&payload, &bundle[payload_offset(bundle)..]).unwrap();
    std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(dir.join("keys").join(AGE_KEY_FILE))
        .arg(&payload)
        .output()
        .expect("age is installed (scripts/prereqs)")
}

/// Where a bundle's payload (its age file) starts: after the header block and the table.
fn payload_offset(bundle: &[u8]) -> usize {
    HEADER_BLOCK_LEN + u32::from_le_bytes(bundle[12..16].try_into().unwrap()) as usize
}

/// The byte ranges, in the bundle file, of a bundle's payload segments (0 is the age
/// header and nonce).
fn segment_ranges(bundle: &[u8]) -> Vec<std::ops::Range<usize>> {
    let layout = Layout::of(&inspect(bundle).unwrap()).unwrap();
    let at = payload_offset(bundle);
    (0..layout.segments)
        .map(|i| {
            let (start, len) = layout.segment(i);
            at + start as usize..at + start as usize + len
        })
        .collect()
}

/// A correctly signed header block and segment table in front of `payload`, whatever the
/// payload is (any age file), with the other header fields from `template`.
fn seal_payload(keys: &SideKeys, template: &Header, payload: &[u8]) -> Vec<u8> {
    // The age header ends with the line after "\n--- "; the 16-byte nonce follows it.
    let mac = payload
        .windows(5)
        .position(|w| w == b"\n--- ")
        .expect("an age header");
    let end = mac + 1 + payload[mac + 1..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut header = Header {
        payload_len: payload.len() as u64,
        stream_offset: (end + 16) as u32,
        ..template.clone()
    };
    let layout = Layout::of(&header).expect("a whole age STREAM");
    let mut table = Vec::new();
    for i in 0..layout.segments {
        let (start, len) = layout.segment(i);
        table.extend_from_slice(&Sha256::digest(
            &payload[start as usize..start as usize + len],
        ));
    }
    header.table_sha256 = Sha256::digest(&table).into();
    let mut bytes = encode_header_block(&header, keys).unwrap().to_vec();
    bytes.extend_from_slice(&table);
    bytes.extend_from_slice(payload);
    bytes
}

/// A correctly signed header block that says whatever `header` and `table_len` say, even
/// an impossible layout (which `encode_header_block` refuses to write).
fn raw_block(keys: &SideKeys, header: &Header, table_len: u32) -> Vec<u8> {
    let fields = postcard::to_stdvec(&crate::format::WireHeader::from(header)).unwrap();
    let mut block = vec![0u8; HEADER_BLOCK_LEN];
    block[..8].copy_from_slice(BUNDLE_MAGIC);
    block[8..10].copy_from_slice(&header.version.to_le_bytes());
    block[10..12].copy_from_slice(&(fields.len() as u16).to_le_bytes());
    block[12..16].copy_from_slice(&table_len.to_le_bytes());
    block[16..16 + fields.len()].copy_from_slice(&fields);
    let mut message = crate::format::HEADER_DOMAIN.to_vec();
    message.extend_from_slice(&block[..16 + fields.len()]);
    let signature = keys.sign(&message);
    block[16 + fields.len()..16 + fields.len() + 64].copy_from_slice(&signature);
    block
}

/// The header fields of format version 1, in their wire order.
#[derive(serde::Serialize)]
struct WireHeaderV1 {
    version: u16,
    bundle_id: [u8; 16],
    channel: Channel,
    seq: u64,
    prev_hash: [u8; 32],
    created_at: i64,
    expires_at: i64,
    signer: [u8; 32],
    payload_len: u64,
    payload_sha256: [u8; 32],
}

/// The plaintext of formats 1 and 2 with one entry: its manifest listed each entry's
/// SHA-256 too, and was signed under the v1 manifest domain.
fn old_plaintext(sender: &SideKeys, bundle_id: &[u8; 16]) -> Plaintext {
    let data = b"print('subtilis')\n";
    #[derive(serde::Serialize)]
    struct WireManifestV2 {
        bundle_id: [u8; 16],
        entries: Vec<(String, u64, [u8; 32])>,
    }
    let manifest = postcard::to_stdvec(&WireManifestV2 {
        bundle_id: *bundle_id,
        entries: vec![(
            "job/code.py".to_owned(),
            data.len() as u64,
            Sha256::digest(data).into(),
        )],
    })
    .unwrap();
    let mut message = b"ferry-bundle/v1 manifest\0".to_vec();
    message.extend_from_slice(&manifest);
    Plaintext::new()
        .entry("job/code.py", data)
        .raw(&[TAG_END])
        .raw(&(manifest.len() as u32).to_le_bytes())
        .raw(&manifest)
        .raw(&sender.sign(&message))
}

/// A genuine format version 2 bundle, as Ferry wrote it before version 3: the same
/// header block, segment table and age payload as today, but version 2 signed under the
/// v2 header domain, and a manifest that lists each entry's SHA-256 (`old_plaintext`).
fn v2_bundle(sender: &SideKeys, receiver: &PublicIdentity, params: &HeaderParams) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let plaintext = old_plaintext(sender, &params.bundle_id);
    write_envelope(&mut out, sender, receiver, params, &plaintext.bytes).unwrap();
    let mut bundle = out.into_inner();
    bundle[8..10].copy_from_slice(&2u16.to_le_bytes());
    let header_len = usize::from(u16::from_le_bytes([bundle[10], bundle[11]]));
    // The version is also the first header field (a one-byte varint).
    assert_eq!(bundle[16], FORMAT_VERSION as u8);
    bundle[16] = 2;
    let mut message = b"ferry-bundle/v2 header\0".to_vec();
    message.extend_from_slice(&bundle[..16 + header_len]);
    let signature = sender.sign(&message);
    bundle[16 + header_len..16 + header_len + 64].copy_from_slice(&signature);
    bundle
}

/// A genuine format version 1 bundle, as Ferry wrote it before version 2: a 1024-byte
/// header block (12-byte prefix, signed with the v1 domain) directly followed by an age
/// file (made here with the `age` crate) of the v1 plaintext, with no segment table.
fn v1_bundle(sender: &SideKeys, receiver: &PublicIdentity, params: &HeaderParams) -> Vec<u8> {
    let plaintext = old_plaintext(sender, &params.bundle_id);
    let recipient: age::x25519::Recipient = receiver.recipient.parse().unwrap();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .unwrap();
    let mut payload = Vec::new();
    let mut writer = encryptor.wrap_output(&mut payload).unwrap();
    std::io::Write::write_all(&mut writer, &plaintext.bytes).unwrap();
    writer.finish().unwrap();
    let fields = postcard::to_stdvec(&WireHeaderV1 {
        version: 1,
        bundle_id: params.bundle_id,
        channel: params.channel,
        seq: params.seq,
        prev_hash: params.prev_hash,
        created_at: params.created_at,
        expires_at: params.expires_at,
        signer: sender.public().signing,
        payload_len: payload.len() as u64,
        payload_sha256: Sha256::digest(&payload).into(),
    })
    .unwrap();
    let mut bundle = vec![0u8; HEADER_BLOCK_LEN];
    bundle[..8].copy_from_slice(BUNDLE_MAGIC);
    bundle[8..10].copy_from_slice(&1u16.to_le_bytes());
    bundle[10..12].copy_from_slice(&(fields.len() as u16).to_le_bytes());
    bundle[12..12 + fields.len()].copy_from_slice(&fields);
    let mut message = b"ferry-bundle/v1 header\0".to_vec();
    message.extend_from_slice(&bundle[..12 + fields.len()]);
    let signature = sender.sign(&message);
    bundle[12 + fields.len()..12 + fields.len() + 64].copy_from_slice(&signature);
    bundle.extend_from_slice(&payload);
    bundle
}
