//! What names a bundle's place across the gap: the [`Channel`] it travels on, its sequence number [`Seq`] there,
//! and the [`ContentHash`] that chains it to the bundle before it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::Side;

/// One direction across the gap. The names are the bundle format's (`schemas/bundle-format.md`), the same as
/// ferry-bundle's `Channel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Channel {
    /// From the low side (researchers) into the high side.
    LowToHigh,
    /// From the high side back out to the low side.
    HighToLow,
}

impl Channel {
    /// Both channels.
    pub const ALL: [Channel; 2] = [Channel::LowToHigh, Channel::HighToLow];

    /// `"low-to-high"` or `"high-to-low"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::LowToHigh => "low-to-high",
            Channel::HighToLow => "high-to-low",
        }
    }

    /// The side that sends on this channel.
    pub fn sender(self) -> Side {
        match self {
            Channel::LowToHigh => Side::Low,
            Channel::HighToLow => Side::High,
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A channel name that is neither `low-to-high` nor `high-to-low`.
#[derive(Debug, Error)]
#[error("unknown channel {0:?} (expected low-to-high or high-to-low)")]
pub struct UnknownChannel(pub String);

impl FromStr for Channel {
    type Err = UnknownChannel;

    fn from_str(s: &str) -> Result<Channel, UnknownChannel> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownChannel(s.to_string()))
    }
}

/// A bundle's sequence number on its channel. The first bundle is 1; 0 stands for "none yet" (e.g. the last
/// sequence of a channel nothing was sent on).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// The number.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl From<u64> for Seq {
    fn from(n: u64) -> Seq {
        Seq(n)
    }
}

impl From<Seq> for u64 {
    fn from(s: Seq) -> u64 {
        s.0
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The SHA-256 that chains bundles: each bundle's header names its predecessor's content hash. Shown and parsed
/// as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// SHA-256 of `data`.
    pub fn sha256(data: &[u8]) -> ContentHash {
        use sha2::Digest;
        ContentHash(sha2::Sha256::digest(data).into())
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for ContentHash {
    fn from(bytes: [u8; 32]) -> ContentHash {
        ContentHash(bytes)
    }
}

impl From<ContentHash> for [u8; 32] {
    fn from(h: ContentHash) -> [u8; 32] {
        h.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

/// Text that is not 64 hex digits.
#[derive(Debug, Error)]
#[error("not a content hash (64 hex digits): {0:?}")]
pub struct BadContentHash(pub String);

impl FromStr for ContentHash {
    type Err = BadContentHash;

    fn from_str(s: &str) -> Result<ContentHash, BadContentHash> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| BadContentHash(s.to_string()))?;
        Ok(ContentHash(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_named_as_in_the_bundle_format() {
        assert_eq!(Channel::LowToHigh.as_str(), "low-to-high");
        assert_eq!(Channel::HighToLow.as_str(), "high-to-low");
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), c);
            assert_eq!(c.to_string(), c.as_str());
        }
        assert!("sideways".parse::<Channel>().is_err());
    }

    #[test]
    fn each_side_sends_on_one_channel_and_receives_on_the_other() {
        for side in [Side::Low, Side::High] {
            assert_eq!(side.outgoing().sender(), side);
            assert_eq!(side.incoming().sender(), side.peer());
            assert_eq!(side.incoming(), side.peer().outgoing());
        }
        assert_eq!(Side::Low.outgoing(), Channel::LowToHigh);
    }

    #[test]
    fn sequence_numbers_convert_and_print_as_numbers() {
        let s = Seq::from(7);
        assert_eq!(s.get(), 7);
        assert_eq!(u64::from(s), 7);
        assert_eq!(format!("{s:06}"), "000007");
        assert_eq!(serde_json::to_string(&[Seq(1), Seq(3)]).unwrap(), "[1,3]");
        assert!(Seq(2) > Seq(1));
        assert_eq!(Seq::default(), Seq(0));
    }

    #[test]
    fn content_hashes_round_trip_through_hex() {
        let h = ContentHash::sha256(b"abc");
        let text = h.to_string();
        assert_eq!(
            text,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(text.parse::<ContentHash>().unwrap(), h);
        assert_eq!(
            text.to_uppercase().parse::<ContentHash>().unwrap(),
            h,
            "hex digits of either case"
        );
        assert_eq!(<[u8; 32]>::from(h), *h.as_bytes());
        assert!("".parse::<ContentHash>().is_err());
        assert!(text[..62].parse::<ContentHash>().is_err());
        assert!(format!("{}zz", &text[..62]).parse::<ContentHash>().is_err());
    }
}
