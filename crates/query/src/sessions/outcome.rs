//! A session's outcome, derived deterministically from its events (docs/sessions.md):
//!
//! - an **action** is a span (the event id when the event has no span) that has an AGENT,
//!   MODEL_INVOCATION, TOOL_CALL or MCP_CALL end, or an unrecovered ERROR;
//! - an action **failed** when its latest end has status FAILED or CANCELLED, or when an
//!   unrecovered ERROR (`ErrorInfo.recoverable` false or absent) came after its latest end.
//!   So a RETRY that later succeeds is not a failure: the retried attempt's successful end
//!   on the same span is the latest; a recoverable ERROR never fails anything;
//! - a session with a SESSION_END is `complete` when no action failed, `failed` when every
//!   action failed (at least one), `partial` otherwise; without a SESSION_END it is
//!   `in_progress`, or `abandoned` once its last event is older than the idle time
//!   (`query.session_idle_secs`).
//!
//! The list derives the same in SQL (`list::statement`) to filter on it; this is the one
//! place the rules are written in Rust, and the detail page's per-action reasons use it.

use std::str::FromStr;

use serde::Serialize;

/// What became of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Complete,
    Partial,
    Failed,
    InProgress,
    Abandoned,
}

impl Outcome {
    /// The name used in the API and in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Partial => "partial",
            Self::Failed => "failed",
            Self::InProgress => "in_progress",
            Self::Abandoned => "abandoned",
        }
    }
}

impl FromStr for Outcome {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, ()> {
        [
            Self::Complete,
            Self::Partial,
            Self::Failed,
            Self::InProgress,
            Self::Abandoned,
        ]
        .into_iter()
        .find(|outcome| outcome.as_str() == name)
        .ok_or(())
    }
}

/// `EventStatus` numbers that make an end a failure.
pub const FAILED: i32 = 4;
pub const CANCELLED: i32 = 5;

/// What the outcome is derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionFigures {
    /// A SESSION_END arrived.
    pub ended: bool,
    /// Time of the last event, ns.
    pub last_ns: i64,
    pub actions: u64,
    pub failed: u64,
}

impl SessionFigures {
    /// The outcome at `now_ns`, and why, in words.
    pub fn outcome(&self, now_ns: i64, idle_ns: i64) -> (Outcome, Vec<String>) {
        let failed_of = format!("{} of {} actions failed", self.failed, self.actions);
        if !self.ended {
            let idle_secs = (now_ns - self.last_ns).max(0) / 1_000_000_000;
            return if now_ns - self.last_ns > idle_ns {
                (
                    Outcome::Abandoned,
                    vec![
                        format!(
                            "no SESSION_END, and no event for {idle_secs} s (more than the idle time of {} s)",
                            idle_ns / 1_000_000_000
                        ),
                        failed_of,
                    ],
                )
            } else {
                (
                    Outcome::InProgress,
                    vec![
                        format!("no SESSION_END yet; last event {idle_secs} s ago"),
                        failed_of,
                    ],
                )
            };
        }
        let outcome = match (self.failed, self.actions) {
            (0, _) => Outcome::Complete,
            (failed, actions) if failed == actions => Outcome::Failed,
            _ => Outcome::Partial,
        };
        (outcome, vec![format!("SESSION_END received; {failed_of}")])
    }
}

/// One action's state, as `session_actions` keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActionState {
    /// Status and time of its latest end, if it has one.
    pub last_end: Option<(i32, i64)>,
    /// Time of its latest unrecovered error, if any.
    pub unrecovered_error_ns: Option<i64>,
}

impl ActionState {
    /// Folds one event of the action in: `end` for an end event, `unrecovered_error` for an
    /// ERROR that is not recoverable.
    pub fn record(&mut self, status: i32, time_ns: i64, end: bool, unrecovered_error: bool) {
        if end && self.last_end.is_none_or(|(_, at)| time_ns >= at) {
            self.last_end = Some((status, time_ns));
        }
        if unrecovered_error {
            self.unrecovered_error_ns = Some(
                self.unrecovered_error_ns
                    .map_or(time_ns, |at| at.max(time_ns)),
            );
        }
    }

    /// Whether this counts as an action at all (an end, or an unrecovered error).
    pub fn is_action(&self) -> bool {
        self.last_end.is_some() || self.unrecovered_error_ns.is_some()
    }

    /// Why it failed, or `None` when it did not.
    pub fn failure(&self) -> Option<String> {
        let end_ns = self.last_end.map_or(-1, |(_, at)| at);
        if let Some(error_ns) = self.unrecovered_error_ns
            && error_ns > end_ns
        {
            return Some(match self.last_end {
                Some(_) => "an unrecovered error after its last end".to_owned(),
                None => "an unrecovered error".to_owned(),
            });
        }
        match self.last_end {
            Some((FAILED, _)) => Some("its last end has status FAILED".to_owned()),
            Some((CANCELLED, _)) => Some("its last end has status CANCELLED".to_owned()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPLETED: i32 = 3;
    const S: i64 = 1_000_000_000;

    #[test]
    fn a_retry_that_succeeds_and_a_recoverable_error_are_not_failures() {
        let mut action = ActionState::default();
        action.record(FAILED, 10, true, false);
        assert!(action.failure().is_some());
        action.record(COMPLETED, 20, true, false);
        assert_eq!(action.failure(), None);
        // A recoverable error is never recorded as unrecovered.
        action.record(0, 30, false, false);
        assert_eq!(action.failure(), None);
        // An unrecovered error after the last end fails it; one before does not.
        let mut late = action;
        late.record(0, 40, false, true);
        assert!(late.failure().unwrap().contains("after its last end"));
        let mut early = ActionState::default();
        early.record(0, 5, false, true);
        early.record(COMPLETED, 6, true, false);
        assert_eq!(early.failure(), None);
        // Ends arriving out of order: the latest by time counts.
        let mut shuffled = ActionState::default();
        shuffled.record(COMPLETED, 20, true, false);
        shuffled.record(FAILED, 10, true, false);
        assert_eq!(shuffled.failure(), None);
        assert!(!ActionState::default().is_action());
    }

    #[test]
    fn outcomes_follow_the_documented_rules() {
        let ended = |actions, failed| SessionFigures {
            ended: true,
            last_ns: 0,
            actions,
            failed,
        };
        let outcome = |f: SessionFigures, now| f.outcome(now, 60 * S).0;
        assert_eq!(outcome(ended(3, 0), 0), Outcome::Complete);
        assert_eq!(outcome(ended(0, 0), 0), Outcome::Complete);
        assert_eq!(outcome(ended(3, 3), 0), Outcome::Failed);
        assert_eq!(outcome(ended(3, 1), 0), Outcome::Partial);
        let open = SessionFigures {
            ended: false,
            ..ended(3, 1)
        };
        assert_eq!(outcome(open, 60 * S), Outcome::InProgress);
        assert_eq!(outcome(open, 61 * S), Outcome::Abandoned);
        // An ended session is never abandoned, however old.
        assert_eq!(outcome(ended(1, 0), 1_000 * S), Outcome::Complete);
        for name in ["complete", "partial", "failed", "in_progress", "abandoned"] {
            assert_eq!(name.parse::<Outcome>().unwrap().as_str(), name);
        }
        assert!("done".parse::<Outcome>().is_err());
    }
}
