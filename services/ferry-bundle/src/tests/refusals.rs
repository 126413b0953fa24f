//! Refusals of whole bundles: header and payload tampering, wrong keys, truncation.

use super::*;

#[test]
fn flipped_header_byte_is_bad_signature() {
    let p = pair();
    let bytes = small_bundle(&p);
    let header_len = u16::from_le_bytes([bytes[10], bytes[11]]) as usize;
    // Inside the header fields, and inside the signature.
    for offset in [
        16,
        16 + header_len / 2,
        16 + header_len - 1,
        16 + header_len + 5,
    ] {
        let mut bad = bytes.clone();
        bad[offset] ^= 0x01;
        let mut sink = CountingSink::default();
        let err = open(
            Cursor::new(&bad),
            OpenOptions::new(p.low.public().signing, &[&p.high], &mut sink),
        )
        .unwrap_err();
        assert_eq!(err.kind(), "bad_signature", "offset {offset}: {err}");
        assert_eq!(
            sink.calls, 0,
            "nothing may be decrypted before verification"
        );
    }
}

#[test]
fn header_structure_refusals() {
    let p = pair();
    let bytes = small_bundle(&p);

    let mut bad = bytes.clone();
    bad[0] = b'X';
    refused(&p, &bad, "not_a_bundle");

    let mut bad = bytes.clone();
    bad[1000] = 1; // padding: unsigned, but part of the bundle hash
    refused(&p, &bad, "malformed");

    let mut bad = bytes.clone();
    bad[10..12].copy_from_slice(&2000u16.to_le_bytes());
    let err = refused(&p, &bad, "header_too_large");
    assert!(err.to_string().contains("2000"), "{err}");

    let mut bad = bytes.clone();
    bad[8..10].copy_from_slice(&0u16.to_le_bytes());
    refused(&p, &bad, "malformed");
}

#[test]
fn newer_version_is_named() {
    let p = pair();
    let mut bytes = small_bundle(&p);
    bytes[8..10].copy_from_slice(&4u16.to_le_bytes());
    let err = refused(&p, &bytes, "newer_version");
    assert!(matches!(err, BundleError::NewerVersion { found: 4 }));
    assert!(
        err.to_string().contains("made by a newer version of Ferry"),
        "{err}"
    );
    assert_eq!(inspect(&bytes[..]).unwrap_err().kind(), "newer_version");
}

#[test]
fn not_a_bundle() {
    let p = pair();
    refused(&p, &noise(4096, 5), "not_a_bundle");
    refused(&p, b"#!/bin/sh\necho hi\n", "not_a_bundle");
    // A bare age file is not a bundle either.
    let bytes = small_bundle(&p);
    refused(&p, &bytes[1024..], "not_a_bundle");
}

#[test]
fn bundle_signed_by_another_key_is_untrusted_signer() {
    let p = pair();
    let mallory = Pair {
        low: SideKeys::generate(),
        high: SideKeys::generate(),
    };
    let mut out = Cursor::new(Vec::new());
    write_bundle(
        &mut out,
        &mallory.low,
        &p.high.public(),
        &params(),
        &[Entry {
            path: "evil.py".into(),
            source: EntrySource::Bytes(b"import os"),
        }],
    )
    .unwrap();
    let err = refused(&p, out.get_ref(), "untrusted_signer");
    let expected = hex::encode(mallory.low.public().signing);
    assert!(matches!(&err, BundleError::UntrustedSigner { found } if *found == expected));
    assert_eq!(
        verify_bundle(Cursor::new(out.get_ref()), &p.low.public().signing)
            .unwrap_err()
            .kind(),
        "untrusted_signer"
    );
}

#[test]
fn invalid_trusted_key_is_refused() {
    let p = pair();
    let bytes = small_bundle(&p);
    let err = verify_bundle(Cursor::new(&bytes), &[0u8; 32]).unwrap_err();
    assert_eq!(err.kind(), "bad_public_identity", "{err}");
}

#[test]
fn flipped_table_or_payload_byte_is_refused_before_decryption() {
    let p = pair();
    let bytes = small_bundle(&p);
    let segments = segment_ranges(&bytes);
    for (offset, kind) in [
        (1024, "segment_table_mismatch"),
        (1024 + 63, "segment_table_mismatch"),
        (segments[0].start, "payload_hash_mismatch"),
        (segments[0].end - 1, "payload_hash_mismatch"),
        (segments[1].start, "payload_hash_mismatch"),
        (bytes.len() - 1, "payload_hash_mismatch"),
    ] {
        let mut bad = bytes.clone();
        bad[offset] ^= 0x80;
        let mut sink = CountingSink::default();
        let err = open(
            Cursor::new(&bad),
            OpenOptions::new(p.low.public().signing, &[&p.high], &mut sink),
        )
        .unwrap_err();
        assert_eq!(err.kind(), kind, "offset {offset}");
        assert_eq!(sink.calls, 0);
        let err = verify_bundle(Cursor::new(&bad), &p.low.public().signing).unwrap_err();
        assert_eq!(err.kind(), kind, "verify, offset {offset}");
    }
}

#[test]
fn wrong_recipient_is_not_for_us() {
    let p = pair();
    let bytes = small_bundle(&p);
    let mut sink = MemorySink::new(1 << 20);
    let stranger = SideKeys::generate();
    let err = open(
        Cursor::new(&bytes),
        OpenOptions::new(p.low.public().signing, &[&stranger], &mut sink),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "not_for_us");
    assert!(sink.entries.is_empty());
}

#[test]
fn truncated_anywhere_is_truncated() {
    let p = pair();
    let bytes = small_bundle(&p);
    for cut in [
        0,
        3,
        8,
        11,
        500,
        1023,
        1024,
        1030,
        1100,
        bytes.len() - 17,
        bytes.len() - 1,
    ] {
        refused(&p, &bytes[..cut], "truncated");
    }
}

#[test]
fn trailing_bytes_after_the_payload_are_refused() {
    let p = pair();
    let mut bytes = small_bundle(&p);
    bytes.push(0);
    refused(&p, &bytes, "trailing_data");
}
