//! The errors of the services.

use thiserror::Error;

/// Why a service (and so `ferry serve`) stopped.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The broker failed or refused.
    #[error(transparent)]
    Broker(Box<ferry_broker::BrokerError>),
    /// The state store failed.
    #[error("state store: {0}")]
    Store(#[from] ferry_core::StoreError),
    /// The side's directory could not be opened or a bundle could not be handled.
    #[error(transparent)]
    Transfer(Box<ferry_transfer::TransferError>),
    /// The sandbox's self-check failed.
    #[error("the sandbox cannot run jobs here: {0}")]
    Sandbox(Box<ferry_sandbox::SandboxError>),
    /// Declaring the side's exchanges and queues failed.
    #[error("declaring the {side} side's exchanges and queues: {source}")]
    Topology {
        /// The side.
        side: &'static str,
        /// The cause.
        #[source]
        source: Box<ferry_broker::BrokerError>,
    },
    /// One service failed; the others were stopped.
    #[error("the {service} service failed: {source}")]
    Service {
        /// The service.
        service: &'static str,
        /// The cause.
        #[source]
        source: Box<ServeError>,
    },
    /// A service ended although nobody asked it to.
    #[error("the {0} service stopped on its own")]
    StoppedOnItsOwn(&'static str),
    /// A worker could not be set up (its work directory, its spool).
    #[error("{0}")]
    Setup(String),
    /// The metrics address (`--metrics ADDR`) cannot be used.
    #[error("--metrics {addr}: {reason}")]
    MetricsAddr {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A service panicked.
    #[error("a service panicked: {0}")]
    Panicked(String),
}

impl ServeError {
    /// Whether this is the broker being unreachable or going away (as opposed to refusing this account, or a
    /// fault of this side): worth connecting again.
    pub fn is_broker_outage(&self) -> bool {
        match self {
            ServeError::Broker(e) | ServeError::Topology { source: e, .. } => {
                !e.is_access_refused()
                    && !e.is_precondition_failed()
                    && matches!(
                        **e,
                        ferry_broker::BrokerError::Connect { .. }
                            | ferry_broker::BrokerError::Amqp { .. }
                            | ferry_broker::BrokerError::SubscriptionEnded(_)
                    )
            }
            ServeError::Service { source, .. } => source.is_broker_outage(),
            _ => false,
        }
    }
}

impl From<ferry_broker::BrokerError> for ServeError {
    fn from(e: ferry_broker::BrokerError) -> ServeError {
        ServeError::Broker(Box::new(e))
    }
}

impl From<ferry_transfer::TransferError> for ServeError {
    fn from(e: ferry_transfer::TransferError) -> ServeError {
        ServeError::Transfer(Box::new(e))
    }
}

impl From<ferry_sandbox::SandboxError> for ServeError {
    fn from(e: ferry_sandbox::SandboxError) -> ServeError {
        ServeError::Sandbox(Box::new(e))
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = ServeError> = std::result::Result<T, E>;
