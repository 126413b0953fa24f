//! The payload's segments: round trips at chunk and segment boundaries, every segment
//! verified before any of its plaintext reaches the sink, reordering, truncation, and
//! bundles of format version 1.

use std::io::Read;

use crate::age_v1::CHUNK_LEN;
use crate::format::SEGMENT_CHUNKS;

use super::*;

/// Plaintext bytes in a segment.
const SEGMENT_PLAIN: usize = SEGMENT_CHUNKS as usize * CHUNK_LEN;

/// Counts what reaches it, and whether it was committed or aborted.
#[derive(Default)]
struct Recorder {
    data: Vec<u8>,
    committed: bool,
    aborted: bool,
}

impl EntrySink for Recorder {
    fn begin(&mut self, _: &str, _: u64) -> Result<(), BundleError> {
        Ok(())
    }
    fn write(&mut self, chunk: &[u8]) -> Result<(), BundleError> {
        assert!(chunk.len() <= CHUNK_LEN, "a sink chunk of {}", chunk.len());
        self.data.extend_from_slice(chunk);
        Ok(())
    }
    fn end(&mut self) -> Result<(), BundleError> {
        Ok(())
    }
    fn commit(&mut self) -> Result<(), BundleError> {
        self.committed = true;
        Ok(())
    }
    fn abort(&mut self) {
        self.aborted = true;
    }
}

/// A bundle of one entry `data` at path `e` (so an entry record is 20 bytes).
fn one_entry(p: &Pair, data: &[u8]) -> Vec<u8> {
    write_vec(
        p,
        &params(),
        &[Entry {
            path: "e".into(),
            source: EntrySource::Bytes(data),
        }],
    )
    .0
}

/// Plaintext bytes before the entry's data: magic, tag, path length, `e`, length.
const BEFORE_DATA: usize = 8 + 1 + 2 + 1 + 8;

/// Opens `bytes` as the receiver, into a recorder.
fn open_recorded(p: &Pair, bytes: &[u8]) -> (Result<OpenedBundle, BundleError>, Recorder) {
    open_both(p, bytes, &Limits::default(), Recorder::default, |r| {
        (r.data.clone(), r.committed, r.aborted)
    })
}

/// The plaintext the age crate decrypts from the bundle's payload.
fn age_crate_plaintext(p: &Pair, bytes: &[u8]) -> Vec<u8> {
    let decryptor = age::Decryptor::new(&bytes[payload_offset(bytes)..]).unwrap();
    let mut plain = Vec::new();
    decryptor
        .decrypt(std::iter::once(&p.high.age as &dyn age::Identity))
        .unwrap()
        .read_to_end(&mut plain)
        .unwrap();
    plain
}

#[test]
fn round_trip_at_chunk_and_segment_boundaries() {
    let p = pair();
    // The entry's length around the chunk boundary, then the plaintext's length exactly at
    // one chunk, one segment, and one segment plus one byte; then several segments.
    let overhead = Layout::of(&inspect(&one_entry(&p, b"")[..]).unwrap())
        .unwrap()
        .plain_len as usize;
    let mut sizes = vec![0, 1, CHUNK_LEN - 1, CHUNK_LEN, CHUNK_LEN + 1];
    for plain in [CHUNK_LEN, SEGMENT_PLAIN, SEGMENT_PLAIN + 1] {
        // The entry's length takes two more bytes in the manifest (a 3-byte varint).
        sizes.push(plain - overhead - 2);
    }
    sizes.push(5 * SEGMENT_PLAIN + 3);
    for (i, &size) in sizes.iter().enumerate() {
        let data = noise(size, i as u64 + 1);
        let bytes = one_entry(&p, &data);
        let layout = Layout::of(&inspect(&bytes[..]).unwrap()).unwrap();
        let (opened, sink) = open_recorded(&p, &bytes);
        let opened = opened.unwrap_or_else(|e| panic!("size {size}: {e}"));
        assert!(sink.committed && !sink.aborted);
        assert!(sink.data == data, "size {size}: other bytes came out");
        assert_eq!(opened.entries[0].len, size as u64);
        // A standard age file: the age crate reads the same plaintext.
        let plain = age_crate_plaintext(&p, &bytes);
        assert_eq!(plain.len() as u64, layout.plain_len);
        assert!(plain[BEFORE_DATA..BEFORE_DATA + size] == data[..]);
        if (5..8).contains(&i) {
            let expected = [CHUNK_LEN, SEGMENT_PLAIN, SEGMENT_PLAIN + 1][i - 5];
            assert_eq!(layout.plain_len as usize, expected, "size {size}");
        }
    }
}

#[test]
fn a_tampered_segment_is_refused_before_any_of_its_plaintext_reaches_the_sink() {
    let p = pair();
    let data = noise(5 * SEGMENT_PLAIN, 9);
    let bytes = one_entry(&p, &data);
    let segments = segment_ranges(&bytes);
    assert_eq!(segments.len(), 7, "segment 0 and six of chunks");
    for tampered in [1, 3, 6] {
        let mut bad = bytes.clone();
        let range = &segments[tampered];
        bad[range.start + range.len() / 2] ^= 0x04;
        let (result, sink) = open_recorded(&p, &bad);
        let err = result.unwrap_err();
        assert!(
            matches!(err, BundleError::PayloadHashMismatch { segment } if segment == tampered as u64),
            "{err}"
        );
        assert!(
            err.to_string().contains(&format!("segment {tampered}")),
            "{err}"
        );
        // Exactly the plaintext of the segments before it, and none of its own.
        let before = (tampered - 1) * SEGMENT_PLAIN;
        assert_eq!(sink.data.len(), before.saturating_sub(BEFORE_DATA));
        assert!(sink.data[..] == data[..sink.data.len()]);
        assert!(sink.aborted && !sink.committed);
    }
}

#[test]
fn reordered_segments_are_refused() {
    let p = pair();
    let data = noise(4 * SEGMENT_PLAIN, 4);
    let bytes = one_entry(&p, &data);
    let segments = segment_ranges(&bytes);
    let (two, three) = (segments[2].clone(), segments[3].clone());
    let mut swapped = bytes.clone();
    swapped[two.clone()].copy_from_slice(&bytes[three.clone()]);
    swapped[three.clone()].copy_from_slice(&bytes[two.clone()]);
    let (result, sink) = open_recorded(&p, &swapped);
    assert_eq!(result.unwrap_err().kind(), "payload_hash_mismatch");
    assert!(sink.data.len() < SEGMENT_PLAIN && !sink.committed);

    // Even with the table swapped too and signed again by the sender, the STREAM nonces
    // (each chunk's position) refuse it: verified, but it does not decrypt.
    let header = inspect(&bytes[..]).unwrap();
    let payload = &swapped[payload_offset(&swapped)..];
    let resealed = seal_payload(&p.low, &header, payload);
    let (result, sink) = open_recorded(&p, &resealed);
    assert_eq!(result.unwrap_err().kind(), "decrypt");
    assert!(!sink.committed);
    verify_bundle(Cursor::new(&resealed), &p.low.public().signing).unwrap();
}

#[test]
fn truncated_at_or_inside_any_segment_is_refused() {
    let p = pair();
    let bytes = one_entry(&p, &noise(2 * SEGMENT_PLAIN + 10, 2));
    let mut cuts = vec![HEADER_BLOCK_LEN, HEADER_BLOCK_LEN + 1];
    for range in segment_ranges(&bytes) {
        cuts.extend([range.start, range.start + 1, range.end - 1]);
    }
    for cut in cuts {
        let (result, sink) = open_recorded(&p, &bytes[..cut]);
        assert_eq!(result.unwrap_err().kind(), "truncated", "cut at {cut}");
        assert!(!sink.committed);
        let err = verify_bundle(Cursor::new(&bytes[..cut]), &p.low.public().signing);
        assert_eq!(err.unwrap_err().kind(), "truncated", "verify, cut at {cut}");
    }
}

/// Hands out at most 7 bytes a read, as a pipe or a slow device may.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn opens_from_a_reader_that_cannot_seek_and_reads_little() {
    let p = pair();
    let data = noise(5 * SEGMENT_PLAIN + 77, 5);
    let bytes = one_entry(&p, &data);
    let mut sink = Recorder::default();
    open(
        Trickle(&bytes),
        OpenOptions::new(p.low.public().signing, &[&p.high], &mut sink),
    )
    .unwrap();
    assert!(sink.committed && sink.data == data);
    verify_bundle(Trickle(&bytes), &p.low.public().signing).unwrap();
}

#[test]
fn version_1_and_2_bundles_are_refused_naming_their_version() {
    let p = pair();
    for (found, old) in [
        (1, v1_bundle(&p.low, &p.high.public(), &params())),
        (2, v2_bundle(&p.low, &p.high.public(), &params())),
    ] {
        let (result, sink) = open_recorded(&p, &old);
        let err = result.unwrap_err();
        assert!(
            matches!(err, BundleError::OldVersion { found: f } if f == found),
            "{err}"
        );
        assert_eq!(err.kind(), "old_version");
        let text = err.to_string();
        assert!(
            text.contains(&format!("version {found} was made by an older version"))
                && text.contains("only version 3"),
            "{text}"
        );
        assert!(sink.aborted && sink.data.is_empty());
        for err in [
            verify_bundle(Cursor::new(&old), &p.low.public().signing).unwrap_err(),
            inspect(&old[..]).unwrap_err(),
        ] {
            assert_eq!(err.kind(), "old_version");
        }
    }
}

#[test]
fn huge_payloads_get_larger_segments_and_a_bounded_table() {
    let gib = 1u64 << 30;
    let small = Layout::for_plaintext(gib, 184).unwrap();
    assert_eq!(small.segment_chunks, 16);
    assert_eq!(small.table_len(), 32 * (1 + 1024));
    // 40 GiB would need 40 961 segments of 1 MiB: segments double to 2 MiB instead.
    let large = Layout::for_plaintext(40 * gib, 184).unwrap();
    assert_eq!(large.segment_chunks, 32);
    assert!(large.table_len() <= u64::from(MAX_TABLE_LEN));
    assert!(Layout::for_plaintext(600 * gib, 184).is_err());
}
