//! The exchanges and queues of each side, declared idempotently at service start and by `ferry researcher add`.
//!
//! The same layout is written as RabbitMQ definitions in `deploy/`, for operators who prefer to load it: classic
//! queues in `rabbitmq-{low,high}.definitions.json`, quorum queues (`[broker] queue_type = "quorum"`) in
//! `rabbitmq-{low,high}-quorum.definitions.json`. A definition that differs from what is declared here in any
//! argument makes the declare fail (PRECONDITION_FAILED), so the two are tested against each other.
//!
//! With quorum queues every durable queue is a quorum queue, and the requests and jobs queues carry a delivery
//! limit ([`DELIVERY_LIMIT`]): a message delivered that often without an ack (a consumer that crashes on it each
//! time) is dead-lettered to `ferry.requests.dead` or `ferry.jobs.dead` instead of taking the consumers down
//! forever. `ferry.calls` stays a transient classic queue whatever the type: calls are request/reply, and
//! quorum queues are always durable.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::ExchangeKind;

use ferry_core::config::QueueType;

use ferry_core::wire::{
    high_jobs_queue, results_queue, CALLS_QUEUE, CALL_ROUTING_KEY, DEAD_LETTER_EXCHANGE,
    DEAD_LETTER_QUEUE, HIGH_CANCEL_EXCHANGE, HIGH_JOBS_DEAD_QUEUE, HIGH_WORKER_RESULTS_QUEUE,
    JOB_ROUTING_KEY, REQUESTS_EXCHANGE, REQUESTS_QUEUE, RESULTS_EXCHANGE,
};

use crate::{amqp, BrokerError, Session};

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

/// How many times a quorum queue delivers a message of `ferry.requests` or `ferry.jobs` before dead-lettering it
/// (`x-delivery-limit`; the definitions in `deploy/` say the same).
pub const DELIVERY_LIMIT: i64 = 5;

/// The arguments of a durable queue of `queue_type`: `x-queue-type` for quorum queues, nothing for classic ones
/// (which is what an older ferry declared, so that their queues stay equivalent).
fn typed(queue_type: QueueType) -> FieldTable {
    let mut args = FieldTable::default();
    if queue_type == QueueType::Quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(queue_type.as_str().into()),
        );
    }
    args
}

/// A durable queue `queue` bound to the dead-letter exchange (which must exist).
async fn declare_dead_letter_queue(
    ch: &lapin::Channel,
    queue: &str,
    queue_type: QueueType,
) -> Result<(), BrokerError> {
    ch.queue_declare(queue.into(), durable_queue(), typed(queue_type))
        .await
        .map_err(amqp(format!("declaring queue {queue}")))?;
    ch.queue_bind(
        queue.into(),
        DEAD_LETTER_EXCHANGE.into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(amqp(format!("binding {queue}")))
}

/// The arguments of a work queue that dead-letters through the dead-letter exchange, with the delivery limit
/// when it is a quorum queue.
fn dead_lettered(queue_type: QueueType) -> FieldTable {
    let mut args = typed(queue_type);
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(DEAD_LETTER_EXCHANGE.into()),
    );
    if queue_type == QueueType::Quorum {
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
    }
    args
}

/// Low side: requests exchange and queues (with dead-lettering), the calls queue, the results exchange.
pub async fn declare_low(session: &Session, queue_type: QueueType) -> Result<(), BrokerError> {
    let ch = session.scratch_channel().await?;
    for (name, kind) in [
        (REQUESTS_EXCHANGE, ExchangeKind::Direct),
        (RESULTS_EXCHANGE, ExchangeKind::Direct),
        (DEAD_LETTER_EXCHANGE, ExchangeKind::Fanout),
    ] {
        ch.exchange_declare(name.into(), kind, durable_exchange(), FieldTable::default())
            .await
            .map_err(amqp(format!("declaring exchange {name}")))?;
    }
    declare_dead_letter_queue(&ch, DEAD_LETTER_QUEUE, queue_type).await?;
    ch.queue_declare(
        REQUESTS_QUEUE.into(),
        durable_queue(),
        dead_lettered(queue_type),
    )
    .await
    .map_err(amqp(format!("declaring queue {REQUESTS_QUEUE}")))?;
    ch.queue_declare(
        CALLS_QUEUE.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(amqp(format!("declaring queue {CALLS_QUEUE}")))?;
    for (queue, key) in [
        (REQUESTS_QUEUE, JOB_ROUTING_KEY),
        (CALLS_QUEUE, CALL_ROUTING_KEY),
    ] {
        ch.queue_bind(
            queue.into(),
            REQUESTS_EXCHANGE.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(amqp(format!("binding {queue}")))?;
    }
    let _ = ch.close(200, "done".into()).await;
    Ok(())
}

/// Low side: the durable results queue of one researcher, bound by their name.
pub async fn declare_results_queue(
    session: &Session,
    researcher: &str,
    queue_type: QueueType,
) -> Result<(), BrokerError> {
    let ch = session.scratch_channel().await?;
    let queue = results_queue(researcher);
    ch.queue_declare(queue.as_str().into(), durable_queue(), typed(queue_type))
        .await
        .map_err(amqp(format!("declaring queue {queue}")))?;
    ch.queue_bind(
        queue.as_str().into(),
        RESULTS_EXCHANGE.into(),
        researcher.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .map_err(amqp(format!("binding {queue}")))?;
    let _ = ch.close(200, "done".into()).await;
    Ok(())
}

/// High side: the dead-letter exchange and `ferry.jobs.dead`, the workers' results queue and the cancel
/// exchange, all queues of `queue_type`. The per-runtime job queues are declared by [`declare_jobs_queue`], by
/// serve when it dispatches and by each worker for its runtimes.
pub async fn declare_high(session: &Session, queue_type: QueueType) -> Result<(), BrokerError> {
    let ch = session.scratch_channel().await?;
    for (name, kind) in [
        (DEAD_LETTER_EXCHANGE, ExchangeKind::Fanout),
        (HIGH_CANCEL_EXCHANGE, ExchangeKind::Fanout),
    ] {
        ch.exchange_declare(name.into(), kind, durable_exchange(), FieldTable::default())
            .await
            .map_err(amqp(format!("declaring exchange {name}")))?;
    }
    declare_dead_letter_queue(&ch, HIGH_JOBS_DEAD_QUEUE, queue_type).await?;
    ch.queue_declare(
        HIGH_WORKER_RESULTS_QUEUE.into(),
        durable_queue(),
        dead_lettered(queue_type),
    )
    .await
    .map_err(amqp(format!("declaring queue {HIGH_WORKER_RESULTS_QUEUE}")))?;
    let _ = ch.close(200, "done".into()).await;
    Ok(())
}

/// High side: the durable job queue of `runtime` ([`high_jobs_queue`]), dead-lettering into `ferry.jobs.dead`
/// what no worker can handle. Idempotent.
pub async fn declare_jobs_queue(
    session: &Session,
    runtime: &str,
    queue_type: QueueType,
) -> Result<String, BrokerError> {
    let queue = high_jobs_queue(runtime);
    let ch = session.scratch_channel().await?;
    ch.queue_declare(
        queue.as_str().into(),
        durable_queue(),
        dead_lettered(queue_type),
    )
    .await
    .map_err(amqp(format!("declaring queue {queue}")))?;
    let _ = ch.close(200, "done".into()).await;
    Ok(queue)
}

/// The queues `side`'s `ferry serve` declares and consumes from or fills (researchers' results queues and the
/// high side's per-runtime job queues aside).
pub fn side_queues(side: ferry_core::Side) -> &'static [&'static str] {
    match side {
        ferry_core::Side::Low => &[REQUESTS_QUEUE, CALLS_QUEUE, DEAD_LETTER_QUEUE],
        ferry_core::Side::High => &[HIGH_WORKER_RESULTS_QUEUE, HIGH_JOBS_DEAD_QUEUE],
    }
}

/// How full a queue is, as a passive declare reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueDepth {
    /// Messages ready for delivery (not those delivered and awaiting an ack).
    pub messages: u32,
    /// Consumers attached.
    pub consumers: u32,
}

/// `queue`'s depth, checked passively (nothing is created); `None` when the broker has no such queue.
pub async fn queue_depth(
    session: &Session,
    queue: &str,
) -> Result<Option<QueueDepth>, BrokerError> {
    // A failed passive declare closes its channel: a channel of its own.
    let ch = session.scratch_channel().await?;
    let found = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..durable_queue()
            },
            FieldTable::default(),
        )
        .await;
    match found {
        Ok(q) => {
            let _ = ch.close(200, "done".into()).await;
            Ok(Some(QueueDepth {
                messages: q.message_count(),
                consumers: q.consumer_count(),
            }))
        }
        Err(e) if matches!(e.kind(), lapin::ErrorKind::ProtocolError(p) if p.get_id() == 404) => {
            Ok(None)
        }
        Err(e) => Err(amqp(format!("looking at queue {queue}"))(e)),
    }
}

/// What of `side`'s exchanges and queues the broker lacks (checked passively: nothing is created); empty when all
/// are there. `ferry serve` declares them when it starts.
pub async fn missing(
    session: &Session,
    side: ferry_core::Side,
) -> Result<Vec<String>, BrokerError> {
    let exchanges: &[&str] = match side {
        ferry_core::Side::Low => &[REQUESTS_EXCHANGE, RESULTS_EXCHANGE, DEAD_LETTER_EXCHANGE],
        ferry_core::Side::High => &[DEAD_LETTER_EXCHANGE, HIGH_CANCEL_EXCHANGE],
    };
    let queues = side_queues(side);
    let mut missing = Vec::new();
    // A failed passive declare closes its channel: one channel each.
    for name in exchanges {
        let ch = session.scratch_channel().await?;
        let found = ch
            .exchange_declare(
                (*name).into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive: true,
                    ..durable_exchange()
                },
                FieldTable::default(),
            )
            .await;
        match found {
            Ok(()) => {
                let _ = ch.close(200, "done".into()).await;
            }
            Err(_) => missing.push(format!("exchange {name}")),
        }
    }
    for name in queues {
        let ch = session.scratch_channel().await?;
        let found = ch
            .queue_declare(
                (*name).into(),
                QueueDeclareOptions {
                    passive: true,
                    ..durable_queue()
                },
                FieldTable::default(),
            )
            .await;
        match found {
            Ok(_) => {
                let _ = ch.close(200, "done".into()).await;
            }
            Err(_) => missing.push(format!("queue {name}")),
        }
    }
    Ok(missing)
}

/// A durable scratch queue on the default exchange, for benchmarks that measure the broker itself.
pub async fn declare_scratch_queue(session: &Session, name: &str) -> Result<(), BrokerError> {
    let ch = session.scratch_channel().await?;
    ch.queue_declare(name.into(), durable_queue(), FieldTable::default())
        .await
        .map_err(amqp(format!("declaring queue {name}")))?;
    let _ = ch.close(200, "done".into()).await;
    Ok(())
}
