//! Epics and stories: the development half of the BMad Method.
//!
//! An epic is a numbered slice of a project's PRD; a story is one user story
//! of an epic (`1.2` is story 2 of epic 1) and moves through the
//! development cycle (`domain::story`). Every write locks in one order —
//! project, epic, story — so an epic's status, which follows its stories,
//! is decided with all of them held still.
//!
//! What a caller sends is bounded before the transaction begins: the
//! lengths and counts below, control characters and a content over
//! `CEREBRAL_MAX_CONTENT_BYTES` are refused with `BAD_USER_INPUT`, and so
//! is an acceptance-criterion reference that names no criterion. A story's
//! content (criteria, checklist, notes, change log) is stored apart from
//! its row, so lists and events stay small.

use super::query::{Page, PageAt, page};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
    QueryTrait, Set, TryIntoModel,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::task::lock_project;
use super::{NewEvent, Services, Tx, guarded, now, snapshot};
use crate::auth::Principal;
use crate::domain::story::{StoryVerb, decide, epic_after};
use crate::domain::{EpicStatus, EventType, ProjectStatus, StoryStatus};
use crate::entity::{epic, event, story, story_content};
use crate::error::{AppError, AppResult};
use crate::ids::{Kind, encode};

/// Longest title of an epic or a story, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest text of one acceptance criterion, one task or subtask, an
/// epic's goal, and a QA gate's reason, finding, action or note, in
/// characters.
pub const MAX_TEXT: usize = 2_000;
/// Most acceptance criteria of a story.
pub const MAX_CRITERIA: usize = 50;
/// Most tasks of a story, and most subtasks of one task.
pub const MAX_TASKS: usize = 100;
/// Longest dev notes of a story, in bytes.
pub const MAX_DEV_NOTES_BYTES: usize = 64 * 1024;
/// Longest part of a story's statement (role, action, benefit) and note on
/// a verb, in characters: these travel in lists and events.
pub const MAX_STATEMENT: usize = 500;
/// Highest epic number, and highest story number in an epic.
pub const MAX_NUMBER: i32 = 1_000;
/// Lines a story's change log keeps (the oldest go first): every verb adds
/// one and rewrites the story's content, so a story sent round the cycle
/// forever must not grow without end. The event log keeps every change.
pub const MAX_CHANGE_LOG: usize = 100;

/// Input of [`Services::create_epic`].
#[derive(Debug, Clone)]
pub struct NewEpic {
    /// The project (ACTIVE).
    pub project_id: Uuid,
    /// 1–1,000 and unused in the project; `None` takes the next.
    pub number: Option<i32>,
    /// 1–200 characters.
    pub title: String,
    /// What the epic delivers; up to 2,000 characters.
    pub goal: Option<String>,
}

/// One task of a story's checklist, as stored in `stories.tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoryTask {
    /// What to do.
    pub description: String,
    /// Ticked when done.
    pub done: bool,
    /// The numbers (1-based) of the acceptance criteria it serves.
    pub acceptance_criteria: Vec<i32>,
    /// Its steps.
    pub subtasks: Vec<StorySubtask>,
}

/// One step of a story task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorySubtask {
    /// What to do.
    pub description: String,
    /// Ticked when done.
    pub done: bool,
}

/// One line of a story's change log, as stored in `stories.change_log`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeLogEntry {
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// The story's version the change made.
    pub version: i32,
    /// What changed.
    pub description: String,
    /// Who changed it (the caller's user id).
    pub author: String,
}

/// What a story holds beyond its row, stored apart (`story_contents`) and
/// read only when a client selects it; at most `CEREBRAL_MAX_CONTENT_BYTES`
/// as JSON text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoryContent {
    /// Numbered by position from 1.
    pub acceptance_criteria: Vec<String>,
    /// Dev's checklist.
    pub tasks: Vec<StoryTask>,
    /// Notes for dev.
    pub dev_notes: Option<String>,
    /// The last [`MAX_CHANGE_LOG`] changes, oldest first.
    pub change_log: Vec<ChangeLogEntry>,
}

impl StoryContent {
    /// Parses a stored content; a row that does not parse is a fault, not
    /// an empty story (writing it back would lose it).
    pub fn parse(json: &serde_json::Value) -> AppResult<Self> {
        serde_json::from_value(json.clone()).map_err(|e| {
            AppError::Internal(anyhow::anyhow!(
                "a stored story content does not parse: {e}"
            ))
        })
    }
}

/// Input of [`Services::draft_story`].
#[derive(Debug, Clone)]
pub struct NewStory {
    /// The epic (its project ACTIVE, the epic not DONE).
    pub epic_id: Uuid,
    /// 1–1,000 and unused in the epic; `None` takes the next.
    pub number: Option<i32>,
    /// 1–200 characters.
    pub title: String,
    /// "As a …": who wants it.
    pub role: String,
    /// "I want …": what they want.
    pub action: String,
    /// "so that …": why.
    pub benefit: String,
    /// 1–50 criteria, numbered by position from 1.
    pub acceptance_criteria: Vec<String>,
    /// Up to 100 tasks, each with up to 100 subtasks.
    pub tasks: Vec<StoryTask>,
    /// Up to 64 KiB.
    pub dev_notes: Option<String>,
    /// Estimate, 0–100.
    pub points: Option<i32>,
}

/// Which epics to list.
#[derive(Debug, Clone, Default)]
pub struct EpicFilter {
    /// Only epics of this project.
    pub project_id: Option<Uuid>,
    /// Only epics in one of these states.
    pub status: Option<Vec<EpicStatus>>,
}

/// Which stories to list.
#[derive(Debug, Clone, Default)]
pub struct StoryFilter {
    /// Only stories of this project.
    pub project_id: Option<Uuid>,
    /// Only stories of this epic.
    pub epic_id: Option<Uuid>,
    /// Only stories in one of these states.
    pub status: Option<Vec<StoryStatus>>,
}

/// Refuses control characters but tab, line feed and carriage return:
/// PostgreSQL stores no NUL in text or JSON, and SQLite would, so the two
/// back-ends must not see them.
pub(crate) fn printable(field: &str, text: &str) -> AppResult<()> {
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(AppError::bad_input(format!(
            "{field} must not hold control characters"
        )));
    }
    Ok(())
}

/// `text` trimmed, refused unless it has 1–`max` characters and no control
/// characters ([`printable`]).
pub(crate) fn text(field: &str, text: &str, max: usize) -> AppResult<String> {
    printable(field, text)?;
    let t = text.trim();
    let n = t.chars().count();
    if n == 0 || n > max {
        return Err(AppError::bad_input(format!(
            "{field} must be 1–{max} characters"
        )));
    }
    Ok(t.to_string())
}

/// The number `given`, or the one after the highest of `scope`'s rows
/// (column `col`); refused with `taken(n)` when it is outside
/// 1–[`MAX_NUMBER`] or in use.
async fn free_number<E: EntityTrait>(
    tx: &Tx<'_>,
    scope: sea_orm::Select<E>,
    col: E::Column,
    given: Option<i32>,
    taken: impl FnOnce(i32) -> String,
) -> AppResult<i32> {
    let highest: Option<i32> = scope
        .clone()
        .select_only()
        .column_as(col.max(), "n")
        .into_tuple()
        .one(&**tx)
        .await?
        .flatten();
    let n = given.unwrap_or(highest.unwrap_or(0) + 1);
    let in_use =
        (1..=MAX_NUMBER).contains(&n) && scope.filter(col.eq(n)).one(&**tx).await?.is_some();
    if !(1..=MAX_NUMBER).contains(&n) || in_use {
        return Err(AppError::bad_input(taken(n)));
    }
    Ok(n)
}

/// Checks a story's content against the bounds above and returns it
/// trimmed.
fn checked(input: NewStory) -> AppResult<NewStory> {
    if input.acceptance_criteria.is_empty() || input.acceptance_criteria.len() > MAX_CRITERIA {
        return Err(AppError::bad_input(format!(
            "a story has 1–{MAX_CRITERIA} acceptance criteria"
        )));
    }
    if input.tasks.len() > MAX_TASKS {
        return Err(AppError::bad_input(format!(
            "a story has at most {MAX_TASKS} tasks"
        )));
    }
    let criteria = input.acceptance_criteria.len() as i32;
    let mut tasks = Vec::with_capacity(input.tasks.len());
    for t in input.tasks {
        if t.subtasks.len() > MAX_TASKS || t.acceptance_criteria.len() > MAX_CRITERIA {
            return Err(AppError::bad_input(format!(
                "a task has at most {MAX_TASKS} subtasks and names at most \
                 {MAX_CRITERIA} acceptance criteria"
            )));
        }
        if let Some(n) = t
            .acceptance_criteria
            .iter()
            .find(|n| !(1..=criteria).contains(*n))
        {
            return Err(AppError::bad_input(format!(
                "a task names acceptance criterion {n}; the story has 1–{criteria}"
            )));
        }
        let subtasks = t
            .subtasks
            .into_iter()
            .map(|s| {
                Ok(StorySubtask {
                    description: text("a subtask", &s.description, MAX_TEXT)?,
                    done: s.done,
                })
            })
            .collect::<AppResult<_>>()?;
        tasks.push(StoryTask {
            description: text("a task", &t.description, MAX_TEXT)?,
            done: t.done,
            acceptance_criteria: t.acceptance_criteria,
            subtasks,
        });
    }
    if let Some(notes) = &input.dev_notes {
        printable("devNotes", notes)?;
        if notes.len() > MAX_DEV_NOTES_BYTES {
            return Err(AppError::bad_input(format!(
                "devNotes must be at most {MAX_DEV_NOTES_BYTES} bytes"
            )));
        }
    }
    if let Some(points) = input.points
        && !(0..=100).contains(&points)
    {
        return Err(AppError::bad_input("points must be 0–100"));
    }
    Ok(NewStory {
        title: text("title", &input.title, MAX_TITLE)?,
        role: text("role", &input.role, MAX_STATEMENT)?,
        action: text("action", &input.action, MAX_STATEMENT)?,
        benefit: text("benefit", &input.benefit, MAX_STATEMENT)?,
        acceptance_criteria: input
            .acceptance_criteria
            .iter()
            .map(|c| text("an acceptance criterion", c, MAX_TEXT))
            .collect::<AppResult<_>>()?,
        tasks,
        ..input
    })
}

/// Refuses work in a project that is not ACTIVE.
fn require_active(project: &crate::entity::project::Model) -> AppResult<()> {
    if project.status != ProjectStatus::Active {
        return Err(AppError::bad_input(format!(
            "epics and stories change only in an ACTIVE project; this one is {}",
            sea_orm::ActiveEnum::to_value(&project.status)
        )));
    }
    Ok(())
}

/// Moves a locked story to `to` with a guarded update, adds its change-log
/// line (the status, and `note` when given) to its content, and queues
/// `event_type` with the story's row and the note. Going back to dev or
/// into a new review round ends the current gate's round.
pub(crate) async fn move_story(
    tx: &mut Tx<'_>,
    p: &Principal,
    current: story::Model,
    (to, event_type): (StoryStatus, EventType),
    note: Option<String>,
    t: chrono::DateTime<chrono::Utc>,
) -> AppResult<(story::Model, super::EventRef)> {
    let row = story_content::Entity::find_by_id(current.id)
        .filter(story_content::Column::TenantId.eq(p.tenant_id))
        .one(&**tx)
        .await?
        .ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!("story {} has no content", current.id))
        })?;
    let mut content = StoryContent::parse(&row.content)?;
    let log = &mut content.change_log;
    if log.len() >= MAX_CHANGE_LOG {
        log.drain(..=log.len() - MAX_CHANGE_LOG);
    }
    let status_name = sea_orm::ActiveEnum::to_value(&to);
    log.push(ChangeLogEntry {
        at: t,
        version: current.version + 1,
        description: match &note {
            Some(n) => format!("{status_name}: {n}"),
            None => status_name,
        },
        author: p.user_id.clone(),
    });
    story_content::Entity::update_many()
        .col_expr(
            story_content::Column::Content,
            sea_orm::sea_query::Expr::value(snapshot(&content)),
        )
        .filter(story_content::Column::StoryId.eq(current.id))
        .exec(&**tx)
        .await?;
    let mut am = current.clone().into_active_model();
    am.status = Set(to);
    am.version = Set(current.version + 1);
    am.updated_at = Set(t);
    if to != StoryStatus::Done {
        am.current_gate_id = Set(None);
    }
    let updated = am.clone().try_into_model()?;
    let res = story::Entity::update_many()
        .set(am)
        .filter(story::Column::Id.eq(current.id))
        .filter(story::Column::Version.eq(current.version))
        .exec(&**tx)
        .await?;
    guarded(res.rows_affected, "the story")?;
    let ev = tx.append(NewEvent::about(
        event_type,
        &updated,
        super::with_members(snapshot(&updated), json!({ "note": note })),
    ));
    Ok((updated, ev))
}

/// Loads an epic of the caller's tenant and locks it.
pub(crate) async fn lock_epic(tx: &Tx<'_>, p: &Principal, id: Uuid) -> AppResult<epic::Model> {
    epic::Entity::find_by_id(id)
        .filter(epic::Column::TenantId.eq(p.tenant_id))
        .lock_exclusive()
        .one(&**tx)
        .await?
        .ok_or_else(|| AppError::not_found("Epic", encode(Kind::Epic, id)))
}

impl Services {
    /// Creates a PLANNED epic in an ACTIVE project; one `EPIC_CREATED`.
    #[tracing::instrument(skip(self, input), fields(tenant = %p.tenant_id))]
    pub async fn create_epic(
        &self,
        p: &Principal,
        input: NewEpic,
    ) -> AppResult<(epic::Model, event::Model)> {
        let title = text("title", &input.title, MAX_TITLE)?;
        let goal = match &input.goal {
            Some(g) => Some(text("goal", g, MAX_TEXT)?),
            None => None,
        };
        let mut tx = self.begin(p).await?;
        // Exclusive: epic numbers are counted per project.
        let project = lock_project(&tx, p, input.project_id, true).await?;
        require_active(&project)?;
        let in_project = epic::Entity::find().filter(epic::Column::ProjectId.eq(project.id));
        let number = free_number(&tx, in_project, epic::Column::Number, input.number, |n| {
            format!("epic numbers are 1–{MAX_NUMBER} and unused; {n} is not")
        })
        .await?;
        let t = now();
        let model = epic::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(p.tenant_id),
            project_id: Set(project.id),
            number: Set(number),
            title: Set(title),
            goal: Set(goal),
            status: Set(EpicStatus::Planned),
            version: Set(1),
            created_by: Set(p.user_id.clone()),
            created_at: Set(t),
            updated_at: Set(t),
        }
        .insert(&*tx)
        .await?;
        let ev = tx.append(NewEvent::snapshot(EventType::EpicCreated, &model));
        let done = tx.commit().await?;
        Ok((model, done.event(ev)))
    }

    /// Drafts a story (DRAFT) in an epic that is not DONE; one
    /// `STORY_DRAFTED`. Its change log starts with the draft.
    #[tracing::instrument(skip(self, input), fields(tenant = %p.tenant_id))]
    pub async fn draft_story(
        &self,
        p: &Principal,
        input: NewStory,
    ) -> AppResult<(story::Model, event::Model)> {
        let input = checked(input)?;
        let t = now();
        let content = snapshot(&StoryContent {
            acceptance_criteria: input.acceptance_criteria,
            tasks: input.tasks,
            dev_notes: input.dev_notes,
            change_log: vec![ChangeLogEntry {
                at: t,
                version: 1,
                description: "Drafted".into(),
                author: p.user_id.clone(),
            }],
        });
        self.json_within("the story's content", &content, super::JsonLimit::Content)?;
        let mut tx = self.begin(p).await?;
        let project_id = epic::Entity::find_by_id(input.epic_id)
            .filter(epic::Column::TenantId.eq(p.tenant_id))
            .one(&*tx)
            .await?
            .ok_or_else(|| AppError::not_found("Epic", encode(Kind::Epic, input.epic_id)))?
            .project_id;
        let project = lock_project(&tx, p, project_id, false).await?;
        require_active(&project)?;
        let epic = lock_epic(&tx, p, input.epic_id).await?;
        if epic.status == EpicStatus::Done {
            return Err(AppError::bad_input(format!(
                "epic {} is DONE; draft the story in an open epic",
                epic.number
            )));
        }
        let in_epic = story::Entity::find().filter(story::Column::EpicId.eq(epic.id));
        let number = free_number(&tx, in_epic, story::Column::Number, input.number, |n| {
            format!(
                "story numbers are 1–{MAX_NUMBER} and unused in the epic; {}.{n} is not",
                epic.number
            )
        })
        .await?;
        let model = story::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(p.tenant_id),
            project_id: Set(project.id),
            epic_id: Set(epic.id),
            epic_number: Set(epic.number),
            number: Set(number),
            title: Set(input.title),
            role: Set(input.role),
            action: Set(input.action),
            benefit: Set(input.benefit),
            points: Set(input.points),
            status: Set(StoryStatus::Draft),
            current_gate_id: Set(None),
            version: Set(1),
            created_by: Set(p.user_id.clone()),
            created_at: Set(t),
            updated_at: Set(t),
        }
        .insert(&*tx)
        .await?;
        story_content::ActiveModel {
            story_id: Set(model.id),
            tenant_id: Set(p.tenant_id),
            content: Set(content),
        }
        .insert(&*tx)
        .await?;
        let ev = tx.append(NewEvent::snapshot(EventType::StoryDrafted, &model));
        let done = tx.commit().await?;
        Ok((model, done.event(ev)))
    }

    /// Applies one lifecycle verb to a story (see `domain::story`), adds a
    /// line to its change log (with `note` when given, up to 500
    /// characters) and, when the story's move carries its epic along,
    /// moves the epic too (`EPIC_STATUS_CHANGED` after the story's event).
    #[tracing::instrument(skip(self, note), fields(tenant = %p.tenant_id))]
    pub async fn story_verb(
        &self,
        p: &Principal,
        id: Uuid,
        verb: StoryVerb,
        note: Option<String>,
    ) -> AppResult<(story::Model, event::Model)> {
        let note = match note {
            Some(n) => Some(text("note", &n, MAX_STATEMENT)?),
            None => None,
        };
        let mut tx = self.begin(p).await?;
        let (project_id, epic_id) = story::Entity::find_by_id(id)
            .filter(story::Column::TenantId.eq(p.tenant_id))
            .select_only()
            .columns([story::Column::ProjectId, story::Column::EpicId])
            .into_tuple::<(Uuid, Uuid)>()
            .one(&*tx)
            .await?
            .ok_or_else(|| AppError::not_found("Story", encode(Kind::Story, id)))?;
        let project = lock_project(&tx, p, project_id, false).await?;
        require_active(&project)?;
        let epic = lock_epic(&tx, p, epic_id).await?;
        let current = story::Entity::find_by_id(id)
            .filter(story::Column::TenantId.eq(p.tenant_id))
            .lock_exclusive()
            .one(&*tx)
            .await?
            .ok_or_else(|| AppError::not_found("Story", encode(Kind::Story, id)))?;
        let t = now();
        let gate = match (verb, current.current_gate_id) {
            (StoryVerb::Complete, Some(g)) => super::qa_gate::gate_facts(&tx, g).await?,
            _ => None,
        };
        let (to, event_type) = decide(current.status, verb, gate, t)?;
        let (updated, ev) = move_story(&mut tx, p, current, (to, event_type), note, t).await?;
        self.carry_epic(&mut tx, epic, t).await?;
        let done = tx.commit().await?;
        Ok((updated, done.event(ev)))
    }

    /// Moves a locked epic where its stories now take it, if anywhere.
    async fn carry_epic(
        &self,
        tx: &mut Tx<'_>,
        epic: epic::Model,
        t: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<()> {
        let statuses: Vec<StoryStatus> = story::Entity::find()
            .select_only()
            .column(story::Column::Status)
            .filter(story::Column::EpicId.eq(epic.id))
            .into_tuple()
            .all(&**tx)
            .await?;
        let Some(to) = epic_after(epic.status, &statuses) else {
            return Ok(());
        };
        let mut am = epic.clone().into_active_model();
        am.status = Set(to);
        am.version = Set(epic.version + 1);
        am.updated_at = Set(t);
        let updated = am.clone().try_into_model()?;
        let res = epic::Entity::update_many()
            .set(am)
            .filter(epic::Column::Id.eq(epic.id))
            .filter(epic::Column::Version.eq(epic.version))
            .exec(&**tx)
            .await?;
        guarded(res.rows_affected, "the epic")?;
        tx.append(NewEvent::snapshot(EventType::EpicStatusChanged, &updated));
        Ok(())
    }

    /// A page of the tenant's epics, oldest first.
    pub async fn epics(
        &self,
        p: &Principal,
        f: EpicFilter,
        at: PageAt,
    ) -> AppResult<Page<epic::Model>> {
        let q = epic::Entity::find()
            .filter(epic::Column::TenantId.eq(p.tenant_id))
            .apply_if(f.project_id, |q, id| {
                q.filter(epic::Column::ProjectId.eq(id))
            })
            .apply_if(f.status, |q, s| q.filter(epic::Column::Status.is_in(s)));
        page(&self.reader(p.tenant_id), q, epic::Column::Id, at).await
    }

    /// A page of the tenant's stories, oldest first.
    pub async fn stories(
        &self,
        p: &Principal,
        f: StoryFilter,
        at: PageAt,
    ) -> AppResult<Page<story::Model>> {
        let q = story::Entity::find()
            .filter(story::Column::TenantId.eq(p.tenant_id))
            .apply_if(f.project_id, |q, id| {
                q.filter(story::Column::ProjectId.eq(id))
            })
            .apply_if(f.epic_id, |q, id| q.filter(story::Column::EpicId.eq(id)))
            .apply_if(f.status, |q, s| q.filter(story::Column::Status.is_in(s)));
        page(&self.reader(p.tenant_id), q, story::Column::Id, at).await
    }
}
