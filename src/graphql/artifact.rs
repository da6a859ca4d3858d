//! Artifacts: immutable, versioned outputs of a project, their queries, verb and stream.

use async_graphql::{Context, ID, InputObject, Json, Object, Result};
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::fast::Fast;
use super::limits::Counted;
use super::mutation::keyed;
use super::types::*;
use super::{AGENT, loaders, principal};
use crate::domain::{ArtifactKind, EventType};
use crate::entity::{artifact, event};
use crate::ids::{self, Kind};
use crate::service::artifact::NewArtifact;

/// An immutable output kept in the context store.
#[derive(async_graphql::Description)]
pub struct Artifact(pub artifact::Model);

#[Object(use_type_description)]
impl Artifact {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::Artifact, self.0.id)
    }
    /// The project.
    async fn project(&self, ctx: &Context<'_>) -> Result<Option<Project>> {
        Ok(one(&loaders(ctx).projects, self.0.project_id)
            .await?
            .map(Project))
    }
    /// The task that produced it.
    async fn task(&self, ctx: &Context<'_>) -> Result<Option<Task>> {
        let Some(id) = self.0.task_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).tasks, id).await?.map(Task))
    }
    /// The persona that produced it.
    async fn persona(&self, ctx: &Context<'_>) -> Result<Option<Fast<Persona>>> {
        let Some(id) = self.0.persona_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).personas, id)
            .await?
            .map(|p| Fast(Persona(p))))
    }
    /// What it is.
    async fn kind(&self) -> ArtifactKind {
        self.0.kind
    }
    /// Its name, e.g. `prd.md`.
    async fn name(&self) -> Counted<&str> {
        Counted(&self.0.name)
    }
    /// Version of this name within the project, from 1.
    async fn version(&self) -> i32 {
        self.0.version
    }
    /// The content (loaded only when selected; see `size`).
    async fn content(&self, ctx: &Context<'_>) -> Result<Counted<Json<Value>>> {
        {
            Ok(Json(
                one(&loaders(ctx).artifact_contents, self.0.id)
                    .await?
                    .unwrap_or(Value::Null),
            ))
        }
        .map(Counted)
    }
    /// SHA-256 of the content as stored JSON, lower-case hex (64 characters).
    async fn sha256(&self) -> Counted<&str> {
        Counted(&self.0.sha256)
    }
    /// Size of the content as stored JSON, in bytes.
    async fn size(&self) -> i64 {
        self.0.size
    }
    /// The previous version of the same name, if any.
    async fn supersedes(&self, ctx: &Context<'_>) -> Result<Option<Artifact>> {
        let Some(id) = self.0.supersedes_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).artifacts, id).await?.map(Artifact))
    }
    /// Who stored it.
    async fn created_by(&self) -> Counted<&str> {
        Counted(&self.0.created_by)
    }
    /// When it was stored.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// An item of `artifactCreated`: the event and the new artifact (its
/// content is loaded only when selected).
#[derive(async_graphql::Description)]
pub struct ArtifactUpdate(pub std::sync::Arc<event::Model>);

#[Object(use_type_description)]
impl ArtifactUpdate {
    /// Stream cursor; pass it as `after` to resume.
    async fn cursor(&self) -> Counted<String> {
        Counted(self.0.seq.to_string())
    }
    /// The artifact (artifacts never change, so this is also how it was).
    async fn artifact(&self, ctx: &Context<'_>) -> Result<Option<Artifact>> {
        Ok(one(&loaders(ctx).artifacts, self.0.subject_id)
            .await?
            .map(Artifact))
    }
    /// The event itself.
    async fn event(&self) -> Event {
        Event(self.0.clone())
    }
}

/// Filter of `artifacts`.
#[derive(InputObject, Default)]
pub struct ArtifactFilter {
    /// Only artifacts of this project.
    pub project_id: Option<ID>,
    /// Only artifacts of this task.
    pub task_id: Option<ID>,
    /// Only artifacts of this kind.
    pub kind: Option<ArtifactKind>,
}

impl TryFrom<ArtifactFilter> for crate::service::artifact::ArtifactFilter {
    type Error = crate::error::AppError;
    fn try_from(f: ArtifactFilter) -> Result<Self, Self::Error> {
        Ok(Self {
            project_id: ids::decode_opt(Kind::Project, f.project_id)?,
            task_id: ids::decode_opt(Kind::Task, f.task_id)?,
            kind: f.kind,
        })
    }
}

keyed_input!(
    /// Input of `createArtifact`.
    CreateArtifactInput {
        /// The project (ACTIVE).
        project_id: ID,
        /// The task that produced it.
        task_id: Option<ID>,
        /// The persona that produced it; defaults to the task's persona.
        persona_id: Option<ID>,
        /// What it is.
        kind: ArtifactKind,
        /// Its name, e.g. `prd.md`; storing the same name again makes a new version.
        name: String,
        /// The content, any JSON.
        content: Json<Value>,
    }
);

payload!(
    /// Result of `createArtifact`.
    CreateArtifactPayload {
        /// The new artifact (or new version).
        artifact: Artifact,
    }
);

fields! {
    /// Artifact queries.
    object ArtifactQuery;

    /// Artifacts, oldest first.
    list artifacts(ArtifactFilter) -> Artifact = artifacts;

    /// Artifacts stored in a project, oldest first: the query twin of the
    /// `artifactCreated` subscription.
    updates artifact_updates([EventType::ArtifactCreated]) -> ArtifactUpdate;
}

fields! {
    /// Artifact mutations.
    object ArtifactMutation;

    /// Stores an artifact (a new row per version; artifacts never change).
    ///
    /// Roles: agent, admin.
    mutation AGENT create_artifact(ctx, input: CreateArtifactInput) -> CreateArtifactPayload {
        let project_id = ids::decode(Kind::Project, &input.project_id)?;
        let task_id = ids::decode_opt(Kind::Task, input.task_id.as_ref())?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            let p = principal(ctx);
            let new = NewArtifact {
                project_id,
                task_id,
                persona_id: s.find_persona_id(p, input.persona_id.as_ref()).await?,
                kind: input.kind,
                name: input.name,
                content: input.content.0,
            };
            s.create_artifact(p, new).await
        })
        .await
    }
}

fields! {
    /// Artifact streams.
    subscription ArtifactSubscription;

    /// Artifacts stored in a project.
    stream artifact_created([EventType::ArtifactCreated]) -> ArtifactUpdate;
}
