//! Notifier throughput against the broker's own publish-confirm rate, in the same run.
//!
//! Reference: N persistent messages the size of a job update, published to the results exchange in batches of 500
//! with publisher confirms (as the notifier publishes), timed from the first publish to the last confirm; measured
//! before and after Ferry, and the faster of the two kept. Ferry: `ferry serve` (low side) is started and ready,
//! then N job updates are committed to its state store in one transaction (N submitted jobs, one notification
//! each), and the clock runs until the notifier has published, been confirmed for and marked every one. Target
//! (issue 12): notifier ≥ 0.5× the reference.
//!
//! `cargo build --release -p ferry && cargo run --release -p ferry --example notifier_bench [N]` (`scripts/bench
//! notifier` does both). It runs the release `ferry` binary beside it (`target/release/ferry`), or `FERRY_BIN`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_broker::{Outgoing, Session};
use ferry_core::wire::{JobRequest, RESULTS_EXCHANGE};
use ferry_core::{Side, Store};

// The end-to-end tests' harness: a pair of sides on fresh vhosts, `ferry serve`, waits.
#[allow(dead_code)]
#[path = "../tests/it/harness.rs"]
mod harness;

use harness::Pair;

/// The researcher the updates are for: the broker account the harness uses.
const RESEARCHER: &str = "guest";
/// The routing key (and results queue) of the reference run.
const REFERENCE: &str = "bench-reference";

fn ferry_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("FERRY_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the example's path");
    // target/<profile>/examples/notifier_bench -> target/<profile>/ferry
    let bin = exe
        .parent()
        .and_then(|examples| examples.parent())
        .expect("the example sits in target/<profile>/examples")
        .join("ferry");
    assert!(
        bin.exists(),
        "{} is missing: `cargo build --release -p ferry` first (scripts/bench notifier does)",
        bin.display()
    );
    bin
}

/// Publishes every body with confirms, in batches of 500; returns the time from the first publish to the last
/// confirm.
async fn publish_confirmed(session: &Session, bodies: &[(String, String)]) -> Duration {
    let start = Instant::now();
    for chunk in bodies.chunks(500) {
        let msgs: Vec<Outgoing<'_>> = chunk
            .iter()
            .map(|(id, body)| Outgoing {
                exchange: RESULTS_EXCHANGE,
                routing_key: REFERENCE,
                body: body.as_bytes(),
                message_id: Some(id),
                kind: Some("job-update"),
                persistent: true,
                ..Outgoing::default()
            })
            .collect();
        session.publish_many(&msgs).await.expect("publish");
    }
    start.elapsed()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(10000, |v| v.parse().expect("N"));
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let url = format!("amqp://guest:guest@127.0.0.1:5672/{}", pair.low_vhost);
    let session = Session::connect(&url).await.expect("connect");
    ferry_broker::topology::declare_low(&session, Default::default())
        .await
        .expect("topology");
    for queue in [RESEARCHER, REFERENCE] {
        ferry_broker::topology::declare_results_queue(&session, queue, Default::default())
            .await
            .expect("results queue");
    }

    let requests: Vec<JobRequest> = (0..n)
        .map(|i| JobRequest {
            job_id: uuid::Uuid::new_v4(),
            title: format!("notifier bench {i}"),
            description: String::new(),
            runtime: "python".into(),
            code: "print(1)\n".into(),
            assets: vec!["training-data.csv".into()],
            revises: None,
            resources: None,
        })
        .collect();
    // The reference publishes what the notifier will: the submitted jobs' updates, as the store words them.
    let scratch = tempfile::tempdir().expect("scratch");
    let bodies: Vec<(String, String)> = {
        let mut store = Store::open(&scratch.path().join("state.db")).expect("scratch store");
        let tx = store.begin(Side::Low).expect("begin");
        for r in &requests {
            tx.submit(r, RESEARCHER).expect("submit");
        }
        tx.commit().expect("commit");
        store
            .pending_notifications(n)
            .expect("notifications")
            .into_iter()
            .map(|n| (format!("update-{}", n.id), n.body))
            .collect()
    };
    let before = publish_confirmed(&session, &bodies).await;

    pair.serve(&pair.low.clone());
    pair.wait_for("the low side's services", || {
        pair.run_env(&["assets"], &[("FERRY_AMQP_URL", &url)])
            .status
            .success()
            .then_some(())
    });
    let db = pair.side_dir(&pair.low).join("state.db");
    let mut store = Store::open(&db).expect("low store");
    let tx = store.begin(Side::Low).expect("begin");
    for r in &requests {
        tx.submit(r, RESEARCHER).expect("submit");
    }
    tx.commit().expect("commit");
    let start = Instant::now();
    while !store
        .pending_notifications(1)
        .expect("notifications")
        .is_empty()
    {
        if start.elapsed() > Duration::from_secs(600) {
            panic!("the notifier took over ten minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let notifier = start.elapsed();
    pair.stop_serves();
    let after = publish_confirmed(&session, &bodies).await;
    session.close().await;

    let reference = before.min(after);
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("job updates                   {n}");
    println!(
        "broker publish-confirm        {:8.0} msg/s  ({:.2} s; before {:.2} s, after {:.2} s)",
        rate(reference),
        reference.as_secs_f64(),
        before.as_secs_f64(),
        after.as_secs_f64()
    );
    println!(
        "ferry notifier (publish, confirm, mark) {:8.0} msg/s  ({:.2} s)",
        rate(notifier),
        notifier.as_secs_f64()
    );
    let ratio = rate(notifier) / rate(reference);
    println!(
        "notifier / broker: {ratio:.2}x; target >= 0.50x: {}",
        if ratio >= 0.5 { "met" } else { "NOT met" }
    );
}
