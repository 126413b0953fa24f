//! Bundles that must open: round trips, inspect, sinks and the policy hook.

use super::*;

#[test]
fn round_trip_bytes_and_files() {
    let p = pair();
    let dir = tempfile::tempdir().unwrap();
    let big = noise(5 * 1024 * 1024 + 123, 1);
    let big_path = dir.path().join("big.bin");
    fs::write(&big_path, &big).unwrap();
    let small_path = dir.path().join("small.csv");
    fs::write(&small_path, b"id,text,source\n1,Bacillus subtilis,web\n").unwrap();
    let empty_path = dir.path().join("empty");
    fs::write(&empty_path, b"").unwrap();

    let entries = [
        Entry {
            path: "results/big.bin".into(),
            source: EntrySource::File(&big_path),
        },
        Entry {
            path: "empty-bytes".into(),
            source: EntrySource::Bytes(b""),
        },
        Entry {
            path: "data/small.csv".into(),
            source: EntrySource::File(&small_path),
        },
        Entry {
            path: "data/empty-file".into(),
            source: EntrySource::File(&empty_path),
        },
        Entry {
            path: "note.txt".into(),
            source: EntrySource::Bytes(b"hello across the gap"),
        },
    ];
    let params = params();
    let bundle_path = dir.path().join("out.ferry");
    let mut file = fs::File::create(&bundle_path).unwrap();
    let written = write_bundle(&mut file, &p.low, &p.high.public(), &params, &entries).unwrap();
    file.sync_all().unwrap();
    drop(file);

    let bytes = fs::read(&bundle_path).unwrap();
    let table_len = written.header.table_len().unwrap() as usize;
    assert_eq!(
        bytes.len() as u64,
        1024 + table_len as u64 + written.header.payload_len
    );
    assert_eq!(Some(bytes.len() as u64), written.header.bundle_len());
    assert_eq!(
        written.bundle_hash,
        <[u8; 32]>::from(Sha256::digest(&bytes[..1024]))
    );
    let table = &bytes[1024..1024 + table_len];
    assert_eq!(
        written.header.table_sha256,
        <[u8; 32]>::from(Sha256::digest(table))
    );
    // Each table entry is the SHA-256 of its segment of the payload.
    let segments = segment_ranges(&bytes);
    assert_eq!(segments.len() * 32, table_len);
    assert!(segments.len() > 6, "5 MiB make several segments");
    for (i, range) in segments.iter().enumerate() {
        assert_eq!(
            &table[i * 32..i * 32 + 32],
            &Sha256::digest(&bytes[range.clone()])[..]
        );
    }
    assert_eq!(segments.last().unwrap().end, bytes.len());
    let h = &written.header;
    assert_eq!(
        (h.version, h.bundle_id, h.channel, h.seq, h.prev_hash),
        (
            FORMAT_VERSION,
            params.bundle_id,
            Channel::LowToHigh,
            7,
            [3; 32]
        )
    );
    assert_eq!(
        (h.created_at, h.expires_at),
        (params.created_at, params.expires_at)
    );
    assert_eq!(h.signer, p.low.public().signing);

    let mut sink = MemorySink::new(64 << 20);
    let opened = open(
        fs::File::open(&bundle_path).unwrap(),
        OpenOptions::new(p.low.public().signing, &[&p.high], &mut sink),
    )
    .unwrap();
    assert_eq!(opened.header, written.header);
    assert_eq!(opened.bundle_hash, written.bundle_hash);
    let expected: Vec<(String, Vec<u8>)> = vec![
        ("results/big.bin".into(), big.clone()),
        ("empty-bytes".into(), vec![]),
        ("data/small.csv".into(), fs::read(&small_path).unwrap()),
        ("data/empty-file".into(), vec![]),
        ("note.txt".into(), b"hello across the gap".to_vec()),
    ];
    assert_eq!(sink.entries, expected);
    let listed: Vec<ManifestEntry> = expected
        .iter()
        .map(|(path, data)| manifest_entry(path, data))
        .collect();
    assert_eq!(opened.entries, listed);

    let (verified, hash) = verify_bundle(
        fs::File::open(&bundle_path).unwrap(),
        &p.low.public().signing,
    )
    .unwrap();
    assert_eq!(
        (verified, hash),
        (written.header.clone(), written.bundle_hash)
    );
}

#[test]
fn round_trip_with_no_entries_and_at_an_offset() {
    // A bundle need not start at offset 0: both writer and readers use the current position.
    let p = pair();
    let mut out = Cursor::new(b"prefix".to_vec());
    out.seek(SeekFrom::End(0)).unwrap();
    let written = write_bundle(&mut out, &p.low, &p.high.public(), &params(), &[]).unwrap();
    let mut r = Cursor::new(out.into_inner());
    r.seek(SeekFrom::Start(6)).unwrap();
    let mut sink = MemorySink::new(0);
    let opened = open(
        &mut r,
        OpenOptions::new(p.low.public().signing, &[&p.high], &mut sink),
    )
    .unwrap();
    assert_eq!(opened.header, written.header);
    assert!(opened.entries.is_empty() && sink.entries.is_empty());
}

#[test]
fn inspect_needs_no_keys() {
    let p = pair();
    let (bytes, written) = write_vec(
        &p,
        &params(),
        &[Entry {
            path: "a".into(),
            source: EntrySource::Bytes(b"x"),
        }],
    );
    assert_eq!(inspect(&bytes[..]).unwrap(), written.header);
    // Inspect does not authenticate, but it still refuses what is not a whole header block.
    assert_eq!(inspect(&bytes[..600]).unwrap_err().kind(), "truncated");
    assert_eq!(
        inspect(&b"PK\x03\x04zip"[..]).unwrap_err().kind(),
        "not_a_bundle"
    );
}

#[test]
fn memory_sink_cap_is_enforced() {
    let p = pair();
    let data = vec![9u8; 1000];
    let (bytes, _) = write_vec(
        &p,
        &params(),
        &[Entry {
            path: "a".into(),
            source: EntrySource::Bytes(&data),
        }],
    );
    let mut sink = MemorySink::new(999);
    let err = open(
        Cursor::new(&bytes),
        OpenOptions::new(p.low.public().signing, &[&p.high], &mut sink),
    )
    .unwrap_err();
    assert_eq!(err.kind(), "total_too_large");
    assert!(sink.entries.is_empty());
}

#[test]
fn policy_check_runs_before_decryption() {
    let p = pair();
    let bytes = small_bundle(&p);
    let mut sink = CountingSink::default();
    let err = open(
        Cursor::new(&bytes),
        OpenOptions::new(p.low.public().signing, &[&p.high], &mut sink).header_check(
            |header, hash| {
                assert_eq!(hash, &<[u8; 32]>::from(Sha256::digest(&bytes[..1024])));
                Err(BundleError::Malformed(format!(
                    "replay of sequence {}",
                    header.seq
                )))
            },
        ),
    )
    .unwrap_err();
    assert!(err.to_string().contains("replay of sequence 7"), "{err}");
    assert_eq!(sink.calls, 0);

    let mut sink = MemorySink::new(1 << 20);
    let opened = open(
        Cursor::new(&bytes),
        OpenOptions::new(p.low.public().signing, &[&p.high], &mut sink)
            .header_check(|_, _| Ok::<(), BundleError>(())),
    )
    .unwrap();
    assert_eq!(opened.entries.len(), 2);
    assert_eq!(sink.entries.len(), 2);
}

#[test]
fn write_bundle_file_places_every_segment_where_the_table_says_even_after_a_prefix() {
    use std::io::{Read, Write};
    let p = pair();
    let dir = tempfile::tempdir().unwrap();
    let big = noise(6 * 1024 * 1024 + 77, 9);
    let path = dir.path().join("out.ferry");
    let mut file = fs::File::create(&path).unwrap();
    file.write_all(b"prefix!").unwrap();
    let entries = [
        Entry {
            path: "big.bin".into(),
            source: EntrySource::Bytes(&big),
        },
        Entry {
            path: "small".into(),
            source: EntrySource::Bytes(b"tail"),
        },
    ];
    let written =
        write_bundle_file(&mut file, &p.low, &p.high.public(), &params(), &entries).unwrap();
    let bundle_len = written.header.bundle_len().unwrap();
    assert_eq!(file.stream_position().unwrap(), 7 + bundle_len);
    drop(file);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, 7 + bundle_len);
    let bundle = &bytes[7..];
    let table_len = written.header.table_len().unwrap() as usize;
    let segments = segment_ranges(bundle);
    assert!(segments.len() > 6, "6 MiB make several segments");
    for (i, range) in segments.iter().enumerate() {
        assert_eq!(
            &bundle[1024 + i * 32..1024 + i * 32 + 32],
            &Sha256::digest(&bundle[range.clone()])[..]
        );
    }
    assert_eq!(segments.len() * 32, table_len);
    let mut reader = fs::File::open(&path).unwrap();
    reader.read_exact(&mut [0u8; 7]).unwrap();
    let mut sink = MemorySink::new(64 << 20);
    open(
        reader,
        OpenOptions::new(p.low.public().signing, &[&p.high], &mut sink),
    )
    .unwrap();
    assert_eq!(
        sink.entries,
        vec![("big.bin".into(), big), ("small".into(), b"tail".to_vec())]
    );
}
