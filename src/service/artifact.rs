//! Artifacts: immutable outputs; a new version of a name is a new row.

use super::query::{Page, PageAt, page};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QueryTrait, Set,
};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::task::{load_task, lock_project};
use super::{NewEvent, Services, now};
use crate::auth::Principal;
use crate::domain::{ArtifactKind, EventType, ProjectStatus};
use crate::entity::{artifact, artifact_content, event};
use crate::error::{AppError, AppResult};

/// Input of [`Services::create_artifact`].
#[derive(Debug, Clone)]
pub struct NewArtifact {
    /// The project it belongs to.
    pub project_id: Uuid,
    /// The task that produced it.
    pub task_id: Option<Uuid>,
    /// The persona that produced it; defaults to the task's persona.
    pub persona_id: Option<Uuid>,
    /// What it is.
    pub kind: ArtifactKind,
    /// Its name, e.g. `prd.md`; versions are counted per name and each new
    /// version `supersedes` the previous one.
    pub name: String,
    /// The content.
    pub content: Json,
}

impl Services {
    /// Stores an artifact as the next version of its name in the project.
    #[tracing::instrument(skip(self, input), fields(tenant = %p.tenant_id))]
    pub async fn create_artifact(
        &self,
        p: &Principal,
        input: NewArtifact,
    ) -> AppResult<(artifact::Model, event::Model)> {
        let name = input.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 300 {
            return Err(AppError::bad_input("name must be 1–300 characters"));
        }
        self.json_within("content", &input.content, super::JsonLimit::Content)?;
        let mut tx = self.begin(p).await?;
        // Exclusive: versions are counted per project and name, and the
        // project must stay ACTIVE until this commits.
        let project = lock_project(&tx, p, input.project_id, true).await?;
        if project.status != ProjectStatus::Active {
            return Err(AppError::bad_input(
                "artifacts can only be added to an ACTIVE project",
            ));
        }
        let mut persona_id = input.persona_id;
        if let Some(tid) = input.task_id {
            let task = load_task(&*tx, p, tid).await?;
            if task.project_id != project.id {
                return Err(AppError::bad_input("the task belongs to another project"));
            }
            persona_id = persona_id.or(task.persona_id);
        }
        let previous = artifact::Entity::find()
            .filter(artifact::Column::TenantId.eq(p.tenant_id))
            .filter(artifact::Column::ProjectId.eq(project.id))
            .filter(artifact::Column::Name.eq(&name))
            .order_by_desc(artifact::Column::Version)
            .one(&*tx)
            .await?;
        let bytes = serde_json::to_vec(&input.content).map_err(|e| AppError::Internal(e.into()))?;
        let sha256 = {
            use sha2::Digest;
            format!("{:x}", sha2::Sha256::digest(&bytes))
        };
        let model = artifact::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(p.tenant_id),
            project_id: Set(project.id),
            task_id: Set(input.task_id),
            persona_id: Set(persona_id),
            kind: Set(input.kind),
            name: Set(name),
            version: Set(previous.as_ref().map(|a| a.version + 1).unwrap_or(1)),
            supersedes_id: Set(previous.map(|a| a.id)),
            sha256: Set(sha256),
            size: Set(bytes.len() as i64),
            created_by: Set(p.user_id.clone()),
            created_at: Set(now()),
        }
        .insert(&*tx)
        .await?;
        artifact_content::ActiveModel {
            artifact_id: Set(model.id),
            tenant_id: Set(p.tenant_id),
            content: Set(input.content),
        }
        .insert(&*tx)
        .await?;
        // The content stays out of the event: it can be large, and
        // subscribers fetch it when they want it.
        let payload = json!({
            "id": model.id, "projectId": model.project_id, "taskId": model.task_id,
            "personaId": model.persona_id, "kind": model.kind, "name": model.name,
            "version": model.version, "sha256": model.sha256, "size": model.size, "supersedesId": model.supersedes_id,
        });
        let ev = tx.append(NewEvent::about(EventType::ArtifactCreated, &model, payload));
        let done = tx.commit().await?;
        Ok((model, done.event(ev)))
    }
}

impl Services {
    /// The latest version of every artifact name in a project (metadata
    /// only), by name; `NOT_FOUND` when the project is not the caller's.
    pub async fn latest_artifacts(
        &self,
        p: &Principal,
        project_id: Uuid,
    ) -> AppResult<Vec<artifact::Model>> {
        use crate::entity::project;
        project::Entity::find_by_id(project_id)
            .filter(project::Column::TenantId.eq(p.tenant_id))
            .one(&self.reader(p.tenant_id))
            .await?
            .ok_or_else(|| {
                AppError::not_found(
                    "Project",
                    crate::ids::encode(crate::ids::Kind::Project, project_id),
                )
            })?;
        let rows = artifact::Entity::find()
            .filter(artifact::Column::TenantId.eq(p.tenant_id))
            .filter(artifact::Column::ProjectId.eq(project_id))
            .order_by_asc(artifact::Column::Name)
            .order_by_desc(artifact::Column::Version)
            .all(&self.reader(p.tenant_id))
            .await?;
        let mut latest: Vec<artifact::Model> = Vec::new();
        for a in rows {
            if latest.last().map(|l| &l.name) != Some(&a.name) {
                latest.push(a);
            }
        }
        Ok(latest)
    }

    /// The content of one artifact of the caller's tenant.
    pub async fn artifact_content(&self, p: &Principal, id: Uuid) -> AppResult<Json> {
        Ok(artifact_content::Entity::find_by_id(id)
            .filter(artifact_content::Column::TenantId.eq(p.tenant_id))
            .one(&self.reader(p.tenant_id))
            .await?
            .map(|c| c.content)
            .unwrap_or(Json::Null))
    }
}

/// What `Services::artifacts` lists.
#[derive(Debug, Default)]
pub struct ArtifactFilter {
    /// Only artifacts of this project.
    pub project_id: Option<Uuid>,
    /// Only artifacts of this task.
    pub task_id: Option<Uuid>,
    /// Only artifacts of this kind.
    pub kind: Option<ArtifactKind>,
}

impl Services {
    /// A page of the caller's artifacts (every version), oldest first.
    pub async fn artifacts(
        &self,
        p: &Principal,
        f: ArtifactFilter,
        at: PageAt,
    ) -> AppResult<Page<artifact::Model>> {
        let q = artifact::Entity::find()
            .filter(artifact::Column::TenantId.eq(p.tenant_id))
            .apply_if(f.project_id, |q, pid| {
                q.filter(artifact::Column::ProjectId.eq(pid))
            })
            .apply_if(f.task_id, |q, tid| {
                q.filter(artifact::Column::TaskId.eq(tid))
            })
            .apply_if(f.kind, |q, k| q.filter(artifact::Column::Kind.eq(k)));
        page(&self.reader(p.tenant_id), q, artifact::Column::Id, at).await
    }
}
