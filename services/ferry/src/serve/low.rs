//! Low-side services: request intake, researcher calls, notifications to results queues, inbox watching.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result};
use ferry_broker::{topology, BrokerError, Incoming, Outgoing, Session};
use ferry_core::store::Submitted;
use ferry_core::wire::{
    AssetInfo, Call, CallReply, JobRequest, MockData, CALLS_QUEUE, REQUESTS_QUEUE, RESULTS_EXCHANGE,
};
use ferry_core::{names, Config, JobState, Side, Store};
use tokio::sync::watch;
use tracing::Instrument;

use super::{inbox_watcher, OUTBOX_POLL};

/// The largest mock served over the broker, in bytes (base64 makes it a third larger on the wire).
const MAX_MOCK_BYTES: u64 = 64 * 1024 * 1024;

pub async fn run(
    config_path: &Path,
    config: Config,
    shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let session = Session::connect(&config.amqp_url).await?;
    topology::declare_low(&session)
        .await
        .context("declaring the low side's exchanges and queues")?;
    let session = std::sync::Arc::new(session);
    tracing::info!("low side serving: intake on {REQUESTS_QUEUE}, calls on {CALLS_QUEUE}");
    let config_path = config_path.to_path_buf();
    let result = super::supervise(shutdown, |stop, services| {
        let (s, c) = (session.clone(), config.clone());
        let st = stop.clone();
        services.spawn(async move { ("intake", intake(s, c, st).await) });
        let (s, c) = (session.clone(), config.clone());
        let st = stop.clone();
        services.spawn(async move { ("calls", calls(s, c, st).await) });
        let (s, c) = (session.clone(), config.clone());
        let st = stop.clone();
        services.spawn(async move { ("notifier", notifier(s, c, st).await) });
        services.spawn(async move {
            inbox_watcher(config_path, stop).await;
            ("inbox watcher", Ok(()))
        });
    })
    .await;
    session.close().await;
    result
}

fn open_store(config: &Config) -> Result<Store> {
    Store::open(&config.state_db())
        .with_context(|| format!("opening {}", config.state_db().display()))
}

/// Most requests committed in one transaction.
const INTAKE_BATCH: usize = 256;

async fn intake(
    session: std::sync::Arc<Session>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut store = open_store(&config)?;
    let mut sub = session.consume(REQUESTS_QUEUE, INTAKE_BATCH as u16).await?;
    let mut queues_declared: HashSet<String> = HashSet::new();
    loop {
        let first = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
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
                topology::declare_results_queue(session, u).await?;
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
                .and_then(|req| check_request(config, store, msg, req))
        })
        .collect();
    let tx = store.begin(Side::Low)?;
    let mut settle = Vec::with_capacity(batch.len());
    for ((msg, user), checked) in batch.iter().zip(senders).zip(checked) {
        let Some(user) = user else {
            settle.push(Settle::DeadLetter);
            continue;
        };
        let _span = tracing::info_span!("request", user = %user, message_id = msg.message_id.as_deref().unwrap_or("-")).entered();
        settle.push(match checked {
            Err(refusal) => {
                tracing::info!(reason = %refusal.reason, "request refused");
                tx.refuse(user, refusal.job_id.as_deref(), "", &refusal.reason)?;
                if refusal.unparsable {
                    Settle::DeadLetter
                } else {
                    Settle::Ack
                }
            }
            Ok(req) => {
                match tx.submit(&req, user)? {
                    Submitted::New(job) => tracing::info!(job_id = %job.job_id, "request accepted"),
                    Submitted::Repeat(job) => {
                        tracing::info!(job_id = %job.job_id, "repeated request: nothing changed")
                    }
                    Submitted::Conflict(job) => {
                        tracing::info!(job_id = %job.job_id, "job id reused by a different request");
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
    Ok(settle)
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
    if !config.runtimes.contains_key(&req.runtime) {
        return Err(refuse(format!(
            "unknown runtime {:?}; this side offers: {}",
            req.runtime,
            config
                .runtimes
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
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

async fn calls(
    session: std::sync::Arc<Session>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut store = open_store(&config)?;
    let mut sub = session.consume(CALLS_QUEUE, 16).await?;
    loop {
        let msg = tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            msg = sub.next() => msg?,
        };
        let span = tracing::info_span!("call", user = msg.user_id.as_deref().unwrap_or("-"));
        async {
            let reply = match &msg.user_id {
                None => CallReply::error("calls must carry the user_id property"),
                Some(user) => match serde_json::from_slice::<Call>(&msg.body) {
                    Err(e) => CallReply::error(format!("call does not match the call schema: {e}")),
                    Ok(call) => answer(&config, &mut store, user, call)
                        .unwrap_or_else(|e| CallReply::error(format!("{e:#}"))),
                },
            };
            if let Some(reply_to) = &msg.reply_to {
                let body = serde_json::to_vec(&reply).expect("reply serializes");
                let out = Outgoing {
                    exchange: "",
                    routing_key: reply_to,
                    body: &body,
                    correlation_id: msg.correlation_id.as_deref(),
                    kind: Some("call-reply"),
                    ..Outgoing::default()
                };
                if let Err(e) = session.publish(&out).await {
                    tracing::warn!("could not reply (the caller may have gone): {e}");
                }
            }
            msg.ack().await
        }
        .instrument(span)
        .await?;
    }
}

fn answer(config: &Config, store: &mut Store, user: &str, call: Call) -> Result<CallReply> {
    let own_job = |store: &Store, job_id: &uuid::Uuid| -> Result<ferry_core::store::JobRow> {
        store
            .job(&job_id.to_string())?
            .filter(|j| j.researcher == user)
            .ok_or_else(|| anyhow::anyhow!("you have no job {job_id}"))
    };
    let mut reply = CallReply {
        ok: true,
        ..CallReply::default()
    };
    match call {
        Call::Assets => {
            reply.assets = Some(
                store
                    .assets()?
                    .into_iter()
                    .map(|a| AssetInfo {
                        name: a.name,
                        description: a.description,
                        mock_size: a.mock_size,
                        mock_sha256: a.mock_sha256,
                        updated_at: chrono::DateTime::from_timestamp(a.updated_at, 0)
                            .unwrap_or_default()
                            .to_rfc3339(),
                    })
                    .collect(),
            )
        }
        Call::Mock { asset } => {
            let a = store.asset(&asset)?.ok_or_else(|| {
                anyhow::anyhow!("unknown asset {asset:?}: `ferry assets` lists them")
            })?;
            if a.mock_size > MAX_MOCK_BYTES {
                anyhow::bail!("the mock of {asset} is {} bytes, over the {MAX_MOCK_BYTES} bytes served over the broker", a.mock_size);
            }
            let data = std::fs::read(&a.mock_path)
                .with_context(|| format!("reading the mock of {asset}"))?;
            use base64::Engine;
            reply.mock = Some(MockData {
                asset,
                sha256: ferry_core::sha256_hex(&data),
                data_base64: base64::engine::general_purpose::STANDARD.encode(&data),
            });
        }
        Call::Status { job_id } => {
            let job = own_job(store, &job_id)?;
            reply.jobs = Some(vec![store.update_for(&job)?]);
        }
        Call::Jobs => {
            let jobs = store.jobs(None, Some(user))?;
            reply.jobs = Some(
                jobs.iter()
                    .map(|j| store.update_for(j))
                    .collect::<Result<_, _>>()?,
            );
        }
        Call::Cancel { job_id } => {
            let job = own_job(store, &job_id)?;
            let id = job.job_id.clone();
            let tx = store.begin(Side::Low)?;
            match job.state {
                JobState::Submitted | JobState::Approved => {
                    tx.transition(
                        &id,
                        &[JobState::Submitted, JobState::Approved],
                        JobState::Cancelled,
                        user,
                        Some("cancelled by the researcher"),
                    )?;
                }
                JobState::Exported | JobState::Running | JobState::Finished => {
                    tx.request_cancel(&id)?
                }
                state => anyhow::bail!("job {id} is {state}; it can no longer be cancelled"),
            }
            tx.commit()?;
            let job = store.job(&id)?.expect("job exists");
            reply.jobs = Some(vec![store.update_for(&job)?]);
        }
    }
    let _ = config;
    Ok(reply)
}

async fn notifier(
    session: std::sync::Arc<Session>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut store = open_store(&config)?;
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            _ = tokio::time::sleep(OUTBOX_POLL) => {}
        }
        let pending = match store.pending_notifications(100) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("reading notifications: {e}");
                continue;
            }
        };
        if pending.is_empty() {
            continue;
        }
        let ids: Vec<String> = pending.iter().map(|n| format!("update-{}", n.id)).collect();
        let msgs: Vec<Outgoing<'_>> = pending
            .iter()
            .zip(&ids)
            .map(|(n, id)| Outgoing {
                exchange: RESULTS_EXCHANGE,
                routing_key: &n.researcher,
                body: n.body.as_bytes(),
                message_id: Some(id),
                kind: Some("job-update"),
                persistent: true,
                ..Outgoing::default()
            })
            .collect();
        // All confirmed, or none marked: a failure part-way publishes some twice later, never loses one
        // (updates carry the job's whole state, so a repeat is harmless).
        match session.publish_many(&msgs).await {
            Ok(()) => store.notifications_published(&pending)?,
            Err(BrokerError::Unroutable { routing_key, .. }) => {
                tracing::info!(researcher = %routing_key, "declaring the missing results queue");
                topology::declare_results_queue(&session, &routing_key).await?;
            }
            Err(e) => tracing::error!("publishing job updates: {e}"),
        }
    }
}
