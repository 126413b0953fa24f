//! Records carried inside transfer bundles, postcard-encoded in the bundle entry named [`RECORDS_ENTRY`].
//!
//! Larger blobs (mocks, result files) travel as entries of their own, named by [`mock_entry`] and
//! [`output_entry`], and the records point at them by name, length and SHA-256. The layout is specified in
//! `schemas/bundle-format.md`; a test there fails when these types change without the spec.

use serde::{Deserialize, Serialize};

use crate::channel::Seq;
use crate::decision::{Reviewer, SignedDecision};

/// Name of the bundle entry holding the postcard-encoded [`Batch`].
pub const RECORDS_ENTRY: &str = "records";
/// Largest records entry a receiver decodes.
pub const MAX_RECORDS_BYTES: u64 = 256 * 1024 * 1024;

/// Most runtimes one [`Record::Runtimes`] may list.
pub const MAX_RUNTIMES: usize = 256;

/// Entry name for an asset's mock.
pub fn mock_entry(asset: &str) -> String {
    format!("mocks/{asset}")
}

/// Entry name for one of a job's result files.
pub fn output_entry(job_id: &str, name: &str) -> String {
    format!("outputs/{job_id}/{name}")
}

/// Everything one bundle says, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The records, applied in this order.
    pub records: Vec<Record>,
}

/// One thing that crosses the gap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// Low to high: an approved job to run.
    Job(JobTransfer),
    /// Low to high: the researcher cancelled this job.
    Cancel {
        /// The job.
        job_id: String,
        /// When the researcher asked (unix seconds).
        at: i64,
    },
    /// High to low: a job's new state, with the result when released.
    Status(StatusTransfer),
    /// High to low: the whole asset catalog, replacing the previous one if this version is newer.
    Catalog {
        /// Increases with every change the owner makes; an older catalog arriving late changes nothing.
        version: i64,
        /// Every asset.
        assets: Vec<AssetTransfer>,
    },
    /// Either way: which bundles of the opposite channel the sender has imported, so that the other side knows
    /// what arrived and what to resend.
    Ack {
        /// Inclusive ranges of imported sequence numbers.
        received: Vec<(u64, u64)>,
        /// Sequence numbers below the highest imported one that never arrived.
        missing: Vec<u64>,
    },
    /// Either way: the sender's keys rotate. The statement (ferry-bundle's `RotationStatement`) is signed by both
    /// the old and the new key; this bundle is still signed by the old one, every later one by the new one.
    Rotate {
        /// The encoded statement.
        statement: Vec<u8>,
    },
    /// Either way: the sender's reviewers, replacing the previous list if this version is newer.
    Reviewers {
        /// Increases with every change.
        version: i64,
        /// Every reviewer, removed ones marked.
        reviewers: Vec<Reviewer>,
    },
    /// Either way: the head of the sender's audit log when the bundle was made.
    AuditHead {
        /// The last entry's position.
        seq: u64,
        /// Its hash, hex.
        hash: String,
    },
    /// High to low: a comment on a job, for the researcher.
    Comment {
        /// The job.
        job_id: String,
        /// The comment.
        comment: crate::store::Comment,
    },
    /// High to low: the runtimes the owner registered (`ferry runtime add`), replacing the previous list if
    /// this version is newer. Independent of the catalog: a new runtime re-sends no mock.
    Runtimes {
        /// Increases with every change.
        version: i64,
        /// Every registered runtime.
        runtimes: Vec<RuntimeTransfer>,
    },
    /// High to low, before the released [`Record::Status`] it belongs to: the run receipt, signed by the high
    /// side's key (`crate::receipt`).
    Receipt {
        /// The job.
        job_id: String,
        /// The receipt.
        receipt: crate::receipt::SignedReceipt,
    },
}

impl Record {
    /// A short name for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Job(_) => "job",
            Record::Cancel { .. } => "cancel",
            Record::Status(_) => "status",
            Record::Catalog { .. } => "catalog",
            Record::Ack { .. } => "ack",
            Record::Rotate { .. } => "rotate",
            Record::Reviewers { .. } => "reviewers",
            Record::AuditHead { .. } => "audit-head",
            Record::Comment { .. } => "comment",
            Record::Runtimes { .. } => "runtimes",
            Record::Receipt { .. } => "receipt",
        }
    }
}

/// Compresses sorted sequence numbers into inclusive ranges, as [`Record::Ack`] carries them.
pub fn to_ranges(seqs: &[Seq]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in seqs.iter().map(|s| s.get()) {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == s => *end = s,
            _ => out.push((s, s)),
        }
    }
    out
}

/// The largest number of sequence numbers an acknowledgement may expand to.
pub const MAX_ACKED: u64 = 1_000_000;

/// An approved job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobTransfer {
    /// The job's UUID, hyphenated.
    pub job_id: String,
    /// The researcher's broker user name.
    pub researcher: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Runtime name.
    pub runtime: String,
    /// The script.
    pub code: String,
    /// Asset names.
    pub assets: Vec<String>,
    /// Who approved it.
    pub approved_by: String,
    /// When (unix seconds).
    pub approved_at: i64,
    /// The reviewers' signed approvals (empty where the low side has no reviewers registered).
    pub approvals: Vec<SignedDecision>,
    /// The job this one revises, if any.
    pub revises: Option<String>,
    /// What the job asked for beyond the defaults; the high side checks it against its own caps.
    pub resources: Option<crate::wire::Resources>,
}

/// A job's state on the high side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusTransfer {
    /// The job.
    pub job_id: String,
    /// The contract's state name.
    pub state: String,
    /// The owner's reason (withheld) or the failure's.
    pub reason: Option<String>,
    /// When the state was reached (unix seconds).
    pub at: i64,
    /// The result, only when released.
    pub result: Option<ResultTransfer>,
    /// The reviewers' signed releases (or other decisions) behind this state.
    pub decisions: Vec<SignedDecision>,
    /// Which run this is about: 0 for the first, one more for each `ferry review retry`.
    pub attempt: u32,
}

/// A released result; its files are bundle entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultTransfer {
    /// Exit code, when the process exited.
    pub exit_code: Option<i32>,
    /// One line: how the job ended.
    pub summary: String,
    /// Captured stdout.
    pub stdout: Vec<u8>,
    /// Captured stderr.
    pub stderr: Vec<u8>,
    /// stdout was cut at the cap.
    pub stdout_truncated: bool,
    /// stderr was cut at the cap.
    pub stderr_truncated: bool,
    /// The files, each carried as the entry [`output_entry`]`(job_id, name)`.
    pub outputs: Vec<FileRef>,
    /// What the owner withheld from this release, with the reason the researcher is told. A withheld file's
    /// bytes do not cross (a withheld `stdout` or `stderr` crosses empty).
    pub withheld: Vec<Withheld>,
}

/// A file of a released job that the owner withheld.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withheld {
    /// `stdout`, `stderr` or `outputs/<name>`.
    pub name: String,
    /// Why, for the researcher.
    pub reason: String,
}

/// A file carried as its own bundle entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    /// Its name (for outputs, the path under `outputs/`).
    pub name: String,
    /// The bundle entry holding it.
    pub entry: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, hex.
    pub sha256: String,
}

/// A catalog entry; the mock is carried as the entry [`mock_entry`]`(name)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetTransfer {
    /// Asset name.
    pub name: String,
    /// The owner's description.
    pub description: String,
    /// The mock file.
    pub mock: FileRef,
    /// When the owner last changed it (unix seconds).
    pub updated_at: i64,
    /// The mock is a directory: `mock` is its deterministic tar archive.
    pub mock_tree: bool,
}

/// A runtime as it travels low-ward and as researchers see it (`ferry runtimes`): what it offers, never where it
/// lives on the high side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeTransfer {
    /// The name jobs give as their `runtime`.
    pub name: String,
    /// The owner's description.
    pub description: String,
    /// The interpreter's version, e.g. `3.11.2`.
    pub python: String,
    /// Installed distributions as (name, version), sorted by name.
    pub packages: Vec<(String, String)>,
    /// SHA-256 over the environment's files (a tree hash, `docs/runtimes.md`), hex: the runtime's version.
    pub sha256: String,
    /// Device nodes passed into the sandbox (for GPUs), e.g. `/dev/nvidia0`.
    pub devices: Vec<String>,
    /// When the owner registered it (unix seconds).
    pub added_at: i64,
}

/// A records entry that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("records entry is malformed: {0}")]
pub struct RecordsError(pub String);

impl Batch {
    /// What the batch carries, for people, one phrase per kind in a fixed order: `2 job(s)`,
    /// `1 released result(s)`, `1 other status report(s)`, `1 cancellation(s)`, `the catalog of 3 asset(s)`,
    /// `a key rotation`, `an acknowledgement`.
    pub fn summary(&self) -> Vec<String> {
        let (mut jobs, mut results, mut reports, mut cancels, mut comments) = (0, 0, 0, 0, 0);
        let (mut catalog, mut rotation, mut ack, mut reviewers) = (None, false, false, None);
        let mut runtimes = None;
        for r in &self.records {
            match r {
                Record::Job(_) => jobs += 1,
                Record::Status(s) if s.result.is_some() => results += 1,
                Record::Status(_) => reports += 1,
                Record::Cancel { .. } => cancels += 1,
                Record::Catalog { assets, .. } => catalog = Some(assets.len()),
                Record::Rotate { .. } => rotation = true,
                Record::Ack { .. } => ack = true,
                Record::Reviewers { reviewers: r, .. } => reviewers = Some(r.len()),
                Record::Comment { .. } => comments += 1,
                Record::Runtimes { runtimes: r, .. } => runtimes = Some(r.len()),
                // A receipt goes with its released result, which the summary counts.
                Record::Receipt { .. } => {}
                // The audit log's head rides along with everything; it says nothing of its own.
                Record::AuditHead { .. } => {}
            }
        }
        let mut out = Vec::new();
        for (n, what) in [
            (jobs, "job(s)"),
            (results, "released result(s)"),
            (reports, "other status report(s)"),
            (cancels, "cancellation(s)"),
            (comments, "comment(s)"),
        ] {
            if n > 0 {
                out.push(format!("{n} {what}"));
            }
        }
        if let Some(n) = catalog {
            out.push(format!("the catalog of {n} asset(s)"));
        }
        if let Some(n) = reviewers {
            out.push(format!("the list of {n} reviewer(s)"));
        }
        if let Some(n) = runtimes {
            out.push(format!("the list of {n} runtime(s)"));
        }
        if rotation {
            out.push("a key rotation".into());
        }
        if ack {
            out.push("an acknowledgement".into());
        }
        out
    }

    /// postcard bytes.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("records serialize")
    }

    /// Decodes a records entry; `bytes` was already capped at [`MAX_RECORDS_BYTES`] by the bundle reader.
    pub fn decode(bytes: &[u8]) -> Result<Batch, RecordsError> {
        postcard::from_bytes(bytes).map_err(|e| RecordsError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_round_trip() {
        let batch = Batch {
            records: vec![
                Record::Cancel {
                    job_id: "j".into(),
                    at: 5,
                },
                Record::Catalog {
                    version: 3,
                    assets: vec![AssetTransfer {
                        name: "a".into(),
                        description: "d".into(),
                        mock: FileRef {
                            name: "a".into(),
                            entry: mock_entry("a"),
                            size: 3,
                            sha256: "00".into(),
                        },
                        updated_at: 1,
                        mock_tree: false,
                    }],
                },
                Record::Ack {
                    received: to_ranges(&[Seq(1), Seq(2), Seq(3), Seq(5)]),
                    missing: vec![4],
                },
            ],
        };
        assert_eq!(Batch::decode(&batch.encode()).unwrap(), batch);
        assert!(Batch::decode(&[0xff, 0xff, 0xff]).is_err());
    }

    #[test]
    fn ranges() {
        let seqs: Vec<Seq> = [1, 2, 3, 5, 7, 8].into_iter().map(Seq).collect();
        assert_eq!(to_ranges(&seqs), vec![(1, 3), (5, 5), (7, 8)]);
        assert!(to_ranges(&[]).is_empty());
    }
}

/// The spec (`schemas/records.md`) carries the encoding of this batch; a change to the wire types that does not
/// change the spec fails `records_match_the_spec`.
#[cfg(test)]
pub(crate) fn spec_example() -> Batch {
    let file = |entry: &str| FileRef {
        name: "a.txt".into(),
        entry: entry.into(),
        size: 3,
        sha256: "ab".into(),
    };
    Batch {
        records: vec![
            Record::Job(JobTransfer {
                job_id: "j1".into(),
                researcher: "alice".into(),
                title: "t".into(),
                description: "d".into(),
                runtime: "python".into(),
                code: "print(1)".into(),
                assets: vec!["data.csv".into()],
                approved_by: "owner:root".into(),
                approved_at: 1,
                approvals: vec![],
                revises: None,
                resources: None,
            }),
            Record::Cancel {
                job_id: "j1".into(),
                at: -1,
            },
            Record::Status(StatusTransfer {
                job_id: "j1".into(),
                state: "released".into(),
                reason: None,
                at: 2,
                result: Some(ResultTransfer {
                    exit_code: Some(0),
                    summary: "ok".into(),
                    stdout: b"hi".to_vec(),
                    stderr: vec![],
                    stdout_truncated: false,
                    stderr_truncated: true,
                    outputs: vec![file("outputs/j1/a.txt")],
                    withheld: vec![Withheld {
                        name: "stderr".into(),
                        reason: "r".into(),
                    }],
                }),
                decisions: vec![],
                attempt: 1,
            }),
            Record::Catalog {
                version: 7,
                assets: vec![AssetTransfer {
                    name: "data.csv".into(),
                    description: "x".into(),
                    mock: file("mocks/data.csv"),
                    updated_at: 3,
                    mock_tree: false,
                }],
            },
            Record::Ack {
                received: vec![(1, 300)],
                missing: vec![4],
            },
            Record::Rotate {
                statement: vec![1, 2],
            },
            Record::Reviewers {
                version: 2,
                reviewers: vec![Reviewer {
                    name: "rita".into(),
                    public_key: crate::decision::ReviewerPublic([7; 32]),
                    removed: false,
                }],
            },
            Record::AuditHead {
                seq: 9,
                hash: "c".into(),
            },
            Record::Comment {
                job_id: "j1".into(),
                comment: crate::store::Comment {
                    at: 4,
                    author: "o".into(),
                    side: "high".into(),
                    text: "why?".into(),
                },
            },
        ],
    }
}

#[cfg(test)]
mod spec_tests {
    /// The hex block after the line "```hex records-example" in the spec.
    fn spec_hex() -> String {
        let spec = include_str!("../../../schemas/records.md");
        let start = spec
            .find("```hex records-example")
            .expect("the spec has a records-example block");
        let body = &spec[start..];
        let body = &body[body.find('\n').unwrap() + 1..];
        let end = body.find("```").unwrap();
        body[..end].split_whitespace().collect()
    }

    #[test]
    fn a_batch_says_what_it_carries() {
        assert_eq!(
            super::spec_example().summary(),
            [
                "1 job(s)",
                "1 released result(s)",
                "1 cancellation(s)",
                "1 comment(s)",
                "the catalog of 1 asset(s)",
                "the list of 1 reviewer(s)",
                "a key rotation",
                "an acknowledgement"
            ]
        );
        assert!(super::Batch::default().summary().is_empty());
    }

    #[test]
    fn records_match_the_spec() {
        let actual = hex::encode(super::spec_example().encode());
        assert_eq!(
            actual,
            spec_hex(),
            "the records' wire encoding changed: update schemas/records.md (its example and field lists)"
        );
    }
}
