//! Epics and stories as decisions: which status and event each story verb
//! leads to, and where an epic stands given its stories. Pure, tested as
//! tables and properties below.

use chrono::{DateTime, Utc};

use super::{EpicStatus, EventType, GateDecision, StoryStatus};
use crate::error::AppError;

/// The lifecycle verbs of a story (drafting creates it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoryVerb {
    /// DRAFT → APPROVED: a person accepted the draft.
    Approve,
    /// APPROVED → IN_PROGRESS: dev picked it up.
    Start,
    /// IN_PROGRESS → REVIEW: dev handed it to QA.
    SubmitForReview,
    /// REVIEW → IN_PROGRESS: QA (or a person) sent it back to dev.
    Reopen,
    /// REVIEW → DONE, only with a current PASS or WAIVED QA gate.
    Complete,
}

impl StoryVerb {
    /// Every verb, for tables and properties.
    pub const ALL: [StoryVerb; 5] = [
        StoryVerb::Approve,
        StoryVerb::Start,
        StoryVerb::SubmitForReview,
        StoryVerb::Reopen,
        StoryVerb::Complete,
    ];

    /// The status the verb moves a story to and the event it appends.
    pub fn target(self) -> (StoryStatus, EventType) {
        match self {
            StoryVerb::Approve => (StoryStatus::Approved, EventType::StoryApproved),
            StoryVerb::Start => (StoryStatus::InProgress, EventType::StoryStarted),
            StoryVerb::SubmitForReview => (StoryStatus::Review, EventType::StorySubmittedForReview),
            StoryVerb::Reopen => (StoryStatus::InProgress, EventType::StoryReopened),
            StoryVerb::Complete => (StoryStatus::Done, EventType::StoryCompleted),
        }
    }

    /// The one status the verb applies to. `Start` and `Reopen` both lead
    /// to IN_PROGRESS, so the lifecycle table alone cannot tell them apart.
    pub fn source(self) -> StoryStatus {
        match self {
            StoryVerb::Approve => StoryStatus::Draft,
            StoryVerb::Start => StoryStatus::Approved,
            StoryVerb::SubmitForReview => StoryStatus::InProgress,
            StoryVerb::Reopen | StoryVerb::Complete => StoryStatus::Review,
        }
    }
}

/// The QA gate of the story's current review round, as the rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentGate {
    /// Its decision.
    pub decision: GateDecision,
    /// When it stops counting, if it has a freshness window.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Decides a verb on a story in status `from` whose current gate is `gate`
/// (at `now`): the next status and event, or `INVALID_TRANSITION` naming
/// the statuses the story may move to — and, for completing, why the gate
/// does not allow it (the method's rule: a story is DONE only through a
/// PASS or WAIVED gate that has not expired).
pub fn decide(
    from: StoryStatus,
    verb: StoryVerb,
    gate: Option<CurrentGate>,
    now: DateTime<Utc>,
) -> Result<(StoryStatus, EventType), AppError> {
    let (to, event) = verb.target();
    let refused = || AppError::transition("Story", from, to, from.allowed_transitions());
    if from != verb.source() || !from.can_transition_to(to) {
        return Err(refused());
    }
    if verb == StoryVerb::Complete {
        match gate {
            None => return Err(refused().because("it has no QA gate; QA records one first")),
            Some(g) if !matches!(g.decision, GateDecision::Pass | GateDecision::Waived) => {
                let d = sea_orm::ActiveEnum::to_value(&g.decision);
                return Err(refused().because(format!(
                    "its QA gate is {d}; it needs PASS, or WAIVED by a person"
                )));
            }
            Some(CurrentGate {
                expires_at: Some(at),
                ..
            }) if at <= now => {
                return Err(refused().because(format!(
                    "its QA gate expired at {}; QA reviews it again",
                    at.to_rfc3339()
                )));
            }
            Some(_) => {}
        }
    }
    Ok((to, event))
}

/// What recording a gate with `decision` does to a story in status `from`
/// whose review round already has the gate `current` (if any), recorded by
/// a person (`by_person`: the operator or admin role) or not: a gate is
/// recorded only on a story in REVIEW; FAIL sends it back to dev (the move
/// and its event), the others leave it in REVIEW. A person decides what
/// CONCERNS leave open, and only a person waives: WAIVED, or a PASS after
/// CONCERNS in the same round, by anyone else is `FORBIDDEN`.
pub fn gate_effect(
    from: StoryStatus,
    current: Option<GateDecision>,
    decision: GateDecision,
    by_person: bool,
) -> Result<Option<(StoryStatus, EventType)>, AppError> {
    let effect = (decision == GateDecision::Fail).then(|| StoryVerb::Reopen.target());
    if from != StoryStatus::Review {
        let to = effect.map_or(StoryStatus::Review, |(to, _)| to);
        return Err(
            AppError::transition("Story", from, to, from.allowed_transitions())
                .because("a QA gate is recorded only on a story in REVIEW"),
        );
    }
    if !by_person {
        if decision == GateDecision::Waived {
            return Err(AppError::Forbidden(
                "only a person (the operator or admin role) may waive a story's issues".into(),
            ));
        }
        if decision == GateDecision::Pass && current == Some(GateDecision::Concerns) {
            return Err(AppError::Forbidden(
                "after CONCERNS a person (the operator or admin role) decides: a WAIVED gate \
                 with a reason, or send the story back"
                    .into(),
            ));
        }
    }
    Ok(effect)
}

/// Where an epic moves given all its stories' statuses, if anywhere: to
/// IN_PROGRESS once a story has started, to DONE once every story is DONE.
/// An epic never moves back: a DONE epic takes no new story, and its
/// stories are all DONE, which is terminal.
pub fn epic_after(epic: EpicStatus, stories: &[StoryStatus]) -> Option<EpicStatus> {
    let started = stories
        .iter()
        .any(|s| !matches!(s, StoryStatus::Draft | StoryStatus::Approved));
    let all_done = !stories.is_empty() && stories.iter().all(|s| *s == StoryStatus::Done);
    let next = match epic {
        EpicStatus::Planned if started => EpicStatus::InProgress,
        EpicStatus::InProgress if all_done => EpicStatus::Done,
        _ => return None,
    };
    epic.can_transition_to(next).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use StoryStatus::*;
    use proptest::prelude::*;

    fn gate(decision: GateDecision) -> Option<CurrentGate> {
        Some(CurrentGate {
            decision,
            expires_at: None,
        })
    }

    /// Which verbs each status accepts (with a PASS gate), in the order
    /// approve, start, submit for review, reopen, complete.
    #[test]
    fn each_status_accepts_exactly_its_verbs() {
        let table = [
            (Draft, "y...."),
            (Approved, ".y..."),
            (InProgress, "..y.."),
            (Review, "...yy"),
            (Done, "....."),
        ];
        let pass = gate(GateDecision::Pass);
        for (status, row) in table {
            for (verb, want) in StoryVerb::ALL.into_iter().zip(row.chars()) {
                let got = decide(status, verb, pass, Utc::now());
                assert_eq!(got.is_ok(), want == 'y', "{status:?} {verb:?}");
                if let Ok(t) = got {
                    assert_eq!(t, verb.target());
                } else if let Err(e) = got {
                    assert_eq!(e.code(), crate::error::code::INVALID_TRANSITION);
                }
            }
        }
    }

    /// Completing takes a current PASS or WAIVED gate that has not expired.
    #[test]
    fn a_story_is_done_only_through_a_pass_or_waived_gate() {
        use GateDecision::*;
        let now = Utc::now();
        let table = [
            (None, false, "no QA gate"),
            (gate(Concerns), false, "CONCERNS"),
            (gate(Fail), false, "FAIL"),
            (gate(Pass), true, ""),
            (gate(Waived), true, ""),
        ];
        for (g, ok, why) in table {
            let got = decide(Review, StoryVerb::Complete, g, now);
            assert_eq!(got.is_ok(), ok, "{g:?}");
            if let Err(e) = got {
                assert!(e.to_string().contains(why), "{e}");
            }
        }
        let stale = Some(CurrentGate {
            decision: Pass,
            expires_at: Some(now),
        });
        let e = decide(Review, StoryVerb::Complete, stale, now).expect_err("expired");
        assert!(e.to_string().contains("expired"), "{e}");
        let fresh = Some(CurrentGate {
            decision: Pass,
            expires_at: Some(now + chrono::Duration::hours(1)),
        });
        assert!(decide(Review, StoryVerb::Complete, fresh, now).is_ok());
    }

    /// A gate is recorded on a story in review; FAIL sends it back.
    #[test]
    fn a_gate_applies_to_a_story_in_review_and_fail_sends_it_back() {
        for decision in [
            GateDecision::Pass,
            GateDecision::Concerns,
            GateDecision::Fail,
            GateDecision::Waived,
        ] {
            for from in [Draft, Approved, InProgress, Done] {
                assert!(
                    gate_effect(from, None, decision, true).is_err(),
                    "{from:?} {decision:?}"
                );
            }
            let want =
                (decision == GateDecision::Fail).then_some((InProgress, EventType::StoryReopened));
            assert_eq!(
                gate_effect(Review, None, decision, true).expect("in review"),
                want
            );
        }
    }

    /// Only a person waives, and a person decides what CONCERNS leave open.
    #[test]
    fn only_a_person_waives_or_passes_over_concerns() {
        use GateDecision::*;
        let forbidden = |r: Result<_, AppError>| matches!(r, Err(e) if e.code() == crate::error::code::FORBIDDEN);
        assert!(forbidden(gate_effect(Review, None, Waived, false)));
        assert!(forbidden(gate_effect(Review, Some(Concerns), Pass, false)));
        assert!(gate_effect(Review, Some(Concerns), Pass, true).is_ok());
        assert!(gate_effect(Review, Some(Concerns), Fail, false).is_ok());
        assert!(gate_effect(Review, Some(Fail), Pass, false).is_ok());
        assert!(gate_effect(Review, None, Waived, true).is_ok());
    }

    #[test]
    fn an_epic_starts_with_its_first_story_and_ends_with_its_last() {
        use EpicStatus as E;
        let table: [(E, &[StoryStatus], Option<E>); 8] = [
            (E::Planned, &[], None),
            (E::Planned, &[Draft, Approved], None),
            (E::Planned, &[Draft, InProgress], Some(E::InProgress)),
            (E::Planned, &[Review], Some(E::InProgress)),
            (E::InProgress, &[Done, Review], None),
            (E::InProgress, &[Done, Done], Some(E::Done)),
            (E::InProgress, &[], None),
            (E::Done, &[Done, InProgress], None),
        ];
        for (epic, stories, want) in table {
            assert_eq!(epic_after(epic, stories), want, "{epic:?} {stories:?}");
        }
    }

    proptest! {
        /// Any sequence of verbs and gates, legal or not, only ever moves a
        /// story along the lifecycle table, one step at a time, and it
        /// reaches DONE only while the gate of its current review round is
        /// PASS or WAIVED (a gate from an earlier round does not count).
        #[test]
        fn random_verbs_and_gates_follow_the_method(
            steps in prop::collection::vec((0usize..9, 0usize..4), 0..96),
        ) {
            let decisions = [
                GateDecision::Pass,
                GateDecision::Concerns,
                GateDecision::Fail,
                GateDecision::Waived,
            ];
            let now = Utc::now();
            let mut status = Draft;
            let mut latest: Option<CurrentGate> = None;
            for (action, d) in steps {
                let before = status;
                if action < StoryVerb::ALL.len() {
                    let verb = StoryVerb::ALL[action];
                    match decide(status, verb, latest, now) {
                        Ok((to, _)) => {
                            prop_assert_eq!(status, verb.source());
                            status = to;
                            // Leaving REVIEW for dev, or entering a new
                            // round, ends the round's gate.
                            if to != Done {
                                latest = None;
                            }
                        }
                        Err(_) => prop_assert!(
                            status != verb.source()
                                || (verb == StoryVerb::Complete
                                    && !matches!(
                                        latest.map(|g| g.decision),
                                        Some(GateDecision::Pass | GateDecision::Waived)
                                    ))
                        ),
                    }
                } else {
                    let decision = decisions[d];
                    let current = latest.map(|g| g.decision);
                    if let Ok(effect) = gate_effect(status, current, decision, true) {
                        latest = gate(decision);
                        if let Some((to, _)) = effect {
                            status = to;
                            latest = None;
                        }
                    } else {
                        prop_assert_ne!(status, Review);
                    }
                }
                prop_assert!(before == status || before.can_transition_to(status));
                if status == Done && before != Done {
                    prop_assert!(matches!(
                        latest.map(|g| g.decision),
                        Some(GateDecision::Pass | GateDecision::Waived)
                    ));
                }
            }
        }
    }
}
