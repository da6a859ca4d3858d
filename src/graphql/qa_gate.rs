//! QA gates (BMad Method): the `QaGate` type and `recordQaGate`.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::limits::Counted;
use super::mutation::keyed;
use super::types::*;
use super::{AGENT_OR_OPERATOR, loaders, principal};
use crate::domain::{GateDecision, IssueSeverity, NfrStatus};
use crate::entity::qa_gate;
use crate::ids::{self, Kind};
use crate::service::qa_gate as svc;

/// QA's decision on a story (BMad Method), append-only: the last gate of a
/// review round is the story's `currentGate`. PASS or WAIVED lets the story
/// be completed; FAIL sent it back to dev; CONCERNS waits for a person to
/// waive the issues (a WAIVED gate), pass them, or send the story back.
#[derive(async_graphql::Description)]
pub struct QaGate(pub qa_gate::Model);

#[Object(use_type_description)]
impl QaGate {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::QaGate, self.0.id)
    }
    /// The decision.
    async fn decision(&self) -> GateDecision {
        self.0.decision
    }
    /// Why, in a sentence or two.
    async fn status_reason(&self) -> Counted<&str> {
        Counted(&self.0.status_reason)
    }
    /// Who reviewed.
    async fn reviewer(&self) -> Counted<&str> {
        Counted(&self.0.reviewer)
    }
    /// The findings, most important first as QA listed them.
    async fn top_issues(&self) -> Counted<Vec<GateIssue>> {
        let issues: Vec<svc::GateIssue> =
            serde_json::from_value(self.0.top_issues.clone()).unwrap_or_default();
        Counted(
            issues
                .into_iter()
                .map(|i| GateIssue {
                    id: Counted(i.id),
                    severity: i.severity,
                    finding: Counted(i.finding),
                    suggested_action: Counted(i.suggested_action),
                })
                .collect(),
        )
    }
    /// The acceptance of the issues (WAIVED gates only).
    async fn waiver(&self) -> Counted<Option<GateWaiver>> {
        let w: Option<svc::GateWaiver> = self
            .0
            .waiver
            .clone()
            .and_then(|w| serde_json::from_value(w).ok());
        Counted(w.map(|w| GateWaiver {
            reason: Counted(w.reason),
            approved_by: Counted(w.approved_by),
        }))
    }
    /// 0–100, when QA scored it.
    async fn quality_score(&self) -> Option<i32> {
        self.0.quality_score
    }
    /// When the gate stops counting (a story cannot be completed on an
    /// expired gate).
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// The verdicts on non-functional requirements.
    async fn nfr(&self) -> Counted<Vec<NfrResult>> {
        let nfr: Vec<svc::NfrResult> =
            serde_json::from_value(self.0.nfr.clone()).unwrap_or_default();
        Counted(
            nfr.into_iter()
                .map(|r| NfrResult {
                    area: Counted(r.area),
                    status: r.status,
                    notes: Counted(r.notes),
                })
                .collect(),
        )
    }
    /// The acceptance criteria (numbers) the tests cover.
    async fn ac_covered(&self) -> Vec<i32> {
        serde_json::from_value(self.0.ac_covered.clone()).unwrap_or_default()
    }
    /// The acceptance criteria (numbers) without tests.
    async fn ac_gaps(&self) -> Vec<i32> {
        serde_json::from_value(self.0.ac_gaps.clone()).unwrap_or_default()
    }
    /// The story.
    async fn story(&self, ctx: &Context<'_>) -> Result<Option<Story>> {
        Ok(one(&loaders(ctx).stories, self.0.story_id)
            .await?
            .map(Story))
    }
    /// Who recorded it (a user id).
    async fn created_by(&self) -> Counted<&str> {
        Counted(&self.0.created_by)
    }
    /// When it was recorded.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// One finding of a QA gate.
#[derive(SimpleObject)]
pub struct GateIssue {
    /// E.g. `SEC-001`.
    pub id: Counted<String>,
    /// How serious.
    pub severity: IssueSeverity,
    /// What is wrong.
    pub finding: Counted<String>,
    /// What to do about it.
    pub suggested_action: Counted<String>,
}

/// The acceptance of a gate's issues by a person.
#[derive(SimpleObject)]
pub struct GateWaiver {
    /// Why the issues are accepted.
    pub reason: Counted<String>,
    /// Who accepted them.
    pub approved_by: Counted<String>,
}

/// The verdict on one non-functional requirement.
#[derive(SimpleObject)]
pub struct NfrResult {
    /// E.g. `security`.
    pub area: Counted<String>,
    /// The verdict.
    pub status: NfrStatus,
    /// Why.
    pub notes: Counted<Option<String>>,
}

/// One finding, as QA reports it.
#[derive(InputObject)]
pub struct GateIssueInput {
    /// E.g. `SEC-001`; 1–32 characters.
    pub id: String,
    /// How serious.
    pub severity: IssueSeverity,
    /// What is wrong; 1–2,000 characters.
    pub finding: String,
    /// What to do about it; 1–2,000 characters.
    pub suggested_action: String,
}

/// The acceptance of a gate's issues.
#[derive(InputObject)]
pub struct GateWaiverInput {
    /// Why; 1–2,000 characters.
    pub reason: String,
    /// Who accepted them; 1–200 characters.
    pub approved_by: String,
}

/// The verdict on one non-functional requirement.
#[derive(InputObject)]
pub struct NfrResultInput {
    /// E.g. `security`; 1–32 characters.
    pub area: String,
    /// The verdict.
    pub status: NfrStatus,
    /// Why; up to 2,000 characters.
    pub notes: Option<String>,
}

keyed_input!(
    /// Input of `recordQaGate`. Refused with `BAD_USER_INPUT` past the
    /// bounds each field gives.
    RecordQaGateInput {
        /// The story (in REVIEW).
        story_id: ID,
        /// The decision. WAIVED needs `waiver` and the operator or admin
        /// role, and so does PASS after CONCERNS in the same review round
        /// (`FORBIDDEN` otherwise).
        decision: GateDecision,
        /// Why, in a sentence or two; 1–2,000 characters.
        status_reason: String,
        /// Who reviewed; 1–200 characters.
        reviewer: String,
        /// Up to 50 findings.
        top_issues: Option<Vec<GateIssueInput>>,
        /// With WAIVED only.
        waiver: Option<GateWaiverInput>,
        /// 0–100.
        quality_score: Option<i32>,
        /// When the gate stops counting.
        expires_at: Option<DateTime<Utc>>,
        /// Up to 50 verdicts.
        nfr: Option<Vec<NfrResultInput>>,
        /// Acceptance criteria (numbers) the tests cover.
        ac_covered: Option<Vec<i32>>,
        /// Acceptance criteria (numbers) without tests.
        ac_gaps: Option<Vec<i32>>,
    }
);

payload!(
    /// Result of `recordQaGate`.
    RecordQaGatePayload {
        /// The new gate, now the story's current one.
        gate: QaGate,
        /// The story (back IN_PROGRESS after a FAIL gate).
        story: Story,
    }
);

fields! {
    /// QA gate mutations.
    object QaGateMutation;

    /// Records QA's gate on a story in REVIEW, the gate of its current
    /// review round: FAIL sends the story back to dev (IN_PROGRESS); PASS
    /// or WAIVED lets `completeStory` finish it; CONCERNS waits for a
    /// person. Errors: `BAD_USER_INPUT` (bounds, a waiver missing or out
    /// of place, a criterion the story lacks or named twice, a project not
    /// ACTIVE), `INVALID_TRANSITION` (not in REVIEW), `FORBIDDEN` (WAIVED,
    /// or PASS after CONCERNS, without the operator or admin role),
    /// `NOT_FOUND`.
    ///
    /// Roles: agent, operator, admin.
    mutation AGENT_OR_OPERATOR record_qa_gate(ctx, input: RecordQaGateInput) -> RecordQaGatePayload {
        let new = svc::NewQaGate {
            story_id: ids::decode(Kind::Story, &input.story_id)?,
            decision: input.decision,
            status_reason: input.status_reason,
            reviewer: input.reviewer,
            top_issues: input.top_issues.unwrap_or_default().into_iter().map(|i| svc::GateIssue {
                id: i.id,
                severity: i.severity,
                finding: i.finding,
                suggested_action: i.suggested_action,
            }).collect(),
            waiver: input.waiver.map(|w| svc::GateWaiver {
                reason: w.reason,
                approved_by: w.approved_by,
            }),
            quality_score: input.quality_score,
            expires_at: input.expires_at,
            nfr: input.nfr.unwrap_or_default().into_iter().map(|r| svc::NfrResult {
                area: r.area,
                status: r.status,
                notes: r.notes,
            }).collect(),
            ac_covered: input.ac_covered.unwrap_or_default(),
            ac_gaps: input.ac_gaps.unwrap_or_default(),
        };
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.record_qa_gate(principal(ctx), new).await
        })
        .await
    }
}
