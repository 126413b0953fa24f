//! Ferry's adapter to RabbitMQ (AMQP 0-9-1): the only crate that imports `lapin`.
//!
//! Start from [`Session`]: one connection with a confirming publisher channel. [`Session::consume`] gives a
//! [`Subscription`] of [`Incoming`] messages to ack only once their effect is durable; [`Session::publish`]
//! returns only when the broker confirmed the message (a Nack or an unroutable message is an error, never a log
//! line); [`Session::call`] is a request/reply over RabbitMQ's direct reply-to, used by researchers, who may not
//! declare queues, and [`Session::reply`] answers one. [`topology`] declares the exchanges and queues each side
//! needs; [`url_parts`] reads an AMQP URL as lapin does. [`management`] is a small blocking client of the broker's
//! management HTTP API, for researcher accounts.

pub mod management;
pub mod topology;

use std::time::Duration;

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use thiserror::Error;

/// A broker failure.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// Could not connect or log in.
    #[error("connecting to the broker at {url}: {source}")]
    Connect {
        /// The URL, password redacted.
        url: String,
        /// What lapin said.
        source: lapin::Error,
    },
    /// An AMQP operation failed (the broker closed the channel, refused a permission, ...).
    #[error("{operation}: {source}")]
    Amqp {
        /// What was being done.
        operation: String,
        /// What lapin said.
        source: lapin::Error,
    },
    /// The broker refused (Nack) a published message.
    #[error(
        "the broker refused (nack) a message published to {exchange:?} with key {routing_key:?}"
    )]
    Nacked {
        /// Exchange.
        exchange: String,
        /// Routing key.
        routing_key: String,
    },
    /// No queue was bound for the message.
    #[error("no queue is bound for messages to {exchange:?} with key {routing_key:?}")]
    Unroutable {
        /// Exchange.
        exchange: String,
        /// Routing key.
        routing_key: String,
    },
    /// No reply arrived in time.
    #[error("no reply from the {side} side's `ferry serve` within {secs} s: is it running?")]
    CallTimeout {
        /// Which side was called.
        side: &'static str,
        /// How long we waited.
        secs: u64,
    },
    /// The URL is not an AMQP URL.
    #[error("{url} is not an AMQP URL: {reason}")]
    BadUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The subscription ended (the broker closed the channel or the connection).
    #[error("the subscription to {0:?} ended")]
    SubscriptionEnded(String),
}

impl BrokerError {
    /// Whether the broker refused this account or operation (AMQP 403 ACCESS_REFUSED): a wrong password, an
    /// unknown user or vhost, or a missing permission.
    pub fn is_access_refused(&self) -> bool {
        let source = match self {
            BrokerError::Connect { source, .. } | BrokerError::Amqp { source, .. } => source,
            _ => return false,
        };
        matches!(source.kind(), lapin::ErrorKind::ProtocolError(e) if e.get_id() == 403)
    }
}

impl BrokerError {
    /// Whether the broker refused a declare because what exists differs from what was asked (AMQP 406
    /// PRECONDITION_FAILED: a queue of another type, or with other arguments): connecting again cannot help.
    pub fn is_precondition_failed(&self) -> bool {
        match self {
            BrokerError::Amqp { source, .. } => {
                matches!(source.kind(), lapin::ErrorKind::ProtocolError(e) if e.get_id() == 406)
            }
            _ => false,
        }
    }

    /// Whether the broker answered but has no such vhost (AMQP 530 NOT_ALLOWED at login).
    pub fn is_vhost_missing(&self) -> bool {
        match self {
            BrokerError::Connect { source, .. } => {
                matches!(source.kind(), lapin::ErrorKind::ProtocolError(e) if e.get_id() == 530)
            }
            _ => false,
        }
    }

    /// Whether nothing answered at the URL's address: the connection itself failed (refused, reset,
    /// unreachable), before any AMQP was spoken.
    pub fn is_unreachable(&self) -> bool {
        match self {
            BrokerError::Connect { source, .. } => {
                matches!(source.kind(), lapin::ErrorKind::IOError(_))
            }
            _ => false,
        }
    }
}

/// What an AMQP URL names: the account and the vhost (percent-decoded; an empty path is the vhost `/`).
#[derive(Clone)]
pub struct UrlParts {
    /// The user name.
    pub user: String,
    /// The password; never logged.
    pub password: String,
    /// The vhost.
    pub vhost: String,
}

impl std::fmt::Debug for UrlParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlParts")
            .field("user", &self.user)
            .field("password", &"***")
            .field("vhost", &self.vhost)
            .finish()
    }
}

/// Parses `url` as lapin will when connecting.
pub fn url_parts(url: &str) -> Result<UrlParts, BrokerError> {
    let uri: lapin::uri::AMQPUri = url.parse().map_err(|reason: String| BrokerError::BadUrl {
        url: ferry_core::config::redact_url(url),
        reason,
    })?;
    Ok(UrlParts {
        user: uri.authority.userinfo.username,
        password: uri.authority.userinfo.password,
        vhost: if uri.vhost.is_empty() {
            "/".to_string()
        } else {
            uri.vhost
        },
    })
}

fn amqp(operation: impl Into<String>) -> impl FnOnce(lapin::Error) -> BrokerError {
    let operation = operation.into();
    move |source| BrokerError::Amqp { operation, source }
}

/// A message to publish.
#[derive(Clone, Debug, Default)]
pub struct Outgoing<'a> {
    /// Exchange ("" for the default exchange).
    pub exchange: &'a str,
    /// Routing key.
    pub routing_key: &'a str,
    /// Body.
    pub body: &'a [u8],
    /// `message_id` property.
    pub message_id: Option<&'a str>,
    /// `user_id` property: RabbitMQ refuses a message whose `user_id` is not the connection's user.
    pub user_id: Option<&'a str>,
    /// `type` property.
    pub kind: Option<&'a str>,
    /// `reply_to` property.
    pub reply_to: Option<&'a str>,
    /// `correlation_id` property.
    pub correlation_id: Option<&'a str>,
    /// Persistent (delivery mode 2).
    pub persistent: bool,
}

/// A delivered message; ack it once its effect is durable, or reject it.
pub struct Incoming {
    /// Body.
    pub body: Vec<u8>,
    /// `user_id` property, as validated by RabbitMQ.
    pub user_id: Option<String>,
    /// `message_id` property.
    pub message_id: Option<String>,
    /// `type` property.
    pub kind: Option<String>,
    /// `reply_to` property.
    pub reply_to: Option<String>,
    /// `correlation_id` property.
    pub correlation_id: Option<String>,
    /// `content_type` property.
    pub content_type: Option<String>,
    /// Whether the broker delivered it before.
    pub redelivered: bool,
    acker: lapin::Acker,
}

impl Incoming {
    fn from_delivery(d: lapin::message::Delivery) -> Incoming {
        let p = &d.properties;
        let s = |v: &Option<lapin::types::ShortString>| v.as_ref().map(|s| s.as_str().to_string());
        Incoming {
            user_id: s(p.user_id()),
            message_id: s(p.message_id()),
            kind: s(p.kind()),
            reply_to: s(p.reply_to()),
            correlation_id: s(p.correlation_id()),
            content_type: s(p.content_type()),
            redelivered: d.redelivered,
            body: d.data,
            acker: d.acker,
        }
    }

    /// Acknowledges: the broker forgets the message.
    pub async fn ack(&self) -> Result<(), BrokerError> {
        self.acker
            .ack(BasicAckOptions::default())
            .await
            .map(|_| ())
            .map_err(amqp("acknowledging a message"))
    }

    /// Rejects; with `requeue` false the message is dead-lettered if its queue has a dead-letter exchange.
    pub async fn reject(&self, requeue: bool) -> Result<(), BrokerError> {
        self.acker
            .reject(BasicRejectOptions { requeue })
            .await
            .map(|_| ())
            .map_err(amqp("rejecting a message"))
    }
}

/// A consumer on one queue, or on several through one channel.
pub struct Subscription {
    queue: String,
    consumers: Vec<lapin::Consumer>,
    _channel: Channel,
}

impl Subscription {
    /// The next message; an error when the subscription ended.
    pub async fn next(&mut self) -> Result<Incoming, BrokerError> {
        let consumers = &mut self.consumers;
        let item = std::future::poll_fn(|cx| {
            for c in consumers.iter_mut() {
                if let std::task::Poll::Ready(item) = c.poll_next(cx) {
                    return std::task::Poll::Ready(item);
                }
            }
            std::task::Poll::Pending
        })
        .await;
        match item {
            Some(Ok(d)) => Ok(Incoming::from_delivery(d)),
            Some(Err(source)) => Err(BrokerError::Amqp {
                operation: format!("consuming from {:?}", self.queue),
                source,
            }),
            None => Err(BrokerError::SubscriptionEnded(self.queue.clone())),
        }
    }
}

/// One connection to a broker, with a publisher channel in confirm mode.
pub struct Session {
    conn: Connection,
    publisher: Channel,
}

impl Session {
    /// Connects and opens the confirming publisher channel.
    pub async fn connect(url: &str) -> Result<Session, BrokerError> {
        let conn = Connection::connect(url, ConnectionProperties::default())
            .await
            .map_err(|source| BrokerError::Connect {
                url: ferry_core::config::redact_url(url),
                source,
            })?;
        let publisher = conn
            .create_channel()
            .await
            .map_err(amqp("opening a channel"))?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(amqp("enabling publisher confirms"))?;
        Ok(Session { conn, publisher })
    }

    /// A fresh channel, for topology changes whose failure must not close the publisher.
    pub(crate) async fn scratch_channel(&self) -> Result<Channel, BrokerError> {
        self.conn
            .create_channel()
            .await
            .map_err(amqp("opening a channel"))
    }

    /// Publishes and waits for the broker's confirmation. Messages are `mandatory`: an unroutable one is an error.
    pub async fn publish(&self, msg: &Outgoing<'_>) -> Result<(), BrokerError> {
        self.publish_many(std::slice::from_ref(msg)).await
    }

    /// Publishes every message, then waits for all the confirmations: one round trip for the lot. Fails on the
    /// first Nack or unroutable message (those before it may have been routed).
    pub async fn publish_many(&self, msgs: &[Outgoing<'_>]) -> Result<(), BrokerError> {
        let mut pending = Vec::with_capacity(msgs.len());
        for msg in msgs {
            let confirm = self
                .publisher
                .basic_publish(
                    msg.exchange.into(),
                    msg.routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    msg.body,
                    properties(msg),
                )
                .await
                .map_err(amqp(describe(msg)))?;
            pending.push((msg, confirm));
        }
        for (msg, confirm) in pending {
            let confirm = confirm.await.map_err(amqp(describe(msg)))?;
            if confirm.is_nack() {
                return Err(BrokerError::Nacked {
                    exchange: msg.exchange.into(),
                    routing_key: msg.routing_key.into(),
                });
            }
            if confirm.take_message().is_some() {
                return Err(BrokerError::Unroutable {
                    exchange: msg.exchange.into(),
                    routing_key: msg.routing_key.into(),
                });
            }
        }
        Ok(())
    }

    /// Answers a [`Session::call`]: publishes `body` to the caller's direct reply-to address `reply_to` with its
    /// `correlation_id`, and waits for the broker's confirmation (a Nack is an error).
    ///
    /// Unlike [`Session::publish`] the message is not `mandatory`: RabbitMQ delivers a direct reply-to message
    /// straight to the caller's channel without routing it through a queue, and before 4.x it then also returns
    /// a mandatory one as unroutable (`basic.return`, 312 NO_ROUTE) although it was delivered
    /// (rabbitmq-server#6124). Treating that return as a failure reported a lost reply on every call. A caller
    /// that has gone is not an error either: its reply is dropped, and it sees a timeout.
    pub async fn reply(
        &self,
        reply_to: &str,
        correlation_id: Option<&str>,
        kind: &str,
        body: &[u8],
    ) -> Result<(), BrokerError> {
        let msg = Outgoing {
            exchange: "",
            routing_key: reply_to,
            body,
            correlation_id,
            kind: Some(kind),
            ..Outgoing::default()
        };
        let confirm = self
            .publisher
            .basic_publish(
                "".into(),
                reply_to.into(),
                BasicPublishOptions::default(),
                body,
                properties(&msg),
            )
            .await
            .map_err(amqp(describe(&msg)))?
            .await
            .map_err(amqp(describe(&msg)))?;
        if confirm.is_nack() {
            return Err(BrokerError::Nacked {
                exchange: String::new(),
                routing_key: reply_to.into(),
            });
        }
        Ok(())
    }

    /// Consumes `queue` with at most `prefetch` unacknowledged messages at a time.
    pub async fn consume(&self, queue: &str, prefetch: u16) -> Result<Subscription, BrokerError> {
        self.consume_many(&[queue.to_string()], prefetch, false)
            .await
    }

    /// Consumes every one of `queues` on one channel with at most `prefetch` unacknowledged messages across them
    /// all when `shared_prefetch` (a global prefetch, classic queues only): a worker holds no job of one queue while
    /// it runs a job of another. Without it (quorum queues), `prefetch` is per queue.
    pub async fn consume_many(
        &self,
        queues: &[String],
        prefetch: u16,
        shared_prefetch: bool,
    ) -> Result<Subscription, BrokerError> {
        let channel = self.scratch_channel().await?;
        // Quorum queues refuse a channel-wide prefetch (NOT_IMPLEMENTED "global qos"): each consumer then has its
        // own, and a worker may hold one message per queue while it handles one of them.
        let global = shared_prefetch && queues.len() > 1;
        channel
            .basic_qos(prefetch, BasicQosOptions { global })
            .await
            .map_err(amqp("setting the prefetch"))?;
        let mut consumers = Vec::new();
        for queue in queues {
            consumers.push(
                channel
                    .basic_consume(
                        queue.as_str().into(),
                        "".into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(amqp(format!("consuming from {queue:?}")))?,
            );
        }
        Ok(Subscription {
            queue: queues.join(", "),
            consumers,
            _channel: channel,
        })
    }

    /// Consumes a fresh exclusive queue bound to the fanout `exchange` (which must exist), without acks: every
    /// subscriber gets every message published while it listens.
    pub async fn listen(&self, exchange: &str) -> Result<Subscription, BrokerError> {
        let channel = self.scratch_channel().await?;
        let queue = channel
            .queue_declare(
                "".into(),
                lapin::options::QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..lapin::options::QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp(format!("declaring a queue for {exchange:?}")))?;
        let name = queue.name().as_str().to_string();
        channel
            .queue_bind(
                name.as_str().into(),
                exchange.into(),
                "".into(),
                lapin::options::QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(amqp(format!("binding a queue to {exchange:?}")))?;
        let consumer = channel
            .basic_consume(
                name.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp(format!("listening on {exchange:?}")))?;
        Ok(Subscription {
            queue: exchange.to_string(),
            consumers: vec![consumer],
            _channel: channel,
        })
    }

    /// Sends `body` to `exchange`/`routing_key` with `reply_to` set to direct reply-to and waits for the reply.
    /// `user_id` is set so that the server knows who is calling.
    pub async fn call(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        user_id: &str,
        timeout: Duration,
    ) -> Result<Vec<u8>, BrokerError> {
        // Direct reply-to needs the consumer and the publish on the same channel, without confirms.
        let channel = self.scratch_channel().await?;
        let mut consumer = channel
            .basic_consume(
                "amq.rabbitmq.reply-to".into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(amqp("listening for a reply"))?;
        let correlation = format!("{:x}", std::process::id() as u64 ^ now_nanos());
        let props = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_user_id(user_id.into())
            .with_reply_to("amq.rabbitmq.reply-to".into())
            .with_correlation_id(correlation.as_str().into());
        channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .map_err(amqp(format!("publishing to {exchange:?}")))?;
        let wait = async {
            loop {
                match consumer.next().await {
                    Some(Ok(d)) => {
                        let matches = d
                            .properties
                            .correlation_id()
                            .as_ref()
                            .is_none_or(|c| c.as_str() == correlation);
                        if matches {
                            return Ok(d.data);
                        }
                    }
                    Some(Err(source)) => {
                        return Err(BrokerError::Amqp {
                            operation: "waiting for a reply".into(),
                            source,
                        })
                    }
                    None => {
                        return Err(BrokerError::SubscriptionEnded(
                            "amq.rabbitmq.reply-to".into(),
                        ))
                    }
                }
            }
        };
        let reply =
            tokio::time::timeout(timeout, wait)
                .await
                .map_err(|_| BrokerError::CallTimeout {
                    side: "low",
                    secs: timeout.as_secs(),
                })?;
        let _ = channel.close(200, "done".into()).await;
        reply
    }

    /// Whether the connection is still open (false once the broker closed it, say because the account was
    /// removed).
    pub fn is_open(&self) -> bool {
        self.conn.status().connected()
    }

    /// Closes the connection politely.
    pub async fn close(&self) {
        let _ = self.conn.close(200, "bye".into()).await;
    }
}

fn describe(msg: &Outgoing<'_>) -> String {
    format!(
        "publishing to {:?} with key {:?}",
        msg.exchange, msg.routing_key
    )
}

/// The AMQP properties of an outgoing message (JSON, plus what the message sets).
fn properties(msg: &Outgoing<'_>) -> BasicProperties {
    let mut props = BasicProperties::default().with_content_type("application/json".into());
    if let Some(v) = msg.message_id {
        props = props.with_message_id(v.into());
    }
    if let Some(v) = msg.user_id {
        props = props.with_user_id(v.into());
    }
    if let Some(v) = msg.kind {
        props = props.with_type(v.into());
    }
    if let Some(v) = msg.reply_to {
        props = props.with_reply_to(v.into());
    }
    if let Some(v) = msg.correlation_id {
        props = props.with_correlation_id(v.into());
    }
    if msg.persistent {
        props = props.with_delivery_mode(2);
    }
    props
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn url_parts_are_decoded() {
        let p = super::url_parts("amqp://ferry-low:p%40ss@127.0.0.1:5672/ferry-low").unwrap();
        assert_eq!(
            (p.user.as_str(), p.password.as_str(), p.vhost.as_str()),
            ("ferry-low", "p@ss", "ferry-low")
        );
        assert_eq!(
            super::url_parts("amqp://g:g@h:5672/%2f").unwrap().vhost,
            "/"
        );
        assert!(!format!("{p:?}").contains("p@ss"));
    }
}
