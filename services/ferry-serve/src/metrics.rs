//! Prometheus metrics: the process's counters and histograms, and a small HTTP/1 server answering `GET /metrics`
//! in the text exposition format (version 0.0.4), for `ferry serve --metrics ADDR` and `ferry worker --metrics
//! ADDR`.
//!
//! What happens in the process is counted in statics that the services bump with one line each
//! ([`REQUESTS_TAKEN`], [`JOB_RUN_SECONDS`], ...), whether or not anything scrapes them. What is true of the
//! world rather than of the process (jobs by state in the state store, queue depths on the broker) is read at
//! scrape time by a [`Registry`], which names the sources a process may look at: a worker, which never opens the
//! state store, gives none. Names and labels are part of the contract (docs/contract.md, "Metrics").
//!
//! ```no_run
//! # async fn f(stop: impl std::future::Future<Output = ()> + Send + 'static) -> ferry_serve::Result<()> {
//! use ferry_serve::metrics;
//! let registry = metrics::Registry::new("worker").with_queues("amqp://...", &["ferry.jobs"]);
//! let listener = metrics::bind("127.0.0.1:9464").await?;
//! tracing::info!("metrics on http://{}/metrics", listener.local_addr());
//! tokio::spawn(metrics::serve(listener, registry, stop));
//! # Ok(()) }
//! ```

use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::Store;

use crate::error::{Result, ServeError};

/// A count that only goes up.
#[derive(Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Zero.
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Counter {
        Counter::new()
    }
}

/// Upper bounds, in seconds, of the buckets of every duration histogram: from a tenth of a second to an hour
/// (a job's default wall-time limit is 300 s, the largest it may ask for 3600 s).
pub const SECONDS_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// A histogram of durations over [`SECONDS_BUCKETS`].
#[derive(Debug)]
pub struct Histogram {
    /// Observations at or below each bound (not cumulative here; summed when rendered).
    buckets: [AtomicU64; SECONDS_BUCKETS.len()],
    count: AtomicU64,
    /// Sum of the observations, in microseconds.
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Empty.
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; SECONDS_BUCKETS.len()],
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = SECONDS_BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Records the time since `start`.
    pub fn observe_since(&self, start: Instant) {
        self.observe(start.elapsed());
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (bound, n) in SECONDS_BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.count();
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram::new()
    }
}

/// Low side: requests intake committed as new jobs.
pub static REQUESTS_TAKEN: Counter = Counter::new();
/// Low side: requests intake refused (the researcher hears why) or dead-lettered (no valid sender).
pub static REQUESTS_REFUSED: Counter = Counter::new();
/// Times the services set out to connect to the broker again after it was unreachable or went away (each
/// attempt of a capped, doubling backoff counts).
pub static BROKER_RECONNECTS: Counter = Counter::new();
/// How long each job ran in the sandbox (from start to its outcome, whatever the outcome).
pub static JOB_RUN_SECONDS: Histogram = Histogram::new();
/// Bytes of the bundles the inbox watcher imported (accepted or quarantined).
pub static BUNDLE_IMPORT_BYTES: Counter = Counter::new();
/// How long each bundle's import took.
pub static BUNDLE_IMPORT_SECONDS: Histogram = Histogram::new();
/// Bundles imported and applied.
pub static BUNDLES_ACCEPTED: Counter = Counter::new();
/// Bundles refused into quarantine.
pub static BUNDLES_QUARANTINED: Counter = Counter::new();

/// Counts one inbox import of `bytes` that began at `started`, by its outcomes (a bundle imported before is
/// neither accepted nor quarantined again: only its bytes and time count).
pub fn record_import<'a>(
    started: Instant,
    bytes: u64,
    outcomes: impl IntoIterator<Item = &'a ferry_transfer::import::ImportOutcome>,
) {
    use ferry_transfer::import::ImportOutcome;
    BUNDLE_IMPORT_SECONDS.observe_since(started);
    BUNDLE_IMPORT_BYTES.add(bytes);
    for outcome in outcomes {
        match outcome {
            ImportOutcome::Accepted(_) => BUNDLES_ACCEPTED.inc(),
            ImportOutcome::Refused { .. } => BUNDLES_QUARANTINED.inc(),
            ImportOutcome::AlreadyImported(_) => {}
        }
    }
}

/// The metrics of one `ferry export` run, in the text format, for node_exporter's textfile collector (`ferry
/// export --metrics-file PATH`): an export is a command of its own, not part of a serving process, so its figures
/// are gauges of the last bundle written.
pub fn export_textfile(side: &str, bytes: u64, took: Duration, finished_at: i64) -> String {
    let mut out = String::new();
    for (name, help, value) in [
        (
            "ferry_bundle_export_bytes",
            "Size of the last bundle ferry export wrote.",
            bytes.to_string(),
        ),
        (
            "ferry_bundle_export_seconds",
            "How long ferry export took to write it.",
            took.as_secs_f64().to_string(),
        ),
        (
            "ferry_bundle_export_timestamp_seconds",
            "When it was written (Unix time).",
            finished_at.to_string(),
        ),
    ] {
        gauge_header(&mut out, name, help);
        let _ = writeln!(out, "{name}{{side=\"{side}\"}} {value}");
    }
    out
}

/// The sources a process's scrape reads besides its own counters.
pub struct Registry {
    role: &'static str,
    store: Option<Arc<StoreSource>>,
    queues: Option<QueueSource>,
}

struct StoreSource {
    path: PathBuf,
    open: std::sync::Mutex<Option<Store>>,
}

struct QueueSource {
    url: String,
    names: Vec<String>,
    session: tokio::sync::Mutex<Option<ferry_broker::Session>>,
    /// Whether the broker's being down was logged already: a scrape every few seconds logs it once, not each time.
    warned: std::sync::atomic::AtomicBool,
}

/// How long a scrape waits for the broker before reporting it down.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

impl Registry {
    /// A registry for a process in `role` (`low`, `high`, `worker`: the `role` label of `ferry_info`).
    pub fn new(role: &'static str) -> Registry {
        Registry {
            role,
            store: None,
            queues: None,
        }
    }

    /// Reports jobs by state from the state store at `state_db` (opened at the first scrape, kept open).
    pub fn with_store(mut self, state_db: &Path) -> Registry {
        self.store = Some(Arc::new(StoreSource {
            path: state_db.to_path_buf(),
            open: std::sync::Mutex::new(None),
        }));
        self
    }

    /// Reports the depth of `queues` on the broker at `amqp_url` (a connection of its own, made at the first
    /// scrape and again after it drops; passive declares only, nothing is created).
    pub fn with_queues(mut self, amqp_url: &str, queues: &[&str]) -> Registry {
        self.queues = Some(QueueSource {
            url: amqp_url.to_string(),
            names: queues.iter().map(|q| q.to_string()).collect(),
            session: tokio::sync::Mutex::new(None),
            warned: std::sync::atomic::AtomicBool::new(false),
        });
        self
    }

    /// The text exposition of every metric, as `GET /metrics` answers it.
    pub async fn render(&self) -> String {
        let mut out = String::new();
        gauge_header(
            &mut out,
            "ferry_info",
            "The ferry process: its version and role.",
        );
        let _ = writeln!(
            out,
            "ferry_info{{version=\"{}\",role=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION"),
            self.role
        );
        for (name, help, counter) in [
            (
                "ferry_requests_taken_total",
                "Requests intake committed as new jobs (low side).",
                &REQUESTS_TAKEN,
            ),
            (
                "ferry_requests_refused_total",
                "Requests intake refused or dead-lettered (low side).",
                &REQUESTS_REFUSED,
            ),
            (
                "ferry_broker_reconnects_total",
                "Attempts to connect again after the broker was unreachable or went away.",
                &BROKER_RECONNECTS,
            ),
            (
                "ferry_bundle_import_bytes_total",
                "Bytes of the bundles the inbox watcher imported.",
                &BUNDLE_IMPORT_BYTES,
            ),
        ] {
            counter_line(&mut out, name, help, counter.get());
        }
        let _ = writeln!(
            out,
            "# HELP ferry_bundles_imported_total Bundles the inbox watcher took, by outcome.\n\
             # TYPE ferry_bundles_imported_total counter"
        );
        for (outcome, counter) in [
            ("accepted", &BUNDLES_ACCEPTED),
            ("quarantined", &BUNDLES_QUARANTINED),
        ] {
            let _ = writeln!(
                out,
                "ferry_bundles_imported_total{{outcome=\"{outcome}\"}} {}",
                counter.get()
            );
        }
        histogram(
            &mut out,
            "ferry_job_run_seconds",
            "How long each job ran in the sandbox.",
            &JOB_RUN_SECONDS,
        );
        histogram(
            &mut out,
            "ferry_bundle_import_seconds",
            "How long each bundle's import took.",
            &BUNDLE_IMPORT_SECONDS,
        );
        if let Some(store) = &self.store {
            render_jobs(&mut out, store.clone()).await;
        }
        if let Some(queues) = &self.queues {
            render_queues(&mut out, queues).await;
        }
        out
    }
}

async fn render_jobs(out: &mut String, store: Arc<StoreSource>) {
    let source = store.clone();
    let counts = tokio::task::spawn_blocking(move || {
        let mut open = source.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.is_none() {
            *open = Some(Store::open(&source.path)?);
        }
        let counts = open.as_ref().expect("opened above").counts();
        if counts.is_err() {
            *open = None;
        }
        counts
    })
    .await;
    let up = match counts {
        Ok(Ok(counts)) => {
            gauge_header(out, "ferry_jobs", "Jobs in the state store, by state.");
            for (state, n) in counts {
                let _ = writeln!(out, "ferry_jobs{{state=\"{}\"}} {n}", state.as_str());
            }
            1
        }
        Ok(Err(e)) => {
            tracing::warn!("metrics: reading {}: {e}", store.path.display());
            0
        }
        Err(e) => {
            tracing::warn!("metrics: reading {} failed: {e}", store.path.display());
            0
        }
    };
    gauge_header(
        out,
        "ferry_store_up",
        "Whether the last scrape could read the state store.",
    );
    let _ = writeln!(out, "ferry_store_up {up}");
}

async fn render_queues(out: &mut String, source: &QueueSource) {
    let mut session = source.session.lock().await;
    let depths = tokio::time::timeout(BROKER_TIMEOUT, async {
        if session.as_ref().is_none_or(|s| !s.is_open()) {
            *session = Some(ferry_broker::Session::connect(&source.url).await?);
        }
        let s = session.as_ref().expect("connected above");
        let mut depths = Vec::new();
        for name in &source.names {
            depths.push((name, ferry_broker::topology::queue_depth(s, name).await?));
        }
        Ok::<_, ferry_broker::BrokerError>(depths)
    })
    .await;
    let up = match depths {
        Ok(Ok(depths)) => {
            gauge_header(
                out,
                "ferry_queue_messages",
                "Messages ready in each of the side's queues (a passive declare).",
            );
            for (name, d) in &depths {
                if let Some(d) = d {
                    let _ = writeln!(
                        out,
                        "ferry_queue_messages{{queue=\"{name}\"}} {}",
                        d.messages
                    );
                }
            }
            gauge_header(
                out,
                "ferry_queue_consumers",
                "Consumers attached to each of the side's queues.",
            );
            for (name, d) in &depths {
                if let Some(d) = d {
                    let _ = writeln!(
                        out,
                        "ferry_queue_consumers{{queue=\"{name}\"}} {}",
                        d.consumers
                    );
                }
            }
            1
        }
        Ok(Err(e)) => {
            if !source.warned.swap(true, Ordering::Relaxed) {
                // The error names the URL with its password redacted.
                tracing::warn!("metrics: queue depths unknown until the broker answers: {e}");
            }
            *session = None;
            0
        }
        Err(_) => {
            if !source.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "metrics: queue depths unknown: the broker did not answer within {} s",
                    BROKER_TIMEOUT.as_secs()
                );
            }
            *session = None;
            0
        }
    };
    if up == 1 {
        source.warned.store(false, Ordering::Relaxed);
    }
    gauge_header(
        out,
        "ferry_broker_up",
        "Whether the last scrape could reach the broker.",
    );
    let _ = writeln!(out, "ferry_broker_up {up}");
}

fn gauge_header(out: &mut String, name: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
}

fn counter_line(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
    );
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    h.render(out, name, "");
}

/// A bound metrics port, not yet serving.
pub struct MetricsListener {
    listener: tokio::net::TcpListener,
    local: SocketAddr,
}

impl MetricsListener {
    /// The address bound (with the port picked when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

/// Binds `addr` (`HOST:PORT` with a numeric host: `127.0.0.1:9464`, `[::1]:9464`, `0.0.0.0:9464`; port 0
/// picks a free one). Nothing listens anywhere else.
pub async fn bind(addr: &str) -> Result<MetricsListener> {
    let parsed: SocketAddr = addr.parse().map_err(|_| ServeError::MetricsAddr {
        addr: addr.to_string(),
        reason: "not an IP address and port (like 127.0.0.1:9464 or [::1]:9464)".into(),
    })?;
    let listener =
        tokio::net::TcpListener::bind(parsed)
            .await
            .map_err(|e| ServeError::MetricsAddr {
                addr: addr.to_string(),
                reason: format!("cannot listen there: {e}"),
            })?;
    let local = listener.local_addr().map_err(|e| ServeError::MetricsAddr {
        addr: addr.to_string(),
        reason: format!("cannot read the bound address: {e}"),
    })?;
    Ok(MetricsListener { listener, local })
}

/// Answers `GET /metrics` on `listener` with `registry`'s metrics until `shutdown` completes; any other path is
/// 404, any other method 405.
pub async fn serve(
    listener: MetricsListener,
    registry: Registry,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let local = listener.local;
    axum::serve(listener.listener, router(Arc::new(registry)))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| ServeError::MetricsAddr {
            addr: local.to_string(),
            reason: format!("serving failed: {e}"),
        })
}

/// The one route: `GET /metrics`.
fn router(registry: Arc<Registry>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    registry.render().await,
                )
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::JobState;

    /// Every sample line parses as `name{labels} value`, and each histogram's buckets are cumulative and end in
    /// its count.
    #[tokio::test]
    async fn the_exposition_is_well_formed_and_histograms_are_cumulative() {
        JOB_RUN_SECONDS.observe(Duration::from_millis(300));
        JOB_RUN_SECONDS.observe(Duration::from_secs(7200));
        let text = Registry::new("high").render().await;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').expect(line);
            assert!(series.starts_with("ferry_"), "{line}");
            value.parse::<f64>().unwrap_or_else(|_| panic!("{line}"));
        }
        let buckets: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("ferry_job_run_seconds_bucket"))
            .map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap())
            .collect();
        assert_eq!(buckets.len(), SECONDS_BUCKETS.len() + 1);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
        let count: u64 = text
            .lines()
            .find(|l| l.starts_with("ferry_job_run_seconds_count"))
            .and_then(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        assert_eq!(*buckets.last().unwrap(), count);
        // The two-hour run is past every finite bound: counted in +Inf only.
        assert!(buckets[SECONDS_BUCKETS.len() - 1] < count);
        assert!(text.contains("# TYPE ferry_job_run_seconds histogram"));
        assert!(text.contains(&format!(
            "ferry_info{{version=\"{}\",role=\"high\"}} 1",
            env!("CARGO_PKG_VERSION")
        )));
    }

    /// A 300 ms observation lands in the 0.5 s bucket and not the 0.25 s one.
    #[test]
    fn an_observation_lands_in_the_first_bucket_that_holds_it() {
        let h = Histogram::new();
        h.observe(Duration::from_millis(300));
        let mut out = String::new();
        h.render(&mut out, "x", "");
        assert!(out.contains("x_bucket{le=\"0.25\"} 0"), "{out}");
        assert!(out.contains("x_bucket{le=\"0.5\"} 1"), "{out}");
        assert!(out.contains("x_sum 0.3\n"), "{out}");
    }

    /// Jobs by state come from the state store, every state listed (zero included).
    #[tokio::test(flavor = "multi_thread")]
    async fn jobs_by_state_are_read_from_the_state_store() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        Store::open(&db).unwrap();
        let text = Registry::new("low").with_store(&db).render().await;
        for state in JobState::ALL {
            assert!(
                text.contains(&format!("ferry_jobs{{state=\"{}\"}} 0\n", state.as_str())),
                "{state:?} missing from\n{text}"
            );
        }
        assert!(text.contains("ferry_store_up 1\n"));
    }

    /// A bad ADDR is refused naming it, before anything listens.
    #[tokio::test]
    async fn a_bad_metrics_address_is_refused_naming_it() {
        for bad in ["localhost:9464", "9464", "127.0.0.1", "127.0.0.1:99999"] {
            let Err(e) = bind(bad).await else {
                panic!("{bad} was accepted")
            };
            let text = e.to_string();
            assert!(
                text.contains(bad) && text.contains("not an IP address"),
                "{text}"
            );
        }
    }

    /// The router answers `GET /metrics` in the text format, and 404 elsewhere (called as a service: the tests
    /// of scripts/check run without a network, loopback included; the broker tests scrape over TCP).
    #[tokio::test]
    async fn the_metrics_route_answers_get_metrics_and_nothing_else() {
        use tower::ServiceExt;
        let app = router(Arc::new(Registry::new("low")));
        let get = |path: &'static str| {
            axum::http::Request::get(path)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let reply = app.clone().oneshot(get("/metrics")).await.unwrap();
        assert_eq!(reply.status(), 200);
        assert_eq!(
            reply.headers()[axum::http::header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let body = axum::body::to_bytes(reply.into_body(), 1 << 20)
            .await
            .unwrap();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(text.contains("\nferry_requests_taken_total "), "{text}");
        let reply = app.clone().oneshot(get("/")).await.unwrap();
        assert_eq!(reply.status(), 404);
        let post = axum::http::Request::post("/metrics")
            .body(axum::body::Body::empty())
            .unwrap();
        assert_eq!(app.oneshot(post).await.unwrap().status(), 405);
    }
}
