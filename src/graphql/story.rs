//! Epics and stories (the BMad Method's development half): the `Epic` and
//! `Story` types, their queries, lifecycle verbs and stream.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use super::limits::Counted;
use super::mutation::keyed;
use super::types::*;
use super::{AGENT, AGENT_OR_OPERATOR, OPERATOR, loaders, principal};
use crate::domain::story::{CurrentGate, StoryVerb, decide};
use crate::domain::{EpicStatus, EventType, StoryStatus};
use crate::entity::{epic, event, story};
use crate::ids::{self, Kind};
use crate::service::story as svc;

/// The events of a story's life, as `storyUpdated` streams them.
const STORY_EVENTS: [EventType; 6] = [
    EventType::StoryDrafted,
    EventType::StoryApproved,
    EventType::StoryStarted,
    EventType::StorySubmittedForReview,
    EventType::StoryReopened,
    EventType::StoryCompleted,
];

/// A numbered slice of a project's PRD (BMad Method), delivered by its
/// stories. Lifecycle: `PLANNED → IN_PROGRESS → DONE`, moved by its
/// stories — IN_PROGRESS when one starts, DONE when all are DONE.
#[derive(async_graphql::Description)]
pub struct Epic(pub epic::Model);

#[Object(use_type_description)]
impl Epic {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::Epic, self.0.id)
    }
    /// 1-based, unique in the project.
    async fn number(&self) -> i32 {
        self.0.number
    }
    /// Title.
    async fn title(&self) -> Counted<&str> {
        Counted(&self.0.title)
    }
    /// What the epic delivers.
    async fn goal(&self) -> Counted<Option<&str>> {
        Counted(self.0.goal.as_deref())
    }
    /// Where the epic stands (moved by its stories, never by hand).
    async fn status(&self) -> EpicStatus {
        self.0.status
    }
    /// The project.
    async fn project(&self, ctx: &Context<'_>) -> Result<Option<Project>> {
        Ok(one(&loaders(ctx).projects, self.0.project_id)
            .await?
            .map(Project))
    }
    /// Who created it.
    async fn created_by(&self) -> Counted<&str> {
        Counted(&self.0.created_by)
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }

    #[graphql(flatten)]
    async fn children(&self) -> EpicChildren {
        EpicChildren(self.0.id)
    }
}

fields! {
    /// The child pages of [`Epic`] read through a DataLoader.
    children EpicChildren;

    /// Its stories, in the order they were drafted.
    children stories -> Story = story_pages(EpicStories);
}

/// One user story of an epic (BMad Method): who wants what and why, the
/// acceptance criteria that say when it is done, and dev's checklist (its
/// content, read only when selected).
/// Lifecycle: `DRAFT → APPROVED → IN_PROGRESS → REVIEW → DONE`, and
/// `REVIEW → IN_PROGRESS` when QA sends it back.
#[derive(async_graphql::Description)]
pub struct Story(pub story::Model);

impl Story {
    /// The story's content, loaded once per request for all its fields.
    async fn content(&self, ctx: &Context<'_>) -> Result<std::sync::Arc<svc::StoryContent>> {
        Ok(one(&loaders(ctx).story_contents, self.0.id)
            .await?
            .unwrap_or_default())
    }
}

#[Object(use_type_description)]
impl Story {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::Story, self.0.id)
    }
    /// `<epic>.<story>`, e.g. `1.2` (story 2 of epic 1), as the method
    /// names story files.
    async fn number(&self) -> String {
        format!("{}.{}", self.0.epic_number, self.0.number)
    }
    /// Title.
    async fn title(&self) -> Counted<&str> {
        Counted(&self.0.title)
    }
    /// "As a …": who wants it.
    async fn role(&self) -> Counted<&str> {
        Counted(&self.0.role)
    }
    /// "I want …": what they want.
    async fn action(&self) -> Counted<&str> {
        Counted(&self.0.action)
    }
    /// "so that …": why.
    async fn benefit(&self) -> Counted<&str> {
        Counted(&self.0.benefit)
    }
    /// The acceptance criteria, numbered from 1.
    async fn acceptance_criteria(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Counted<Vec<AcceptanceCriterion>>> {
        let content = self.content(ctx).await?;
        Ok(Counted(
            content
                .acceptance_criteria
                .iter()
                .cloned()
                .zip(1..)
                .map(|(text, number)| AcceptanceCriterion {
                    number,
                    text: Counted(text),
                })
                .collect(),
        ))
    }
    /// Dev's checklist: tasks with their subtasks and the criteria they serve.
    async fn tasks(&self, ctx: &Context<'_>) -> Result<Counted<Vec<StoryTask>>> {
        let content = self.content(ctx).await?;
        Ok(Counted(
            content.tasks.iter().cloned().map(StoryTask::from).collect(),
        ))
    }
    /// Notes for dev: context, sources, constraints.
    async fn dev_notes(&self, ctx: &Context<'_>) -> Result<Counted<Option<String>>> {
        Ok(Counted(self.content(ctx).await?.dev_notes.clone()))
    }
    /// The story's last 100 changes, oldest first (`events` keeps every
    /// one).
    async fn change_log(&self, ctx: &Context<'_>) -> Result<Counted<Vec<StoryChange>>> {
        let content = self.content(ctx).await?;
        Ok(Counted(
            content
                .change_log
                .iter()
                .map(|e| StoryChange {
                    at: e.at,
                    version: e.version,
                    description: Counted(e.description.clone()),
                    author: Counted(e.author.clone()),
                })
                .collect(),
        ))
    }
    /// Estimate in points.
    async fn points(&self) -> Option<i32> {
        self.0.points
    }
    /// Where the story is in the development cycle.
    async fn status(&self) -> StoryStatus {
        self.0.status
    }
    /// States this story may move to next, as things stand: DONE only
    /// while the gate of its review round lets `completeStory` through.
    async fn allowed_transitions(&self, ctx: &Context<'_>) -> Result<Vec<StoryStatus>> {
        let mut next = self.0.status.allowed_transitions().to_vec();
        if next.contains(&StoryStatus::Done) {
            let gate = match self.0.current_gate_id {
                Some(id) => one(&loaders(ctx).qa_gates, id).await?,
                None => None,
            };
            let facts = gate.map(|g| CurrentGate {
                decision: g.decision,
                expires_at: g.expires_at,
            });
            if decide(self.0.status, StoryVerb::Complete, facts, Utc::now()).is_err() {
                next.retain(|s| *s != StoryStatus::Done);
            }
        }
        Ok(next)
    }
    /// Goes up by one with every change.
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// The epic.
    async fn epic(&self, ctx: &Context<'_>) -> Result<Option<Epic>> {
        Ok(one(&loaders(ctx).epics, self.0.epic_id).await?.map(Epic))
    }
    /// The project.
    async fn project(&self, ctx: &Context<'_>) -> Result<Option<Project>> {
        Ok(one(&loaders(ctx).projects, self.0.project_id)
            .await?
            .map(Project))
    }
    /// Who drafted it.
    async fn created_by(&self) -> Counted<&str> {
        Counted(&self.0.created_by)
    }
    /// When it was drafted.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// The gate of the current review round, if QA has recorded one: the
    /// one `completeStory` goes by. Sending the story back to dev, or into
    /// a new round, ends the round (the gate stays in `gates`).
    async fn current_gate(&self, ctx: &Context<'_>) -> Result<Option<QaGate>> {
        let Some(id) = self.0.current_gate_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).qa_gates, id).await?.map(QaGate))
    }

    #[graphql(flatten)]
    async fn children(&self) -> StoryChildren {
        StoryChildren(self.0.id)
    }
}

fields! {
    /// The child pages of [`Story`] read through a DataLoader.
    children StoryChildren;

    /// Its QA gates, oldest first (the last is `currentGate`).
    children gates -> QaGate = gate_pages(StoryGates);
}

/// One acceptance criterion of a story.
#[derive(SimpleObject)]
pub struct AcceptanceCriterion {
    /// 1-based; tasks name criteria by this number.
    pub number: i32,
    /// What must hold.
    pub text: Counted<String>,
}

/// One task of a story's checklist.
#[derive(SimpleObject)]
pub struct StoryTask {
    /// What to do.
    pub description: Counted<String>,
    /// Ticked when done.
    pub done: bool,
    /// The numbers of the acceptance criteria it serves.
    pub acceptance_criteria: Vec<i32>,
    /// Its steps.
    pub subtasks: Vec<StorySubtask>,
}

impl From<svc::StoryTask> for StoryTask {
    fn from(t: svc::StoryTask) -> Self {
        Self {
            description: Counted(t.description),
            done: t.done,
            acceptance_criteria: t.acceptance_criteria,
            subtasks: t
                .subtasks
                .into_iter()
                .map(|s| StorySubtask {
                    description: Counted(s.description),
                    done: s.done,
                })
                .collect(),
        }
    }
}

/// One step of a story task.
#[derive(SimpleObject)]
pub struct StorySubtask {
    /// What to do.
    pub description: Counted<String>,
    /// Ticked when done.
    pub done: bool,
}

/// One line of a story's change log.
#[derive(SimpleObject)]
pub struct StoryChange {
    /// When.
    pub at: DateTime<Utc>,
    /// The story's version the change made.
    pub version: i32,
    /// What changed (the status it moved to, with the note given).
    pub description: Counted<String>,
    /// Who (a user id).
    pub author: Counted<String>,
}

/// An item of `storyUpdated` and `storyUpdates`: the event and the story
/// as it is now.
#[derive(async_graphql::Description)]
pub struct StoryUpdate(pub std::sync::Arc<event::Model>);

#[Object(use_type_description)]
impl StoryUpdate {
    /// Stream cursor; pass it as `after` to resume.
    async fn cursor(&self) -> Counted<String> {
        Counted(self.0.seq.to_string())
    }
    /// The story as it is now (the event's payload holds it as it was).
    async fn story(&self, ctx: &Context<'_>) -> Result<Option<Story>> {
        Ok(one(&loaders(ctx).stories, self.0.subject_id)
            .await?
            .map(Story))
    }
    /// The event itself.
    async fn event(&self) -> Event {
        Event(self.0.clone())
    }
}

/// Filter of `epics`.
#[derive(InputObject, Default)]
pub struct EpicFilter {
    /// Only epics of this project.
    pub project_id: Option<ID>,
    /// Only epics in one of these states.
    pub status: Option<Vec<EpicStatus>>,
}

impl TryFrom<EpicFilter> for svc::EpicFilter {
    type Error = crate::error::AppError;
    fn try_from(f: EpicFilter) -> Result<Self, Self::Error> {
        Ok(Self {
            project_id: ids::decode_opt(Kind::Project, f.project_id.as_ref())?,
            status: f.status,
        })
    }
}

/// Filter of `stories`.
#[derive(InputObject, Default)]
pub struct StoryFilter {
    /// Only stories of this project.
    pub project_id: Option<ID>,
    /// Only stories of this epic.
    pub epic_id: Option<ID>,
    /// Only stories in one of these states.
    pub status: Option<Vec<StoryStatus>>,
}

impl TryFrom<StoryFilter> for svc::StoryFilter {
    type Error = crate::error::AppError;
    fn try_from(f: StoryFilter) -> Result<Self, Self::Error> {
        Ok(Self {
            project_id: ids::decode_opt(Kind::Project, f.project_id.as_ref())?,
            epic_id: ids::decode_opt(Kind::Epic, f.epic_id.as_ref())?,
            status: f.status,
        })
    }
}

keyed_input!(
    /// Input of `createEpic`.
    CreateEpicInput {
        /// The project (ACTIVE).
        project_id: ID,
        /// 1–1,000, unused in the project; omit for the next.
        number: Option<i32>,
        /// 1–200 characters.
        title: String,
        /// What the epic delivers; up to 2,000 characters.
        goal: Option<String>,
    }
);

/// One task of a story being drafted (it starts unticked).
#[derive(InputObject)]
pub struct StoryTaskInput {
    /// What to do; 1–2,000 characters.
    pub description: String,
    /// The numbers of the acceptance criteria it serves (each 1 to the
    /// number of criteria).
    pub acceptance_criteria: Option<Vec<i32>>,
    /// Its steps, up to 100, each 1–2,000 characters.
    pub subtasks: Option<Vec<String>>,
}

keyed_input!(
    /// Input of `draftStory`. Refused with `BAD_USER_INPUT` past the
    /// bounds each field gives.
    DraftStoryInput {
        /// The epic (not DONE, in an ACTIVE project).
        epic_id: ID,
        /// 1–1,000, unused in the epic; omit for the next.
        number: Option<i32>,
        /// 1–200 characters.
        title: String,
        /// "As a …"; 1–500 characters.
        role: String,
        /// "I want …"; 1–500 characters.
        action: String,
        /// "so that …"; 1–500 characters.
        benefit: String,
        /// 1–50 criteria, each 1–2,000 characters, numbered by position.
        acceptance_criteria: Vec<String>,
        /// Dev's checklist, up to 100 tasks.
        tasks: Option<Vec<StoryTaskInput>>,
        /// Notes for dev, up to 64 KiB. With the criteria and the checklist
        /// the story's content is at most `CEREBRAL_MAX_CONTENT_BYTES` as
        /// JSON text.
        dev_notes: Option<String>,
        /// Estimate, 0–100.
        points: Option<i32>,
    }
);

keyed_input!(
    /// Input of the story verbs (`approveStory`, `startStory`,
    /// `submitStoryForReview`, `reopenStory`, `completeStory`).
    StoryTransitionInput {
        /// The story.
        story_id: ID,
        /// Why, for the story's change log; 1–500 characters.
        note: Option<String>,
    }
);

payload!(
    /// Result of `createEpic`.
    CreateEpicPayload {
        /// The new epic (PLANNED).
        epic: Epic,
    }
);

payload!(
    /// Result of `draftStory` and the story verbs.
    StoryPayload {
        /// The story in its new state.
        story: Story,
    }
);

/// Runs a story verb on the input's story.
async fn story_transition(
    ctx: &Context<'_>,
    input: StoryTransitionInput,
    verb: StoryVerb,
) -> Result<StoryPayload> {
    let id = ids::decode(Kind::Story, &input.story_id)?;
    keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
        s.story_verb(principal(ctx), id, verb, input.note).await
    })
    .await
}

fields! {
    /// Epic and story queries.
    object StoryQuery;

    /// An epic by id.
    by_id epic(Epic) -> Epic = |ctx, id| Ok(one(&loaders(ctx).epics, id).await?.map(Epic));

    /// Epics, oldest first.
    list epics(EpicFilter) -> Epic = epics;

    /// A story by id.
    by_id story(Story) -> Story = |ctx, id| Ok(one(&loaders(ctx).stories, id).await?.map(Story));

    /// Stories, oldest first.
    list stories(StoryFilter) -> Story = stories;

    /// Story changes of a project, oldest first: the query twin of the
    /// `storyUpdated` subscription.
    updates story_updates(STORY_EVENTS) -> StoryUpdate;
}

fields! {
    /// Epic and story mutations.
    object StoryMutation;

    /// Creates a PLANNED epic in an ACTIVE project. Errors:
    /// `BAD_USER_INPUT` (bounds, a number in use), `NOT_FOUND`.
    ///
    /// Roles: agent, operator, admin.
    mutation AGENT_OR_OPERATOR create_epic(ctx, input: CreateEpicInput) -> CreateEpicPayload {
        let new = svc::NewEpic {
            project_id: ids::decode(Kind::Project, &input.project_id)?,
            number: input.number,
            title: input.title,
            goal: input.goal,
        };
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.create_epic(principal(ctx), new).await
        })
        .await
    }

    /// Drafts a story (DRAFT) in an epic that is not DONE; a person
    /// approves it next. Errors: `BAD_USER_INPUT` (bounds, control
    /// characters, a number in use, a task naming a criterion the story
    /// lacks, a DONE epic, a project not ACTIVE), `NOT_FOUND`.
    ///
    /// Roles: agent, operator, admin.
    mutation AGENT_OR_OPERATOR draft_story(ctx, input: DraftStoryInput) -> StoryPayload {
        let tasks = input.tasks.unwrap_or_default().into_iter().map(|t| svc::StoryTask {
            description: t.description,
            done: false,
            acceptance_criteria: t.acceptance_criteria.unwrap_or_default(),
            subtasks: t
                .subtasks
                .unwrap_or_default()
                .into_iter()
                .map(|description| svc::StorySubtask { description, done: false })
                .collect(),
        });
        let new = svc::NewStory {
            epic_id: ids::decode(Kind::Epic, &input.epic_id)?,
            number: input.number,
            title: input.title,
            role: input.role,
            action: input.action,
            benefit: input.benefit,
            acceptance_criteria: input.acceptance_criteria,
            tasks: tasks.collect(),
            dev_notes: input.dev_notes,
            points: input.points,
        };
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.draft_story(principal(ctx), new).await
        })
        .await
    }

    verbs(StoryTransitionInput) -> StoryPayload = story_transition {
        /// DRAFT → APPROVED: a person accepts the draft. Errors:
        /// `NOT_FOUND`, `INVALID_TRANSITION`.
        ///
        /// Roles: operator, admin.
        OPERATOR approve_story(StoryVerb::Approve);

        /// APPROVED → IN_PROGRESS: dev picks the story up; its epic moves
        /// to IN_PROGRESS with its first story. Errors: `NOT_FOUND`,
        /// `INVALID_TRANSITION`, `BAD_USER_INPUT` (a project not ACTIVE).
        ///
        /// Roles: agent, admin.
        AGENT start_story(StoryVerb::Start);

        /// IN_PROGRESS → REVIEW: dev hands the story to QA, opening a new
        /// review round (no gate yet). Errors: as `startStory`.
        ///
        /// Roles: agent, admin.
        AGENT submit_story_for_review(StoryVerb::SubmitForReview);

        /// REVIEW → IN_PROGRESS: QA or a person sends the story back to
        /// dev, saying why in `note`; the review round ends. Errors: as
        /// `startStory`.
        ///
        /// Roles: agent, operator, admin.
        AGENT_OR_OPERATOR reopen_story(StoryVerb::Reopen);

        /// REVIEW → DONE, only with a PASS or WAIVED gate of the current
        /// review round that has not expired (`INVALID_TRANSITION` says
        /// why otherwise); its epic is DONE with its last story. Errors: as
        /// `startStory`.
        ///
        /// Roles: agent, operator, admin.
        AGENT_OR_OPERATOR complete_story(StoryVerb::Complete);
    }
}

fields! {
    /// Story streams.
    subscription StorySubscription;

    /// Story changes of a project (drafted, approved, started, submitted
    /// for review, reopened, completed), as events: the payload holds the story as it
    /// was right after the change and `story` resolves it as it is now.
    stream story_updated(STORY_EVENTS) -> StoryUpdate;
}
