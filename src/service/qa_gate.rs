//! QA gates: QA's decision on a story in review, append-only.
//!
//! A gate records the decision (PASS / CONCERNS / FAIL / WAIVED), why, who
//! reviewed, the top issues, the waiver, an optional quality score and
//! freshness window, the non-functional requirements' verdicts and which
//! acceptance criteria the tests cover. The latest gate is the story's
//! current one: FAIL sends the story back to dev at once; PASS or WAIVED
//! lets `completeStory` move it to DONE (`domain::story`). A WAIVED gate
//! takes a reason and who approved it, and the operator or admin role: an
//! agent cannot waive its own findings.

use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect, Set,
    TryIntoModel,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::story::{MAX_TEXT, StoryContent, text};
use super::task::lock_project;
use super::{NewEvent, Services, Tx, now, snapshot};
use crate::auth::{Principal, Role};
use crate::domain::story::{CurrentGate, gate_effect};
use crate::domain::{EventType, GateDecision, IssueSeverity, NfrStatus, ProjectStatus};
use crate::entity::{event, qa_gate, story, story_content};
use crate::error::{AppError, AppResult};
use crate::ids::{Kind, encode};

/// Most top issues of a gate, and most NFR verdicts.
pub const MAX_ISSUES: usize = 50;
/// Longest issue id (e.g. `SEC-001`) and NFR area name, in characters.
pub const MAX_KEY: usize = 32;

/// One finding of a gate, as stored in `qa_gates.top_issues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateIssue {
    /// E.g. `SEC-001`.
    pub id: String,
    /// How serious.
    pub severity: IssueSeverity,
    /// What is wrong.
    pub finding: String,
    /// What to do about it.
    pub suggested_action: String,
}

/// The acceptance of a gate's issues, as stored in `qa_gates.waiver`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateWaiver {
    /// Why the issues are accepted.
    pub reason: String,
    /// Who accepted them (a name or role, e.g. `Product Owner`).
    pub approved_by: String,
}

/// The verdict on one non-functional requirement, as stored in
/// `qa_gates.nfr`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NfrResult {
    /// E.g. `security`, `performance`, `reliability`, `maintainability`.
    pub area: String,
    /// The verdict.
    pub status: NfrStatus,
    /// Why.
    pub notes: Option<String>,
}

/// Input of [`Services::record_qa_gate`].
#[derive(Debug, Clone)]
pub struct NewQaGate {
    /// The story (in REVIEW).
    pub story_id: Uuid,
    /// The decision.
    pub decision: GateDecision,
    /// Why, in a sentence or two; 1–2,000 characters.
    pub status_reason: String,
    /// Who reviewed; 1–200 characters.
    pub reviewer: String,
    /// Up to 50 findings.
    pub top_issues: Vec<GateIssue>,
    /// Required with WAIVED, refused otherwise.
    pub waiver: Option<GateWaiver>,
    /// 0–100.
    pub quality_score: Option<i32>,
    /// When the gate stops counting.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Up to 50 verdicts, one per area.
    pub nfr: Vec<NfrResult>,
    /// Acceptance criteria (numbers) the tests cover.
    pub ac_covered: Vec<i32>,
    /// Acceptance criteria (numbers) without tests.
    pub ac_gaps: Vec<i32>,
}

/// Refuses coverage that names a criterion the story (with `criteria`
/// criteria) lacks, or one twice.
fn check_coverage(g: &NewQaGate, criteria: i32) -> AppResult<()> {
    let mut seen = std::collections::HashSet::new();
    for n in g.ac_covered.iter().chain(&g.ac_gaps) {
        if !(1..=criteria).contains(n) {
            return Err(AppError::bad_input(format!(
                "acceptance criterion {n} is not the story's; it has 1–{criteria}"
            )));
        }
        if !seen.insert(*n) {
            return Err(AppError::bad_input(format!(
                "acceptance criterion {n} is named twice in acCovered and acGaps"
            )));
        }
    }
    Ok(())
}

/// Checks a gate against its bounds and returns it trimmed (coverage is
/// checked against the story, [`check_coverage`]).
fn checked(g: NewQaGate) -> AppResult<NewQaGate> {
    if g.top_issues.len() > MAX_ISSUES || g.nfr.len() > MAX_ISSUES {
        return Err(AppError::bad_input(format!(
            "a gate has at most {MAX_ISSUES} issues and {MAX_ISSUES} NFR verdicts"
        )));
    }
    match (g.decision, &g.waiver) {
        (GateDecision::Waived, None) => {
            return Err(AppError::bad_input(
                "a WAIVED gate needs a waiver: its reason and who approved it",
            ));
        }
        (d, Some(_)) if d != GateDecision::Waived => {
            return Err(AppError::bad_input("only a WAIVED gate carries a waiver"));
        }
        _ => {}
    }
    if let Some(q) = g.quality_score
        && !(0..=100).contains(&q)
    {
        return Err(AppError::bad_input("qualityScore must be 0–100"));
    }
    if g.ac_covered.len() + g.ac_gaps.len() > super::story::MAX_CRITERIA {
        return Err(AppError::bad_input(
            "acCovered and acGaps name each acceptance criterion at most once",
        ));
    }
    let top_issues = g
        .top_issues
        .into_iter()
        .map(|i| {
            Ok(GateIssue {
                id: text("an issue id", &i.id, MAX_KEY)?,
                severity: i.severity,
                finding: text("a finding", &i.finding, MAX_TEXT)?,
                suggested_action: text("a suggested action", &i.suggested_action, MAX_TEXT)?,
            })
        })
        .collect::<AppResult<_>>()?;
    let nfr = g
        .nfr
        .into_iter()
        .map(|r| {
            Ok(NfrResult {
                area: text("an NFR area", &r.area, MAX_KEY)?,
                status: r.status,
                notes: match r.notes {
                    Some(n) => Some(text("NFR notes", &n, MAX_TEXT)?),
                    None => None,
                },
            })
        })
        .collect::<AppResult<_>>()?;
    let waiver = match g.waiver {
        Some(w) => Some(GateWaiver {
            reason: text("the waiver's reason", &w.reason, MAX_TEXT)?,
            approved_by: text("the waiver's approver", &w.approved_by, 200)?,
        }),
        None => None,
    };
    Ok(NewQaGate {
        status_reason: text("statusReason", &g.status_reason, MAX_TEXT)?,
        reviewer: text("reviewer", &g.reviewer, 200)?,
        top_issues,
        waiver,
        nfr,
        ..g
    })
}

/// The decision and freshness of gate `id`, as the rules need them.
pub(crate) async fn gate_facts(tx: &Tx<'_>, id: Uuid) -> AppResult<Option<CurrentGate>> {
    let facts: Option<(GateDecision, Option<chrono::DateTime<chrono::Utc>>)> =
        qa_gate::Entity::find_by_id(id)
            .select_only()
            .columns([qa_gate::Column::Decision, qa_gate::Column::ExpiresAt])
            .into_tuple()
            .one(&**tx)
            .await?;
    Ok(facts.map(|(decision, expires_at)| CurrentGate {
        decision,
        expires_at,
    }))
}

impl Services {
    /// Records a QA gate on a story in REVIEW; one `QA_GATE_RECORDED`, and
    /// for FAIL the story back to IN_PROGRESS with its `STORY_REOPENED`.
    /// WAIVED needs the operator or admin role (`FORBIDDEN` otherwise).
    #[tracing::instrument(skip(self, input), fields(tenant = %p.tenant_id))]
    pub async fn record_qa_gate(
        &self,
        p: &Principal,
        input: NewQaGate,
    ) -> AppResult<(qa_gate::Model, story::Model, event::Model)> {
        let g = checked(input)?;
        let mut tx = self.begin(p).await?;
        let (project_id, epic_id) = story::Entity::find_by_id(g.story_id)
            .filter(story::Column::TenantId.eq(p.tenant_id))
            .select_only()
            .columns([story::Column::ProjectId, story::Column::EpicId])
            .into_tuple::<(Uuid, Uuid)>()
            .one(&*tx)
            .await?
            .ok_or_else(|| AppError::not_found("Story", encode(Kind::Story, g.story_id)))?;
        let project = lock_project(&tx, p, project_id, false).await?;
        if project.status != ProjectStatus::Active {
            return Err(AppError::bad_input(
                "QA gates are recorded only in an ACTIVE project",
            ));
        }
        super::story::lock_epic(&tx, p, epic_id).await?;
        let current = story::Entity::find_by_id(g.story_id)
            .filter(story::Column::TenantId.eq(p.tenant_id))
            .lock_exclusive()
            .one(&*tx)
            .await?
            .ok_or_else(|| AppError::not_found("Story", encode(Kind::Story, g.story_id)))?;
        let round = match current.current_gate_id {
            Some(id) => gate_facts(&tx, id).await?.map(|f| f.decision),
            None => None,
        };
        let by_person = p.may(&[Role::Operator]);
        let effect = gate_effect(current.status, round, g.decision, by_person)?;
        let content = story_content::Entity::find_by_id(current.id)
            .one(&*tx)
            .await?
            .map(|c| StoryContent::parse(&c.content))
            .transpose()?
            .unwrap_or_default();
        check_coverage(&g, content.acceptance_criteria.len() as i32)?;
        let t = now();
        let gate = qa_gate::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(p.tenant_id),
            project_id: Set(project.id),
            story_id: Set(current.id),
            decision: Set(g.decision),
            status_reason: Set(g.status_reason),
            reviewer: Set(g.reviewer),
            top_issues: Set(snapshot(&g.top_issues)),
            waiver: Set(g.waiver.as_ref().map(snapshot)),
            quality_score: Set(g.quality_score),
            expires_at: Set(g.expires_at),
            nfr: Set(snapshot(&g.nfr)),
            ac_covered: Set(json!(g.ac_covered)),
            ac_gaps: Set(json!(g.ac_gaps)),
            created_by: Set(p.user_id.clone()),
            created_at: Set(t),
        }
        .insert(&*tx)
        .await?;
        let ev = tx.append(NewEvent::snapshot(EventType::QaGateRecorded, &gate));
        let story = match effect {
            // The gate is now the round's: the story says so (its version
            // moves, so clients see it may now be completed, or not).
            None => {
                let mut am = current.clone().into_active_model();
                am.current_gate_id = Set(Some(gate.id));
                am.version = Set(current.version + 1);
                am.updated_at = Set(t);
                let updated = am.clone().try_into_model()?;
                let res = story::Entity::update_many()
                    .set(am)
                    .filter(story::Column::Id.eq(current.id))
                    .filter(story::Column::Version.eq(current.version))
                    .exec(&*tx)
                    .await?;
                super::guarded(res.rows_affected, "the story")?;
                updated
            }
            Some(change) => {
                let decision = sea_orm::ActiveEnum::to_value(&gate.decision);
                let note = format!("QA gate {decision}: {}", gate.status_reason);
                super::story::move_story(&mut tx, p, current, change, Some(note), t)
                    .await?
                    .0
            }
        };
        let done = tx.commit().await?;
        Ok((gate, story, done.event(ev)))
    }
}
