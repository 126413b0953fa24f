//! Intake throughput against the broker's own consume-and-ack rate, in the same run.
//!
//! Reference: a plain consumer on a scratch queue acks N small persistent messages (prefetch 256, as intake uses).
//! Ferry: `ferry serve` (low side) takes N valid job requests through validation and SQLite commits, acking each
//! after its commit. Both clocks run from the first publish to the last ack or commit, so publishing costs both
//! alike. Target (DESIGN.md): intake ≥ 0.5× the reference.
//!
//! `cargo build --release -p ferry && cargo run --release -p ferry --example intake_bench [N]` (`scripts/bench
//! intake` does both). It runs the release `ferry` binary beside it (`target/release/ferry`), or `FERRY_BIN`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferry_broker::{Outgoing, Session};

// The end-to-end tests' harness: a pair of sides on fresh vhosts, `ferry serve`, waits.
#[allow(dead_code)]
#[path = "../tests/it/harness.rs"]
mod harness;

use harness::Pair;

/// The `ferry` binary to measure: `FERRY_BIN`, or the one built beside this example (the release build when the
/// example runs with `--release`). Examples are not given `CARGO_BIN_EXE_ferry`, so it is found here.
fn ferry_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("FERRY_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("the example's path");
    // target/<profile>/examples/intake_bench -> target/<profile>/ferry
    let bin = exe
        .parent()
        .and_then(|examples| examples.parent())
        .expect("the example sits in target/<profile>/examples")
        .join("ferry");
    assert!(
        bin.exists(),
        "{} is missing: `cargo build --release -p ferry` first (scripts/bench intake does)",
        bin.display()
    );
    bin
}

fn count_submitted(pair: &Pair) -> u64 {
    let store = ferry_core::Store::open(&pair.side_dir(&pair.low).join("state.db")).unwrap();
    store
        .counts()
        .unwrap()
        .into_iter()
        .find(|(s, _)| *s == ferry_core::JobState::Submitted)
        .map_or(0, |(_, n)| n)
}

async fn publish_all(
    session: &Session,
    exchange: &str,
    key: &str,
    bodies: &[(String, Vec<u8>)],
    user: Option<&str>,
) {
    for chunk in bodies.chunks(500) {
        let msgs: Vec<Outgoing<'_>> = chunk
            .iter()
            .map(|(id, body)| Outgoing {
                exchange,
                routing_key: key,
                body,
                message_id: Some(id),
                user_id: user,
                persistent: true,
                ..Outgoing::default()
            })
            .collect();
        session.publish_many(&msgs).await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(5000, |v| v.parse().expect("N"));
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let url = format!("amqp://guest:guest@127.0.0.1:5672/{}", pair.low_vhost);
    let bodies: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            let id = uuid::Uuid::new_v4().to_string();
            let body = serde_json::json!({
                "job_id": id, "title": format!("bench {i}"), "runtime": "python",
                "code": "print(1)\n", "assets": ["training-data.csv"],
            });
            (id, serde_json::to_vec(&body).unwrap())
        })
        .collect();

    // Reference: the broker's own consume-and-ack rate for the same messages.
    let session = Session::connect(&url).await.unwrap();
    ferry_broker::topology::declare_low(&session, Default::default())
        .await
        .unwrap();
    let scratch = "bench.reference";
    ferry_broker::topology::declare_scratch_queue(&session, scratch)
        .await
        .unwrap();
    let mut sub = session.consume(scratch, 256).await.unwrap();
    let start = Instant::now();
    let publisher = async {
        publish_all(&session, "", scratch, &bodies, None).await;
    };
    let consumer = async {
        for _ in 0..n {
            sub.next().await.unwrap().ack().await.unwrap();
        }
    };
    tokio::join!(publisher, consumer);
    let reference = start.elapsed();

    // Ferry's intake.
    pair.serve(&pair.low.clone());
    pair.wait_for("the low side's intake", || {
        pair.run_env(&["assets"], &[("FERRY_AMQP_URL", &url)])
            .status
            .success()
            .then_some(())
    });
    let start = Instant::now();
    publish_all(&session, "ferry.requests", "job", &bodies, Some("guest")).await;
    while (count_submitted(&pair) as usize) < n {
        if start.elapsed() > Duration::from_secs(600) {
            panic!("intake took over ten minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let intake = start.elapsed();
    session.close().await;

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("requests                      {n}");
    println!(
        "broker consume-and-ack        {:8.0} msg/s  ({:.2} s)",
        rate(reference),
        reference.as_secs_f64()
    );
    println!(
        "ferry intake (commit + ack)   {:8.0} req/s  ({:.2} s)",
        rate(intake),
        intake.as_secs_f64()
    );
    let ratio = rate(intake) / rate(reference);
    println!(
        "intake / broker: {ratio:.2}x; target >= 0.50x: {}",
        if ratio >= 0.5 { "met" } else { "NOT met" }
    );
}
