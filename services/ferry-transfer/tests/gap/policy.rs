//! Import policy against bundles that are authentic (signed by the pinned key) but wrong in some other way:
//! sequence gaps, expiry, the chain, the channel, record scope and unlisted entries.

use ferry_bundle::Channel;
use ferry_core::records::{JobTransfer, Record};
use ferry_core::Side;
use ferry_transfer::import::ImportOptions;

use crate::harness::{accepted, ack, assert_refused, Forge, Sides};

#[test]
fn a_jump_past_the_gap_is_held_for_the_owner_who_may_accept_it() {
    let mut sides = Sides::create();
    let forge = Forge::high_to_low(&sides);
    let far = forge.bundle("far.bundle", forge.params(40), ack(), &[]);
    let held = assert_refused(sides.import(Side::Low, &far), "sequence_gap");
    assert_eq!(held, sides.low.layout.quarantine().join("far.bundle"));
    assert_eq!(sides.last_imported(Side::Low), 0);
    // The owner reviewed it and accepts the jump for this file.
    let summary = accepted(sides.import_with(Side::Low, &held, ImportOptions { accept_gap: true }));
    assert!(summary.starts_with("sequence 40: "), "{summary}");
    assert_eq!(sides.last_imported(Side::Low), 40);
    // (That `ferry import --accept-gap` needs named files is the CLI's rule: see the ferry crate's
    // it::offline::transfer.)
}

#[test]
fn a_jump_within_the_gap_is_accepted_without_the_owner() {
    let mut sides = Sides::create();
    let max = sides.low.config.bundle.max_seq_gap;
    let forge = Forge::high_to_low(&sides);
    let near = forge.bundle("near.bundle", forge.params(max), ack(), &[]);
    accepted(sides.import(Side::Low, &near));
    let far = forge.bundle("far.bundle", forge.params(2 * max + 1), ack(), &[]);
    assert_refused(sides.import(Side::Low, &far), "sequence_gap");
}

#[test]
fn expiry_is_checked_with_clock_slack() {
    let mut sides = Sides::create();
    let forge = Forge::high_to_low(&sides);
    let now = ferry_core::now();
    let mut p = forge.params(1);
    p.created_at = now - 7200;
    p.expires_at = now - 3600;
    let expired = forge.bundle("expired.bundle", p, ack(), &[]);
    assert_refused(sides.import(Side::Low, &expired), "expired");
    let mut p = forge.params(1);
    p.created_at = now + 7200;
    p.expires_at = now + 9000;
    let future = forge.bundle("future.bundle", p, ack(), &[]);
    assert_refused(sides.import(Side::Low, &future), "not_yet_valid");
    // Expired a minute ago, within the default 600 s slack: accepted.
    assert_eq!(sides.low.config.bundle.clock_slack_secs, 600);
    let mut p = forge.params(1);
    p.created_at = now - 7200;
    p.expires_at = now - 60;
    let slack = forge.bundle("slack.bundle", p, ack(), &[]);
    accepted(sides.import(Side::Low, &slack));
}

#[test]
fn each_bundle_must_name_its_predecessor() {
    let mut sides = Sides::create();
    let forge = Forge::high_to_low(&sides);
    let one = forge.bundle("one.bundle", forge.params(1), ack(), &[]);
    accepted(sides.import(Side::Low, &one));
    let mut p = forge.params(2);
    p.prev_hash = [7; 32];
    let two = forge.bundle("two.bundle", p, ack(), &[]);
    assert_refused(sides.import(Side::Low, &two), "chain_mismatch");
    assert_eq!(sides.last_imported(Side::Low), 1);

    // The first bundle of a channel names no predecessor.
    let mut fresh = Sides::create();
    let forge = Forge::high_to_low(&fresh);
    let mut p = forge.params(1);
    p.prev_hash = [7; 32];
    let first = forge.bundle("first.bundle", p, ack(), &[]);
    assert_refused(fresh.import(Side::Low, &first), "chain_mismatch");
}

#[test]
fn a_key_signs_only_its_own_direction_and_records_stay_in_scope() {
    let mut sides = Sides::create();
    let forge = Forge::high_to_low(&sides);
    let mut p = forge.params(1);
    p.channel = Channel::LowToHigh;
    let wrong_way = forge.bundle("wrong-way.bundle", p, ack(), &[]);
    assert_refused(sides.import(Side::Low, &wrong_way), "wrong_channel");
    let job = Record::Job(JobTransfer {
        job_id: uuid::Uuid::new_v4().to_string(),
        researcher: "mallory".into(),
        title: "t".into(),
        description: String::new(),
        runtime: "python".into(),
        code: "print(1)".into(),
        assets: vec!["training-data.csv".into()],
        approved_by: "nobody".into(),
        approved_at: ferry_core::now(),
        approvals: Vec::new(),
        revises: None,
        resources: None,
    });
    let scoped = forge.bundle("scope.bundle", forge.params(1), vec![job], &[]);
    assert_refused(sides.import(Side::Low, &scoped), "wrong_scope");
    let extra = forge.bundle(
        "extra.bundle",
        forge.params(1),
        ack(),
        &[("outputs/x/y", b"unreferenced")],
    );
    assert_refused(sides.import(Side::Low, &extra), "unlisted_entry");
    // None of it changed the channel or the jobs.
    assert_eq!(sides.last_imported(Side::Low), 0);
    assert!(sides.low.store.jobs(None, None).unwrap().is_empty());
}
