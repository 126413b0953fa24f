//! Parts: splitting a bundle for removable media and joining it back, and every refusal.

use std::path::PathBuf;

use super::*;

/// Part size for the tests: a 512-byte header and 300 000 bytes of bundle, so a 3 MiB
/// bundle makes 11 parts, the last one shorter.
const PART_SIZE: u64 = 512 + 300_000;

/// Writes a real bundle carrying `len` bytes of noise to `dir/name`.
fn bundle_file(p: &Pair, dir: &Path, name: &str, len: usize, seed: u64) -> PathBuf {
    let path = dir.join(name);
    let data = noise(len, seed);
    let entries = [Entry {
        path: "results/data.bin".into(),
        source: EntrySource::Bytes(&data),
    }];
    let mut file = fs::File::create(&path).unwrap();
    write_bundle(&mut file, &p.low, &p.high.public(), &params(), &entries).unwrap();
    path
}

/// A bundle of a little over 3 MiB split into 11 parts in `dir/parts`.
fn split_fixture(p: &Pair, dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let bundle = bundle_file(p, dir, "ferry-low-to-high-000007.bundle", 3 << 20, 1);
    let parts = split_bundle(&bundle, PART_SIZE, &dir.join("parts"), &p.low).unwrap();
    (bundle, parts)
}

/// A deterministic shuffle (Fisher-Yates driven by xorshift).
fn shuffled(items: &[PathBuf], seed: u64) -> Vec<PathBuf> {
    let mut out = items.to_vec();
    let mut x = seed | 1;
    for i in (1..out.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.swap(i, (x % (i as u64 + 1)) as usize);
    }
    out
}

/// Asserts that joining fails with `kind`, and that neither the output nor its temporary
/// file was left behind.
fn join_refused(p: &Pair, parts: &[PathBuf], out: &Path, kind: &str) -> BundleError {
    let err = join_parts(parts, &p.low.public().signing, out).expect_err("join should fail");
    assert_eq!(err.kind(), kind, "unexpected error: {err}");
    assert!(!out.exists(), "a refused join left {}", out.display());
    let leftovers: Vec<_> = fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    err
}

fn says(err: &BundleError, text: &str) {
    assert!(
        err.to_string().contains(text),
        "`{err}` should say `{text}`"
    );
}

#[test]
fn split_and_join_in_shuffled_order_round_trips() {
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, parts) = split_fixture(&p, tmp.path());
    let original = fs::read(&bundle).unwrap();
    let id = inspect(&original[..]).unwrap().bundle_uuid();

    assert_eq!(parts.len(), 11);
    for (i, part) in parts.iter().enumerate() {
        let name = part.file_name().unwrap().to_str().unwrap();
        assert_eq!(
            name,
            format!("ferry-low-to-high-000007.part-{:02}-of-11", i + 1)
        );
        let len = fs::metadata(part).unwrap().len();
        assert!(len <= PART_SIZE, "{name} is {len} bytes");
        assert!(is_part_file(part));
        let info = read_part_info(part, &p.low.public().signing).unwrap();
        assert_eq!((info.index, info.count), (i as u32 + 1, 11));
        assert_eq!(info.bundle_uuid(), id);
        assert_eq!(info.bundle_len, original.len() as u64);
        assert_eq!(info.part_len, len - PART_HEADER_LEN as u64);
        assert_eq!(info.signer, p.low.public().signing);
    }
    assert!(!is_part_file(&bundle));
    // Nothing but the parts is left in the output directory.
    assert_eq!(fs::read_dir(tmp.path().join("parts")).unwrap().count(), 11);

    let out = tmp.path().join("joined.bundle");
    let info = join_parts(&shuffled(&parts, 42), &p.low.public().signing, &out).unwrap();
    assert_eq!(info.index, 1);
    assert_eq!(
        info.bundle_sha256,
        <[u8; 32]>::from(Sha256::digest(&original))
    );
    assert!(fs::read(&out).unwrap() == original, "joined file differs");

    // The joined file is an ordinary bundle again.
    let mut sink = MemorySink::new(64 << 20);
    open(
        fs::File::open(&out).unwrap(),
        OpenOptions::new(p.low.public().signing, &[&p.high], &mut sink),
    )
    .unwrap();
    assert_eq!(sink.entries[0].1, noise(3 << 20, 1));
}

#[test]
fn bundle_that_fits_makes_one_part() {
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = bundle_file(&p, tmp.path(), "small.bundle", 1000, 2);
    let parts = split_bundle(&bundle, PART_SIZE, tmp.path(), &p.low).unwrap();
    assert_eq!(parts, vec![tmp.path().join("small.part-1-of-1")]);
    let out = tmp.path().join("out.bundle");
    join_parts(&parts, &p.low.public().signing, &out).unwrap();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&bundle).unwrap());
}

#[test]
fn missing_part_is_named() {
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, parts) = split_fixture(&p, tmp.path());
    let id = inspect(fs::File::open(&bundle).unwrap())
        .unwrap()
        .bundle_uuid();
    let out = tmp.path().join("joined.bundle");

    let mut some = parts.clone();
    some.remove(1);
    let err = join_refused(&p, &shuffled(&some, 7), &out, "missing_parts");
    says(&err, &format!("part 2 of 11 of bundle {id} is missing"));

    let mut some = parts.clone();
    some.remove(10);
    some.remove(4);
    some.remove(1);
    let err = join_refused(&p, &some, &out, "missing_parts");
    says(
        &err,
        &format!("parts 2, 5 and 11 of 11 of bundle {id} are missing"),
    );
}

#[test]
fn part_of_another_bundle_is_named() {
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    let (_, parts) = split_fixture(&p, tmp.path());
    let other_dir = tmp.path().join("other");
    fs::create_dir(&other_dir).unwrap();
    let other = bundle_file(&p, &other_dir, "other.bundle", 1 << 20, 3);
    let other_parts = split_bundle(&other, PART_SIZE, &other_dir, &p.low).unwrap();
    let other_id = read_part_info(&other_parts[0], &p.low.public().signing)
        .unwrap()
        .bundle_uuid();
    let out = tmp.path().join("joined.bundle");

    // Whatever its position, the odd one out is the file named.
    for position in [0, 5, 11] {
        let mut mixed = parts.clone();
        mixed.insert(position, other_parts[1].clone());
        let err = join_refused(&p, &mixed, &out, "foreign_part");
        says(&err, &other_parts[1].display().to_string());
        says(&err, &format!("part 2 of 4 of bundle {other_id}"));
    }

    // In place of the real part 2 as well.
    let mut swapped = parts.clone();
    swapped[1] = other_parts[1].clone();
    let err = join_refused(&p, &swapped, &out, "foreign_part");
    says(&err, &other_parts[1].display().to_string());
}

#[test]
fn part_of_another_split_of_the_same_bundle_is_named() {
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, parts) = split_fixture(&p, tmp.path());
    let resplit = split_bundle(&bundle, 2 * PART_SIZE, &tmp.path().join("b"), &p.low).unwrap();
    assert_eq!(resplit.len(), 6);
    let mut mixed = parts.clone();
    mixed[0] = resplit[0].clone();
    let err = join_refused(
        &p,
        &mixed,
        &tmp.path().join("joined.bundle"),
        "foreign_part",
    );
    says(&err, &resplit[0].display().to_string());
    says(&err, "another split");
}

#[test]
fn duplicate_part_is_named() {
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    let (_, parts) = split_fixture(&p, tmp.path());
    let out = tmp.path().join("joined.bundle");

    // A copy of part 3 under another name, as two media might both carry it.
    let copy = tmp.path().join("copy-of-part-3");
    fs::copy(&parts[2], &copy).unwrap();
    let mut dup = parts.clone();
    dup.push(copy.clone());
    let err = join_refused(&p, &dup, &out, "duplicate_part");
    says(&err, "part 3 of 11");
    says(&err, &parts[2].display().to_string());
    says(&err, &copy.display().to_string());

    // The same path twice.
    let mut dup = parts.clone();
    dup.push(parts[0].clone());
    join_refused(&p, &dup, &out, "duplicate_part");
}

#[test]
fn corrupted_part_body_is_named() {
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    let (_, parts) = split_fixture(&p, tmp.path());
    let victim = &parts[6];
    let mut bytes = fs::read(victim).unwrap();
    bytes[PART_HEADER_LEN + 12_345] ^= 0x40;
    fs::write(victim, &bytes).unwrap();

    // The header still verifies: only the body hash finds it.
    read_part_info(victim, &p.low.public().signing).unwrap();
    let err = join_refused(
        &p,
        &shuffled(&parts, 9),
        &tmp.path().join("joined.bundle"),
        "part_hash_mismatch",
    );
    says(&err, &victim.display().to_string());
}

#[test]
fn truncated_or_lengthened_part_is_named() {
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    let (_, parts) = split_fixture(&p, tmp.path());
    let out = tmp.path().join("joined.bundle");
    let original = fs::read(&parts[3]).unwrap();

    // A half-copied part, cut inside the body and inside the header.
    for len in [original.len() - 1000, 300, 3] {
        fs::write(&parts[3], &original[..len]).unwrap();
        let err = join_refused(&p, &parts, &out, "bad_part");
        says(&err, &parts[3].display().to_string());
        says(&err, "truncated");
    }

    let mut longer = original.clone();
    longer.extend_from_slice(b"junk");
    fs::write(&parts[3], &longer).unwrap();
    let err = join_refused(&p, &parts, &out, "bad_part");
    says(&err, &parts[3].display().to_string());
}

#[test]
fn part_signed_by_an_unpinned_key_is_refused() {
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    let (_, parts) = split_fixture(&p, tmp.path());
    let stranger = SideKeys::generate();

    let err = read_part_info(&parts[0], &stranger.public().signing).unwrap_err();
    assert_eq!(err.kind(), "untrusted_part_signer", "{err}");
    says(&err, &hex::encode(p.low.public().signing));

    let err = join_parts(
        &parts,
        &stranger.public().signing,
        &tmp.path().join("out.bundle"),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "untrusted_part_signer", "{err}");
    says(&err, &parts[0].display().to_string());
}

#[test]
fn tampered_part_header_is_bad_signature() {
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    let (_, parts) = split_fixture(&p, tmp.path());
    let original = fs::read(&parts[1]).unwrap();
    let info_len = u16::from_le_bytes([original[10], original[11]]) as usize;
    // Inside the fields (the bundle id, then the last byte of the signer), and inside
    // the signature.
    for offset in [12, 12 + info_len - 1, 12 + info_len + 10] {
        let mut bad = original.clone();
        bad[offset] ^= 0x01;
        fs::write(&parts[1], &bad).unwrap();
        let err = read_part_info(&parts[1], &p.low.public().signing).unwrap_err();
        assert_eq!(err.kind(), "bad_part_signature", "offset {offset}: {err}");
        says(&err, &parts[1].display().to_string());
    }
}

#[test]
fn part_header_structure_refusals() {
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    let (bundle, parts) = split_fixture(&p, tmp.path());
    let signer = p.low.public().signing;
    let original = fs::read(&parts[0]).unwrap();
    let refused = |bytes: &[u8], kind: &str| {
        fs::write(&parts[0], bytes).unwrap();
        let err = read_part_info(&parts[0], &signer).unwrap_err();
        assert_eq!(err.kind(), kind, "{err}");
        says(&err, &parts[0].display().to_string());
        err
    };

    let err = read_part_info(&bundle, &signer).unwrap_err();
    assert_eq!(err.kind(), "not_a_part", "{err}");

    let mut bad = original.clone();
    bad[8..10].copy_from_slice(&2u16.to_le_bytes());
    let err = refused(&bad, "newer_part_version");
    says(&err, "upgrade Ferry");

    let mut bad = original.clone();
    bad[8..10].copy_from_slice(&0u16.to_le_bytes());
    refused(&bad, "bad_part");

    let mut bad = original.clone();
    bad[10..12].copy_from_slice(&437u16.to_le_bytes());
    refused(&bad, "bad_part");

    let mut bad = original.clone();
    bad[PART_HEADER_LEN - 1] = 1;
    let err = refused(&bad, "bad_part");
    says(&err, "padding");

    refused(&[], "bad_part");
}

#[test]
fn split_refusals_leave_nothing_behind() {
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    let bundle = bundle_file(&p, tmp.path(), "b.bundle", 100_000, 4);
    let out_dir = tmp.path().join("parts");
    let len = fs::metadata(&bundle).unwrap().len();

    let err = split_bundle(&bundle, 512, &out_dir, &p.low).unwrap_err();
    assert_eq!(err.kind(), "part_size_too_small", "{err}");

    // A side only splits bundles it signed.
    let err = split_bundle(&bundle, PART_SIZE, &out_dir, &p.high).unwrap_err();
    assert_eq!(err.kind(), "untrusted_signer", "{err}");

    // A cut-short bundle is refused before any part is written.
    let bytes = fs::read(&bundle).unwrap();
    fs::write(&bundle, &bytes[..bytes.len() - 1]).unwrap();
    let err = split_bundle(&bundle, PART_SIZE, &out_dir, &p.low).unwrap_err();
    assert_eq!(err.kind(), "truncated", "{err}");

    assert!(
        !out_dir.exists() || fs::read_dir(&out_dir).unwrap().count() == 0,
        "a refused split left files behind"
    );

    // More than MAX_PARTS parts would be needed.
    fs::write(&bundle, &bytes).unwrap();
    let err = split_bundle(&bundle, 513, &out_dir, &p.low).unwrap_err();
    assert_eq!(err.kind(), "part_size_too_small", "{err}");
    assert!(len > u64::from(MAX_PARTS));
    says(
        &err,
        &(512 + len.div_ceil(u64::from(MAX_PARTS))).to_string(),
    );
}

#[test]
fn join_refuses_an_empty_list() {
    let p = pair();
    let tmp = tempfile::tempdir().unwrap();
    let err = join_parts(&[], &p.low.public().signing, &tmp.path().join("out")).unwrap_err();
    assert_eq!(err.kind(), "io", "{err}");
    says(&err, "no part files");
}

#[test]
fn part_size_presets_and_suffixes_parse() {
    for (text, size) in [
        ("dvd", 4_690_000_000),
        ("DVD", 4_690_000_000),
        ("bluray", 25_000_000_000),
        ("fat32", 4_294_967_295),
        ("700M", 700_000_000),
        ("700mb", 700_000_000),
        ("4GiB", 4 << 30),
        ("4 GiB", 4 << 30),
        ("100KiB", 102_400),
        ("2k", 2_000),
        ("1_000_000", 1_000_000),
        ("513", 513),
        (" 1T ", 1_000_000_000_000),
    ] {
        assert_eq!(parse_part_size(text), Ok(size), "{text}");
    }
    for text in [
        "",
        "G",
        "12x",
        "4.7G",
        "-5",
        "512",
        "0",
        "99999999999999999999",
        "dvdd",
    ] {
        let err = parse_part_size(text).expect_err(text);
        assert!(!err.is_empty());
    }
    assert!(parse_part_size("512").unwrap_err().contains("part header"));
    assert!(parse_part_size("20000000000000000G")
        .unwrap_err()
        .contains("too large"));
}
