//! Side keys (Ed25519 signing key + age X25519 identity), their files, and public identities.

use std::fmt::{self, Write as _};
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::age_v1::X25519Identity;
use crate::BundleError;

/// File name of the Ed25519 signing key inside a key directory.
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// File name of the age X25519 identity inside a key directory.
pub const AGE_KEY_FILE: &str = "age.key";

/// Key files are tiny; anything bigger is not one of ours and is not read into memory.
const MAX_KEY_FILE_LEN: u64 = 16 * 1024;

/// One side's secret keys: an Ed25519 key that signs the bundles this side sends, and an
/// age X25519 identity that decrypts the bundles this side receives.
///
/// The two are separate keys for separate purposes (R9). Both wipe themselves from memory
/// when dropped, and `Debug` shows only public fingerprints.
pub struct SideKeys {
    pub(crate) signing: SigningKey,
    pub(crate) age: age::x25519::Identity,
}

impl SideKeys {
    /// Generates fresh keys from the operating system's random number generator.
    ///
    /// # Panics
    ///
    /// Panics if the operating system cannot provide randomness, as no safe key can be made.
    pub fn generate() -> SideKeys {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::getrandom(&mut seed[..]).expect("the OS random number generator failed");
        SideKeys {
            signing: SigningKey::from_bytes(&seed),
            age: age::x25519::Identity::generate(),
        }
    }

    /// Writes `dir/signing.key` and `dir/age.key` with mode 0600, creating `dir` with mode
    /// 0700 if it is missing.
    ///
    /// Refuses to overwrite either file, so a second `keygen` can never destroy a key that
    /// the other side has already pinned. `age.key` is in age's own identity-file format,
    /// so an auditor can use it directly with `age -d -i age.key`.
    pub fn save(&self, dir: &Path) -> Result<(), BundleError> {
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| {
                    BundleError::io(format!("creating key directory {}", dir.display()), e)
                })?;
        }
        let signing_path = dir.join(SIGNING_KEY_FILE);
        let age_path = dir.join(AGE_KEY_FILE);
        // Check both before writing either, so a refusal leaves the directory untouched.
        for path in [&signing_path, &age_path] {
            if path.symlink_metadata().is_ok() {
                return Err(key_error(
                    path,
                    "already exists; refusing to overwrite a key",
                ));
            }
        }

        // Secrets are formatted into pre-sized buffers that are wiped on drop, so that no
        // reallocation leaves a copy behind.
        let public = self.public();
        let seed = Zeroizing::new(self.signing.to_bytes());
        let mut seed_hex = Zeroizing::new(String::with_capacity(64));
        for byte in seed.iter() {
            let _ = write!(seed_hex, "{byte:02x}");
        }
        let mut signing_text = Zeroizing::new(String::with_capacity(512));
        let _ = write!(
            signing_text,
            "# Ferry Ed25519 signing key. SECRET: keep this file private (mode 0600).\n\
             # key id: {}\n\
             # public signing key: {}\n\
             {}\n",
            public.key_id(),
            hex::encode(public.signing),
            seed_hex.as_str(),
        );
        let age_secret = self.age.to_string();
        let mut age_text = Zeroizing::new(String::with_capacity(512));
        let _ = write!(
            age_text,
            "# Ferry age identity. SECRET: keep this file private (mode 0600).\n\
             # public key: {}\n\
             {}\n",
            public.recipient,
            age_secret.expose_secret(),
        );

        write_new_secret_file(&signing_path, signing_text.as_bytes())?;
        if let Err(e) = write_new_secret_file(&age_path, age_text.as_bytes()) {
            // Do not leave half a key pair behind: the next attempt would refuse to overwrite it.
            let _ = fs::remove_file(&signing_path);
            return Err(e);
        }
        Ok(())
    }

    /// Reads the keys that [`SideKeys::save`] wrote to `dir`.
    ///
    /// Errors name the file that is missing or invalid.
    pub fn load(dir: &Path) -> Result<SideKeys, BundleError> {
        let signing_path = dir.join(SIGNING_KEY_FILE);
        let text = read_secret_file(&signing_path)?;
        let line = single_key_line(&signing_path, &text)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(line, &mut seed[..]).map_err(|_| {
            key_error(
                &signing_path,
                "the key line is not 64 hexadecimal characters",
            )
        })?;
        let signing = SigningKey::from_bytes(&seed);

        let age_path = dir.join(AGE_KEY_FILE);
        let text = read_secret_file(&age_path)?;
        let line = single_key_line(&age_path, &text)?;
        let age = age::x25519::Identity::from_str(line).map_err(|why| {
            key_error(
                &age_path,
                &format!("the key line is not an age secret key ({why})"),
            )
        })?;

        Ok(SideKeys { signing, age })
    }

    /// The public half of these keys, to hand to the other side.
    pub fn public(&self) -> PublicIdentity {
        PublicIdentity {
            signing: self.signing.verifying_key().to_bytes(),
            recipient: self.age.to_public().to_string(),
        }
    }

    /// Signs `message` with this side's Ed25519 key, for statements other than bundles (a run receipt, say),
    /// whose messages begin with a domain string of their own so that no signature serves for another.
    pub fn sign_statement(&self, message: &[u8]) -> [u8; 64] {
        self.sign(message)
    }

    /// The age identity as raw X25519 key material, for decrypting age headers.
    pub(crate) fn x25519_identity(&self) -> Result<X25519Identity, BundleError> {
        // age does not expose the scalar; its canonical text is Bech32 ("AGE-SECRET-KEY-1").
        let text = self.age.to_string();
        let (_, mut data) = bech32::decode(text.expose_secret()).map_err(|_| {
            BundleError::BadPublicIdentity("the age identity is not valid Bech32".to_owned())
        })?;
        let mut secret = Zeroizing::new([0u8; 32]);
        let fits = data.len() == 32;
        if fits {
            secret.copy_from_slice(&data);
        }
        data.zeroize();
        if !fits {
            return Err(BundleError::BadPublicIdentity(
                "the age identity does not hold 32 bytes".to_owned(),
            ));
        }
        Ok(X25519Identity {
            secret,
            public: x25519_bytes(&self.age.to_public())?,
        })
    }

    /// Signs `message` with the Ed25519 key.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer;
        self.signing.sign(message).to_bytes()
    }
}

impl fmt::Debug for SideKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let public = self.public();
        f.debug_struct("SideKeys")
            .field("key_id", &public.key_id())
            .field("recipient", &public.recipient)
            .finish_non_exhaustive()
    }
}

/// The public half of a side's keys: what the other side pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicIdentity {
    /// Ed25519 public key that verifies this side's bundles.
    pub signing: [u8; 32],
    /// age X25519 recipient (`age1...`) that bundles for this side are encrypted to.
    pub recipient: String,
}

impl PublicIdentity {
    /// Renders the human-readable `public.txt`: `#` comment lines, then
    /// `signing-key: <hex>` and `age-recipient: age1...`.
    pub fn to_text(&self, side_label: &str) -> String {
        // The label is free text from the operator; keep it on its comment line.
        let label: String = side_label
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!(
            "# Ferry public identity: {label}\n\
             # key id: {}\n\
             # Give this file to the other side. It contains no secrets.\n\
             signing-key: {}\n\
             age-recipient: {}\n",
            self.key_id(),
            hex::encode(self.signing),
            self.recipient,
        )
    }

    /// Parses and validates a `public.txt` written by [`PublicIdentity::to_text`].
    ///
    /// Blank lines and `#` comments are ignored; each of the two keys must appear exactly
    /// once; unknown keys are refused. The signing key must be a valid, non-weak Ed25519
    /// point and the recipient a valid age X25519 recipient of full order.
    pub fn parse(text: &str) -> Result<PublicIdentity, BundleError> {
        let mut signing = None;
        let mut recipient = None;
        for (number, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad =
                |why: &str| BundleError::BadPublicIdentity(format!("line {}: {why}", number + 1));
            let (key, value) = line
                .split_once(':')
                .ok_or_else(|| bad("expected `name: value`"))?;
            let value = value.trim();
            let slot = match key.trim() {
                "signing-key" => &mut signing,
                "age-recipient" => &mut recipient,
                other => return Err(bad(&format!("unknown field `{other}`"))),
            };
            if slot.replace(value.to_owned()).is_some() {
                return Err(bad(&format!("field `{}` appears twice", key.trim())));
            }
        }
        let signing = signing.ok_or_else(|| {
            BundleError::BadPublicIdentity("missing `signing-key:` line".to_owned())
        })?;
        let recipient = recipient.ok_or_else(|| {
            BundleError::BadPublicIdentity("missing `age-recipient:` line".to_owned())
        })?;

        let mut key = [0u8; 32];
        hex::decode_to_slice(&signing, &mut key).map_err(|_| {
            BundleError::BadPublicIdentity(
                "signing-key is not 64 hexadecimal characters".to_owned(),
            )
        })?;
        verifying_key(&key)?;
        // Store the canonical (lowercase) form so that equal identities compare equal.
        let recipient = age_recipient(&recipient)?.to_string();
        Ok(PublicIdentity {
            signing: key,
            recipient,
        })
    }

    /// Short hex fingerprint for display: the first 8 bytes of SHA-256 of the signing key.
    pub fn key_id(&self) -> String {
        key_id(&self.signing)
    }

    /// Checks both keys: a usable Ed25519 public key and an age recipient that is safe to
    /// encrypt to.
    pub fn validate(&self) -> Result<(), BundleError> {
        verifying_key(&self.signing)?;
        age_recipient(&self.recipient)?;
        Ok(())
    }
}

/// Short hex fingerprint of an Ed25519 public key (first 8 bytes of its SHA-256).
pub fn key_id(signing: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(signing)[..8])
}

/// Decodes an Ed25519 public key, refusing invalid encodings and weak (small-order) keys,
/// which would let one signature verify for many messages.
pub(crate) fn verifying_key(bytes: &[u8; 32]) -> Result<VerifyingKey, BundleError> {
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| {
        BundleError::BadPublicIdentity("signing key is not a valid Ed25519 public key".to_owned())
    })?;
    if key.is_weak() {
        return Err(BundleError::BadPublicIdentity(
            "signing key is a weak (small-order) Ed25519 key".to_owned(),
        ));
    }
    Ok(key)
}

/// Parses an age X25519 recipient, refusing low-order points.
///
/// Encrypting to a low-order point would give an all-zero shared secret that anyone can
/// compute (the age crate panics on it rather than returning an error).
pub(crate) fn age_recipient(text: &str) -> Result<age::x25519::Recipient, BundleError> {
    let recipient = age::x25519::Recipient::from_str(text).map_err(|why| {
        BundleError::BadPublicIdentity(format!(
            "age-recipient is not an age X25519 recipient ({why})"
        ))
    })?;
    // Multiply the point by a fixed clamped scalar: the result is zero exactly when the
    // point has small order (clamping clears the cofactor, and the scalar divided by the
    // cofactor is below the prime order of both the curve and its twist).
    let point = MontgomeryPoint(x25519_bytes(&recipient)?);
    if point.mul_clamped([0x5a; 32]).to_bytes() == [0u8; 32] {
        return Err(BundleError::BadPublicIdentity(
            "age-recipient is a low-order X25519 point".to_owned(),
        ));
    }
    Ok(recipient)
}

/// The raw X25519 public key of an `age1...` recipient that is safe to encrypt to.
pub(crate) fn recipient_point(text: &str) -> Result<[u8; 32], BundleError> {
    x25519_bytes(&age_recipient(text)?)
}

/// The raw 32-byte X25519 public key inside an age recipient.
fn x25519_bytes(recipient: &age::x25519::Recipient) -> Result<[u8; 32], BundleError> {
    // age does not expose the bytes; its canonical text is Bech32 with HRP "age".
    let (_, data) = bech32::decode(&recipient.to_string())
        .map_err(|e| BundleError::BadPublicIdentity(format!("age-recipient: {e}")))?;
    data.try_into().map_err(|_| {
        BundleError::BadPublicIdentity("age-recipient does not hold 32 bytes".to_owned())
    })
}

fn key_error(path: &Path, why: &str) -> BundleError {
    BundleError::Key {
        file: PathBuf::from(path),
        why: why.to_owned(),
    }
}

/// Creates `path` exclusively with mode 0600, writes `contents` and syncs it.
fn write_new_secret_file(path: &Path, contents: &[u8]) -> Result<(), BundleError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| key_error(path, &format!("cannot create: {e}")))?;
    let result = file.write_all(contents).and_then(|()| file.sync_all());
    if let Err(e) = result {
        let _ = fs::remove_file(path);
        return Err(key_error(path, &format!("cannot write: {e}")));
    }
    Ok(())
}

/// Reads a small secret file into memory that is wiped on drop.
fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, BundleError> {
    let file = fs::File::open(path).map_err(|e| key_error(path, &format!("cannot open: {e}")))?;
    // Sized for the largest accepted file, so reading never reallocates (which would leave
    // an unwiped copy of the secret in freed memory).
    let mut text = Zeroizing::new(String::with_capacity(MAX_KEY_FILE_LEN as usize + 1));
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|e| key_error(path, &format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(key_error(path, "is too large to be a key file"));
    }
    Ok(text)
}

/// The single non-blank, non-comment line of a key file.
fn single_key_line<'t>(path: &Path, text: &'t str) -> Result<&'t str, BundleError> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    match (lines.next(), lines.next()) {
        (Some(line), None) => Ok(line),
        (None, _) => Err(key_error(path, "contains no key")),
        (Some(_), Some(_)) => Err(key_error(path, "contains more than one key line")),
    }
}
