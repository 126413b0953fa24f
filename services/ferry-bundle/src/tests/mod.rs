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
mod spec;
mod vectors;

use std::fs;
use std::io::{Cursor, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::format::{encode_manifest, sign_manifest, TAG_END, TAG_ENTRY};
use crate::write::{write_end, write_envelope};
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

/// Opens `bytes` as the high side with a fresh memory sink.
fn open_vec(
    p: &Pair,
    bytes: &[u8],
    limits: &Limits,
) -> (Result<OpenedBundle, BundleError>, MemorySink) {
    let mut sink = MemorySink::new(1 << 30);
    let result = open(
        Cursor::new(bytes),
        OpenOptions::new(p.low.public().signing, &[&p.high], &mut sink).limits(limits.clone()),
    );
    (result, sink)
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
        write_end(&mut self.bytes, keys, bundle_id, &manifest).unwrap();
        self
    }
}

fn manifest_entry(path: &str, data: &[u8]) -> ManifestEntry {
    ManifestEntry {
        path: path.to_owned(),
        len: data.len() as u64,
        sha256: Sha256::digest(data).into(),
    }
}

/// A validly signed and encrypted bundle around an arbitrary plaintext.
fn crafted(p: &Pair, params: &HeaderParams, plaintext: &Plaintext) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    write_envelope(&mut out, &p.low, &p.high.public(), params, |payload| {
        payload.write_all(&plaintext.bytes).unwrap();
        Ok(())
    })
    .unwrap();
    out.into_inner()
}
