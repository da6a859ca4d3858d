//! HITL requests as decisions: whether a task may ask, whether a request
//! can take an answer, and what becomes of the task when one of its
//! questions closes (answered or expired). Pure, tested as tables below.

use chrono::{DateTime, Utc};

use super::{EventType, HitlDecision, HitlExpiryPolicy, HitlStatus, TaskStatus};
use crate::error::AppError;

/// How a question closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// A human answered it.
    Answered(HitlDecision),
    /// Nobody answered before `expiresAt`; the request's policy applies.
    Expired(HitlExpiryPolicy),
}

/// Whether a task in `status` may ask a human, and the move it makes: a
/// WORKING task starts waiting; a task already waiting asks one more
/// question and stays.
pub fn ask(status: TaskStatus) -> Result<Option<(TaskStatus, EventType)>, AppError> {
    match status {
        TaskStatus::Working => Ok(Some((
            TaskStatus::WaitingForHitl,
            EventType::TaskWaitingForHitl,
        ))),
        TaskStatus::WaitingForHitl => Ok(None),
        other => Err(AppError::transition(
            "Task",
            other,
            TaskStatus::WaitingForHitl,
            other.allowed_transitions(),
        )
        .because("only a WORKING task can ask a human")),
    }
}

/// The status an answer gives a request, or `INVALID_TRANSITION` when it
/// was already closed or its `expiresAt` has passed (`now`).
pub fn answer(
    request: HitlStatus,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    decision: HitlDecision,
) -> Result<HitlStatus, AppError> {
    let to = decision.resulting_status();
    let refused =
        || AppError::transition("HitlRequest", request, to, request.allowed_transitions());
    if !request.can_transition_to(to) {
        return Err(refused());
    }
    match expires_at {
        Some(e) if e <= now => Err(refused().because(format!("it expired at {}", e.to_rfc3339()))),
        _ => Ok(to),
    }
}

/// What a task waiting for a human does when one of its questions closes
/// while `others_pending` stay open: a rejection fails it at once; an
/// approval or amendment resumes it once nothing else is pending; an
/// expiry, once nothing else is pending, fails or resumes it as the
/// request's policy says. A task that is not waiting does not move.
pub fn task_after(
    task: TaskStatus,
    others_pending: u64,
    closing: Closing,
) -> Option<(TaskStatus, EventType)> {
    if task != TaskStatus::WaitingForHitl {
        return None;
    }
    let (to, at_once) = match closing {
        Closing::Answered(d) => (d.resulting_task_status(), d == HitlDecision::Reject),
        Closing::Expired(HitlExpiryPolicy::FailTask) => (TaskStatus::Failed, false),
        Closing::Expired(HitlExpiryPolicy::ResumeTask) => (TaskStatus::Working, false),
    };
    let event = match to {
        TaskStatus::Failed => EventType::TaskFailed,
        _ => EventType::TaskResumed,
    };
    (at_once || others_pending == 0).then_some((to, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Closing::*;
    use HitlDecision::*;
    use HitlExpiryPolicy::*;
    use TaskStatus::*;

    #[test]
    fn only_a_working_or_waiting_task_asks() {
        assert_eq!(
            ask(Working).ok(),
            Some(Some((WaitingForHitl, EventType::TaskWaitingForHitl)))
        );
        assert_eq!(ask(WaitingForHitl).ok(), Some(None));
        for s in [Pending, Completed, Failed, Cancelled] {
            assert!(ask(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn a_request_takes_one_answer_before_it_expires() {
        let now = Utc::now();
        let later = Some(now + chrono::Duration::seconds(1));
        assert_eq!(
            answer(HitlStatus::Pending, later, now, Amend).ok(),
            Some(HitlStatus::Amended)
        );
        assert_eq!(
            answer(HitlStatus::Pending, None, now, Reject).ok(),
            Some(HitlStatus::Rejected)
        );
        let e = answer(HitlStatus::Pending, Some(now), now, Approve).expect_err("expired");
        assert!(e.to_string().contains("it expired at"), "{e}");
        for closed in [
            HitlStatus::Approved,
            HitlStatus::Rejected,
            HitlStatus::Amended,
            HitlStatus::Expired,
        ] {
            assert!(answer(closed, None, now, Approve).is_err(), "{closed:?}");
        }
    }

    /// (closing, other questions still open) → what the waiting task does.
    #[test]
    fn the_task_moves_when_its_last_question_closes_or_at_a_rejection() {
        let table = [
            (Answered(Approve), 0, Some(Working)),
            (Answered(Approve), 1, None),
            (Answered(Amend), 0, Some(Working)),
            (Answered(Amend), 2, None),
            (Answered(Reject), 0, Some(Failed)),
            (Answered(Reject), 3, Some(Failed)),
            (Expired(FailTask), 0, Some(Failed)),
            (Expired(FailTask), 1, None),
            (Expired(ResumeTask), 0, Some(Working)),
            (Expired(ResumeTask), 1, None),
        ];
        for (closing, others, want) in table {
            let got = task_after(WaitingForHitl, others, closing);
            assert_eq!(got.map(|(s, _)| s), want, "{closing:?} with {others} open");
            if let Some((s, e)) = got {
                let expected = if s == Failed {
                    EventType::TaskFailed
                } else {
                    EventType::TaskResumed
                };
                assert_eq!(e, expected);
            }
            assert_eq!(
                task_after(Working, others, closing),
                None,
                "only a waiting task moves"
            );
        }
    }
}
