//! Run receipts: what a released result came from, signed by the high side.
//!
//! The worker records the facts of a run ([`RunFacts`]: code, runtime, asset versions, limits, worker, times,
//! exit); the export that carries the release adds the SHA-256 of every file it carries and signs the whole with
//! the high side's Ed25519 key ([`SignedReceipt`]). The signature is over the domain string
//! [`RECEIPT_DOMAIN`], one NUL byte, and the receipt's JSON exactly as it travels, so that anyone holding the high
//! side's public key can check it with standard tools.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

/// What the signature's message starts with.
pub const RECEIPT_DOMAIN: &str = "ferry-receipt/v1";

/// Largest receipt JSON accepted, in bytes.
pub const MAX_RECEIPT_BYTES: usize = 256 * 1024;

/// One asset a job read, and which version of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetVersion {
    /// The asset's name (`inputs/NAME`).
    pub name: String,
    /// The private file's content hash (a tree hash for a directory) when it was registered, hex.
    pub version: String,
}

/// The limits a job ran under.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLimits {
    /// Address space per process, MiB.
    pub memory_mb: u64,
    /// Wall clock, seconds.
    pub wall_secs: u64,
    /// CPU seconds per process.
    pub cpu_secs: u64,
    /// CPUs it was bound to; `None`: every CPU.
    pub cpus: Option<u32>,
    /// Output cap, bytes.
    pub max_output_bytes: u64,
}

/// The facts of one run, recorded by the worker that ran it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFacts {
    /// Which attempt (0 for the first run, one more after each `ferry review retry`).
    pub attempt: u32,
    /// SHA-256 of the job's code, hex.
    pub code_sha256: String,
    /// The runtime's name.
    pub runtime: String,
    /// The runtime's content hash (`docs/runtimes.md`), hex; a configured runtime is hashed as
    /// `ferry runtime add` would hash it.
    pub runtime_sha256: String,
    /// The assets it read, with their versions.
    pub assets: Vec<AssetVersion>,
    /// Its limits.
    pub limits: RunLimits,
    /// Which worker ran it.
    pub worker: String,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339).
    pub ended_at: String,
    /// Its exit code, when it exited.
    pub exit_code: Option<i32>,
    /// One line: how it ended.
    pub summary: String,
    /// False when it ran without the sandbox (development only).
    pub sandboxed: bool,
}

/// A file the release carries, and its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedFile {
    /// `stdout`, `stderr` or `outputs/PATH`.
    pub name: String,
    /// Hex.
    pub sha256: String,
}

/// A run receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The job.
    pub job_id: String,
    /// The run.
    pub run: RunFacts,
    /// Every file the release carries (withheld files are not listed), sorted by name.
    pub released: Vec<CarriedFile>,
    /// When it was signed (RFC 3339).
    pub signed_at: String,
}

/// A receipt as it travels: its JSON, the signature and the signer's public key, all as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedReceipt {
    /// The receipt's JSON, exactly as signed.
    pub receipt: String,
    /// Ed25519 signature over `RECEIPT_DOMAIN`, NUL, `receipt`; hex.
    pub signature: String,
    /// The signer's Ed25519 public key, hex.
    pub public_key: String,
}

/// Why a receipt does not verify.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    /// The receipt is malformed.
    #[error("the receipt is malformed: {0}")]
    Malformed(String),
    /// The signature does not verify under the key.
    #[error("the receipt's signature does not verify")]
    BadSignature,
    /// It is signed by another key than the one expected.
    #[error("the receipt is signed by {found}, not by the high side's key {expected}")]
    WrongKey {
        /// The key it names.
        found: String,
        /// The key expected.
        expected: String,
    },
    /// It is a receipt for another job.
    #[error("the receipt is for job {found}, not {expected}")]
    WrongJob {
        /// The job it names.
        found: String,
        /// The job expected.
        expected: String,
    },
}

/// The message a receipt's signature covers.
pub fn signed_message(receipt_json: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(RECEIPT_DOMAIN.len() + 1 + receipt_json.len());
    m.extend_from_slice(RECEIPT_DOMAIN.as_bytes());
    m.push(0);
    m.extend_from_slice(receipt_json.as_bytes());
    m
}

impl Receipt {
    /// Signs this receipt with `sign` (which returns an Ed25519 signature over the message it is given), naming
    /// `public_key` as the signer.
    pub fn sign(
        &self,
        public_key: &[u8; 32],
        sign: impl FnOnce(&[u8]) -> [u8; 64],
    ) -> SignedReceipt {
        let receipt = serde_json::to_string(self).expect("a receipt serializes");
        let signature = sign(&signed_message(&receipt));
        SignedReceipt {
            receipt,
            signature: hex::encode(signature),
            public_key: hex::encode(public_key),
        }
    }
}

impl Receipt {
    /// Checks what was delivered against what the receipt says the release carries: every delivered output file
    /// (`name` under `outputs/`, SHA-256 hex) must be listed with that hash and every listed one delivered; stdout
    /// and stderr (as delivered, lossy UTF-8) must hash as listed unless the lossy decoding changed them.
    pub fn check_delivered(
        &self,
        outputs: &[(&str, &str)],
        stdout: &str,
        stderr: &str,
    ) -> Result<(), String> {
        let listed = |name: &str| self.released.iter().find(|f| f.name == name);
        for (name, sha256) in outputs {
            let full = format!("outputs/{name}");
            match listed(&full) {
                Some(f) if f.sha256 == *sha256 => {}
                Some(f) => {
                    return Err(format!(
                        "{full} has sha256 {sha256}, the receipt says {}",
                        f.sha256
                    ))
                }
                None => {
                    return Err(format!(
                        "{full} was delivered but the receipt does not list it"
                    ))
                }
            }
        }
        for f in &self.released {
            if let Some(name) = f.name.strip_prefix("outputs/") {
                if !outputs.iter().any(|(n, _)| *n == name) {
                    return Err(format!(
                        "{} is in the receipt but was not delivered",
                        f.name
                    ));
                }
            }
        }
        for (name, text) in [("stdout", stdout), ("stderr", stderr)] {
            if let Some(f) = listed(name) {
                let lossy = text.contains('\u{fffd}');
                if !lossy && crate::sha256_hex(text.as_bytes()) != f.sha256 {
                    return Err(format!("{name} differs from the one the receipt lists"));
                }
            }
        }
        Ok(())
    }
}

impl SignedReceipt {
    /// Checks the signature under the key it names and returns the receipt; with `expected`, the key must also be
    /// that one.
    pub fn verify(&self, expected: Option<&[u8; 32]>) -> Result<Receipt, ReceiptError> {
        if self.receipt.len() > MAX_RECEIPT_BYTES {
            return Err(ReceiptError::Malformed(format!(
                "{} bytes, over the limit of {MAX_RECEIPT_BYTES}",
                self.receipt.len()
            )));
        }
        let key: [u8; 32] = hex::decode(&self.public_key)
            .ok()
            .and_then(|k| k.try_into().ok())
            .ok_or_else(|| {
                ReceiptError::Malformed("the public key is not 32 bytes of hex".into())
            })?;
        if let Some(expected) = expected {
            if &key != expected {
                return Err(ReceiptError::WrongKey {
                    found: hex::encode(key),
                    expected: hex::encode(expected),
                });
            }
        }
        let signature: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                ReceiptError::Malformed("the signature is not 64 bytes of hex".into())
            })?;
        let verifying = VerifyingKey::from_bytes(&key)
            .map_err(|_| ReceiptError::Malformed("the public key is not an Ed25519 key".into()))?;
        verifying
            .verify_strict(
                &signed_message(&self.receipt),
                &Signature::from_bytes(&signature),
            )
            .map_err(|_| ReceiptError::BadSignature)?;
        serde_json::from_str(&self.receipt).map_err(|e| ReceiptError::Malformed(e.to_string()))
    }

    /// [`SignedReceipt::verify`], and the receipt must be for `job_id`.
    pub fn verify_for(
        &self,
        job_id: &str,
        expected: Option<&[u8; 32]>,
    ) -> Result<Receipt, ReceiptError> {
        let receipt = self.verify(expected)?;
        if receipt.job_id != job_id {
            return Err(ReceiptError::WrongJob {
                found: receipt.job_id,
                expected: job_id.to_string(),
            });
        }
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn receipt() -> Receipt {
        Receipt {
            job_id: "j".into(),
            run: RunFacts {
                attempt: 0,
                code_sha256: "c".repeat(64),
                runtime: "pandas".into(),
                runtime_sha256: "r".repeat(64),
                assets: vec![AssetVersion {
                    name: "a.csv".into(),
                    version: "v".repeat(64),
                }],
                limits: RunLimits {
                    memory_mb: 1024,
                    wall_secs: 60,
                    cpu_secs: 60,
                    cpus: None,
                    max_output_bytes: 1 << 26,
                },
                worker: "worker-0".into(),
                started_at: "2026-12-01T00:00:00+00:00".into(),
                ended_at: "2026-12-01T00:00:01+00:00".into(),
                exit_code: Some(0),
                summary: "exited with status 0".into(),
                sandboxed: true,
            },
            released: vec![CarriedFile {
                name: "stdout".into(),
                sha256: "s".repeat(64),
            }],
            signed_at: "2026-12-01T00:00:02+00:00".into(),
        }
    }

    #[test]
    fn a_signed_receipt_verifies_and_any_change_breaks_it() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key().to_bytes();
        let signed = receipt().sign(&public, |m| key.sign(m).to_bytes());
        assert_eq!(signed.verify(Some(&public)).unwrap(), receipt());
        assert_eq!(signed.verify_for("j", None).unwrap(), receipt());
        assert!(matches!(
            signed.verify_for("k", None),
            Err(ReceiptError::WrongJob { .. })
        ));

        let mut forged = signed.clone();
        forged.receipt = forged.receipt.replace("worker-0", "worker-9");
        assert_eq!(forged.verify(None), Err(ReceiptError::BadSignature));

        let other = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        assert!(matches!(
            signed.verify(Some(&other)),
            Err(ReceiptError::WrongKey { .. })
        ));
    }

    #[test]
    fn the_signature_covers_the_domain_and_the_json_as_sent() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key().to_bytes();
        let signed = receipt().sign(&public, |m| key.sign(m).to_bytes());
        let mut message = b"ferry-receipt/v1\0".to_vec();
        message.extend_from_slice(signed.receipt.as_bytes());
        let sig: [u8; 64] = hex::decode(&signed.signature).unwrap().try_into().unwrap();
        key.verifying_key()
            .verify_strict(&message, &Signature::from_bytes(&sig))
            .unwrap();
    }
}
