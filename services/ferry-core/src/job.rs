//! The job state machine, as the researcher sees it.
//!
//! ```text
//! submitted -> approved | rejected            (low side, owner's code review)
//! approved  -> exported                       (low side, packed into a bundle)
//! exported  -> running -> finished | failed   (high side, reported low-ward)
//! finished  -> released | withheld            (high side, owner's output review)
//! released  -> delivered                      (low side, published to the researcher's queue)
//! any non-final state -> cancelled | failed
//! ```
//! On the high side an imported job starts as `exported` (it has crossed) and a released result is the last state
//! the high side itself sets.

use std::fmt;
use std::str::FromStr;

/// Where a job stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Accepted by intake; waiting for the owner's code review.
    Submitted,
    /// The owner approved the code; waits for the next export.
    Approved,
    /// The owner rejected the code (with a reason).
    Rejected,
    /// Packed into a bundle bound for the high side.
    Exported,
    /// A high-side worker is running it.
    Running,
    /// It ran; the result waits for the owner's output review.
    Finished,
    /// The owner released the result.
    Released,
    /// The owner withheld the result (with a reason).
    Withheld,
    /// The released result was published to the researcher's results queue.
    Delivered,
    /// It could not be run or was refused (with a reason).
    Failed,
    /// The researcher cancelled it.
    Cancelled,
}

impl JobState {
    /// Every state, in flow order.
    pub const ALL: [JobState; 11] = [
        JobState::Submitted,
        JobState::Approved,
        JobState::Rejected,
        JobState::Exported,
        JobState::Running,
        JobState::Finished,
        JobState::Released,
        JobState::Withheld,
        JobState::Delivered,
        JobState::Failed,
        JobState::Cancelled,
    ];

    /// The stable lower-case name used in messages, the database and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Submitted => "submitted",
            JobState::Approved => "approved",
            JobState::Rejected => "rejected",
            JobState::Exported => "exported",
            JobState::Running => "running",
            JobState::Finished => "finished",
            JobState::Released => "released",
            JobState::Withheld => "withheld",
            JobState::Delivered => "delivered",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// A state from which the job moves no further.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Rejected
                | JobState::Withheld
                | JobState::Delivered
                | JobState::Failed
                | JobState::Cancelled
        )
    }

    /// Position in the flow, used so that a late or repeated status report never moves a job backwards.
    pub fn rank(self) -> u8 {
        match self {
            JobState::Submitted => 0,
            JobState::Approved => 1,
            JobState::Exported => 2,
            JobState::Running => 3,
            JobState::Finished => 4,
            JobState::Released => 5,
            JobState::Delivered => 6,
            JobState::Rejected | JobState::Withheld | JobState::Failed | JobState::Cancelled => 7,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of [`JobState::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown job state {0:?}")]
pub struct UnknownState(pub String);

impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for st in JobState::ALL {
            assert_eq!(st.as_str().parse::<JobState>().unwrap(), st);
        }
        assert!("bogus".parse::<JobState>().is_err());
    }

    #[test]
    fn final_states_rank_last() {
        for st in JobState::ALL {
            if st.is_final() && st != JobState::Delivered {
                assert_eq!(st.rank(), 7);
            }
        }
    }
}
