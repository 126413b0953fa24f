//! The in-crate age v1 format against the `age` crate, an independent implementation: what
//! one writes the other reads, at sizes around the STREAM chunk boundaries.

use std::io::{Read, Write};

use crate::age_v1::{
    self, chunk_count, new_header, open_header, PayloadKey, CHUNK_LEN, ENC_CHUNK_LEN,
};
use crate::keys::recipient_point;

use super::*;

/// Plaintext lengths around the 64 KiB chunk boundary, and a few chunks.
const SIZES: &[usize] = &[
    0,
    1,
    CHUNK_LEN - 1,
    CHUNK_LEN,
    CHUNK_LEN + 1,
    3 * CHUNK_LEN + 5,
];

/// Our STREAM encryption of `plain`, chunk by chunk.
fn seal_stream(key: &PayloadKey, plain: &[u8]) -> Vec<u8> {
    let chunks = chunk_count(plain.len() as u64);
    let mut out = Vec::new();
    for i in 0..chunks {
        let start = i as usize * CHUNK_LEN;
        let mut chunk = plain[start..(start + CHUNK_LEN).min(plain.len())].to_vec();
        let tag = key.seal_chunk(i, i + 1 == chunks, &mut chunk);
        out.extend_from_slice(&chunk);
        out.extend_from_slice(&tag);
    }
    out
}

/// Our STREAM decryption of `stream` (every chunk and tag after the nonce).
fn open_stream(key: &PayloadKey, stream: &[u8]) -> Result<Vec<u8>, BundleError> {
    let chunks = stream.len().div_ceil(ENC_CHUNK_LEN);
    let mut out = Vec::new();
    for (i, chunk) in stream.chunks(ENC_CHUNK_LEN).enumerate() {
        let mut chunk = chunk.to_vec();
        let n = key.open_chunk(i as u64, i + 1 == chunks, &mut chunk)?;
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(out)
}

fn age_crate_encrypt(recipient: &str, plain: &[u8]) -> Vec<u8> {
    let recipient: age::x25519::Recipient = recipient.parse().unwrap();
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
            .unwrap();
    let mut out = Vec::new();
    let mut writer = encryptor.wrap_output(&mut out).unwrap();
    writer.write_all(plain).unwrap();
    writer.finish().unwrap();
    out
}

/// The length of an age file's header and nonce: up to the MAC line's end, plus 16.
fn stream_offset(file: &[u8]) -> usize {
    let mac = file.windows(5).position(|w| w == b"\n--- ").unwrap() + 1;
    mac + file[mac..].iter().position(|&b| b == b'\n').unwrap() + 1 + 16
}

#[test]
fn our_age_files_decrypt_with_the_age_crate() {
    let keys = SideKeys::generate();
    let recipient = recipient_point(&keys.public().recipient).unwrap();
    for &size in SIZES {
        let plain = noise(size, size as u64 + 1);
        let (mut file, key) = new_header(&recipient).unwrap();
        assert_eq!(file.len(), 184, "one X25519 stanza, MAC line and nonce");
        let stream = seal_stream(&key, &plain);
        assert_eq!(age_v1::plain_len(stream.len() as u64), Some(size as u64));
        file.extend_from_slice(&stream);

        let decryptor = age::Decryptor::new(&file[..]).unwrap();
        let mut back = Vec::new();
        decryptor
            .decrypt(std::iter::once(&keys.age as &dyn age::Identity))
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == plain, "size {size}: the age crate read other bytes");
    }
}

#[test]
fn age_crate_files_open_with_ours() {
    let stranger = SideKeys::generate();
    let keys = SideKeys::generate();
    // Tried together, in order; only the second one fits.
    let identities = [
        stranger.x25519_identity().unwrap(),
        keys.x25519_identity().unwrap(),
    ];
    for &size in SIZES {
        let plain = noise(size, size as u64 + 7);
        let file = age_crate_encrypt(&keys.public().recipient, &plain);
        let at = stream_offset(&file);
        let key = open_header(&file[..at], &identities).unwrap();
        assert!(
            open_stream(&key, &file[at..]).unwrap() == plain,
            "size {size}"
        );
        // Its header carries a grease stanza besides ours, which is ignored.
        let header = String::from_utf8_lossy(&file[..at - 16]).into_owned();
        assert_eq!(header.matches("\n-> ").count(), 2, "{header}");
    }
}

#[test]
fn headers_not_for_us_or_altered_are_refused() {
    let keys = SideKeys::generate();
    let ours = [keys.x25519_identity().unwrap()];
    let file = age_crate_encrypt(&keys.public().recipient, b"secret");
    let at = stream_offset(&file);
    let header = &file[..at];
    open_header(header, &ours).unwrap();

    let stranger = [SideKeys::generate().x25519_identity().unwrap()];
    let kind = |bytes: &[u8], ids: &[age_v1::X25519Identity]| {
        open_header(bytes, ids).map(|_| ()).unwrap_err().kind()
    };
    assert_eq!(kind(header, &stranger), "not_for_us");
    assert_eq!(kind(header, &[]), "not_for_us");

    // A character of the MAC, of the X25519 share or of the version line changed.
    let mac = header.windows(4).position(|w| w == b"--- ").unwrap() + 4;
    let share = header.windows(10).position(|w| w == b"-> X25519 ").unwrap() + 10;
    for (at, why) in [(mac + 3, "mac"), (share + 3, "share"), (5, "version")] {
        let mut bad = header.to_vec();
        bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
        let got = kind(&bad, &ours);
        // Another share unwraps nothing: the file is then simply not for us.
        let expected = if why == "share" {
            "not_for_us"
        } else {
            "decrypt"
        };
        assert_eq!(got, expected, "{why}");
    }
    // Cut short, one byte too long, or a non-canonical base64 ending.
    assert_eq!(kind(&header[..header.len() - 1], &ours), "decrypt");
    assert_eq!(kind(&[header, b"x"].concat(), &ours), "decrypt");
    let mut bad = header.to_vec();
    bad[mac + 42] = b'B';
    if bad != header {
        assert_eq!(kind(&bad, &ours), "decrypt");
    }
    // A low-order ephemeral share (all zeros) is refused, not used.
    let zeros = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let mut bad = header.to_vec();
    bad[share..share + 43].copy_from_slice(zeros.as_bytes());
    assert_eq!(kind(&bad, &ours), "decrypt");
}

#[test]
fn chunks_only_open_at_their_own_position() {
    let keys = SideKeys::generate();
    let recipient = recipient_point(&keys.public().recipient).unwrap();
    let (_, key) = new_header(&recipient).unwrap();
    let plain = noise(3 * CHUNK_LEN, 3);
    let stream = seal_stream(&key, &plain);
    let chunk = |i: usize| stream[i * ENC_CHUNK_LEN..(i + 1) * ENC_CHUNK_LEN].to_vec();
    // Chunk 1 opens as chunk 1 that is not the last, and as nothing else: a reordered,
    // truncated (last flag) or replayed chunk fails.
    assert_eq!(key.open_chunk(1, false, &mut chunk(1)).unwrap(), CHUNK_LEN);
    assert_eq!(
        key.open_chunk(0, false, &mut chunk(1)).unwrap_err().kind(),
        "decrypt"
    );
    assert_eq!(
        key.open_chunk(1, true, &mut chunk(1)).unwrap_err().kind(),
        "decrypt"
    );
    assert_eq!(key.open_chunk(2, true, &mut chunk(2)).unwrap(), CHUNK_LEN);
    assert_eq!(
        key.open_chunk(2, false, &mut chunk(2)).unwrap_err().kind(),
        "decrypt"
    );
    let mut flipped = chunk(0);
    flipped[100] ^= 1;
    assert_eq!(
        key.open_chunk(0, false, &mut flipped).unwrap_err().kind(),
        "decrypt"
    );
}

#[test]
fn stream_lengths() {
    let tag = 16u64;
    let full = ENC_CHUNK_LEN as u64;
    assert_eq!(age_v1::plain_len(tag), Some(0));
    assert_eq!(age_v1::plain_len(tag + 1), Some(1));
    assert_eq!(age_v1::plain_len(full), Some(CHUNK_LEN as u64));
    assert_eq!(
        age_v1::plain_len(full + tag + 1),
        Some(CHUNK_LEN as u64 + 1)
    );
    // No chunk, a chunk shorter than its tag, an empty last chunk after a full one.
    for impossible in [0, 1, tag - 1, full + 1, full + tag - 1, full + tag] {
        assert_eq!(age_v1::plain_len(impossible), None, "{impossible}");
    }
    assert_eq!(chunk_count(0), 1);
    assert_eq!(chunk_count(CHUNK_LEN as u64), 1);
    assert_eq!(chunk_count(CHUNK_LEN as u64 + 1), 2);
}
