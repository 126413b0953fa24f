//! Refusals of hand-crafted plaintexts that a correct writer never produces, and the
//! writer's own checks.

use super::*;

#[test]
fn well_formed_crafted_plaintext_opens() {
    // Guards the crafting helper itself, so the refusals below test what they claim.
    let p = pair();
    let params = params();
    let pt = Plaintext::new().entry("a/b.txt", b"one").end(
        &p.low,
        &params.bundle_id,
        &[("a/b.txt", b"one")],
    );
    let (result, sink) = open_vec(&p, &crafted(&p, &params, &pt), &Limits::default());
    result.unwrap();
    assert_eq!(sink.entries, vec![("a/b.txt".to_owned(), b"one".to_vec())]);
}

#[test]
fn unsafe_paths_are_refused() {
    let p = pair();
    let params = params();
    for path in [
        "../etc/passwd",
        "a/../../b",
        "/etc/passwd",
        "a//b",
        "a/./b",
        "a\\b",
        "a/",
        "",
        "a\0b",
        "a\nb",
    ] {
        let pt = Plaintext::new()
            .entry(path, b"x")
            .end(&p.low, &params.bundle_id, &[(path, b"x")]);
        refused(&p, &crafted(&p, &params, &pt), "bad_path");
    }
    let pt = Plaintext::new().raw(&[TAG_ENTRY, 2, 0, 0xff, 0xfe]);
    refused(&p, &crafted(&p, &params, &pt), "bad_path");
}

#[test]
fn duplicate_entry_is_refused() {
    let p = pair();
    let params = params();
    let pt = Plaintext::new()
        .entry("a.txt", b"1")
        .entry("a.txt", b"2")
        .end(
            &p.low,
            &params.bundle_id,
            &[("a.txt", b"1"), ("a.txt", b"2")],
        );
    let err = refused(&p, &crafted(&p, &params, &pt), "duplicate_entry");
    assert!(matches!(&err, BundleError::DuplicateEntry { path } if path == "a.txt"));
}

#[test]
fn manifest_must_match_contents() {
    let p = pair();
    let params = params();
    let cases: Vec<(Plaintext, &str)> = vec![
        (
            Plaintext::new()
                .entry("a", b"1")
                .entry("smuggled", b"2")
                .end(&p.low, &params.bundle_id, &[("a", b"1")]),
            "not listed",
        ),
        (
            Plaintext::new().entry("a", b"1").end(
                &p.low,
                &params.bundle_id,
                &[("a", b"1"), ("b", b"2")],
            ),
            "missing",
        ),
        (
            Plaintext::new()
                .entry("a", b"1")
                .end(&p.low, &params.bundle_id, &[("a", b"12")]),
            "bytes",
        ),
        (
            Plaintext::new().entry("a", b"1").entry("b", b"2").end(
                &p.low,
                &params.bundle_id,
                &[("b", b"2"), ("a", b"1")],
            ),
            "in the manifest",
        ),
        (
            Plaintext::new()
                .entry("a", b"1")
                .end(&p.low, &new_bundle_id(), &[("a", b"1")]),
            "bundle",
        ),
    ];
    for (pt, words) in cases {
        let err = refused(&p, &crafted(&p, &params, &pt), "manifest_mismatch");
        assert!(err.to_string().contains(words), "{err}");
    }
}

#[test]
fn manifest_signed_by_another_key_is_refused() {
    let p = pair();
    let params = params();
    let other = SideKeys::generate();
    let pt = Plaintext::new()
        .entry("a", b"1")
        .end(&other, &params.bundle_id, &[("a", b"1")]);
    refused(&p, &crafted(&p, &params, &pt), "bad_manifest_signature");
}

#[test]
fn oversized_lengths_are_refused_before_allocating() {
    let p = pair();
    let params = params();
    // An entry claiming 2^62 bytes: refused on the declared length, never allocated or read.
    let mut record = vec![TAG_ENTRY, 1, 0, b'a'];
    record.extend_from_slice(&(1u64 << 62).to_le_bytes());
    let pt = Plaintext::new().raw(&record);
    let err = refused(&p, &crafted(&p, &params, &pt), "entry_too_large");
    assert!(matches!(err, BundleError::EntryTooLarge { len, .. } if len == 1 << 62));

    // A 65535-byte path against the 255-byte limit.
    let pt = Plaintext::new().raw(&[TAG_ENTRY, 0xff, 0xff]);
    refused(&p, &crafted(&p, &params, &pt), "bad_path");

    // A 4 GiB manifest after one tiny entry.
    let pt = Plaintext::new()
        .entry("a", b"1")
        .raw(&[TAG_END, 0xff, 0xff, 0xff, 0xff]);
    refused(&p, &crafted(&p, &params, &pt), "malformed");
}

#[test]
fn receiver_limits_are_enforced() {
    let p = pair();
    let entries: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("f{i}"), vec![i as u8; 100]))
        .collect();
    let list: Vec<Entry<'_>> = entries
        .iter()
        .map(|(path, data)| Entry {
            path: path.clone(),
            source: EntrySource::Bytes(data),
        })
        .collect();
    let (bytes, _) = write_vec(&p, &params(), &list);

    let few = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    refused_with(&p, &bytes, &few, "too_many_entries");
    let small = Limits {
        max_entry_len: 99,
        ..Limits::default()
    };
    refused_with(&p, &bytes, &small, "entry_too_large");
    let tight = Limits {
        max_total_len: 250,
        ..Limits::default()
    };
    refused_with(&p, &bytes, &tight, "total_too_large");
    let short = Limits {
        max_path_len: 1,
        ..Limits::default()
    };
    refused_with(&p, &bytes, &short, "bad_path");
}

#[test]
fn malformed_plaintexts_are_refused() {
    let p = pair();
    let params = params();
    let id = params.bundle_id;

    let pt = Plaintext {
        bytes: b"NOTFERRY".to_vec(),
    }
    .end(&p.low, &id, &[]);
    refused(&p, &crafted(&p, &params, &pt), "malformed");

    let pt = Plaintext::new().raw(&[9]);
    refused(&p, &crafted(&p, &params, &pt), "malformed");

    // The plaintext ends in the middle of an entry, or before any end record.
    let pt = Plaintext::new().raw(&[TAG_ENTRY, 1, 0, b'a', 10, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
    refused(&p, &crafted(&p, &params, &pt), "truncated");
    let pt = Plaintext::new().entry("a", b"1");
    refused(&p, &crafted(&p, &params, &pt), "truncated");
    let pt = Plaintext {
        bytes: b"FERR".to_vec(),
    };
    refused(&p, &crafted(&p, &params, &pt), "truncated");

    // Bytes after the manifest signature.
    let pt = Plaintext::new()
        .entry("a", b"1")
        .end(&p.low, &id, &[("a", b"1")])
        .raw(b"extra");
    refused(&p, &crafted(&p, &params, &pt), "trailing_data");

    // A manifest that is signed but does not decode.
    let garbage = vec![0xffu8; 20];
    let mut end = vec![TAG_END];
    end.extend_from_slice(&(garbage.len() as u32).to_le_bytes());
    end.extend_from_slice(&garbage);
    end.extend_from_slice(&sign_manifest(&p.low, &garbage));
    let pt = Plaintext::new().raw(&end);
    refused(&p, &crafted(&p, &params, &pt), "manifest_mismatch");
    // And the helper's own encoding is what a correct writer signs.
    assert!(!encode_manifest(&id, &[]).unwrap().is_empty());
}

#[test]
fn writer_refuses_unsafe_or_duplicate_paths() {
    let p = pair();
    for (path, kind) in [
        ("../x", "bad_path"),
        ("/x", "bad_path"),
        ("a//b", "bad_path"),
    ] {
        let mut out = Cursor::new(Vec::new());
        let entries = [Entry {
            path: path.into(),
            source: EntrySource::Bytes(b""),
        }];
        let err =
            write_bundle(&mut out, &p.low, &p.high.public(), &params(), &entries).unwrap_err();
        assert_eq!(err.kind(), kind);
    }
    let entries = [
        Entry {
            path: "x".into(),
            source: EntrySource::Bytes(b""),
        },
        Entry {
            path: "x".into(),
            source: EntrySource::Bytes(b""),
        },
    ];
    let mut out = Cursor::new(Vec::new());
    let err = write_bundle(&mut out, &p.low, &p.high.public(), &params(), &entries).unwrap_err();
    assert_eq!(err.kind(), "duplicate_entry");
}

#[test]
fn writer_refuses_a_low_order_recipient() {
    // age would panic when encrypting to it; the identity check must refuse it first.
    let p = pair();
    let zero =
        bech32::encode::<bech32::Bech32>(bech32::Hrp::parse("age").unwrap(), &[0u8; 32]).unwrap();
    let peer = PublicIdentity {
        signing: p.high.public().signing,
        recipient: zero,
    };
    let mut out = Cursor::new(Vec::new());
    let err = write_bundle(&mut out, &p.low, &peer, &params(), &[]).unwrap_err();
    assert_eq!(err.kind(), "bad_public_identity", "{err}");
}

#[test]
fn writer_refuses_a_directory_entry() {
    let p = pair();
    let dir = tempfile::tempdir().unwrap();
    let entries = [Entry {
        path: "d".into(),
        source: EntrySource::File(dir.path()),
    }];
    let mut out = Cursor::new(Vec::new());
    let err = write_bundle(&mut out, &p.low, &p.high.public(), &params(), &entries).unwrap_err();
    assert_eq!(err.kind(), "io");
    assert!(err.to_string().contains("not a regular file"), "{err}");
    // Refused while planning the layout, before anything was written.
    assert!(out.get_ref().is_empty());
}
