//! Every check on a bundle that can run before anything of it is decrypted, given a header whose signature and
//! payload hash have already been verified against the pinned key: the channel, the ledger (replay and
//! rollback), the sequence (gaps past the configured limit), the chain to an imported predecessor, and expiry
//! with clock slack.

use ferry_bundle::{Channel, Header};
use ferry_core::config::BundlePolicy;
use ferry_core::{ContentHash, Seq, Store};

use crate::refusal::Refusal;

fn when(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.to_rfc3339())
        .unwrap_or_else(|| format!("unix time {t}"))
}

/// What the header policy needs of the receiving side.
pub struct Policy<'a> {
    /// The state store, for the ledger.
    pub store: &'a Store,
    /// The channel this side receives on.
    pub expected: Channel,
    /// The configured limits.
    pub bundle: &'a BundlePolicy,
    /// The owner accepted a sequence jump for this bundle (`--accept-gap`).
    pub accept_gap: bool,
    /// The time to judge expiry by (unix seconds).
    pub now: i64,
}

impl Policy<'_> {
    /// Checks a verified header and the SHA-256 of the whole file; `Ok` means the bundle may be decrypted.
    /// The very file imported before is [`Refusal::AlreadyImported`], which the importer archives rather than
    /// quarantines.
    pub fn check(&self, header: &Header, bundle_hash: &[u8; 32]) -> Result<(), Refusal> {
        let expected = self.expected;
        if header.channel != expected {
            return Err(Refusal::WrongChannel {
                got: header.channel.as_str(),
                expected: expected.as_str(),
            });
        }
        let bundle_id = hex::encode(header.bundle_id);
        if let Some(prev) = self.store.imported(&bundle_id)? {
            if prev.bundle_hash == hex::encode(bundle_hash) {
                return Err(Refusal::AlreadyImported {
                    seq: prev.seq.get(),
                    at: when(prev.imported_at),
                });
            }
            return Err(Refusal::Replay {
                bundle_id,
                seq: prev.seq.get(),
                at: when(prev.imported_at),
            });
        }
        let store_channel = crate::export::channel_of(expected);
        if let Some(prev) = self.store.imported_seq(store_channel, Seq(header.seq))? {
            return Err(Refusal::Rollback {
                seq: header.seq,
                channel: expected.as_str(),
                bundle_id: prev.bundle_id,
            });
        }
        let (last_seq, _) = self.store.channel_in(store_channel)?;
        let last_seq = last_seq.get();
        let gap = header.seq.saturating_sub(last_seq);
        if gap > self.bundle.max_seq_gap && !self.accept_gap {
            return Err(Refusal::SequenceGap {
                seq: header.seq,
                gap,
                last: last_seq,
                max: self.bundle.max_seq_gap,
            });
        }
        self.check_chain(header)?;
        let slack = self.bundle.clock_slack_secs as i64;
        if self.now > header.expires_at + slack {
            return Err(Refusal::Expired {
                at: when(header.expires_at),
                slack,
            });
        }
        if header.created_at > self.now + slack {
            return Err(Refusal::NotYetValid {
                at: when(header.created_at),
                slack,
            });
        }
        Ok(())
    }

    /// The chain: a bundle names its predecessor's content hash, which the ledger has when the predecessor was
    /// imported; the first bundle of a channel names none.
    fn check_chain(&self, header: &Header) -> Result<(), Refusal> {
        if header.seq == 1 {
            if header.prev_hash != [0u8; 32] {
                return Err(Refusal::ChainMismatch(
                    "the first bundle of a channel names a predecessor".into(),
                ));
            }
            return Ok(());
        }
        let named_prev = ContentHash::from(header.prev_hash);
        if let Some(prev) = self.store.imported_seq(
            crate::export::channel_of(self.expected),
            Seq(header.seq - 1),
        )? {
            if prev.content_hash != named_prev {
                return Err(Refusal::ChainMismatch(format!(
                    "bundle {} names {named_prev} as its predecessor, but sequence {} as imported hashes to {}",
                    header.seq,
                    header.seq - 1,
                    prev.content_hash
                )));
            }
        }
        Ok(())
    }
}
