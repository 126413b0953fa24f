//! Removable media, bundle parts and key rotation.

use std::path::{Path, PathBuf};

use ferry_bundle::{PublicIdentity, SideKeys};
use ferry_core::Side;
use ferry_transfer::media::{self, NoProgress};
use ferry_transfer::{export, import, rotation};

use crate::harness::{accepted, assert_refused, Forge, Sides};

const MIB: u64 = 1024 * 1024;

/// Incompressible-looking content, so that a bundle is as large as the mock it carries.
fn noise(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect()
}

fn medium(sides: &Sides, name: &str) -> PathBuf {
    let dir = sides.dir.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Exports the high side's pending work split into parts of at most 1 MiB; returns the parts in the outbox.
fn export_in_parts(sides: &mut Sides) -> Vec<PathBuf> {
    let exported = export::export(&mut sides.high).unwrap().expect("a bundle");
    media::split_in_outbox(&sides.high, &exported.path, MIB).unwrap()
}

#[test]
fn parts_cross_on_media_and_a_missing_or_foreign_part_is_named() {
    let mut sides = Sides::create();
    sides.add_asset("big.bin", &noise(3 * MIB as usize));
    let parts = export_in_parts(&mut sides);
    assert!(parts.len() >= 3, "{parts:?}");
    assert!(
        parts.iter().all(|p| p.to_str().unwrap().contains(".part-")),
        "{parts:?}"
    );
    for p in &parts {
        assert!(std::fs::metadata(p).unwrap().len() <= MIB);
    }
    let outbox = sides.high.layout.outbox();
    assert!(
        names(&outbox)
            .iter()
            .all(|n| n.contains(".part-") || n == "sent"),
        "the whole bundle is replaced by its parts: {:?}",
        names(&outbox)
    );
    let dvd = medium(&sides, "dvd");
    let written = media::write_medium(&sides.high, &dvd, &mut NoProgress).unwrap();
    assert_eq!(written.len(), parts.len());
    for (part, copy) in parts.iter().zip(&written) {
        assert_eq!(copy.parent(), Some(dvd.as_path()));
        assert_eq!(part.file_name(), copy.file_name());
    }
    assert_eq!(names(&outbox), ["sent"], "written files leave the outbox");
    assert_eq!(names(&sides.high.layout.sent_dir()).len(), parts.len());

    // One part stays behind: the read names it and joins nothing.
    let second = written
        .iter()
        .find(|p| p.to_str().unwrap().contains(".part-2-of-"))
        .unwrap()
        .clone();
    let aside = sides.dir.path().join("aside.part");
    std::fs::rename(&second, &aside).unwrap();
    let read = media::read_medium(&sides.low, &dvd, &mut NoProgress).unwrap();
    assert!(read.copied.is_empty() && read.joined.is_empty(), "{read:?}");
    assert_eq!(read.problems.len(), 1, "{read:?}");
    assert!(
        read.problems[0].contains("part 2 of") && read.problems[0].contains("missing"),
        "{read:?}"
    );
    assert!(import::inbox_files(&sides.low, false).unwrap().is_empty());
    std::fs::rename(&aside, &second).unwrap();

    // A part of another side's bundle is named as foreign.
    let mut other = Sides::create();
    other.add_asset("x.bin", &noise(2 * MIB as usize));
    let foreign = export_in_parts(&mut other);
    let stray = dvd.join("stray.part-1-of-9");
    std::fs::copy(&foreign[0], &stray).unwrap();
    let read = media::read_medium(&sides.low, &dvd, &mut NoProgress).unwrap();
    assert!(
        read.problems
            .iter()
            .any(|p| p.contains("stray.part-1-of-9")),
        "{read:?}"
    );
    // The complete set next to it still joins (its inbox copy is removed again for the clean read below).
    assert_eq!(read.joined.len(), 1, "{read:?}");
    std::fs::remove_file(&read.joined[0].0).unwrap();
    std::fs::remove_file(&stray).unwrap();

    // The complete set joins into the inbox and imports.
    let read = media::read_medium(&sides.low, &dvd, &mut NoProgress).unwrap();
    assert!(read.problems.is_empty(), "{read:?}");
    assert_eq!(read.joined.len(), 1, "{read:?}");
    assert_eq!(read.joined[0].1 as usize, parts.len());
    let files = import::inbox_files(&sides.low, false).unwrap();
    assert_eq!(files, [read.joined[0].0.clone()]);
    let mut results = import::import_files(&mut sides.low, &files, Default::default()).unwrap();
    let summary = accepted(results.pop().unwrap().1);
    assert!(summary.contains("catalog of 1 asset"), "{summary}");
}

#[test]
fn whole_bundles_cross_on_media_verified() {
    let mut sides = Sides::create();
    sides.add_asset("small.csv", b"id,text,source\n");
    let exported = export::export(&mut sides.high).unwrap().unwrap();
    // A bundle that fits stays whole.
    assert_eq!(
        media::split_in_outbox(&sides.high, &exported.path, MIB).unwrap(),
        std::slice::from_ref(&exported.path)
    );
    let usb = medium(&sides, "usb");
    let written = media::write_medium(&sides.high, &usb, &mut NoProgress).unwrap();
    assert_eq!(written, [usb.join(exported.path.file_name().unwrap())]);
    // Nothing left to write the second time.
    assert!(media::write_medium(&sides.high, &usb, &mut NoProgress)
        .unwrap()
        .is_empty());
    let read = media::read_medium(&sides.low, &usb, &mut NoProgress).unwrap();
    assert_eq!(read.copied.len(), 1, "{read:?}");
    assert!(
        read.joined.is_empty() && read.problems.is_empty(),
        "{read:?}"
    );
    let files = import::inbox_files(&sides.low, false).unwrap();
    let mut results = import::import_files(&mut sides.low, &files, Default::default()).unwrap();
    assert!(accepted(results.pop().unwrap().1).contains("catalog of 1 asset"));
    // A medium that is not a directory is named.
    let err = media::write_medium(&sides.high, &usb.join("nope"), &mut NoProgress).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
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

fn public_of(file: &Path) -> PublicIdentity {
    PublicIdentity::parse(&std::fs::read_to_string(file).unwrap()).unwrap()
}

#[test]
fn keys_rotate_in_band_and_the_retired_key_is_refused_afterwards() {
    let mut sides = Sides::create();
    sides.add_asset("a.csv", &noise(100));
    sides.carry(Side::High, Side::Low).unwrap();
    let old_keys = sides.dir.path().join("old-high-keys");
    copy_dir(&sides.high.layout.keys_dir(), &old_keys);
    let old_public = std::fs::read_to_string(sides.high.layout.public_file()).unwrap();

    // The low side, not yet aware, encrypts an acknowledgement to the high side's old key.
    let ack = sides.export(Side::Low).unwrap();

    let prepared = rotation::prepare(&sides.high).unwrap();
    assert_eq!(prepared.old, public_of(&sides.high.layout.public_file()));
    assert!(
        rotation::prepare(&sides.high).is_err(),
        "one rotation waits for its bundle at a time"
    );
    let exported = export::export(&mut sides.high)
        .unwrap()
        .expect("the rotation bundle");
    assert_eq!(exported.rotated_to.as_ref(), Some(&prepared.new));
    let rotation_bundle = sides.transit(&exported.path);
    assert_ne!(
        std::fs::read_to_string(sides.high.layout.public_file()).unwrap(),
        old_public
    );
    assert_eq!(public_of(&sides.high.layout.public_file()), prepared.new);
    assert!(!sides.high.layout.next_keys_dir().exists());

    // The high side still reads what was encrypted to its retired key.
    let summary = accepted(sides.import(Side::High, &ack));
    assert!(summary.contains("acknowledgement"), "{summary}");

    let summary = accepted(sides.import(Side::Low, &rotation_bundle));
    assert!(summary.contains("key rotation"), "{summary}");
    assert_eq!(
        public_of(&sides.low.layout.peer_file()),
        public_of(&sides.high.layout.public_file())
    );

    // Bundles signed with the new key flow both ways.
    sides.add_asset("b.csv", &noise(100));
    let summary = sides.carry(Side::High, Side::Low).unwrap();
    assert!(summary.contains("catalog of 2 asset"), "{summary}");
    sides.carry(Side::Low, Side::High).unwrap();

    // A bundle signed by the retired key is refused as such.
    let old = SideKeys::load(&old_keys).unwrap();
    assert_eq!(old.public(), prepared.old);
    let forge = Forge::with_keys(&sides, old);
    let forged = forge.bundle("forged.bundle", forge.params(9), vec![], &[]);
    assert_refused(sides.import(Side::Low, &forged), "retired_key");
}
