//! The age v1 file format (<https://age-encryption.org/v1>), as much of it as a bundle's
//! payload needs: an X25519 recipient stanza, the header MAC, and the STREAM payload
//! encryption, chunk by chunk.
//!
//! The `age` crate only encrypts and decrypts a file as one sequential stream. A bundle's
//! payload is encrypted and decrypted in parallel instead, on every core, and each STREAM
//! chunk is encrypted or decrypted in place in a buffer that the same thread hashes; for
//! that this module derives the payload key itself. What it writes is a standard age file,
//! which `age -d` and the `age` crate decrypt; what it reads is any age file with an
//! X25519 stanza for one of our identities (other stanzas, such as the `age` crate's
//! "grease", are ignored as the age specification requires).
//!
//! The primitives are ring's (ChaCha20-Poly1305, HKDF-SHA256, HMAC-SHA256) and
//! curve25519-dalek's X25519 (RFC 7748).

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine as _;
use curve25519_dalek::montgomery::MontgomeryPoint;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::{hkdf, hmac};
use zeroize::Zeroizing;

use crate::BundleError;

/// Plaintext bytes in every STREAM chunk but the last.
pub(crate) const CHUNK_LEN: usize = 64 * 1024;
/// Poly1305 tag after each chunk's ciphertext.
pub(crate) const TAG_LEN: usize = 16;
/// Ciphertext bytes of a full chunk.
pub(crate) const ENC_CHUNK_LEN: usize = CHUNK_LEN + TAG_LEN;
/// The random nonce between the header and the first chunk.
pub(crate) const NONCE_LEN: usize = 16;

const VERSION_LINE: &[u8] = b"age-encryption.org/v1\n";
const X25519_TAG: &str = "X25519";
const X25519_INFO: &[u8] = b"age-encryption.org/v1/X25519";
/// Base64 characters in an encoded 32-byte value (no padding).
const B64_32_LEN: usize = 43;
/// Columns of every stanza body line but the last.
const BODY_LINE_LEN: usize = 64;

/// The STREAM payload key: HKDF-SHA256(salt = nonce, ikm = file key, info = "payload").
pub(crate) struct PayloadKey(LessSafeKey);

impl PayloadKey {
    fn derive(file_key: &[u8; 16], nonce: &[u8; NONCE_LEN]) -> PayloadKey {
        let key = hkdf_sha256(nonce, file_key, b"payload");
        PayloadKey(chacha_key(&key))
    }

    /// Encrypts chunk `index` (at most [`CHUNK_LEN`] bytes) in place and returns its tag.
    pub(crate) fn seal_chunk(&self, index: u64, last: bool, chunk: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self
            .0
            .seal_in_place_separate_tag(chunk_nonce(index, last), Aad::empty(), chunk)
            .expect("a 64 KiB chunk is far below ChaCha20-Poly1305's length limit");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Decrypts chunk `index` (ciphertext and tag) in place; returns the plaintext length.
    pub(crate) fn open_chunk(
        &self,
        index: u64,
        last: bool,
        chunk: &mut [u8],
    ) -> Result<usize, BundleError> {
        self.0
            .open_in_place(chunk_nonce(index, last), Aad::empty(), chunk)
            .map(|plain| plain.len())
            .map_err(|_| {
                BundleError::Decrypt(format!(
                    "STREAM chunk {index} does not decrypt (corrupted, reordered or forged)"
                ))
            })
    }
}

/// Nonce of chunk `index`: an 11-byte big-endian counter, then 1 for the last chunk, else 0.
fn chunk_nonce(index: u64, last: bool) -> Nonce {
    let mut nonce = [0u8; 12];
    nonce[3..11].copy_from_slice(&index.to_be_bytes());
    nonce[11] = u8::from(last);
    Nonce::assume_unique_for_key(nonce)
}

/// A new age header for one X25519 recipient, followed by the payload nonce: the bytes
/// that precede the first STREAM chunk. Returns them and the payload key.
///
/// `recipient` is the recipient's X25519 public key; a low-order point is refused.
pub(crate) fn new_header(recipient: &[u8; 32]) -> Result<(Vec<u8>, PayloadKey), BundleError> {
    let file_key = random::<16>();
    let ephemeral_secret = random::<32>();
    let ephemeral = MontgomeryPoint::mul_base_clamped(*ephemeral_secret).to_bytes();
    let shared = Zeroizing::new(
        MontgomeryPoint(*recipient)
            .mul_clamped(*ephemeral_secret)
            .to_bytes(),
    );
    if shared.iter().all(|&b| b == 0) {
        return Err(BundleError::BadPublicIdentity(
            "age-recipient is a low-order X25519 point".to_owned(),
        ));
    }
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(&ephemeral);
    salt[32..].copy_from_slice(recipient);
    let wrap_key = hkdf_sha256(&salt, &shared[..], X25519_INFO);
    let mut wrapped = [0u8; 16 + TAG_LEN];
    wrapped[..16].copy_from_slice(&file_key[..]);
    let tag = chacha_key(&wrap_key)
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::empty(),
            &mut wrapped[..16],
        )
        .expect("16 bytes can be sealed");
    wrapped[16..].copy_from_slice(tag.as_ref());

    let mut header = Vec::with_capacity(256);
    header.extend_from_slice(VERSION_LINE);
    header.extend_from_slice(b"-> X25519 ");
    header.extend_from_slice(STANDARD_NO_PAD.encode(ephemeral).as_bytes());
    header.push(b'\n');
    // 32 bytes are 43 base64 characters: the body's single, final line.
    header.extend_from_slice(STANDARD_NO_PAD.encode(wrapped).as_bytes());
    header.push(b'\n');
    header.extend_from_slice(b"---");
    let mac = hmac::sign(&header_mac_key(&file_key), &header);
    header.push(b' ');
    header.extend_from_slice(STANDARD_NO_PAD.encode(mac.as_ref()).as_bytes());
    header.push(b'\n');

    let nonce = random::<NONCE_LEN>();
    header.extend_from_slice(&nonce[..]);
    Ok((header, PayloadKey::derive(&file_key, &nonce)))
}

/// An age X25519 identity: its secret scalar and its public key.
pub(crate) struct X25519Identity {
    pub(crate) secret: Zeroizing<[u8; 32]>,
    pub(crate) public: [u8; 32],
}

/// Reads an age header followed by the payload nonce (`bytes` holds exactly those, as the
/// bundle's signed `stream_offset` says), unwraps the file key with the first identity an
/// X25519 stanza is for, checks the header MAC and returns the payload key.
///
/// Errors: a malformed header, a malformed X25519 stanza or a wrong MAC →
/// [`BundleError::Decrypt`]; no stanza for any identity → [`BundleError::NotForUs`].
pub(crate) fn open_header(
    bytes: &[u8],
    identities: &[X25519Identity],
) -> Result<PayloadKey, BundleError> {
    let bad = |why: &str| BundleError::Decrypt(format!("invalid age header: {why}"));
    let rest = bytes
        .strip_prefix(VERSION_LINE)
        .ok_or_else(|| bad("it does not start with `age-encryption.org/v1`"))?;
    let mut pos = VERSION_LINE.len();
    let mut rest = rest;
    let mut file_key = None;
    let (mac_end, mac) = loop {
        let (line, after) = split_line(rest).ok_or_else(|| bad("it ends before its MAC"))?;
        if let Some(mac) = line.strip_prefix(b"--- ") {
            // The MAC covers everything up to and including the `---`.
            break (
                pos + 3,
                decode_32(mac).ok_or_else(|| bad("the MAC is not 32 bytes"))?,
            );
        }
        let stanza = line
            .strip_prefix(b"-> ")
            .ok_or_else(|| bad("a line is neither a stanza nor the MAC"))?;
        let args: Vec<&[u8]> = stanza.split(|&b| b == b' ').collect();
        if args
            .iter()
            .any(|a| a.is_empty() || !a.iter().all(|b| (33..=126).contains(b)))
        {
            return Err(bad("a stanza argument is empty or not printable ASCII"));
        }
        pos += line.len() + 1;
        rest = after;
        // The body: base64 lines of 64 columns, ended by a shorter (maybe empty) line.
        let mut body_text = Vec::new();
        loop {
            let (line, after) = split_line(rest).ok_or_else(|| bad("a stanza body ends early"))?;
            if line.len() > BODY_LINE_LEN {
                return Err(bad("a stanza body line is longer than 64 columns"));
            }
            body_text.extend_from_slice(line);
            pos += line.len() + 1;
            rest = after;
            if line.len() < BODY_LINE_LEN {
                break;
            }
        }
        let body = STANDARD_NO_PAD
            .decode(&body_text)
            .map_err(|_| bad("a stanza body is not canonical base64"))?;
        if args[0] == X25519_TAG.as_bytes() && file_key.is_none() {
            file_key = unwrap_x25519(&args[1..], &body, identities)?;
        }
    };
    let after_mac = &bytes[mac_end..];
    // " " + 43 characters + "\n", then the nonce.
    if after_mac.len() != 1 + B64_32_LEN + 1 + NONCE_LEN {
        return Err(bad(
            "it does not end with the MAC line and the 16-byte nonce where the bundle header says",
        ));
    }
    let file_key = file_key.ok_or(BundleError::NotForUs)?;
    hmac::verify(&header_mac_key(&file_key), &bytes[..mac_end], &mac)
        .map_err(|_| bad("its MAC does not verify (the header was altered)"))?;
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[bytes.len() - NONCE_LEN..]);
    Ok(PayloadKey::derive(&file_key, &nonce))
}

/// Unwraps the file key from an X25519 stanza with the first identity it is for; `None` if
/// it is for none of them.
fn unwrap_x25519(
    args: &[&[u8]],
    body: &[u8],
    identities: &[X25519Identity],
) -> Result<Option<Zeroizing<[u8; 16]>>, BundleError> {
    let bad = || BundleError::Decrypt("invalid age header: a malformed X25519 stanza".to_owned());
    let [share] = args else { return Err(bad()) };
    let ephemeral = decode_32(share).ok_or_else(bad)?;
    if body.len() != 16 + TAG_LEN {
        return Err(bad());
    }
    for identity in identities {
        let shared = Zeroizing::new(
            MontgomeryPoint(ephemeral)
                .mul_clamped(*identity.secret)
                .to_bytes(),
        );
        if shared.iter().all(|&b| b == 0) {
            return Err(BundleError::Decrypt(
                "invalid age header: the X25519 share is a low-order point".to_owned(),
            ));
        }
        let mut salt = [0u8; 64];
        salt[..32].copy_from_slice(&ephemeral);
        salt[32..].copy_from_slice(&identity.public);
        let wrap_key = hkdf_sha256(&salt, &shared[..], X25519_INFO);
        let mut wrapped = Zeroizing::new([0u8; 16 + TAG_LEN]);
        wrapped.copy_from_slice(body);
        if chacha_key(&wrap_key)
            .open_in_place(
                Nonce::assume_unique_for_key([0; 12]),
                Aad::empty(),
                &mut wrapped[..],
            )
            .is_ok()
        {
            let mut file_key = Zeroizing::new([0u8; 16]);
            file_key.copy_from_slice(&wrapped[..16]);
            return Ok(Some(file_key));
        }
    }
    Ok(None)
}

/// The line before the next `\n`, and what follows it.
fn split_line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = bytes.iter().position(|&b| b == b'\n')?;
    Some((&bytes[..end], &bytes[end + 1..]))
}

/// Decodes 43 characters of canonical unpadded base64 into 32 bytes.
fn decode_32(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != B64_32_LEN {
        return None;
    }
    let mut out = [0u8; 32];
    match STANDARD_NO_PAD.decode_slice(text, &mut out) {
        Ok(32) => Some(out),
        _ => None,
    }
}

fn header_mac_key(file_key: &[u8; 16]) -> hmac::Key {
    hmac::Key::new(
        hmac::HMAC_SHA256,
        &hkdf_sha256(&[], file_key, b"header")[..],
    )
}

fn chacha_key(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, key).expect("ChaCha20-Poly1305 takes 32-byte keys"),
    )
}

/// HKDF-SHA256 (RFC 5869) with a 32-byte output.
fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8]) -> Zeroizing<[u8; 32]> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    let okm = prk
        .expand(&info, hkdf::HKDF_SHA256)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    let mut out = Zeroizing::new([0u8; 32]);
    okm.fill(&mut out[..])
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

/// Bytes from the operating system's random number generator.
///
/// # Panics
///
/// Panics if the operating system cannot provide randomness, as nothing can be encrypted
/// safely without it.
fn random<const N: usize>() -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    getrandom::getrandom(&mut out[..]).expect("the OS random number generator failed");
    out
}

/// Number of STREAM chunks for `plain_len` plaintext bytes (an empty plaintext is one
/// empty chunk).
pub(crate) fn chunk_count(plain_len: u64) -> u64 {
    plain_len.div_ceil(CHUNK_LEN as u64).max(1)
}

/// The plaintext length of a STREAM of `stream_len` bytes (all chunks with their tags),
/// or `None` if no valid STREAM has that length: the last chunk holds at least its tag,
/// and is empty only if it is the only chunk.
pub(crate) fn plain_len(stream_len: u64) -> Option<u64> {
    let chunks = stream_len.div_ceil(ENC_CHUNK_LEN as u64);
    let last = stream_len.checked_sub((chunks.checked_sub(1)?) * ENC_CHUNK_LEN as u64)?;
    if last < TAG_LEN as u64 || (last == TAG_LEN as u64 && chunks > 1) {
        return None;
    }
    Some(stream_len - chunks * TAG_LEN as u64)
}
