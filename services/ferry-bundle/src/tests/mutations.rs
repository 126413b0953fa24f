//! Deterministic mutations of the success vector through the reader: every single-byte
//! change and every truncation must be refused, and nothing may panic. The fuzzer
//! (`services/ferry-bundle/fuzz/`) explores further at random; these run in every
//! `cargo test`, where cargo-fuzz is not needed.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::vectors::{vector_keys, vectors_dir, Vector};
use super::*;

/// Mutations per test.
const MUTATIONS: usize = 2_000;

/// A small deterministic generator (xorshift64), so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The `n`th mutation of `original`: a truncation one time in four, otherwise one byte
/// XORed with a non-zero value. Returns the bytes and a description.
fn mutate(original: &[u8], rng: &mut Rng, n: usize) -> (Vec<u8>, String) {
    let mut bytes = original.to_vec();
    if n % 4 == 3 {
        let len = rng.below(original.len());
        bytes.truncate(len);
        (bytes, format!("truncated to {len} bytes"))
    } else {
        let at = rng.below(original.len());
        let xor = 1 + rng.below(255) as u8;
        bytes[at] ^= xor;
        (bytes, format!("byte {at} XOR {xor:#04x}"))
    }
}

fn success_vector() -> Vector {
    let text = fs::read_to_string(vectors_dir().join("success-two-entries.vector")).unwrap();
    Vector::parse(&text).unwrap()
}

/// Opens `bytes` with the vector keys; `Err` with the case if it panicked or was accepted.
fn must_refuse(p: &Pair, bytes: &[u8], case: &str) -> Result<(), String> {
    let mut sink = MemorySink::new(1 << 20);
    let opened = catch_unwind(AssertUnwindSafe(|| {
        let _ = inspect(bytes);
        let _ = verify_bundle(Cursor::new(bytes), &p.low.public().signing);
        open(
            Cursor::new(bytes),
            OpenOptions::new(p.low.public().signing, &[&p.high], &mut sink),
        )
    }));
    match opened {
        Err(_) => Err(format!("{case}: the reader panicked")),
        Ok(Ok(_)) => Err(format!("{case}: accepted")),
        Ok(Err(_)) if !sink.entries.is_empty() => Err(format!("{case}: refused but committed")),
        Ok(Err(_)) => Ok(()),
    }
}

#[test]
fn every_single_byte_change_or_truncation_of_a_bundle_is_refused() {
    let p = vector_keys();
    let original = success_vector().bytes;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let failures: Vec<String> = (0..MUTATIONS)
        .filter_map(|n| {
            let (bytes, case) = mutate(&original, &mut rng, n);
            must_refuse(&p, &bytes, &case).err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The byte ranges of the entries' data in a well-formed plaintext.
fn entry_data_ranges(plaintext: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let mut at = PAYLOAD_MAGIC.len();
    while plaintext[at] == TAG_ENTRY {
        let path_len = usize::from(u16::from_le_bytes([plaintext[at + 1], plaintext[at + 2]]));
        let len_at = at + 3 + path_len;
        let len = u64::from_le_bytes(plaintext[len_at..len_at + 8].try_into().unwrap()) as usize;
        ranges.push(len_at + 8..len_at + 8 + len);
        at = len_at + 8 + len;
    }
    ranges
}

#[test]
fn every_change_to_a_sealed_plaintext_is_refused_unless_it_only_changes_entry_data() {
    // Past the signature and segment hashes: the same plaintext mutations, each sealed in a
    // genuine envelope by the sender, so that they reach the record and manifest parser.
    // Every truncation and every change to the structure (magic, tags, paths, lengths,
    // manifest, signature) is refused. A change inside an entry's data is a different
    // bundle the sender signed (the manifest lists paths and lengths; the signed segment
    // table, not the manifest, authenticates the bytes), so it opens, delivering exactly
    // the bytes sealed.
    let p = vector_keys();
    let original = success_vector().bytes;
    let header = inspect(&original[..]).unwrap();
    let params = HeaderParams {
        bundle_id: header.bundle_id,
        channel: header.channel,
        seq: header.seq,
        prev_hash: header.prev_hash,
        created_at: header.created_at,
        expires_at: header.expires_at,
    };
    let decryptor = age::Decryptor::new(&original[payload_offset(&original)..]).unwrap();
    let mut plaintext = Vec::new();
    std::io::Read::read_to_end(
        &mut decryptor
            .decrypt(std::iter::once(&p.high.age as &dyn age::Identity))
            .unwrap(),
        &mut plaintext,
    )
    .unwrap();
    // The unmutated plaintext, resealed, opens: the refusals below are the mutations'.
    let (opened, _) = open_vec(
        &p,
        &crafted(
            &p,
            &params,
            &Plaintext {
                bytes: plaintext.clone(),
            },
        ),
        &Limits::default(),
    );
    opened.unwrap();

    let data = entry_data_ranges(&plaintext);
    assert_eq!(data.len(), 2, "the success vector's two entries");
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut delivered = 0;
    let failures: Vec<String> = (0..MUTATIONS)
        .filter_map(|n| {
            let (bytes, case) = mutate(&plaintext, &mut rng, n);
            let changed_data = bytes.len() == plaintext.len()
                && data.iter().any(|r| {
                    bytes[r.clone()] != plaintext[r.clone()]
                        && bytes[..r.start] == plaintext[..r.start]
                        && bytes[r.end..] == plaintext[r.end..]
                });
            let sealed = crafted(
                &p,
                &params,
                &Plaintext {
                    bytes: bytes.clone(),
                },
            );
            if !changed_data {
                return must_refuse(&p, &sealed, &format!("plaintext {case}")).err();
            }
            delivered += 1;
            let (opened, sink) = open_vec(&p, &sealed, &Limits::default());
            let sent: Vec<Vec<u8>> = data.iter().map(|r| bytes[r.clone()].to_vec()).collect();
            let got: Vec<Vec<u8>> = sink.entries.into_iter().map(|(_, d)| d).collect();
            match opened {
                Ok(_) if got == sent => None,
                Ok(_) => Some(format!("plaintext {case}: delivered other bytes")),
                Err(e) => Some(format!("plaintext {case}: refused ({e})")),
            }
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(delivered > 0, "no mutation fell in entry data");
}
