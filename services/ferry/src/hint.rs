//! The second line of an error, when the fix is known, chosen from the error's typed cause (never from its
//! wording, so that rewording a message cannot drop its hint).

use ferry_broker::BrokerError;
use ferry_transfer::TransferError;

/// A hint for `err`, from the first cause in its chain that has one.
pub fn hint_for(err: &anyhow::Error) -> Option<&'static str> {
    err.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<BrokerError>() {
            return broker_hint(e);
        }
        if let Some(e) = cause.downcast_ref::<ferry_serve::ServeError>() {
            return match e {
                ferry_serve::ServeError::Broker(b) => broker_hint(b),
                ferry_serve::ServeError::Topology { source, .. } => broker_hint(source),
                _ => None,
            };
        }
        if let Some(e) = cause.downcast_ref::<TransferError>() {
            return transfer_hint(e);
        }
        None
    })
}

/// The hint for a broker error, from its typed cause.
pub fn broker_hint(e: &BrokerError) -> Option<&'static str> {
    match e {
        _ if e.is_access_refused() => Some(
            "the broker refused this account: check the user name, password and its permissions on the vhost",
        ),
        _ if e.is_vhost_missing() => Some(
            "the broker has no such vhost: `ferry init --provision` creates a side's vhost and service account",
        ),
        _ if e.is_unreachable() => Some(
            "is RabbitMQ running? `rabbitmq-server -detached` starts it; check the URL's host and port",
        ),
        BrokerError::CallTimeout { .. } => {
            Some("start the low side's services with `ferry serve --config LOW/ferry.toml`")
        }
        _ => None,
    }
}

fn transfer_hint(e: &TransferError) -> Option<&'static str> {
    match e {
        TransferError::NoPeer { .. } => {
            Some("pin the other side's public.txt with `ferry trust add --config CFG FILE`")
        }
        TransferError::WrongSide { .. } => {
            Some("each side's owner commands take that side's own ferry.toml")
        }
        TransferError::Config { .. } => {
            Some("`ferry init --side low|high --dir DIR` writes a valid ferry.toml")
        }
        TransferError::NeedsReviewerKey => Some(
            "give your reviewer key with --key FILE (or FERRY_REVIEWER_KEY); a reviewer makes one with \
             `ferry reviewer keygen --out FILE` and the owner registers it with `ferry reviewer add`",
        ),
        TransferError::Blocked { .. } => Some(
            "read the findings in `ferry review show`; then `--withhold FILE --reason TEXT` the files concerned, \
             or `--override REASON` to release them anyway",
        ),
        _ => None,
    }
}
