//! Import policy against bundles that are authentic (signed by the pinned key) but wrong in some other way: only
//! a real side's keys can make those, so these tests sign with the high side's own keys.

use std::path::PathBuf;

use ferry_bundle::{Channel, Entry, EntrySource, HeaderParams, PublicIdentity, SideKeys};
use ferry_core::records::{Batch, JobTransfer, Record};

use crate::harness::Pair;

struct Forge<'a> {
    pair: &'a Pair,
    keys: SideKeys,
    low: PublicIdentity,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl<'a> Forge<'a> {
    fn new(pair: &'a Pair) -> Forge<'a> {
        let high = pair.side_dir(&pair.high);
        let keys = SideKeys::load(&high.join("keys")).unwrap();
        let low_text =
            std::fs::read_to_string(pair.side_dir(&pair.low).join("public.txt")).unwrap();
        Forge {
            pair,
            keys,
            low: PublicIdentity::parse(&low_text).unwrap(),
        }
    }

    /// A bundle high → low with `records` and any extra entries.
    fn bundle(
        &self,
        name: &str,
        params: HeaderParams,
        records: Vec<Record>,
        extra: &[(&str, &[u8])],
    ) -> PathBuf {
        let bytes = postcard::to_allocvec(&Batch { records }).unwrap();
        let mut entries = vec![Entry {
            path: "records".into(),
            source: EntrySource::Bytes(&bytes),
        }];
        for (path, data) in extra {
            entries.push(Entry {
                path: path.to_string(),
                source: EntrySource::Bytes(data),
            });
        }
        let path = self.pair.dir.path().join(name);
        let file = std::fs::File::create(&path).unwrap();
        ferry_bundle::write_bundle(file, &self.keys, &self.low, &params, &entries).unwrap();
        path
    }

    fn params(&self, seq: u64) -> HeaderParams {
        HeaderParams {
            bundle_id: ferry_bundle::new_bundle_id(),
            channel: Channel::HighToLow,
            seq,
            prev_hash: [0; 32],
            created_at: now(),
            expires_at: now() + 3600,
        }
    }

    fn import(&self, path: &std::path::Path, extra: &[&str]) -> (bool, String) {
        let mut args = vec!["import", "--config", self.pair.low_s()];
        args.extend_from_slice(extra);
        args.push(path.to_str().unwrap());
        let out = self.pair.run(&args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    fn reason(&self, path: &std::path::Path) -> String {
        let q = self.pair.side_dir(&self.pair.low).join("quarantine");
        std::fs::read_to_string(q.join(format!(
            "{}.reason",
            path.file_name().unwrap().to_str().unwrap()
        )))
        .unwrap()
    }
}

fn ack() -> Vec<Record> {
    vec![Record::Ack {
        received: vec![],
        missing: vec![],
    }]
}

#[test]
fn a_jump_past_the_gap_is_held_for_the_owner_who_may_accept_it() {
    let pair = Pair::create();
    let forge = Forge::new(&pair);
    let far = forge.bundle("far.bundle", forge.params(40), ack(), &[]);
    let (ok, text) = forge.import(&far, &[]);
    assert!(!ok, "{text}");
    assert!(
        forge.reason(&far).contains("refused: sequence_gap"),
        "{}",
        forge.reason(&far)
    );
    let held = pair.side_dir(&pair.low).join("quarantine/far.bundle");
    let (ok, text) = forge.import(&held, &["--accept-gap"]);
    assert!(ok, "{text}");
    let out = pair.run(&["import", "--config", pair.low_s(), "--accept-gap"]);
    assert!(!out.status.success(), "--accept-gap needs named files");
}

#[test]
fn expiry_is_checked_with_clock_slack() {
    let pair = Pair::create();
    let forge = Forge::new(&pair);
    let mut p = forge.params(1);
    p.created_at = now() - 7200;
    p.expires_at = now() - 3600;
    let expired = forge.bundle("expired.bundle", p, ack(), &[]);
    assert!(!forge.import(&expired, &[]).0);
    assert!(forge.reason(&expired).contains("refused: expired"));
    let mut p = forge.params(1);
    p.created_at = now() + 7200;
    p.expires_at = now() + 9000;
    let future = forge.bundle("future.bundle", p, ack(), &[]);
    assert!(!forge.import(&future, &[]).0);
    assert!(forge.reason(&future).contains("refused: not_yet_valid"));
    // Expired a minute ago, within the default 600 s slack: accepted.
    let mut p = forge.params(1);
    p.created_at = now() - 7200;
    p.expires_at = now() - 60;
    let (ok, text) = forge.import(&forge.bundle("slack.bundle", p, ack(), &[]), &[]);
    assert!(ok, "{text}");
}

#[test]
fn each_bundle_must_name_its_predecessor() {
    let pair = Pair::create();
    let forge = Forge::new(&pair);
    let (ok, text) = forge.import(
        &forge.bundle("one.bundle", forge.params(1), ack(), &[]),
        &[],
    );
    assert!(ok, "{text}");
    let mut p = forge.params(2);
    p.prev_hash = [7; 32];
    let two = forge.bundle("two.bundle", p, ack(), &[]);
    assert!(!forge.import(&two, &[]).0);
    assert!(
        forge.reason(&two).contains("refused: chain_mismatch"),
        "{}",
        forge.reason(&two)
    );
    let mut p = forge.params(1);
    p.prev_hash = [7; 32];
    let pair2 = Pair::create();
    let forge2 = Forge::new(&pair2);
    let first = forge2.bundle("first.bundle", p, ack(), &[]);
    assert!(!forge2.import(&first, &[]).0);
    assert!(forge2.reason(&first).contains("refused: chain_mismatch"));
}

#[test]
fn a_key_signs_only_its_own_direction_and_records_stay_in_scope() {
    let pair = Pair::create();
    let forge = Forge::new(&pair);
    let mut p = forge.params(1);
    p.channel = Channel::LowToHigh;
    let wrong_way = forge.bundle("wrong-way.bundle", p, ack(), &[]);
    assert!(!forge.import(&wrong_way, &[]).0);
    assert!(forge.reason(&wrong_way).contains("refused: wrong_channel"));
    let job = Record::Job(JobTransfer {
        job_id: uuid::Uuid::new_v4().to_string(),
        researcher: "mallory".into(),
        title: "t".into(),
        description: String::new(),
        runtime: "python".into(),
        code: "print(1)".into(),
        assets: vec!["training-data.csv".into()],
        approved_by: "nobody".into(),
        approved_at: now(),
    });
    let scoped = forge.bundle("scope.bundle", forge.params(1), vec![job], &[]);
    assert!(!forge.import(&scoped, &[]).0);
    assert!(forge.reason(&scoped).contains("refused: wrong_scope"));
    let extra = forge.bundle(
        "extra.bundle",
        forge.params(1),
        ack(),
        &[("outputs/x/y", b"unreferenced")],
    );
    assert!(!forge.import(&extra, &[]).0);
    assert!(forge.reason(&extra).contains("refused: unlisted_entry"));
    // None of it changed the channel.
    let status: serde_json::Value =
        serde_json::from_str(&pair.ok(&["status", "--config", pair.low_s(), "--json"])).unwrap();
    assert_eq!(status["channels"]["high-to-low"]["last_seq"], 0);
}
