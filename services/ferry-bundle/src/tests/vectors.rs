//! The test vectors in `tests/vectors/`: one runner for every file, and the generator that
//! wrote them (run only with `FERRY_REGENERATE_VECTORS=1`). The folder's README describes
//! the file format.

use std::collections::BTreeSet;
use std::path::PathBuf;

use base64::Engine as _;

use super::*;
use crate::format::{encode_header_block, HEADER_DOMAIN};

/// Every kind of refusal that a bundle file can earn from `open`; each must have at
/// least one vector. (`io`, `key`, `bad_public_identity` and the part and rotation kinds
/// are about other files.)
const BUNDLE_REFUSALS: &[&str] = &[
    "not_a_bundle",
    "truncated",
    "newer_version",
    "old_version",
    "header_too_large",
    "malformed",
    "bad_signature",
    "untrusted_signer",
    "segment_table_mismatch",
    "payload_hash_mismatch",
    "trailing_data",
    "not_for_us",
    "decrypt",
    "bad_path",
    "duplicate_entry",
    "entry_too_large",
    "too_many_entries",
    "total_too_large",
    "manifest_mismatch",
    "bad_manifest_signature",
];

pub(super) fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// The published, test-only keys stored beside the vectors: `low` is the sender, `high`
/// the receiver.
pub(super) fn vector_keys() -> Pair {
    let dir = vectors_dir().join("keys");
    Pair {
        low: SideKeys::load(&dir.join("sender")).expect("tests/vectors/keys/sender"),
        high: SideKeys::load(&dir.join("receiver")).expect("tests/vectors/keys/receiver"),
    }
}

/// One vector file: a header of `name: value` lines, a blank line, then the bundle in
/// base64.
pub(super) struct Vector {
    /// `success` or a `BundleError::kind()`.
    pub(super) expect: String,
    /// What `verify_bundle` says: `ok` or a kind.
    pub(super) verify: String,
    pub(super) comments: Vec<String>,
    /// The receiver limits, as `name=value` words (empty: the defaults).
    pub(super) limits: String,
    /// For a success: each entry as `path length sha256-hex`.
    pub(super) entries: Vec<String>,
    pub(super) bytes: Vec<u8>,
}

impl Vector {
    pub(super) fn parse(text: &str) -> Result<Vector, String> {
        let (head, body) = text
            .split_once("\n\n")
            .ok_or("no blank line after the header")?;
        let mut v = Vector {
            expect: String::new(),
            verify: String::new(),
            comments: Vec::new(),
            limits: String::new(),
            entries: Vec::new(),
            bytes: Vec::new(),
        };
        for line in head.lines() {
            let (key, value) = line
                .split_once(": ")
                .ok_or_else(|| format!("header line `{line}` is not `name: value`"))?;
            match key {
                "expect" => v.expect = value.to_owned(),
                "verify" => v.verify = value.to_owned(),
                "comment" => v.comments.push(value.to_owned()),
                "limits" => v.limits = value.to_owned(),
                "entry" => v.entries.push(value.to_owned()),
                other => return Err(format!("unknown header field `{other}`")),
            }
        }
        if v.expect.is_empty() || v.verify.is_empty() {
            return Err("`expect:` and `verify:` are required".to_owned());
        }
        let b64: String = body.split_whitespace().collect();
        v.bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("bad base64: {e}"))?;
        Ok(v)
    }

    fn render(&self) -> String {
        let mut text = String::new();
        text.push_str(&format!("expect: {}\n", self.expect));
        text.push_str(&format!("verify: {}\n", self.verify));
        for comment in &self.comments {
            text.push_str(&format!("comment: {comment}\n"));
        }
        if !self.limits.is_empty() {
            text.push_str(&format!("limits: {}\n", self.limits));
        }
        for entry in &self.entries {
            text.push_str(&format!("entry: {entry}\n"));
        }
        text.push('\n');
        let b64 = base64::engine::general_purpose::STANDARD.encode(&self.bytes);
        for line in b64.as_bytes().chunks(76) {
            text.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            text.push('\n');
        }
        text
    }

    pub(super) fn limits(&self) -> Result<Limits, String> {
        let mut limits = Limits::default();
        for word in self.limits.split_whitespace() {
            let (name, value) = word
                .split_once('=')
                .ok_or_else(|| format!("limit `{word}` is not name=value"))?;
            let bad = |_| format!("limit `{word}` has a bad number");
            match name {
                "max_entries" => limits.max_entries = value.parse().map_err(bad)?,
                "max_entry_len" => limits.max_entry_len = value.parse().map_err(bad)?,
                "max_total_len" => limits.max_total_len = value.parse().map_err(bad)?,
                "max_path_len" => limits.max_path_len = value.parse().map_err(bad)?,
                other => return Err(format!("unknown limit `{other}`")),
            }
        }
        Ok(limits)
    }
}

/// The vector files, sorted by name.
pub(super) fn vector_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(vectors_dir())
        .expect("tests/vectors exists")
        .map(|e| e.expect("readable directory").path())
        .filter(|p| p.extension().is_some_and(|x| x == "vector"))
        .collect();
    files.sort();
    files
}

/// `ok`, or the error's kind.
fn outcome<T>(result: &Result<T, BundleError>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.kind().to_owned(),
    }
}

/// Checks one vector against the reader; returns what disagreed.
fn run_vector(keys: &Pair, v: &Vector) -> Result<(), String> {
    let signer = keys.low.public().signing;
    let limits = v.limits()?;
    // Structural parsing without keys must never panic, whatever it says.
    let _ = inspect(&v.bytes[..]);

    let verified = outcome(&verify_bundle(Cursor::new(&v.bytes), &signer));
    if verified != v.verify {
        return Err(format!(
            "verify_bundle gave {verified}, expected {}",
            v.verify
        ));
    }
    // From memory with `open`, and from a file with `open_file` (asserted to agree).
    let (opened, sink) = open_both(
        keys,
        &v.bytes,
        &limits,
        || MemorySink::new(1 << 30),
        |s| s.entries.clone(),
    );
    match (&opened, v.expect.as_str()) {
        (Ok(opened), "success") => {
            let listed: Vec<(&str, u64)> = opened
                .entries
                .iter()
                .map(|e| (e.path.as_str(), e.len))
                .collect();
            let expected: Vec<(&str, u64)> = v
                .entries
                .iter()
                .filter_map(|e| {
                    let mut words = e.rsplitn(3, ' ');
                    let (_sha, len, path) = (words.next()?, words.next()?, words.next()?);
                    Some((path, len.parse().ok()?))
                })
                .collect();
            if listed != expected {
                return Err(format!("entries {listed:?}, expected {expected:?}"));
            }
            let delivered: Vec<String> = sink
                .entries
                .iter()
                .map(|(path, data)| {
                    format!(
                        "{path} {} {}",
                        data.len(),
                        hex::encode(Sha256::digest(data))
                    )
                })
                .collect();
            if delivered != v.entries {
                return Err(format!("the sink received {delivered:?}"));
            }
            Ok(())
        }
        (Ok(_), expected) => Err(format!("opened, expected {expected}")),
        (Err(e), expected) if e.kind() != expected => Err(format!(
            "refused as {} ({e}), expected {expected}",
            e.kind()
        )),
        (Err(_), _) if !sink.entries.is_empty() => {
            Err("refused, but entries were committed".to_owned())
        }
        (Err(_), _) => Ok(()),
    }
}

#[test]
fn every_vector_gives_its_expected_outcome() {
    let keys = vector_keys();
    let mut failures = Vec::new();
    let mut kinds = BTreeSet::new();
    let files = vector_files();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = fs::read_to_string(path).unwrap();
        match Vector::parse(&text).and_then(|v| {
            kinds.insert(v.expect.clone());
            run_vector(&keys, &v)
        }) {
            Ok(()) => {}
            Err(why) => failures.push(format!("{name}: {why}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
    assert!(kinds.contains("success"), "no success vector");
    for kind in BUNDLE_REFUSALS {
        assert!(kinds.contains(*kind), "no vector expects {kind}");
    }
}

/// Rewrites `tests/vectors/` when `FERRY_REGENERATE_VECTORS=1`; otherwise does nothing.
///
/// The keys are kept if present, so only the bundles change; they change on every run,
/// because age encrypts with fresh randomness. Regenerate only when the format changes,
/// then run the tests again and commit the folder.
#[test]
fn regenerate_vectors_when_asked() {
    if std::env::var("FERRY_REGENERATE_VECTORS").as_deref() != Ok("1") {
        return;
    }
    let dir = vectors_dir();
    for side in ["sender", "receiver"] {
        let keys = dir.join("keys").join(side);
        if !keys.join(SIGNING_KEY_FILE).exists() {
            SideKeys::generate().save(&keys).unwrap();
            for file in [SIGNING_KEY_FILE, AGE_KEY_FILE] {
                let path = keys.join(file);
                let text = fs::read_to_string(&path).unwrap();
                fs::write(&path, format!("{TEST_KEY_LABEL}{text}")).unwrap();
            }
        }
    }
    let keys = vector_keys();
    let vectors = generate(&keys);
    let names: BTreeSet<String> = vectors.iter().map(|(n, _)| format!("{n}.vector")).collect();
    assert_eq!(names.len(), vectors.len(), "two vectors share a name");
    for (name, v) in &vectors {
        // Only what the reader really does is written down.
        if let Err(why) = run_vector(&keys, v) {
            panic!("{name}: {why}");
        }
        let path = dir.join(format!("{name}.vector"));
        let tmp = dir.join(format!(".{name}.tmp"));
        fs::write(&tmp, v.render()).unwrap();
        fs::rename(&tmp, &path).unwrap();
    }
    for old in vector_files() {
        let name = old.file_name().unwrap().to_string_lossy().into_owned();
        if !names.contains(&name) {
            fs::remove_file(old).unwrap();
        }
    }
}

/// First lines of every key file beside the vectors.
const TEST_KEY_LABEL: &str = "\
# TEST-ONLY KEY. It is published in the Ferry repository for the bundle test vectors and
# the fuzzer: anyone can read it, so it protects nothing. Never use it for real bundles.
";

/// The fixed header parameters of every vector.
fn vector_params() -> HeaderParams {
    HeaderParams {
        bundle_id: *b"ferry-test-vecs!",
        channel: Channel::LowToHigh,
        seq: 7,
        prev_hash: [3; 32],
        created_at: 1_700_000_000,
        expires_at: 1_700_086_400,
    }
}

/// Recomputes the header signature of `block` (after a field was changed) with `keys`.
fn resign(block: &mut [u8], keys: &SideKeys) {
    let end = 16 + usize::from(u16::from_le_bytes([block[10], block[11]]));
    let mut message = HEADER_DOMAIN.to_vec();
    message.extend_from_slice(&block[..end]);
    let signature = keys.sign(&message);
    block[end..end + 64].copy_from_slice(&signature);
}

/// A vector with `comment` and the expected outcomes.
fn vector(expect: &str, verify: &str, comment: &str, bytes: Vec<u8>) -> Vector {
    Vector {
        expect: expect.to_owned(),
        verify: verify.to_owned(),
        comments: vec![comment.to_owned()],
        limits: String::new(),
        entries: Vec::new(),
        bytes,
    }
}

/// A vector refused after verification, while reading the plaintext.
fn plaintext_vector(p: &Pair, expect: &str, comment: &str, pt: &Plaintext) -> Vector {
    vector(expect, "ok", comment, crafted(p, &vector_params(), pt))
}

fn success(comment: &str, bytes: Vec<u8>, entries: &[(&str, &[u8])]) -> Vector {
    let mut v = vector("success", "ok", comment, bytes);
    v.entries = entries
        .iter()
        .map(|(path, data)| {
            format!(
                "{path} {} {}",
                data.len(),
                hex::encode(Sha256::digest(data))
            )
        })
        .collect();
    v
}

/// Every vector, by file name (without `.vector`).
fn generate(p: &Pair) -> Vec<(&'static str, Vector)> {
    let params = vector_params();
    let id = params.bundle_id;
    let mallory = Pair {
        low: SideKeys::generate(),
        high: SideKeys::generate(),
    };
    let write = |sender: &SideKeys, receiver: &SideKeys, entries: &[(&str, &[u8])]| {
        let entries: Vec<Entry<'_>> = entries
            .iter()
            .map(|(path, data)| Entry {
                path: (*path).to_owned(),
                source: EntrySource::Bytes(data),
            })
            .collect();
        let mut out = Cursor::new(Vec::new());
        write_bundle(&mut out, sender, &receiver.public(), &params, &entries).unwrap();
        out.into_inner()
    };
    let code: (&str, &[u8]) = ("job/code.py", b"print('subtilis')\n");
    let request: (&str, &[u8]) = ("job/request.json", b"{\"asset\":\"instruct\"}");
    let good = write(&p.low, &p.high, &[code, request]);
    let header_len = usize::from(u16::from_le_bytes([good[10], good[11]]));
    let header = inspect(&good[..]).unwrap();
    let payload_at = payload_offset(&good);
    let segments = segment_ranges(&good);
    let table_len = payload_at - HEADER_BLOCK_LEN;
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = good.clone();
        f(&mut bytes);
        bytes
    };

    let mut out = vec![
        (
            "success-two-entries",
            success(
                "a job request as write_bundle writes it",
                good.clone(),
                &[code, request],
            ),
        ),
        (
            "success-no-entries",
            success(
                "a bundle may carry nothing",
                write(&p.low, &p.high, &[]),
                &[],
            ),
        ),
        (
            "success-empty-entry",
            success(
                "an empty entry next to a nested path",
                write(
                    &p.low,
                    &p.high,
                    &[
                        ("results/run 1/out.csv", b"source,hits\nweb,3\n"),
                        ("empty", b""),
                    ],
                ),
                &[
                    ("results/run 1/out.csv", b"source,hits\nweb,3\n"),
                    ("empty", b""),
                ],
            ),
        ),
        // The header block: checked in this order before anything is decrypted.
        (
            "not-a-bundle-text",
            vector(
                "not_a_bundle",
                "not_a_bundle",
                "a shell script",
                b"#!/bin/sh\necho hi\n".to_vec(),
            ),
        ),
        (
            "not-a-bundle-bare-age-file",
            vector(
                "not_a_bundle",
                "not_a_bundle",
                "the payload alone, a valid age file, is not a bundle",
                good[payload_at..].to_vec(),
            ),
        ),
        (
            "not-a-bundle-zeroed-header",
            vector(
                "not_a_bundle",
                "not_a_bundle",
                "a writer that stopped before writing the header leaves it zeroed",
                with(&|b| b[..HEADER_BLOCK_LEN].fill(0)),
            ),
        ),
        (
            "truncated-empty-file",
            vector("truncated", "truncated", "an empty file", Vec::new()),
        ),
        (
            "truncated-in-header",
            vector(
                "truncated",
                "truncated",
                "the first 500 bytes of a bundle",
                good[..500].to_vec(),
            ),
        ),
        (
            "truncated-in-payload",
            vector(
                "truncated",
                "truncated",
                "the last 17 bytes are missing",
                good[..good.len() - 17].to_vec(),
            ),
        ),
        (
            "newer-version",
            vector(
                "newer_version",
                "newer_version",
                "format version 4, refused before the signature is looked at",
                with(&|b| b[8..10].copy_from_slice(&4u16.to_le_bytes())),
            ),
        ),
        (
            "old-version",
            vector(
                "old_version",
                "old_version",
                "a genuine format version 1 bundle (no segment table), refused by its version",
                v1_bundle(&p.low, &p.high.public(), &params),
            ),
        ),
        (
            "old-version-2",
            vector(
                "old_version",
                "old_version",
                "a genuine format version 2 bundle (its manifest lists SHA-256s), refused by \
                 its version",
                v2_bundle(&p.low, &p.high.public(), &params),
            ),
        ),
        (
            "header-too-large",
            vector(
                "header_too_large",
                "header_too_large",
                "header_len 2000 does not fit in the 1024-byte block",
                with(&|b| b[10..12].copy_from_slice(&2000u16.to_le_bytes())),
            ),
        ),
        (
            "malformed-version-zero",
            vector(
                "malformed",
                "malformed",
                "format version 0 does not exist",
                with(&|b| b[8..10].copy_from_slice(&0u16.to_le_bytes())),
            ),
        ),
        (
            "malformed-header-len-zero",
            vector(
                "malformed",
                "malformed",
                "header_len 0",
                with(&|b| b[10..12].copy_from_slice(&0u16.to_le_bytes())),
            ),
        ),
        (
            "malformed-padding",
            vector(
                "malformed",
                "malformed",
                "a non-zero padding byte: unsigned, but it would change the bundle hash",
                with(&|b| b[1000] = 1),
            ),
        ),
        (
            "malformed-header-fields",
            vector(
                "malformed",
                "malformed",
                "validly signed header bytes with channel index 2, which does not exist",
                with(&|b| {
                    b[16 + 17] = 2;
                    resign(b, &p.low);
                }),
            ),
        ),
        (
            "malformed-header-trailing-byte",
            vector(
                "malformed",
                "malformed",
                "validly signed header bytes with one byte after the last field",
                with(&|b| {
                    b[10..12].copy_from_slice(&(header_len as u16 + 1).to_le_bytes());
                    b[16 + header_len..HEADER_BLOCK_LEN].fill(0);
                    resign(b, &p.low);
                }),
            ),
        ),
        (
            "malformed-header-version-mismatch",
            vector(
                "malformed",
                "malformed",
                "the block says version 3, the validly signed header fields say 4",
                with(&|b| {
                    let h = Header {
                        version: 4,
                        ..header.clone()
                    };
                    let mut block = encode_header_block(&h, &p.low).unwrap();
                    block[8..10].copy_from_slice(&3u16.to_le_bytes());
                    resign(&mut block, &p.low);
                    b[..HEADER_BLOCK_LEN].copy_from_slice(&block);
                }),
            ),
        ),
        (
            "bad-signature-header-byte",
            vector(
                "bad_signature",
                "bad_signature",
                "one bit flipped in the signed header fields (the sequence number)",
                with(&|b| b[16 + 1 + 16 + 1] ^= 0x01),
            ),
        ),
        (
            "bad-signature-signature-byte",
            vector(
                "bad_signature",
                "bad_signature",
                "one bit flipped in the signature",
                with(&|b| b[16 + header_len + 5] ^= 0x01),
            ),
        ),
        (
            "untrusted-signer",
            vector(
                "untrusted_signer",
                "untrusted_signer",
                "genuine bundle, signed by a key that is not the pinned one",
                write(&mallory.low, &p.high, &[code]),
            ),
        ),
        (
            "untrusted-signer-named-in-header",
            vector(
                "untrusted_signer",
                "untrusted_signer",
                "signed by the pinned key, but its signer field names another key",
                seal_payload(
                    &p.low,
                    &Header {
                        signer: mallory.low.public().signing,
                        ..header.clone()
                    },
                    &good[payload_at..],
                ),
            ),
        ),
        (
            "payload-hash-mismatch",
            vector(
                "payload_hash_mismatch",
                "payload_hash_mismatch",
                "one bit flipped in the age payload's first STREAM chunk (segment 1)",
                with(&|b| b[segments[1].start + 40] ^= 0x80),
            ),
        ),
        (
            "payload-hash-mismatch-age-header",
            vector(
                "payload_hash_mismatch",
                "payload_hash_mismatch",
                "one bit flipped in the age header (segment 0)",
                with(&|b| b[payload_at + 30] ^= 0x01),
            ),
        ),
        (
            "segment-table-mismatch",
            vector(
                "segment_table_mismatch",
                "segment_table_mismatch",
                "one bit flipped in the segment table",
                with(&|b| b[HEADER_BLOCK_LEN + 5] ^= 0x01),
            ),
        ),
        (
            "truncated-in-table",
            vector(
                "truncated",
                "truncated",
                "the file ends inside the segment table",
                good[..HEADER_BLOCK_LEN + 40].to_vec(),
            ),
        ),
        (
            "malformed-table-len",
            vector(
                "malformed",
                "malformed",
                "a table_len that is not a multiple of 32 (checked before the signature)",
                with(&|b| b[12..16].copy_from_slice(&65u32.to_le_bytes())),
            ),
        ),
        (
            "malformed-table-len-mismatch",
            vector(
                "malformed",
                "malformed",
                "a validly signed table_len of 96 where the header's layout needs 64",
                with(&|b| {
                    b[12..16].copy_from_slice(&(table_len as u32 + 32).to_le_bytes());
                    resign(b, &p.low);
                }),
            ),
        ),
        (
            "malformed-layout",
            vector(
                "malformed",
                "malformed",
                "a validly signed payload_len that leaves a 10-byte STREAM, shorter than a tag",
                {
                    let h = Header {
                        payload_len: u64::from(header.stream_offset) + 10,
                        ..header.clone()
                    };
                    let mut b = raw_block(&p.low, &h, 64);
                    b.extend_from_slice(
                        &good[HEADER_BLOCK_LEN..payload_at + header.stream_offset as usize + 10],
                    );
                    b
                },
            ),
        ),
        (
            "trailing-data-after-payload",
            vector(
                "trailing_data",
                "trailing_data",
                "one byte after the payload_len bytes of payload",
                with(&|b| b.push(0)),
            ),
        ),
        // Decryption: the bundle is authentic, the payload is not for us or not valid age.
        (
            "not-for-us",
            vector(
                "not_for_us",
                "ok",
                "signed by the sender but encrypted to another recipient",
                write(&p.low, &mallory.high, &[code]),
            ),
        ),
        (
            "decrypt-corrupted-chunk",
            vector(
                "decrypt",
                "ok",
                "a validly signed payload whose last age STREAM chunk was altered",
                {
                    let mut payload = good[payload_at..].to_vec();
                    let last = payload.len() - 20;
                    payload[last] ^= 0x01;
                    seal_payload(&p.low, &header, &payload)
                },
            ),
        ),
        (
            "decrypt-header-mac",
            vector(
                "decrypt",
                "ok",
                "a validly signed payload whose age header MAC was altered",
                {
                    let mut payload = good[payload_at..].to_vec();
                    let mac = payload.windows(4).position(|w| w == b"--- ").unwrap() + 4;
                    payload[mac] = if payload[mac] == b'A' { b'B' } else { b'A' };
                    seal_payload(&p.low, &header, &payload)
                },
            ),
        ),
        (
            "success-age-crate-payload",
            success(
                "a payload written by another age implementation (the age crate, with its \
                 grease stanza), in a bundle signed by the sender",
                {
                    let pt = Plaintext::new()
                        .entry(code.0, code.1)
                        .end(&p.low, &id, &[code]);
                    let recipient: age::x25519::Recipient =
                        p.high.public().recipient.parse().unwrap();
                    let encryptor = age::Encryptor::with_recipients(std::iter::once(
                        &recipient as &dyn age::Recipient,
                    ))
                    .unwrap();
                    let mut payload = Vec::new();
                    let mut w = encryptor.wrap_output(&mut payload).unwrap();
                    std::io::Write::write_all(&mut w, &pt.bytes).unwrap();
                    w.finish().unwrap();
                    seal_payload(&p.low, &header, &payload)
                },
                &[code],
            ),
        ),
        // The plaintext: entry records and the signed manifest.
        (
            "malformed-payload-magic",
            plaintext_vector(
                p,
                "malformed",
                "the plaintext does not start with FERRYPL1",
                &Plaintext {
                    bytes: b"NOTFERRY".to_vec(),
                }
                .end(&p.low, &id, &[]),
            ),
        ),
        (
            "malformed-unknown-tag",
            plaintext_vector(
                p,
                "malformed",
                "a record tag of 9",
                &Plaintext::new().raw(&[9]),
            ),
        ),
        (
            "malformed-manifest-over-16mib",
            plaintext_vector(
                p,
                "malformed",
                "an end record declaring a 4 GiB manifest",
                &Plaintext::new()
                    .entry("a", b"1")
                    .raw(&[TAG_END, 0xff, 0xff, 0xff, 0xff]),
            ),
        ),
        (
            "truncated-inside-entry",
            plaintext_vector(
                p,
                "truncated",
                "the plaintext ends 8 bytes into a 10-byte entry",
                &Plaintext::new().raw(&[TAG_ENTRY, 1, 0, b'a', 10, 0, 0, 0, 0, 0, 0, 0, 1, 2]),
            ),
        ),
        (
            "truncated-no-end-record",
            plaintext_vector(
                p,
                "truncated",
                "the plaintext ends after an entry, with no end record",
                &Plaintext::new().entry("a", b"1"),
            ),
        ),
        (
            "entry-too-large",
            plaintext_vector(
                p,
                "entry_too_large",
                "an entry declaring 2^62 bytes: refused on the length, never allocated",
                &Plaintext::new().raw(&{
                    let mut record = vec![TAG_ENTRY, 1, 0, b'a'];
                    record.extend_from_slice(&(1u64 << 62).to_le_bytes());
                    record
                }),
            ),
        ),
        (
            "duplicate-entry",
            plaintext_vector(
                p,
                "duplicate_entry",
                "the same path twice, both listed",
                &Plaintext::new()
                    .entry("a.txt", b"1")
                    .entry("a.txt", b"2")
                    .end(&p.low, &id, &[("a.txt", b"1"), ("a.txt", b"2")]),
            ),
        ),
        (
            "bad-path-not-utf8",
            plaintext_vector(
                p,
                "bad_path",
                "a path that is not UTF-8",
                &Plaintext::new().raw(&[TAG_ENTRY, 2, 0, 0xff, 0xfe]),
            ),
        ),
        (
            "bad-path-too-long",
            plaintext_vector(
                p,
                "bad_path",
                "a 65535-byte path against the default limit of 255",
                &Plaintext::new().raw(&[TAG_ENTRY, 0xff, 0xff]),
            ),
        ),
        (
            "manifest-mismatch-unlisted-entry",
            plaintext_vector(
                p,
                "manifest_mismatch",
                "an entry the signed manifest does not list",
                &Plaintext::new()
                    .entry("a", b"1")
                    .entry("smuggled", b"2")
                    .end(&p.low, &id, &[("a", b"1")]),
            ),
        ),
        (
            "manifest-mismatch-missing-entry",
            plaintext_vector(
                p,
                "manifest_mismatch",
                "the manifest lists an entry that is not there",
                &Plaintext::new()
                    .entry("a", b"1")
                    .end(&p.low, &id, &[("a", b"1"), ("b", b"2")]),
            ),
        ),
        (
            "manifest-mismatch-length",
            plaintext_vector(
                p,
                "manifest_mismatch",
                "an entry whose length differs from the manifest's",
                &Plaintext::new()
                    .entry("a", b"1")
                    .end(&p.low, &id, &[("a", b"12")]),
            ),
        ),
        (
            "manifest-mismatch-order",
            plaintext_vector(
                p,
                "manifest_mismatch",
                "the entries in another order than the manifest's",
                &Plaintext::new().entry("a", b"1").entry("b", b"2").end(
                    &p.low,
                    &id,
                    &[("b", b"2"), ("a", b"1")],
                ),
            ),
        ),
        (
            "manifest-mismatch-bundle-id",
            plaintext_vector(
                p,
                "manifest_mismatch",
                "a manifest signed for another bundle id (mix and match, R6)",
                &Plaintext::new()
                    .entry("a", b"1")
                    .end(&p.low, b"another-bundle!!", &[("a", b"1")]),
            ),
        ),
        (
            "manifest-mismatch-undecodable",
            plaintext_vector(
                p,
                "manifest_mismatch",
                "a signed manifest that does not decode",
                &{
                    let garbage = [0xffu8; 20];
                    let mut end = vec![TAG_END];
                    end.extend_from_slice(&(garbage.len() as u32).to_le_bytes());
                    end.extend_from_slice(&garbage);
                    end.extend_from_slice(&crate::format::sign_manifest(&p.low, &garbage));
                    Plaintext::new().raw(&end)
                },
            ),
        ),
        (
            "manifest-mismatch-manifest-too-long",
            plaintext_vector(
                p,
                "manifest_mismatch",
                "a 68-byte manifest after one 1-byte entry, whose manifest is at most 67 bytes",
                &Plaintext::new()
                    .entry("a", b"1")
                    .raw(&[TAG_END, 68, 0, 0, 0]),
            ),
        ),
        (
            "bad-manifest-signature",
            plaintext_vector(
                p,
                "bad_manifest_signature",
                "a manifest signed by another key than the header",
                &Plaintext::new()
                    .entry("a", b"1")
                    .end(&mallory.low, &id, &[("a", b"1")]),
            ),
        ),
        (
            "trailing-data-after-manifest",
            plaintext_vector(
                p,
                "trailing_data",
                "plaintext bytes after the manifest signature",
                &Plaintext::new()
                    .entry("a", b"1")
                    .end(&p.low, &id, &[("a", b"1")])
                    .raw(b"extra"),
            ),
        ),
    ];

    for (name, path, why) in [
        ("bad-path-dotdot", "../etc/passwd", "a `..` component"),
        (
            "bad-path-dotdot-inside",
            "a/../../b",
            "a `..` component inside",
        ),
        ("bad-path-absolute", "/etc/passwd", "an absolute path"),
        ("bad-path-empty-component", "a//b", "an empty component"),
        ("bad-path-dot", "a/./b", "a `.` component"),
        ("bad-path-backslash", "a\\b", "a backslash"),
        ("bad-path-trailing-slash", "a/", "a trailing slash"),
        ("bad-path-empty", "", "an empty path"),
        ("bad-path-nul", "a\0b", "a NUL byte"),
        ("bad-path-newline", "a\nb", "a control character"),
    ] {
        let pt = Plaintext::new()
            .entry(path, b"x")
            .end(&p.low, &id, &[(path, b"x")]);
        out.push((name, plaintext_vector(p, "bad_path", why, &pt)));
    }

    // Receiver limits below the defaults, as a receiver may configure them.
    let three: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("f{i}"), vec![b'0' + i; 100]))
        .collect();
    let three: Vec<(&str, &[u8])> = three
        .iter()
        .map(|(path, data)| (path.as_str(), data.as_slice()))
        .collect();
    let bytes = write(&p.low, &p.high, &three);
    let mut v = vector(
        "too_many_entries",
        "ok",
        "three entries against a limit of two",
        bytes.clone(),
    );
    v.limits = "max_entries=2".to_owned();
    out.push(("too-many-entries", v));
    let mut v = vector(
        "total_too_large",
        "ok",
        "three 100-byte entries against a total limit of 250 bytes",
        bytes.clone(),
    );
    v.limits = "max_total_len=250".to_owned();
    out.push(("total-too-large", v));
    let mut v = vector(
        "entry_too_large",
        "ok",
        "a 100-byte entry against a limit of 99 bytes",
        bytes,
    );
    v.limits = "max_entry_len=99".to_owned();
    out.push(("entry-too-large-limit", v));
    out
}
