//! `ferry serve --metrics ADDR`: a Prometheus scrape of `/metrics` on each side shows what really happened
//! (requests taken and refused, jobs by state, job runs, bundle imports, queue depths).

use std::io::{Read, Write};
use std::path::Path;

use crate::harness::Pair;

/// `GET path` of `url` (`http://HOST:PORT/metrics`) over plain HTTP/1.0; the body of a 200 reply.
fn scrape(url: &str) -> String {
    let addr = url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("not a metrics URL: {url}"));
    let mut stream = std::net::TcpStream::connect(addr).expect("connecting to the metrics port");
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("an HTTP reply");
    assert!(head.contains(" 200 "), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body.to_string()
}

/// The value of the sample named exactly `series` (`name` or `name{labels}`), if the scrape has it.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.rsplit_once(' ').filter(|(s, _)| *s == series))
        .map(|(_, v)| v.parse().expect("a number"))
}

/// Waits until the side's scrape has `series` at `want`; returns that scrape.
fn wait_for_sample(pair: &Pair, url: &str, series: &str, want: f64) -> String {
    let mut last = String::new();
    pair.wait_for(&format!("{series} to be {want}"), || {
        last = scrape(url);
        (sample(&last, series) == Some(want)).then(|| last.clone())
    })
}

#[test]
fn low_side_metrics_count_requests_taken_and_refused_and_jobs_by_state() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    let alice = pair.researcher("alice");
    let low = pair.low.clone();
    pair.serve_with(&low, &["--metrics", "127.0.0.1:0"]);
    let url = pair.metrics_url(&low);

    // Before any request: the broker is reached, intake consumes ferry.requests, and nothing was counted.
    let before = wait_for_sample(
        &pair,
        &url,
        "ferry_queue_consumers{queue=\"ferry.requests\"}",
        1.0,
    );
    assert_eq!(sample(&before, "ferry_broker_up"), Some(1.0), "{before}");
    assert_eq!(sample(&before, "ferry_store_up"), Some(1.0), "{before}");
    assert_eq!(
        sample(&before, "ferry_requests_taken_total"),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        sample(&before, "ferry_jobs{state=\"submitted\"}"),
        Some(0.0),
        "{before}"
    );

    let job = pair.submit_code(&alice, "print('hello')\n");
    let after = wait_for_sample(&pair, &url, "ferry_requests_taken_total", 1.0);
    assert_eq!(
        sample(&after, "ferry_jobs{state=\"submitted\"}"),
        Some(1.0),
        "{after}"
    );
    assert_eq!(pair.state_on(&low, &job).as_deref(), Some("submitted"));

    // A request for an asset the catalog does not have (published raw: `ferry submit` checks the catalog first)
    // is refused, and counted as such (not as taken).
    let user = alice
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap();
    crate::harness::python(
        r#"
import json, sys, uuid, pika
url, user = sys.argv[1], sys.argv[2]
conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel(); ch.confirm_delivery()
job = str(uuid.uuid4())
body = {"job_id": job, "runtime": "python", "code": "print(2)", "assets": ["secret-weights"]}
ch.basic_publish("ferry.requests", "job", json.dumps(body).encode(),
                 pika.BasicProperties(content_type="application/json", user_id=user, message_id=job))
conn.close()
"#,
        &[&alice, user],
    );
    let refused = wait_for_sample(&pair, &url, "ferry_requests_refused_total", 1.0);
    assert_eq!(
        sample(&refused, "ferry_requests_taken_total"),
        Some(1.0),
        "{refused}"
    );
    assert_eq!(
        sample(&refused, "ferry_jobs{state=\"submitted\"}"),
        Some(1.0),
        "{refused}"
    );
}

#[test]
fn high_side_metrics_count_the_imported_bundle_the_job_run_and_the_finished_job() {
    let mut pair = Pair::with_broker();
    pair.register_dataset();
    pair.approved_jobs(1);
    let bundle = pair.export(&pair.low.clone()).expect("a bundle of the job");
    let bytes = std::fs::metadata(&bundle).unwrap().len();
    let high = pair.high.clone();
    pair.serve_with(&high, &["--metrics", "127.0.0.1:0"]);
    let url = pair.metrics_url(&high);
    // The one worker `ferry init` configures consumes the jobs queue.
    let idle = wait_for_sample(
        &pair,
        &url,
        "ferry_queue_consumers{queue=\"ferry.jobs.python\"}",
        1.0,
    );
    assert_eq!(
        sample(&idle, "ferry_job_run_seconds_count"),
        Some(0.0),
        "{idle}"
    );

    // The courier drops the bundle into the inbox; the watcher imports it and a worker runs the job.
    let inbox = pair.side_dir(&high).join("inbox");
    copy_in(&bundle, &inbox);
    let done = wait_for_sample(&pair, &url, "ferry_jobs{state=\"finished\"}", 1.0);
    assert_eq!(
        sample(&done, "ferry_bundles_imported_total{outcome=\"accepted\"}"),
        Some(1.0),
        "{done}"
    );
    assert_eq!(
        sample(&done, "ferry_bundle_import_bytes_total"),
        Some(bytes as f64),
        "{done}"
    );
    assert_eq!(
        sample(&done, "ferry_bundle_import_seconds_count"),
        Some(1.0),
        "{done}"
    );
    assert_eq!(
        sample(&done, "ferry_job_run_seconds_count"),
        Some(1.0),
        "{done}"
    );
    assert_eq!(
        sample(&done, "ferry_job_run_seconds_bucket{le=\"+Inf\"}"),
        Some(1.0),
        "{done}"
    );
    assert_eq!(
        sample(&done, "ferry_queue_messages{queue=\"ferry.jobs.python\"}"),
        Some(0.0),
        "{done}"
    );
}

/// Copies `bundle` into `inbox` as a courier would: written beside it, then renamed in whole.
fn copy_in(bundle: &Path, inbox: &Path) {
    let name = bundle.file_name().unwrap();
    let partial = inbox.join(format!(".{}.part", name.to_string_lossy()));
    std::fs::copy(bundle, &partial).unwrap();
    std::fs::rename(&partial, inbox.join(name)).unwrap();
}

#[test]
fn serve_refuses_a_metrics_address_it_cannot_use_before_starting() {
    let pair = Pair::with_broker();
    let (_, err) = pair.fails(
        1,
        &["serve", "--config", pair.low_s(), "--metrics", "localhost"],
    );
    assert!(
        err.contains("--metrics localhost") && err.contains("not an IP address and port"),
        "{err}"
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let (_, err) = pair.fails(1, &["serve", "--config", pair.low_s(), "--metrics", &busy]);
    assert!(
        err.contains(&format!("--metrics {busy}")) && err.contains("cannot listen there"),
        "{err}"
    );
}
