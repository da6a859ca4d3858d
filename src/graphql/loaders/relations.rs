//! The other batched relations: dependencies, workflow steps, team members,
//! artifact bodies, waiting time, failed attempts and completion figures.

use crate::auth::SYSTEM_TENANT;
use crate::entity::{
    artifact_content, event, story_content, task_checkpoint_state, task_dependency, team_member,
    team_workflow, workflow_step,
};
use crate::rls::Scoped;
use async_graphql::dataloader::Loader;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use uuid::Uuid;

use super::*;

/// The tasks each task depends on (ids), from the dependency edges.
pub struct Dependencies {
    pub(crate) db: Scoped,
    pub(crate) tenant: Uuid,
}

impl Loader<Uuid> for Dependencies {
    type Value = Vec<Uuid>;
    type Error = LoadError;
    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Vec<Uuid>>, LoadError> {
        let rows = task_dependency::Entity::find()
            .filter(task_dependency::Column::TenantId.eq(self.tenant))
            .filter(task_dependency::Column::TaskId.is_in(keys.to_vec()))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        let mut out: HashMap<Uuid, Vec<Uuid>> = keys.iter().map(|k| (*k, vec![])).collect();
        for r in rows {
            out.entry(r.task_id).or_default().push(r.depends_on_id);
        }
        Ok(out)
    }
}

/// Steps of each workflow, in order (bounded by the definition itself).
pub struct Steps {
    pub(crate) db: Scoped,
    pub(crate) tenant: Uuid,
}

impl Loader<Uuid> for Steps {
    type Value = Vec<workflow_step::Model>;
    type Error = LoadError;
    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, LoadError> {
        let rows = workflow_step::Entity::find()
            .filter(workflow_step::Column::WorkflowId.is_in(keys.to_vec()))
            .filter(workflow_step::Column::TenantId.is_in([self.tenant, SYSTEM_TENANT]))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        let mut out: HashMap<Uuid, Self::Value> = keys.iter().map(|k| (*k, vec![])).collect();
        for r in rows {
            out.entry(r.workflow_id).or_default().push(r);
        }
        for v in out.values_mut() {
            v.sort_by_key(|s| s.position);
        }
        Ok(out)
    }
}

/// Persona and workflow keys of each team, in team order.
pub struct TeamKeys {
    pub(crate) db: Scoped,
    pub(crate) tenant: Uuid,
}

impl Loader<Uuid> for TeamKeys {
    type Value = (Vec<String>, Vec<String>);
    type Error = LoadError;
    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, LoadError> {
        let tenants = Condition::any()
            .add(team_member::Column::TenantId.eq(self.tenant))
            .add(team_member::Column::TenantId.eq(SYSTEM_TENANT));
        let mut members = team_member::Entity::find()
            .filter(team_member::Column::TeamId.is_in(keys.to_vec()))
            .filter(tenants)
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        members.sort_by_key(|m| m.position);
        let mut flows = team_workflow::Entity::find()
            .filter(team_workflow::Column::TeamId.is_in(keys.to_vec()))
            .filter(team_workflow::Column::TenantId.is_in([self.tenant, SYSTEM_TENANT]))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        flows.sort_by_key(|m| m.position);
        let mut out: HashMap<Uuid, Self::Value> =
            keys.iter().map(|k| (*k, Default::default())).collect();
        for m in members {
            out.entry(m.team_id).or_default().0.push(m.persona_key);
        }
        for f in flows {
            out.entry(f.team_id).or_default().1.push(f.workflow_key);
        }
        Ok(out)
    }
}

/// Checkpoint states, artifact and story contents, loaded only when a
/// client asks for them.
pub struct Bodies<E> {
    pub(crate) db: Scoped,
    pub(crate) tenant: Uuid,
    pub(crate) _e: PhantomData<E>,
}

impl Loader<Uuid> for Bodies<task_checkpoint_state::Entity> {
    type Value = serde_json::Value;
    type Error = LoadError;
    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, LoadError> {
        let rows = task_checkpoint_state::Entity::find()
            .filter(task_checkpoint_state::Column::CheckpointId.is_in(keys.to_vec()))
            .filter(task_checkpoint_state::Column::TenantId.eq(self.tenant))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.checkpoint_id, r.state))
            .collect())
    }
}

impl Loader<Uuid> for Bodies<artifact_content::Entity> {
    type Value = serde_json::Value;
    type Error = LoadError;
    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, LoadError> {
        let rows = artifact_content::Entity::find()
            .filter(artifact_content::Column::ArtifactId.is_in(keys.to_vec()))
            .filter(artifact_content::Column::TenantId.eq(self.tenant))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        Ok(rows
            .into_iter()
            .map(|r| (r.artifact_id, r.content))
            .collect())
    }
}

/// Story contents come parsed: a story's four content fields share one
/// parse per request.
impl Loader<Uuid> for Bodies<story_content::Entity> {
    type Value = Arc<crate::service::story::StoryContent>;
    type Error = LoadError;
    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, LoadError> {
        let rows = story_content::Entity::find()
            .filter(story_content::Column::StoryId.is_in(keys.to_vec()))
            .filter(story_content::Column::TenantId.eq(self.tenant))
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        rows.into_iter()
            .map(|r| {
                let content = crate::service::story::StoryContent::parse(&r.content)
                    .map_err(|e| Arc::new(sea_orm::DbErr::Custom(e.to_string())))?;
                Ok((r.story_id, Arc::new(content)))
            })
            .collect()
    }
}

/// Seconds each project spent waiting for humans, one grouped query per batch.
pub struct HumanWait {
    pub(crate) services: crate::service::Services,
    pub(crate) reads: Scoped,
    pub(crate) tenant: Uuid,
}

impl Loader<Uuid> for HumanWait {
    type Value = f64;
    type Error = LoadError;
    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, f64>, LoadError> {
        // The loader runs in a task of its own: hand it the request's reader.
        crate::service::Services::with_request_reader(
            self.reads.clone(),
            self.services.human_wait(self.tenant, keys),
        )
        .await
        .map_err(|e| Arc::new(sea_orm::DbErr::Custom(e.to_string())))
    }
}

/// The `TASK_FAILED` events of tasks (their earlier attempts), oldest first,
/// at most 100 per task.
pub struct FailedAttempts {
    pub(crate) db: Scoped,
    pub(crate) tenant: Uuid,
}

impl Loader<Uuid> for FailedAttempts {
    type Value = Vec<event::Model>;
    type Error = LoadError;
    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, LoadError> {
        use sea_orm::QueryOrder;
        let rows = event::Entity::find()
            .filter(event::Column::TenantId.eq(self.tenant))
            .filter(event::Column::TaskId.is_in(keys.to_vec()))
            .filter(event::Column::EventType.eq(crate::domain::EventType::TaskFailed))
            .order_by_asc(event::Column::Seq)
            .all(&self.db)
            .await
            .map_err(Arc::new)?;
        let mut out: HashMap<Uuid, Self::Value> = keys.iter().map(|k| (*k, vec![])).collect();
        for e in rows {
            if let Some(t) = e.task_id {
                let v = out.entry(t).or_default();
                if v.len() < 100 {
                    v.push(e);
                }
            }
        }
        Ok(out)
    }
}

/// Completion summaries of projects, one grouped query per batch.
pub struct Completions {
    pub(crate) db: Scoped,
    pub(crate) tenant: Uuid,
}

impl Loader<Uuid> for Completions {
    type Value = crate::service::query::Completion;
    type Error = LoadError;
    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, LoadError> {
        crate::service::query::completions(&self.db, self.tenant, keys)
            .await
            .map_err(|e| Arc::new(sea_orm::DbErr::Custom(e.to_string())))
    }
}
