//! Researcher calls: request/reply over direct reply-to on `ferry.calls`, answered from the state store with
//! the caller's own jobs only (RabbitMQ's `user_id` check says who is calling).

use std::sync::Arc;

use ferry_broker::Session;
use ferry_core::wire::{AssetInfo, Call, CallReply, MockData, CALLS_QUEUE};
use ferry_core::{Config, JobState, Side, Store};
use tokio::sync::watch;
use tracing::Instrument;

use super::open_store;
use crate::error::Result;
use crate::supervise::stopped;

/// The prefix of every direct reply-to address RabbitMQ gives a caller (`amq.rabbitmq.reply-to.<token>`).
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// The largest mock served over the broker, in bytes (base64 makes it a third larger on the wire).
const MAX_MOCK_BYTES: u64 = 64 * 1024 * 1024;

pub(super) async fn calls(
    session: Arc<Session>,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let mut store = open_store(&config)?;
    let mut sub = session.consume(CALLS_QUEUE, 16).await?;
    loop {
        let msg = tokio::select! {
            () = stopped(&mut shutdown) => return Ok(()),
            msg = sub.next() => msg?,
        };
        let span = tracing::info_span!("call", user = msg.user_id.as_deref().unwrap_or("-"));
        async {
            let reply = match &msg.user_id {
                None => CallReply::error("calls must carry the user_id property"),
                Some(user) => match serde_json::from_slice::<Call>(&msg.body) {
                    Err(e) => CallReply::error(format!("call does not match the call schema: {e}")),
                    Ok(call) => answer(&mut store, &config, user, call)
                        .unwrap_or_else(|e| CallReply::error(e.0)),
                },
            };
            // Replies go only to the caller's own direct reply-to pseudo-queue: a reply_to naming any other queue
            // (another researcher's results queue, ferry.requests) would let a caller have the service publish
            // there for them.
            let reply_to = msg.reply_to.as_deref().filter(|r| {
                let ok = r.starts_with(DIRECT_REPLY_TO);
                if !ok {
                    tracing::warn!(
                        reply_to = %ferry_review::escape::line(r),
                        "a call's reply_to is not direct reply-to: not answered"
                    );
                }
                ok
            });
            if let Some(reply_to) = reply_to {
                let body = serde_json::to_vec(&reply).expect("reply serializes");
                if let Err(e) = session
                    .reply(reply_to, msg.correlation_id.as_deref(), "call-reply", &body)
                    .await
                {
                    tracing::warn!("could not reply: {e}");
                }
            }
            msg.ack().await
        }
        .instrument(span)
        .await?;
    }
}

/// Why a call could not be answered; the text goes back to the caller.
struct CallError(String);

impl From<ferry_core::StoreError> for CallError {
    fn from(e: ferry_core::StoreError) -> CallError {
        CallError(format!("the low side's state store failed: {e}"))
    }
}

fn answer(
    store: &mut Store,
    config: &Config,
    user: &str,
    call: Call,
) -> Result<CallReply, CallError> {
    let own_job =
        |store: &Store, job_id: &uuid::Uuid| -> Result<ferry_core::store::JobRow, CallError> {
            store
                .job(&job_id.to_string())?
                .filter(|j| j.researcher == user)
                .ok_or_else(|| CallError(format!("you have no job {job_id}")))
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
                        mock_tree: a.mock_tree,
                        updated_at: chrono::DateTime::from_timestamp(a.updated_at, 0)
                            .map(|t| t.to_rfc3339())
                            .unwrap_or_default(),
                    })
                    .collect(),
            );
            reply.runtimes = Some(crate::jobrun::runtime_names(config, store)?);
        }
        Call::Runtimes => {
            reply.runtime_details = Some(crate::jobrun::runtime_infos(config, store)?);
        }
        Call::Mock { asset, offset } => {
            let a = store.asset(&asset)?.ok_or_else(|| {
                CallError(format!(
                    "unknown asset {asset:?}: `ferry assets` lists them"
                ))
            })?;
            if let Some(offset) = offset {
                if offset > a.mock_size {
                    return Err(CallError(format!(
                        "offset {offset} is past the end of the mock of {asset} ({} bytes)",
                        a.mock_size
                    )));
                }
                // One piece, read where it lies: the low side never holds more of a mock than this.
                let len = (a.mock_size - offset).min(ferry_core::wire::MOCK_CHUNK_BYTES) as usize;
                let mut piece = vec![0u8; len];
                {
                    use std::io::{Read, Seek};
                    let mut file = std::fs::File::open(&a.mock_path)
                        .map_err(|e| CallError(format!("reading the mock of {asset}: {e}")))?;
                    file.seek(std::io::SeekFrom::Start(offset))
                        .and_then(|_| file.read_exact(&mut piece))
                        .map_err(|e| CallError(format!("reading the mock of {asset}: {e}")))?;
                }
                use base64::Engine;
                reply.mock = Some(MockData {
                    asset,
                    sha256: a.mock_sha256,
                    data_base64: base64::engine::general_purpose::STANDARD.encode(&piece),
                    offset,
                    size: a.mock_size,
                    tree: a.mock_tree,
                });
            } else {
                if a.mock_size > MAX_MOCK_BYTES {
                    return Err(CallError(format!("the mock of {asset} is {} bytes, over the {MAX_MOCK_BYTES} bytes served whole: ask for it in pieces (`offset`), as `ferry mock fetch` does", a.mock_size)));
                }
                let data = std::fs::read(&a.mock_path)
                    .map_err(|e| CallError(format!("reading the mock of {asset}: {e}")))?;
                use base64::Engine;
                reply.mock = Some(MockData {
                    asset,
                    sha256: ferry_core::sha256_hex(&data),
                    data_base64: base64::engine::general_purpose::STANDARD.encode(&data),
                    offset: 0,
                    size: data.len() as u64,
                    tree: a.mock_tree,
                });
            }
        }
        Call::Status { job_id } => {
            let job = own_job(store, &job_id)?;
            reply.jobs = Some(vec![store.update_for(&job)?]);
        }
        Call::Jobs => {
            let jobs = store.jobs(None, Some(user))?;
            let mut updates: Vec<_> = jobs
                .iter()
                .map(|j| store.update_for(j))
                .collect::<Result<_, _>>()?;
            // Requests refused before a job id could be read are listed too, so that none vanishes.
            updates.extend(store.refusals_without_job(user)?);
            reply.jobs = Some(updates);
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
                state => {
                    return Err(CallError(format!(
                        "job {id} is {state}; it can no longer be cancelled"
                    )))
                }
            }
            tx.commit()?;
            let job = store.job(&id)?.expect("job exists");
            reply.jobs = Some(vec![store.update_for(&job)?]);
        }
    }
    Ok(reply)
}
