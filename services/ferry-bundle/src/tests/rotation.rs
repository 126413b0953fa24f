//! Key rotation statements, opening with several identities, and retiring key files.

use super::*;

const AT: i64 = 1_700_000_000;

fn statement() -> (SideKeys, SideKeys, RotationStatement) {
    let old = SideKeys::generate();
    let new = SideKeys::generate();
    let s = RotationStatement::sign("low", &old, &new, AT);
    (old, new, s)
}

fn verify_kind(s: &RotationStatement, pinned: &[u8; 32]) -> &'static str {
    s.verify(pinned)
        .expect_err("statement should be refused")
        .kind()
}

#[test]
fn rotation_signs_verifies_and_round_trips() {
    let (old, new, s) = statement();
    assert_eq!(s.side, "low");
    assert_eq!(s.old_signing, old.public().signing);
    assert_eq!(s.new, new.public());
    assert_eq!(s.at, AT);
    s.verify(&old.public().signing).unwrap();

    let bytes = s.to_bytes();
    assert_eq!(bytes[0], ROTATION_VERSION);
    assert!(bytes.len() < 300, "{} bytes", bytes.len());
    let back = RotationStatement::from_bytes(&bytes).unwrap();
    assert_eq!(back, s);
    back.verify(&old.public().signing).unwrap();

    let high = RotationStatement::sign("high", &old, &new, -5);
    high.verify(&old.public().signing).unwrap();
    assert_eq!(
        RotationStatement::from_bytes(&high.to_bytes()).unwrap(),
        high
    );
}

#[test]
fn tampered_rotation_fields_are_refused() {
    let (old, _, s) = statement();
    let pinned = old.public().signing;
    let other = SideKeys::generate().public();

    let mut t = s.clone();
    t.side = "high".to_owned();
    assert_eq!(verify_kind(&t, &pinned), "bad_rotation_signature");

    let mut t = s.clone();
    t.at += 1;
    assert_eq!(verify_kind(&t, &pinned), "bad_rotation_signature");

    // Someone swapping in their own recipient, or their own signing key.
    let mut t = s.clone();
    t.new.recipient = other.recipient.clone();
    assert_eq!(verify_kind(&t, &pinned), "bad_rotation_signature");
    let mut t = s.clone();
    t.new.signing = other.signing;
    assert_eq!(verify_kind(&t, &pinned), "bad_rotation_signature");

    let mut t = s.clone();
    t.sig_old[3] ^= 1;
    let err = t.verify(&pinned).unwrap_err();
    assert_eq!(err.kind(), "bad_rotation_signature");
    assert!(err.to_string().contains("old key"), "{err}");

    let mut t = s.clone();
    t.sig_new[60] ^= 1;
    let err = t.verify(&pinned).unwrap_err();
    assert_eq!(err.kind(), "bad_rotation_signature");
    assert!(err.to_string().contains("new key"), "{err}");

    // The old key alone cannot rotate to a key whose holder did not sign.
    let mut t = s.clone();
    t.sig_new = t.sig_old;
    assert_eq!(verify_kind(&t, &pinned), "bad_rotation_signature");

    let mut t = s.clone();
    t.side = "middle".to_owned();
    assert_eq!(verify_kind(&t, &pinned), "bad_rotation");

    let mut t = s.clone();
    t.new.recipient = t.new.recipient.to_uppercase();
    assert_eq!(verify_kind(&t, &pinned), "bad_rotation");

    let mut t = s.clone();
    t.new.recipient = "age1notarecipient".to_owned();
    assert_eq!(verify_kind(&t, &pinned), "bad_rotation");

    // Every single-bit flip of the encoding is refused, by decoding or by verification.
    let bytes = s.to_bytes();
    for i in 0..bytes.len() {
        let mut bad = bytes.clone();
        bad[i] ^= 0x10;
        let refused = match RotationStatement::from_bytes(&bad) {
            Err(_) => true,
            Ok(t) => t.verify(&pinned).is_err(),
        };
        assert!(refused, "flipping byte {i} went unnoticed");
    }
}

#[test]
fn rotation_of_another_key_is_refused() {
    let (old, new, s) = statement();
    let err = s.verify(&new.public().signing).unwrap_err();
    assert_eq!(err.kind(), "rotation_key_mismatch");
    assert!(err.to_string().contains(&old.public().key_id()), "{err}");
    assert!(err.to_string().contains(&new.public().key_id()), "{err}");

    // Changing old_signing to the pinned key does not help.
    let stranger = SideKeys::generate();
    let mut t = s.clone();
    t.old_signing = stranger.public().signing;
    assert_eq!(
        verify_kind(&t, &stranger.public().signing),
        "bad_rotation_signature"
    );
}

#[test]
fn rotation_to_the_same_key_is_refused() {
    let keys = SideKeys::generate();
    let s = RotationStatement::sign("high", &keys, &keys, AT);
    let err = s.verify(&keys.public().signing).unwrap_err();
    assert_eq!(err.kind(), "bad_rotation");
    assert!(err.to_string().contains("same"), "{err}");
}

#[test]
fn malformed_rotation_encodings_are_refused() {
    let (_, _, s) = statement();
    let bytes = s.to_bytes();
    let kind = |b: &[u8]| RotationStatement::from_bytes(b).unwrap_err().kind();

    assert_eq!(kind(&[]), "bad_rotation");
    assert_eq!(kind(&bytes[..bytes.len() - 1]), "bad_rotation");
    assert_eq!(kind(&bytes[..100]), "bad_rotation");
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(kind(&longer), "bad_rotation");
    assert_eq!(kind(&vec![1u8; MAX_ROTATION_LEN + 1]), "bad_rotation");

    let mut newer = bytes.clone();
    newer[0] = 2;
    let err = RotationStatement::from_bytes(&newer).unwrap_err();
    assert!(err.to_string().contains("upgrade Ferry"), "{err}");
    let mut zero = bytes.clone();
    zero[0] = 0;
    assert_eq!(kind(&zero), "bad_rotation");

    // An overlong varint for the side's length (0x83 0x00 instead of 0x03) decodes to the
    // same fields, so it is refused as a second encoding of the same statement.
    assert_eq!(bytes[1], 3);
    let mut overlong = vec![bytes[0], 0x83, 0x00];
    overlong.extend_from_slice(&bytes[2..]);
    assert_eq!(kind(&overlong), "bad_rotation");
}

/// A bundle from the high side, encrypted to the low side's OLD recipient.
fn bundle_to(sender: &SideKeys, recipient: &SideKeys) -> Vec<u8> {
    let mut params = params();
    params.channel = Channel::HighToLow;
    let entries = [Entry {
        path: "results/answer.csv".into(),
        source: EntrySource::Bytes(b"source,hits\nweb,3\n"),
    }];
    let mut out = Cursor::new(Vec::new());
    write_bundle(&mut out, sender, &recipient.public(), &params, &entries).unwrap();
    out.into_inner()
}

#[test]
fn open_decrypts_with_a_retired_key() {
    let high = SideKeys::generate();
    let (old, new, _) = statement();
    let bytes = bundle_to(&high, &old);
    let signer = high.public().signing;

    let mut sink = MemorySink::new(1 << 20);
    let opened = open(
        Cursor::new(&bytes),
        OpenOptions::new(signer, &[&new, &old], &mut sink),
    )
    .unwrap();
    assert_eq!(opened.header.channel, Channel::HighToLow);
    assert_eq!(sink.entries[0].0, "results/answer.csv");

    // A bundle to the new key opens too, with the same list.
    let mut sink = MemorySink::new(1 << 20);
    open(
        Cursor::new(bundle_to(&high, &new)),
        OpenOptions::new(signer, &[&new, &old], &mut sink),
    )
    .unwrap();
    assert_eq!(sink.entries.len(), 1);

    // Without the old key, or with no key at all, it is not for us.
    for keys in [&[&new][..], &[]] {
        let mut sink = CountingSink::default();
        let err = open(
            Cursor::new(&bytes),
            OpenOptions::new(signer, keys, &mut sink),
        )
        .unwrap_err();
        assert_eq!(err.kind(), "not_for_us", "{err}");
        assert_eq!(sink.calls, 0);
    }
}

#[test]
fn open_with_several_identities_verifies_before_decrypting() {
    let high = SideKeys::generate();
    let (old, new, _) = statement();
    let mut bytes = bundle_to(&high, &old);
    let signer = high.public().signing;

    // A policy refusal comes before decryption.
    let mut sink = CountingSink::default();
    let err = open(
        Cursor::new(&bytes),
        OpenOptions::new(signer, &[&new, &old], &mut sink)
            .header_check(|_, _| Err(BundleError::Malformed("policy says no".to_owned()))),
    )
    .unwrap_err();
    assert!(err.to_string().contains("policy says no"), "{err}");
    assert_eq!(sink.calls, 0);

    // So do a forged header and a corrupted payload.
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut sink = CountingSink::default();
    let err = open(
        Cursor::new(&bytes),
        OpenOptions::new(signer, &[&new, &old], &mut sink),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "payload_hash_mismatch", "{err}");
    bytes[last] ^= 1;
    bytes[20] ^= 1;
    let err = open(
        Cursor::new(&bytes),
        OpenOptions::new(signer, &[&new, &old], &mut sink),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "bad_signature", "{err}");
    assert_eq!(sink.calls, 0);
}

#[test]
fn retire_keys_moves_the_pair_and_keeps_it_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let keys_dir = tmp.path().join("keys");
    let retired = keys_dir.join("retired/1700000000");
    let old = SideKeys::generate();
    old.save(&keys_dir).unwrap();

    retire_keys(&keys_dir, &retired).unwrap();
    assert!(!keys_dir.join(SIGNING_KEY_FILE).exists());
    assert!(!keys_dir.join(AGE_KEY_FILE).exists());
    assert_eq!(SideKeys::load(&retired).unwrap().public(), old.public());
    let mode = fs::metadata(&retired).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);

    // The new keys go where the old ones were.
    let new = SideKeys::generate();
    new.save(&keys_dir).unwrap();
    assert_eq!(SideKeys::load(&keys_dir).unwrap().public(), new.public());

    // A second retirement into the same place would overwrite: refused, nothing moved.
    let err = retire_keys(&keys_dir, &retired).unwrap_err();
    assert_eq!(err.kind(), "key", "{err}");
    assert_eq!(SideKeys::load(&keys_dir).unwrap().public(), new.public());
    assert_eq!(SideKeys::load(&retired).unwrap().public(), old.public());

    let err = retire_keys(&tmp.path().join("empty"), &tmp.path().join("r")).unwrap_err();
    assert_eq!(err.kind(), "key", "{err}");
    assert!(!tmp.path().join("r").exists());
}
