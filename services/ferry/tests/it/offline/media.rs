//! `ferry export --max-part-size`, `media write|read` and `keys rotate` through the command line.

use std::path::{Path, PathBuf};

use crate::harness::{assert_reason, quarantined, Forge, Pair};

fn lines(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter(|l| l.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

fn add_asset(pair: &Pair, name: &str, mock_bytes: usize) {
    let root = pair.dir.path();
    let private = root.join(format!("{name}.private"));
    let mock = root.join(format!("{name}.mock"));
    std::fs::write(&private, "id,text,source\n").unwrap();
    // Incompressible-looking content, so the bundle is as large as the mock.
    let data: Vec<u8> = (0..mock_bytes)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&mock, data).unwrap();
    pair.ok(&[
        "asset",
        "add",
        "--config",
        pair.high_s(),
        name,
        "--private",
        private.to_str().unwrap(),
        "--mock",
        mock.to_str().unwrap(),
    ]);
}

fn medium(pair: &Pair, name: &str) -> PathBuf {
    let dir = pair.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn parts_cross_on_media_and_a_missing_or_foreign_part_is_named() {
    let pair = Pair::create();
    add_asset(&pair, "big.bin", 3 * 1024 * 1024);
    let out = pair.ok(&[
        "export",
        "--config",
        pair.high_s(),
        "--max-part-size",
        "1MiB",
    ]);
    let parts = lines(&out);
    assert!(parts.len() >= 3, "{out}");
    assert!(
        parts.iter().all(|p| p.to_str().unwrap().contains(".part-")),
        "{out}"
    );
    for p in &parts {
        assert!(std::fs::metadata(p).unwrap().len() <= 1024 * 1024);
    }
    let dvd = medium(&pair, "dvd");
    let written = pair.ok(&[
        "media",
        "write",
        "--config",
        pair.high_s(),
        dvd.to_str().unwrap(),
    ]);
    assert!(
        written.contains(&format!("{} file(s) written", parts.len()))
            && written.contains("verified"),
        "{written}"
    );
    let outbox = pair.side_dir(&pair.high).join("outbox");
    assert!(
        std::fs::read_dir(&outbox)
            .unwrap()
            .filter_map(|e| e.ok())
            .all(|e| e.file_name() == "sent"),
        "written files leave the outbox"
    );
    let again = pair.ok(&[
        "media",
        "write",
        "--config",
        pair.high_s(),
        dvd.to_str().unwrap(),
    ]);
    assert!(again.contains("nothing in"), "{again}");

    // One part stays behind: the read names it and imports nothing.
    let second = std::fs::read_dir(&dvd)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_str().unwrap().contains(".part-2-of-"))
        .unwrap();
    let aside = pair.dir.path().join("aside.part");
    std::fs::rename(&second, &aside).unwrap();
    let (_, err) = pair.fails(
        1,
        &[
            "media",
            "read",
            "--config",
            pair.low_s(),
            dvd.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("error: ") && err.contains("part 2 of") && err.contains("missing"),
        "{err}"
    );
    let out = pair.ok(&["import", "--config", pair.low_s()]);
    assert!(out.contains("no bundles in"), "{out}");
    std::fs::rename(&aside, &second).unwrap();

    // A part of another side's bundle is named as foreign.
    let other = Pair::create();
    add_asset(&other, "x.bin", 2 * 1024 * 1024);
    let foreign = lines(&other.ok(&[
        "export",
        "--config",
        other.high_s(),
        "--max-part-size",
        "1MiB",
    ]));
    let stray = dvd.join("stray.part-1-of-9");
    std::fs::copy(&foreign[0], &stray).unwrap();
    let (_, err) = pair.fails(
        1,
        &[
            "media",
            "read",
            "--config",
            pair.low_s(),
            dvd.to_str().unwrap(),
        ],
    );
    assert!(err.contains("stray.part-1-of-9"), "{err}");
    std::fs::remove_file(&stray).unwrap();

    // The complete set joins into the inbox and imports.
    let out = pair.ok(&[
        "media",
        "read",
        "--config",
        pair.low_s(),
        dvd.to_str().unwrap(),
    ]);
    assert!(
        out.contains(&format!("(joined from {} parts)", parts.len())),
        "{out}"
    );
    let imported = pair.ok(&["import", "--config", pair.low_s()]);
    assert!(imported.contains("catalog of 1 asset"), "{imported}");
    let empty = medium(&pair, "empty");
    let out = pair.ok(&[
        "media",
        "read",
        "--config",
        pair.low_s(),
        empty.to_str().unwrap(),
    ]);
    assert!(out.contains("no bundles or parts"), "{out}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn keys_rotate_in_band_and_the_retired_key_is_refused_afterwards() {
    let pair = Pair::create();
    add_asset(&pair, "a.csv", 100);
    pair.carry(&pair.high, &pair.low).unwrap();
    let high_dir = pair.side_dir(&pair.high);
    let old_keys = pair.dir.path().join("old-high-keys");
    copy_dir(&high_dir.join("keys"), &old_keys);
    let old_public = std::fs::read_to_string(high_dir.join("public.txt")).unwrap();

    // The low side, not yet aware, encrypts an acknowledgement to the high side's old key.
    let ack = pair.export(&pair.low).unwrap();

    let out = pair.ok(&["keys", "rotate", "--config", pair.high_s()]);
    let rotation = lines(&out).into_iter().next().expect("the rotation bundle");
    assert!(out.contains("keys rotated"), "{out}");
    assert_ne!(
        std::fs::read_to_string(high_dir.join("public.txt")).unwrap(),
        old_public
    );

    // The high side still reads what was encrypted to its retired key.
    let imported = pair.ok(&["import", "--config", pair.high_s(), ack.to_str().unwrap()]);
    assert!(imported.contains("acknowledgement"), "{imported}");

    let imported = pair.ok(&[
        "import",
        "--config",
        pair.low_s(),
        rotation.to_str().unwrap(),
    ]);
    assert!(imported.contains("key rotation"), "{imported}");
    let pinned = std::fs::read_to_string(pair.side_dir(&pair.low).join("trust/peer.txt")).unwrap();
    assert_eq!(
        ferry_bundle::PublicIdentity::parse(&pinned).unwrap(),
        ferry_bundle::PublicIdentity::parse(
            &std::fs::read_to_string(high_dir.join("public.txt")).unwrap()
        )
        .unwrap()
    );

    // Bundles signed with the new key flow both ways.
    add_asset(&pair, "b.csv", 100);
    let imported = pair.carry(&pair.high, &pair.low).unwrap();
    assert!(imported.contains("catalog of 2 asset"), "{imported}");
    pair.carry(&pair.low, &pair.high).unwrap();

    // A bundle signed by the retired key is refused as such.
    let forged = Forge::new(&pair, &old_keys).ack_bundle("forged.bundle", 9);
    let (_, err) = pair.fails(
        1,
        &["import", "--config", pair.low_s(), forged.to_str().unwrap()],
    );
    assert!(err.contains("(retired_key)"), "{err}");
    assert_reason(
        &quarantined(&pair.side_dir(&pair.low), &forged),
        "retired_key",
    );
}
