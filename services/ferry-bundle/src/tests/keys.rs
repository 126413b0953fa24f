//! Key files and public identities.

use super::*;

#[test]
fn keys_save_load_with_private_permissions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys/high");
    let keys = SideKeys::generate();
    keys.save(&dir).unwrap();

    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(SIGNING_KEY_FILE)), 0o600);
    assert_eq!(mode(&dir.join(AGE_KEY_FILE)), 0o600);

    let loaded = SideKeys::load(&dir).unwrap();
    assert_eq!(loaded.public(), keys.public());
    assert_eq!(loaded.sign(b"m"), keys.sign(b"m"));

    // A second save must not overwrite either key.
    let before = fs::read(dir.join(SIGNING_KEY_FILE)).unwrap();
    let err = SideKeys::generate().save(&dir).unwrap_err();
    assert!(matches!(&err, BundleError::Key { file, .. } if file.ends_with(SIGNING_KEY_FILE)));
    assert_eq!(fs::read(dir.join(SIGNING_KEY_FILE)).unwrap(), before);

    // Loaded keys really decrypt and sign bundles.
    let sender = SideKeys::generate();
    let mut out = Cursor::new(Vec::new());
    write_bundle(&mut out, &sender, &keys.public(), &params(), &[]).unwrap();
    let mut sink = MemorySink::new(0);
    open(
        Cursor::new(out.get_ref()),
        OpenOptions::new(sender.public().signing, &[&loaded], &mut sink),
    )
    .unwrap();
}

#[test]
fn key_load_errors_name_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let err = SideKeys::load(tmp.path()).unwrap_err();
    assert!(err.to_string().contains(SIGNING_KEY_FILE), "{err}");

    SideKeys::generate().save(tmp.path()).unwrap();
    let age_path = tmp.path().join(AGE_KEY_FILE);
    fs::remove_file(&age_path).unwrap();
    fs::write(&age_path, "# comment\nAGE-SECRET-KEY-1NOTAKEY\n").unwrap();
    let err = SideKeys::load(tmp.path()).unwrap_err();
    assert_eq!(err.kind(), "key");
    assert!(err.to_string().contains(AGE_KEY_FILE), "{err}");

    let signing_path = tmp.path().join(SIGNING_KEY_FILE);
    fs::write(&signing_path, "abcd\n").unwrap();
    let err = SideKeys::load(tmp.path()).unwrap_err();
    assert!(err.to_string().contains(SIGNING_KEY_FILE), "{err}");
}

#[test]
fn debug_never_prints_secrets() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = SideKeys::generate();
    keys.save(tmp.path()).unwrap();
    let debug = format!("{keys:?}");
    let signing_file = fs::read_to_string(tmp.path().join(SIGNING_KEY_FILE)).unwrap();
    let seed = signing_file.lines().last().unwrap();
    assert!(!debug.contains(seed), "{debug}");
    assert!(!debug.to_uppercase().contains("AGE-SECRET-KEY"), "{debug}");
    assert!(debug.contains(&keys.public().key_id()));
}

#[test]
fn public_identity_text_round_trip() {
    let keys = SideKeys::generate();
    let public = keys.public();
    let text = public.to_text("high side\nsigning-key: forged");
    assert!(text.lines().take(3).all(|l| l.starts_with('#')), "{text}");
    assert!(text.contains(&format!("signing-key: {}", hex::encode(public.signing))));
    assert!(text.contains(&format!("age-recipient: {}", public.recipient)));
    assert_eq!(PublicIdentity::parse(&text).unwrap(), public);
    // Bech32 may be written in upper case; the parsed identity is canonical either way.
    let shouting = text.replace(&public.recipient, &public.recipient.to_uppercase());
    assert_eq!(PublicIdentity::parse(&shouting).unwrap(), public);
    assert_eq!(public.key_id().len(), 16);

    let recipient_line = format!("age-recipient: {}", public.recipient);
    let signing_line = format!("signing-key: {}", hex::encode(public.signing));
    for bad in [
        recipient_line.clone(),
        signing_line.clone(),
        format!("{signing_line}\n{signing_line}\n{recipient_line}"),
        format!("{signing_line}\n{recipient_line}\ncolor: blue"),
        format!("signing-key: zz\n{recipient_line}"),
        format!("signing-key: {}\n{recipient_line}", hex::encode([0u8; 32])),
        format!("{signing_line}\nage-recipient: age1notarecipient"),
    ] {
        let err = PublicIdentity::parse(&bad).unwrap_err();
        assert_eq!(err.kind(), "bad_public_identity", "{bad}: {err}");
    }
}
