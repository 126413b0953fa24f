//! The job state machine, as the researcher sees it.
//!
//! ```text
//! submitted -> approved | rejected | returned (low side, owner's code review)
//! approved  -> exported                       (low side, packed into a bundle)
//! exported  -> running -> finished | failed   (high side, reported low-ward)
//! finished  -> released | withheld | returned (high side, owner's output review)
//! released  -> delivered                      (low side, published to the researcher's queue)
//! any non-final state -> cancelled | failed
//! ```
//! On the high side an imported job starts as `exported` (it has crossed) and a released result is the last state
//! the high side itself sets.
//!
//! [`JobState::next_states`] is this diagram as a table; a test reads the diagram above and checks the table
//! against it, pair by pair.

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
    /// The owner asked for changes (with a reason): the researcher submits a revision (`--revises`).
    Returned,
}

impl JobState {
    /// The states the high side reports low-ward: every state an imported (`exported`) job can reach there.
    /// `delivered` is not among them: only the low side delivers.
    pub const REPORTED_BY_HIGH: [JobState; 7] = [
        JobState::Running,
        JobState::Finished,
        JobState::Released,
        JobState::Withheld,
        JobState::Failed,
        JobState::Cancelled,
        JobState::Returned,
    ];

    /// The states of a job that has crossed to the high side and is still on its way to `released` there: a
    /// cancellation asked for on the low side has to cross after it.
    pub const ON_HIGH_SIDE: [JobState; 3] =
        [JobState::Exported, JobState::Running, JobState::Finished];

    /// Every state, in flow order.
    pub const ALL: [JobState; 12] = [
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
        JobState::Returned,
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
            JobState::Returned => "returned",
        }
    }

    /// The states a job may move to from this one in one step: the diagram at the top of this module, as a table.
    /// Final states have none.
    pub fn next_states(self) -> &'static [JobState] {
        use JobState::*;
        match self {
            Submitted => &[Approved, Rejected, Returned, Cancelled, Failed],
            Approved => &[Exported, Cancelled, Failed],
            Exported => &[Running, Cancelled, Failed],
            Running => &[Finished, Cancelled, Failed],
            Finished => &[Released, Withheld, Returned, Cancelled, Failed],
            Released => &[Delivered, Cancelled, Failed],
            Rejected | Withheld | Delivered | Failed | Cancelled | Returned => &[],
        }
    }

    /// Whether the diagram has a step from this state to `next`.
    pub fn can_move_to(self, next: JobState) -> bool {
        self.next_states().contains(&next)
    }

    /// Whether `later` lies ahead of this state: reachable in one or more steps. A state never reaches itself
    /// (the diagram has no cycles).
    pub fn can_reach(self, later: JobState) -> bool {
        self.next_states()
            .iter()
            .any(|&next| next == later || next.can_reach(later))
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
                | JobState::Returned
        )
    }

    /// Position in the flow: every step of [`JobState::next_states`] goes to a higher rank.
    pub fn rank(self) -> u8 {
        match self {
            JobState::Submitted => 0,
            JobState::Approved => 1,
            JobState::Exported => 2,
            JobState::Running => 3,
            JobState::Finished => 4,
            JobState::Released => 5,
            JobState::Delivered => 6,
            JobState::Rejected
            | JobState::Withheld
            | JobState::Failed
            | JobState::Cancelled
            | JobState::Returned => 7,
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

    /// The steps the diagram in this module's documentation draws, read from the source text.
    fn diagram_steps() -> Vec<(JobState, JobState)> {
        let source = include_str!("job.rs");
        let start =
            source.find("//! ```text\n").expect("the diagram opens") + "//! ```text\n".len();
        let end = start + source[start..].find("//! ```").expect("the diagram closes");
        let mut steps = Vec::new();
        for line in source[start..end].lines() {
            let line = line.trim_start_matches("//!");
            let line = line.split('(').next().unwrap_or_default();
            let groups: Vec<Vec<JobState>> = line
                .split("->")
                .map(|group| {
                    let group = group.trim();
                    if group == "any non-final state" {
                        JobState::ALL
                            .into_iter()
                            .filter(|s| !s.is_final())
                            .collect()
                    } else {
                        group
                            .split('|')
                            .map(|name| {
                                name.trim()
                                    .parse()
                                    .unwrap_or_else(|e| panic!("{e} in {line:?}"))
                            })
                            .collect()
                    }
                })
                .collect();
            assert!(groups.len() >= 2, "not a step: {line:?}");
            for pair in groups.windows(2) {
                for &from in &pair[0] {
                    for &to in &pair[1] {
                        steps.push((from, to));
                    }
                }
            }
        }
        steps
    }

    #[test]
    fn the_transition_table_is_the_diagram() {
        let steps = diagram_steps();
        assert!(steps.len() > 20, "the diagram was not read: {steps:?}");
        for from in JobState::ALL {
            for to in JobState::ALL {
                assert_eq!(
                    from.can_move_to(to),
                    steps.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn final_states_are_those_with_no_way_out() {
        for st in JobState::ALL {
            assert_eq!(st.is_final(), st.next_states().is_empty(), "{st}");
        }
    }

    #[test]
    fn reachability_follows_the_table_and_only_goes_forward() {
        for from in JobState::ALL {
            assert!(!from.can_reach(from), "{from} reaches itself");
            for to in JobState::ALL {
                if from.can_move_to(to) {
                    assert!(from.can_reach(to), "{from} -> {to}");
                    assert!(to.rank() > from.rank(), "{from} -> {to} goes backwards");
                }
            }
        }
        assert!(JobState::Exported.can_reach(JobState::Released));
        assert!(JobState::Submitted.can_reach(JobState::Delivered));
        assert!(!JobState::Exported.can_reach(JobState::Rejected));
        assert!(!JobState::Finished.can_reach(JobState::Running));
    }

    #[test]
    fn the_state_lists_follow_from_the_table() {
        let reported: Vec<JobState> = JobState::ALL
            .into_iter()
            .filter(|&s| JobState::Exported.can_reach(s) && s != JobState::Delivered)
            .collect();
        assert_eq!(reported, JobState::REPORTED_BY_HIGH);
        let on_high: Vec<JobState> = JobState::ALL
            .into_iter()
            .filter(|&s| {
                (s == JobState::Exported || JobState::Exported.can_reach(s))
                    && s.can_reach(JobState::Released)
            })
            .collect();
        assert_eq!(on_high, JobState::ON_HIGH_SIDE);
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
