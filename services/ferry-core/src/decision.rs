//! Reviewers' keys and the decisions they sign.
//!
//! A reviewer makes an Ed25519 key on their own account (`ferry reviewer keygen`); the owner registers its public
//! half on the side (`ferry reviewer add`). Every decision a registered reviewer makes is a [`Decision`] signed
//! with that key: the job, what was decided, what it covers (the code's SHA-256 for an approval, each released
//! file's for a release, and which files a release withholds), the reason, the reviewer's name and the time. The
//! signed decisions cross the gap with the job or the result, and the receiving side counts the ones that verify
//! against the reviewers it knows ([`count`]).
//!
//! The signed bytes are `"ferry decision v1\0"` followed by the postcard encoding of the [`Decision`].

use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::str::FromStr;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// What the signature of a decision is computed over, before the decision's postcard bytes.
const CONTEXT: &[u8] = b"ferry decision v1\0";
/// The first line of a reviewer's secret key file.
const SECRET_MAGIC: &str = "FERRY-REVIEWER-SECRET-KEY-1";

/// A reviewer key or decision that can't be used.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DecisionError {
    /// The key file could not be read or written.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file may be read by others than its owner.
    #[error(
        "reviewer key {path} is readable by others (mode {mode:o}): a reviewer's key must be theirs alone; \
         `chmod 600` it"
    )]
    OpenKey {
        /// The file.
        path: String,
        /// Its mode.
        mode: u32,
    },
    /// The key file or a public key line is malformed.
    #[error("{0}")]
    Malformed(String),
    /// A signature does not verify.
    #[error("the signature of {reviewer}'s decision on job {job_id} does not verify")]
    BadSignature {
        /// Who it claims to be from.
        reviewer: String,
        /// The job.
        job_id: String,
    },
}

/// A reviewer's public key, written `ed25519:<64 hex digits>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReviewerPublic(pub [u8; 32]);

impl fmt::Display for ReviewerPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519:{}", hex::encode(self.0))
    }
}

impl FromStr for ReviewerPublic {
    type Err = DecisionError;

    fn from_str(s: &str) -> Result<ReviewerPublic, DecisionError> {
        let bad = || {
            DecisionError::Malformed(
                "a reviewer's public key is `ed25519:` and 64 hex digits, as `ferry reviewer keygen` prints it"
                    .into(),
            )
        };
        let hex_part = s.trim().strip_prefix("ed25519:").ok_or_else(bad)?;
        let bytes = hex::decode(hex_part).map_err(|_| bad())?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        VerifyingKey::from_bytes(&key).map_err(|_| {
            DecisionError::Malformed("the reviewer's public key is not a valid Ed25519 key".into())
        })?;
        Ok(ReviewerPublic(key))
    }
}

/// A reviewer's secret key.
pub struct ReviewerKey {
    signing: SigningKey,
}

impl fmt::Debug for ReviewerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReviewerKey({})", self.public())
    }
}

impl ReviewerKey {
    /// A new key from the operating system's randomness.
    pub fn generate() -> ReviewerKey {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).expect("the operating system's randomness");
        ReviewerKey {
            signing: SigningKey::from_bytes(&seed),
        }
    }

    /// Writes the key to a new file `path`, readable by its owner alone; never overwrites.
    pub fn save(&self, path: &Path) -> Result<(), DecisionError> {
        use std::os::unix::fs::OpenOptionsExt;
        let io = |context, source| DecisionError::Io {
            context,
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| io("creating", e))?;
        writeln!(
            file,
            "{SECRET_MAGIC}\n{}",
            hex::encode(self.signing.to_bytes())
        )
        .and_then(|()| file.sync_all())
        .map_err(|e| io("writing", e))
    }

    /// Reads the key at `path`, refusing a file others may read.
    pub fn load(path: &Path) -> Result<ReviewerKey, DecisionError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display().to_string();
        let io = |context, source| DecisionError::Io {
            context,
            path: shown.clone(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(|e| io("reading", e))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(DecisionError::OpenKey { path: shown, mode });
        }
        if meta.len() > 4096 {
            return Err(DecisionError::Malformed(format!(
                "{shown} is not a reviewer key (too long)"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| io("reading", e))?;
        let mut lines = text.lines();
        let not_key = || {
            DecisionError::Malformed(format!(
                "{shown} is not a reviewer key made by `ferry reviewer keygen`"
            ))
        };
        if lines.next() != Some(SECRET_MAGIC) {
            return Err(not_key());
        }
        let seed: [u8; 32] = lines
            .next()
            .and_then(|l| hex::decode(l.trim()).ok())
            .and_then(|b| b.try_into().ok())
            .ok_or_else(not_key)?;
        Ok(ReviewerKey {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The public half, to register with `ferry reviewer add`.
    pub fn public(&self) -> ReviewerPublic {
        ReviewerPublic(self.signing.verifying_key().to_bytes())
    }

    /// Signs `decision`.
    pub fn sign(&self, decision: Decision) -> SignedDecision {
        let signature = self.signing.sign(&decision.signed_bytes());
        SignedDecision {
            decision,
            public_key: self.public(),
            signature: signature.to_bytes().to_vec(),
        }
    }
}

/// What a reviewer decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecisionKind {
    /// The code may run (low side).
    Approve,
    /// It may not (low side).
    Reject,
    /// The result may leave (high side).
    Release,
    /// It may not (high side).
    Withhold,
    /// Changes requested (either side).
    Return,
}

impl DecisionKind {
    /// `approve`, `reject`, `release`, `withhold`, `return`.
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionKind::Approve => "approve",
            DecisionKind::Reject => "reject",
            DecisionKind::Release => "release",
            DecisionKind::Withhold => "withhold",
            DecisionKind::Return => "return",
        }
    }
}

/// One file a decision covers, by name and SHA-256 (hex).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Covered {
    /// `code` for an approval; `stdout`, `stderr` or `outputs/<name>` for a release.
    pub name: String,
    /// SHA-256, lowercase hex.
    pub sha256: String,
}

/// A decision, as signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The job.
    pub job_id: String,
    /// What was decided.
    pub kind: DecisionKind,
    /// What it covers, sorted by name.
    pub covers: Vec<Covered>,
    /// The files a release withholds, sorted.
    pub withheld: Vec<String>,
    /// The reason given.
    pub reason: Option<String>,
    /// The reviewer's registered name.
    pub reviewer: String,
    /// When (unix seconds).
    pub at: i64,
}

impl Decision {
    fn signed_bytes(&self) -> Vec<u8> {
        let mut bytes = CONTEXT.to_vec();
        bytes.extend(postcard::to_allocvec(self).expect("a decision serializes"));
        bytes
    }
}

/// A decision with its reviewer's public key and signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedDecision {
    /// The decision.
    pub decision: Decision,
    /// The key that signed it.
    pub public_key: ReviewerPublic,
    /// The Ed25519 signature (64 bytes) over the decision's signed bytes.
    pub signature: Vec<u8>,
}

impl SignedDecision {
    /// Checks the signature against the key it names (not whether that key belongs to a reviewer: [`count`]).
    pub fn verify(&self) -> Result<(), DecisionError> {
        let bad = || DecisionError::BadSignature {
            reviewer: self.decision.reviewer.clone(),
            job_id: self.decision.job_id.clone(),
        };
        let key = VerifyingKey::from_bytes(&self.public_key.0).map_err(|_| bad())?;
        let signature: [u8; 64] = self.signature.as_slice().try_into().map_err(|_| bad())?;
        key.verify(
            &self.decision.signed_bytes(),
            &Signature::from_bytes(&signature),
        )
        .map_err(|_| bad())
    }

    /// SHA-256 (hex) of the signed bytes and signature: what the audit log records of it.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.decision.signed_bytes());
        h.update(&self.signature);
        hex::encode(h.finalize())
    }

    /// The postcard bytes, as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("a signed decision serializes")
    }

    /// Reads stored bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<SignedDecision, DecisionError> {
        postcard::from_bytes(bytes)
            .map_err(|e| DecisionError::Malformed(format!("a stored decision is malformed: {e}")))
    }
}

/// A reviewer as a side knows them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reviewer {
    /// Registered name.
    pub name: String,
    /// Public key.
    pub public_key: ReviewerPublic,
    /// Removed: their decisions no longer count.
    pub removed: bool,
}

/// What [`count`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// The distinct reviewers whose decisions verify and count, in order.
    pub reviewers: Vec<String>,
    /// Why each other decision does not count.
    pub problems: Vec<String>,
}

/// Counts the decisions of `kind` on `job_id` that cover exactly `covers` and withhold exactly `withheld`, are
/// signed by a current reviewer of `reviewers` under their registered key, and are not by the job's own
/// researcher. A reviewer counts once however often they decided.
pub fn count(
    decisions: &[SignedDecision],
    kind: DecisionKind,
    job_id: &str,
    covers: &[Covered],
    withheld: &[String],
    reviewers: &[Reviewer],
    researcher: &str,
) -> Tally {
    let mut tally = Tally::default();
    let mut covers = covers.to_vec();
    covers.sort();
    let mut withheld = withheld.to_vec();
    withheld.sort();
    for d in decisions {
        let who = &d.decision.reviewer;
        let problem = if d.decision.kind != kind || d.decision.job_id != job_id {
            Some(format!(
                "{who}'s decision does not {} this job",
                kind.as_str()
            ))
        } else if let Err(e) = d.verify() {
            Some(e.to_string())
        } else {
            match reviewers.iter().find(|r| &r.name == who) {
                None => Some(format!("{who} is not a registered reviewer")),
                Some(r) if r.removed => Some(format!("{who} was removed as a reviewer")),
                Some(r) if r.public_key != d.public_key => Some(format!(
                    "{who}'s decision is signed with {}, not their registered key",
                    d.public_key
                )),
                Some(_) if who == researcher => {
                    Some(format!("{who} submitted the job and cannot review it"))
                }
                Some(_) if d.decision.covers != covers => {
                    Some(format!("{who}'s decision covers other contents than these"))
                }
                Some(_) if d.decision.withheld != withheld => Some(format!(
                    "{who}'s decision withholds other files than this release"
                )),
                Some(_) => None,
            }
        };
        match problem {
            Some(p) => tally.problems.push(p),
            None => {
                if !tally.reviewers.contains(who) {
                    tally.reviewers.push(who.clone());
                }
            }
        }
    }
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(reviewer: &str, kind: DecisionKind) -> Decision {
        Decision {
            job_id: "j".into(),
            kind,
            covers: vec![Covered {
                name: "code".into(),
                sha256: "ab".repeat(32),
            }],
            withheld: vec![],
            reason: None,
            reviewer: reviewer.into(),
            at: 1,
        }
    }

    #[test]
    fn keys_round_trip_through_a_private_file_and_an_open_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let key = ReviewerKey::generate();
        key.save(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(ReviewerKey::load(&path).unwrap().public(), key.public());
        assert!(key.save(&path).is_err(), "never overwrites");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = ReviewerKey::load(&path).unwrap_err();
        assert!(matches!(err, DecisionError::OpenKey { .. }), "{err}");
        let public: ReviewerPublic = key.public().to_string().parse().unwrap();
        assert_eq!(public, key.public());
        assert!("ed25519:00".parse::<ReviewerPublic>().is_err());
    }

    #[test]
    fn a_reviewer_counts_once_and_forged_or_foreign_decisions_not_at_all() {
        let (alice, bob, eve) = (
            ReviewerKey::generate(),
            ReviewerKey::generate(),
            ReviewerKey::generate(),
        );
        let reviewers = vec![
            Reviewer {
                name: "alice".into(),
                public_key: alice.public(),
                removed: false,
            },
            Reviewer {
                name: "bob".into(),
                public_key: bob.public(),
                removed: true,
            },
        ];
        let covers = decision("x", DecisionKind::Approve).covers;
        let mut forged = alice.sign(decision("alice", DecisionKind::Approve));
        forged.decision.reason = Some("changed after signing".into());
        let decisions = vec![
            alice.sign(decision("alice", DecisionKind::Approve)),
            alice.sign(decision("alice", DecisionKind::Approve)),
            bob.sign(decision("bob", DecisionKind::Approve)),
            eve.sign(decision("alice", DecisionKind::Approve)),
            eve.sign(decision("eve", DecisionKind::Approve)),
            forged,
            alice.sign(decision("alice", DecisionKind::Release)),
        ];
        let tally = count(
            &decisions,
            DecisionKind::Approve,
            "j",
            &covers,
            &[],
            &reviewers,
            "mallory",
        );
        assert_eq!(tally.reviewers, ["alice"]);
        let problems = tally.problems.join("\n");
        for expected in [
            "bob was removed as a reviewer",
            "not their registered key",
            "eve is not a registered reviewer",
            "does not verify",
            "does not approve this job",
        ] {
            assert!(problems.contains(expected), "{expected}: {problems}");
        }
        // The researcher of the job cannot approve it, even as a registered reviewer.
        let tally = count(
            &decisions[..1],
            DecisionKind::Approve,
            "j",
            &covers,
            &[],
            &reviewers,
            "alice",
        );
        assert!(tally.reviewers.is_empty());
        // Other contents than those signed do not count.
        let other = vec![Covered {
            name: "code".into(),
            sha256: "cd".repeat(32),
        }];
        let tally = count(
            &decisions[..1],
            DecisionKind::Approve,
            "j",
            &other,
            &[],
            &reviewers,
            "mallory",
        );
        assert!(tally.problems[0].contains("covers other contents"));
    }
}
