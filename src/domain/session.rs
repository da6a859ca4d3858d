//! The session lifecycle as a decision: which status and event each verb
//! leads to. Pure, tested as a table below.

use chrono::{DateTime, Utc};

use super::{EventType, SessionStatus};
use crate::error::AppError;

/// The lifecycle verbs of a session (expiry is the sweeper's, not a verb).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionVerb {
    /// ACTIVE → SUSPENDED.
    Suspend,
    /// SUSPENDED → ACTIVE, unless its inactivity deadline has passed.
    Resume,
    /// ACTIVE / SUSPENDED → TERMINATED.
    Terminate,
}

impl SessionVerb {
    /// The status the verb moves a session to and the event it appends.
    pub fn target(self) -> (SessionStatus, EventType) {
        match self {
            SessionVerb::Suspend => (SessionStatus::Suspended, EventType::SessionSuspended),
            SessionVerb::Resume => (SessionStatus::Active, EventType::SessionResumed),
            SessionVerb::Terminate => (SessionStatus::Terminated, EventType::SessionTerminated),
        }
    }
}

/// Refuses work in a session past its inactivity deadline (`expires_at`,
/// compared with `now`): the sweeper will expire it.
pub fn require_not_overdue(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), AppError> {
    if expires_at <= now {
        return Err(AppError::bad_input(format!(
            "the session expired at {} after inactivity; start a new one",
            expires_at.to_rfc3339()
        )));
    }
    Ok(())
}

/// Decides a verb on a session: the next status and event, or the refusal
/// (`BAD_USER_INPUT` for resuming an overdue session, else
/// `INVALID_TRANSITION`).
pub fn decide(
    from: SessionStatus,
    verb: SessionVerb,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(SessionStatus, EventType), AppError> {
    let (to, event) = verb.target();
    if verb == SessionVerb::Resume {
        require_not_overdue(expires_at, now)?;
    }
    if !from.can_transition_to(to) {
        return Err(AppError::transition(
            "Session",
            from,
            to,
            from.allowed_transitions(),
        ));
    }
    Ok((to, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionStatus::*;
    use SessionVerb::*;

    /// Which verbs each status accepts, in the order suspend, resume, terminate.
    #[test]
    fn each_status_accepts_exactly_its_verbs() {
        let now = Utc::now();
        let later = now + chrono::Duration::minutes(5);
        let table = [
            (Active, "y.y"),
            (Suspended, ".yy"),
            (Terminated, "..."),
            (Expired, "..."),
        ];
        for (status, row) in table {
            for (verb, want) in [Suspend, Resume, Terminate].into_iter().zip(row.chars()) {
                let got = decide(status, verb, later, now);
                assert_eq!(got.is_ok(), want == 'y', "{status:?} {verb:?}");
                if let Ok(t) = got {
                    assert_eq!(t, verb.target());
                }
            }
        }
        let overdue = decide(Suspended, Resume, now, now).expect_err("overdue");
        assert!(
            overdue.to_string().contains("after inactivity"),
            "{overdue}"
        );
    }
}
