//! Request intake: `ferry.requests` → the state store. Requests the broker has already delivered are committed
//! together (one fsync for up to [`INTAKE_BATCH`]); each is acked only after its effect (a new job, or a refusal
//! the researcher will hear about) is committed, and a request with no valid sender is dead-lettered.

use std::collections::HashSet;
use std::sync::Arc;

use ferry_broker::{topology, Incoming, Session};
use ferry_core::store::Submitted;
use ferry_core::wire::JobRequest;
use ferry_core::{names, Config, Side, Store};
use tokio::sync::watch;
use tracing::Instrument;

use super::open_store;
use crate::error::Result;
use crate::supervise::stopped;

/// Most requests committed in one transaction.
const INTAKE_BATCH: usize = 256;

pub(super) async fn intake(
    session: Arc<Session>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut store = open_store(&config)?;
    let mut sub = session
        .consume(ferry_core::wire::REQUESTS_QUEUE, INTAKE_BATCH as u16)
        .await?;
    let mut queues_declared: HashSet<String> = HashSet::new();
    loop {
        let first = tokio::select! {
            () = stopped(&mut shutdown) => return Ok(()),
            msg = sub.next() => msg?,
        };
        // Group commit: take whatever else the broker has already delivered (the prefetch bounds it), without
        // waiting, so that one fsync covers many requests.
        let mut batch = vec![first];
        while batch.len() < INTAKE_BATCH {
            match tokio::time::timeout(std::time::Duration::ZERO, sub.next()).await {
                Ok(msg) => batch.push(msg?),
                Err(_) => break,
            }
        }
        let span = tracing::info_span!("requests", count = batch.len());
        if let Err(e) = handle_batch(&session, &config, &mut store, &mut queues_declared, &batch)
            .instrument(span)
            .await
        {
            // The database or broker failed: leave the requests for later rather than lose them.
            tracing::error!("intake: {e:#}; requeueing {} request(s)", batch.len());
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            for msg in &batch {
                msg.reject(true).await?;
            }
        }
    }
}

/// What to tell the broker about a request once its effect is committed.
enum Settle {
    Ack,
    DeadLetter,
}

async fn handle_batch(
    session: &Session,
    config: &Config,
    store: &mut Store,
    queues_declared: &mut HashSet<String>,
    batch: &[Incoming],
) -> Result<()> {
    // Who sent each request: RabbitMQ validated user_id against the connection's user.
    let mut senders = Vec::with_capacity(batch.len());
    for msg in batch {
        let user = msg
            .user_id
            .clone()
            .filter(|u| names::researcher(u).is_ok() || u == "guest");
        match &user {
            None if msg.user_id.is_none() => tracing::warn!(
                message_id = msg.message_id.as_deref().unwrap_or("-"),
                "request without a user_id property: dead-lettered (a client must set it; the broker checks it)"
            ),
            None => tracing::warn!(
                user = msg.user_id.as_deref().unwrap_or("-"),
                "request from a user that is not a valid researcher name: dead-lettered"
            ),
            Some(u) if queues_declared.insert(u.clone()) => {
                topology::declare_results_queue(session, u, config.broker.queue_type).await?;
            }
            Some(_) => {}
        }
        senders.push(user);
    }
    let settle = record_batch(config, store, batch, &senders)?;
    // Only now, with every effect durable, does the broker forget the requests.
    for (msg, settle) in batch.iter().zip(settle) {
        match settle {
            Settle::Ack => msg.ack().await?,
            Settle::DeadLetter => msg.reject(false).await?,
        }
    }
    Ok(())
}

/// Commits the effect of every request in one transaction (a new job, or a refusal the researcher will hear
/// about) and says how to settle each message.
fn record_batch(
    config: &Config,
    store: &mut Store,
    batch: &[Incoming],
    senders: &[Option<String>],
) -> Result<Vec<Settle>> {
    // Validate outside the write transaction (it reads the catalog), then commit every effect at once.
    let checked: Vec<_> = batch
        .iter()
        .map(|msg| {
            JobRequest::parse(&msg.body, &config.intake)
                .and_then(|req| content_type_ok(msg).map(|()| req))
                .and_then(|req| check_request(config, store, msg, req))
        })
        .collect();
    let tx = store.begin(Side::Low)?;
    let mut settle = Vec::with_capacity(batch.len());
    // Counted once the transaction commits: a rolled-back batch is redelivered and counted then.
    let (mut taken, mut refused) = (0, 0);
    for ((msg, user), checked) in batch.iter().zip(senders).zip(checked) {
        let Some(user) = user else {
            refused += 1;
            settle.push(Settle::DeadLetter);
            continue;
        };
        let _span = tracing::info_span!("request", user = %user, message_id = msg.message_id.as_deref().unwrap_or("-")).entered();
        settle.push(match checked {
            Err(refusal) => {
                tracing::info!(reason = %refusal.reason, "request refused");
                refused += 1;
                tx.refuse(user, refusal.job_id.as_deref(), "", &refusal.reason)?;
                if refusal.unparsable {
                    Settle::DeadLetter
                } else {
                    Settle::Ack
                }
            }
            Ok(req) => {
                match tx.submit(&req, user)? {
                    Submitted::New(job) => {
                        taken += 1;
                        tracing::info!(job_id = %job.job_id, "request accepted")
                    }
                    Submitted::Repeat(job) => {
                        tracing::info!(job_id = %job.job_id, "repeated request: nothing changed")
                    }
                    Submitted::Conflict(job) => {
                        tracing::info!(job_id = %job.job_id, "job id reused by a different request");
                        refused += 1;
                        tx.refuse(
                            user,
                            Some(&job.job_id),
                            &req.title,
                            "job_id is already used by a different request: choose a new UUID for each job",
                        )?;
                    }
                }
                Settle::Ack
            }
        });
    }
    tx.commit()?;
    crate::metrics::REQUESTS_TAKEN.add(taken);
    crate::metrics::REQUESTS_REFUSED.add(refused);
    Ok(settle)
}

/// A request is JSON, and says so: one with another `content_type` (`text/plain`, say), or none, is refused
/// before its body is read, naming what it had.
fn content_type_ok(msg: &Incoming) -> std::result::Result<(), ferry_core::wire::Refusal> {
    match msg.content_type.as_deref() {
        Some("application/json") => Ok(()),
        other => Err(ferry_core::wire::Refusal {
            job_id: msg
                .message_id
                .as_deref()
                .and_then(|m| uuid::Uuid::parse_str(m).ok())
                .map(|u| u.to_string()),
            reason: format!(
                "a job request must have content_type application/json; this one had {}",
                other.map_or("none".to_string(), |c| format!(
                    "{:?}",
                    ferry_review::escape::line(c)
                ))
            ),
            unparsable: false,
        }),
    }
}

fn check_request(
    config: &Config,
    store: &Store,
    msg: &Incoming,
    req: JobRequest,
) -> std::result::Result<JobRequest, ferry_core::wire::Refusal> {
    let refuse = |reason: String| ferry_core::wire::Refusal {
        job_id: Some(req.job_id.to_string()),
        reason,
        unparsable: false,
    };
    if let Some(mid) = &msg.message_id {
        if uuid::Uuid::parse_str(mid).ok() != Some(req.job_id) {
            return Err(refuse(format!(
                "message_id {mid:?} is not the job_id {}: they must be equal",
                req.job_id
            )));
        }
    }
    // Code the owner could not review as it runs (a control or bidi character hides or reorders what the
    // terminal shows) is refused here, where it first arrives, naming line and column.
    if let Err(refusal) = ferry_review::code::check(&req.code) {
        return Err(refuse(refusal.to_string()));
    }
    // The configured runtimes and the ones the high side registered and sent (no configuration edit here).
    let offered = crate::jobrun::runtime_names(config, store).unwrap_or_else(|e| {
        tracing::warn!("reading the runtimes received from the high side: {e}");
        config.runtimes.keys().cloned().collect()
    });
    if !offered.contains(&req.runtime) {
        return Err(refuse(format!(
            "unknown runtime {:?}; this side offers: {} (`ferry runtimes` lists them)",
            ferry_review::escape::line(&req.runtime),
            offered.join(", ")
        )));
    }
    if let Some(resources) = &req.resources {
        resources.check(&config.worker).map_err(refuse)?;
    }
    if let Some(previous) = req.revises {
        let user = msg.user_id.as_deref().unwrap_or_default();
        match store.job(&previous.to_string()) {
            Ok(Some(job)) if job.researcher == user => {}
            Ok(_) => {
                return Err(refuse(format!(
                    "revises {previous}, which is not one of your jobs"
                )))
            }
            Err(e) => return Err(refuse(format!("could not check job {previous}: {e}"))),
        }
    }
    for asset in &req.assets {
        match store.asset(asset) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(refuse(format!(
                    "unknown asset {asset:?}: `ferry assets` lists the assets you can name"
                )))
            }
            Err(e) => return Err(refuse(format!("could not check asset {asset:?}: {e}"))),
        }
    }
    Ok(req)
}
