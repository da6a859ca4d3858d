//! Idempotency keys.
//!
//! A client may send `idempotencyKey` with a creating or transitioning
//! mutation. The first request with a key runs normally, and the key — with
//! the operation, a hash of the request's arguments and the sequence numbers
//! of the events the change appended — is written **in the same
//! transaction** as the change (see `Tx::commit`), so the key exists exactly
//! when the change does. A repeat with the same key and the same arguments
//! changes nothing and returns the original result, rebuilt here from those
//! events ([`Replay`]); the same key with other arguments is a `CONFLICT`.
//! Keys are per tenant and kept at least 24 hours (the sweeper drops them
//! after 25).
//!
//! [`Services::keyed`] hands the mutation a [`Services`] that carries the
//! claim; every transaction begun through it records the key at commit, so
//! a mutation that committed twice under one key would collide with
//! itself (`CONFLICT`) rather than record half of its change.

use std::future::Future;
use std::sync::Arc;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::Services;
use crate::auth::Principal;
use crate::domain::EventType;
use crate::entity::{
    agent_status, artifact, epic, event, hitl_request, idempotency_key, persona_context, project,
    qa_gate, session, story, task, task_checkpoint,
};
use crate::error::{AppError, AppResult};
use crate::ids::Kind;

/// The key a running mutation has claimed.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The client's key.
    pub key: String,
    /// The mutation field, e.g. `startTask`.
    pub operation: String,
    /// SHA-256 (hex) of the operation and its arguments.
    pub request_hash: String,
}

/// How long keys are kept at least.
pub const KEEP: chrono::Duration = chrono::Duration::hours(25);

/// What a lookup found.
pub enum Lookup {
    /// Not seen: run the mutation under this claim.
    New(Claim),
    /// Seen with the same arguments: these are the events of the original
    /// change, in order.
    Replay(Vec<event::Model>),
}

impl Services {
    /// Checks a key before a mutation runs.
    pub async fn idempotency_lookup(
        &self,
        p: &Principal,
        key: &str,
        operation: &str,
        request: &serde_json::Value,
    ) -> AppResult<Lookup> {
        let key = key.trim();
        if key.is_empty() || key.len() > 200 {
            return Err(AppError::bad_input(
                "idempotencyKey must be 1–200 characters",
            ));
        }
        let request_hash = {
            use sha2::Digest;
            let bytes = serde_json::to_vec(&(operation, request)).unwrap_or_default();
            format!("{:x}", sha2::Sha256::digest(&bytes))
        };
        let found = idempotency_key::Entity::find_by_id((p.tenant_id, key.to_string()))
            .one(&self.reader(p.tenant_id))
            .await?;
        let Some(found) = found else {
            return Ok(Lookup::New(Claim {
                key: key.to_string(),
                operation: operation.to_string(),
                request_hash,
            }));
        };
        if found.operation != operation || found.request_hash != request_hash {
            return Err(AppError::Conflict(format!(
                "idempotencyKey '{key}' was already used for a different request ({}); use a new key",
                found.operation
            )));
        }
        let seqs: Vec<i64> = serde_json::from_value(found.event_seqs).unwrap_or_default();
        let events = event::Entity::find()
            .filter(event::Column::TenantId.eq(p.tenant_id))
            .filter(event::Column::Seq.is_in(seqs))
            .order_by_asc(event::Column::Seq)
            .all(&self.reader(p.tenant_id))
            .await?;
        Ok(Lookup::Replay(events))
    }

    /// Runs a mutation under an idempotency key, or rebuilds the result of
    /// the first run with that key. `operation` is the mutation's name and
    /// `request` its arguments (the key included): the pair identifies the
    /// request. `run` gets the services to write through; without a key it
    /// simply runs.
    pub async fn keyed<R, Run, Fut>(
        &self,
        p: &Principal,
        key: Option<&str>,
        (operation, request): (&str, &serde_json::Value),
        run: Run,
    ) -> AppResult<R>
    where
        R: Replay,
        Run: FnOnce(Services) -> Fut,
        Fut: Future<Output = AppResult<R>>,
    {
        let Some(key) = key else {
            return run(self.clone()).await;
        };
        match self.idempotency_lookup(p, key, operation, request).await? {
            Lookup::New(claim) => {
                run(Services {
                    inner: self.inner.clone(),
                    claim: Some(Arc::new(claim)),
                })
                .await
            }
            Lookup::Replay(events) => R::replay(self, p, &events).await,
        }
    }

    /// The row `id` of the caller's tenant as it is now.
    async fn current<E>(
        &self,
        p: &Principal,
        tenant: E::Column,
        kind: Kind,
        id: Uuid,
    ) -> AppResult<E::Model>
    where
        E: EntityTrait,
        E::PrimaryKey: sea_orm::PrimaryKeyTrait<ValueType = Uuid>,
    {
        self.find_own::<E>(p, tenant, id)
            .await?
            .ok_or_else(|| AppError::not_found(kind.name(), id))
    }

    /// Drops keys older than [`KEEP`]. Returns how many.
    pub async fn prune_idempotency_keys(&self) -> AppResult<u64> {
        let res = idempotency_key::Entity::delete_many()
            .filter(idempotency_key::Column::CreatedAt.lt(super::now() - KEEP))
            .exec(&self.all_tenants())
            .await?;
        Ok(res.rows_affected)
    }
}

/// A keyed mutation's result, rebuilt on a repeat from the events the first
/// run appended (in order) — from the object snapshot an event carries, or,
/// where events record a summary, from the object as it is now.
pub trait Replay: Sized {
    /// Rebuilds the result.
    fn replay(
        s: &Services,
        p: &Principal,
        events: &[event::Model],
    ) -> impl Future<Output = AppResult<Self>> + Send;
}

/// The first event about a `kind` of object.
fn first(events: &[event::Model], kind: Kind) -> AppResult<event::Model> {
    events
        .iter()
        .find(|e| e.subject_type == kind.name())
        .cloned()
        .ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "idempotent replay found no {} event",
                kind.name()
            ))
        })
}

/// The first event about a `kind` of object and the snapshot it recorded
/// of the object right after the change.
fn snapshot<M: serde::de::DeserializeOwned>(
    events: &[event::Model],
    kind: Kind,
) -> AppResult<(M, event::Model)> {
    let e = first(events, kind)?;
    let m = serde_json::from_value(e.payload.clone()).map_err(|err| {
        AppError::Internal(anyhow::anyhow!(
            "idempotent replay: {} event {} holds no snapshot: {err}",
            kind.name(),
            e.seq
        ))
    })?;
    Ok((m, e))
}

/// Objects whose events carry a whole-row snapshot.
macro_rules! replayed_from_snapshot {
    ($($model:ty => $kind:expr),* $(,)?) => {$(
        impl Replay for ($model, event::Model) {
            async fn replay(_: &Services, _: &Principal, events: &[event::Model]) -> AppResult<Self> {
                snapshot(events, $kind)
            }
        }
    )*};
}

replayed_from_snapshot!(
    project::Model => Kind::Project,
    task::Model => Kind::Task,
    task_checkpoint::Model => Kind::TaskCheckpoint,
    agent_status::Model => Kind::AgentStatus,
    epic::Model => Kind::Epic,
    story::Model => Kind::Story,
);

/// Session verbs: the snapshot of the session the mutation was about.
/// `startSession` may first expire the caller's oldest sessions (the
/// per-user limit), whose `SESSION_EXPIRED` events come before its own
/// `SESSION_STARTED`, so those are passed over.
impl Replay for (session::Model, event::Model) {
    async fn replay(_: &Services, _: &Principal, events: &[event::Model]) -> AppResult<Self> {
        let own: Vec<event::Model> = events
            .iter()
            .filter(|e| e.event_type != EventType::SessionExpired)
            .cloned()
            .collect();
        snapshot(&own, Kind::Session)
    }
}

/// `importCatalog`: its answer is read back from the catalog either way,
/// so a repeat only has to skip the write.
impl Replay for () {
    async fn replay(_: &Services, _: &Principal, _: &[event::Model]) -> AppResult<Self> {
        Ok(())
    }
}

/// `requestHitl`, `resolveHitlRequest`: the request's snapshot and the task
/// as the change left it (as it is now when the change did not move it).
impl Replay for (hitl_request::Model, task::Model, event::Model) {
    async fn replay(s: &Services, p: &Principal, events: &[event::Model]) -> AppResult<Self> {
        let (h, ev) = snapshot::<hitl_request::Model>(events, Kind::HitlRequest)?;
        let task = match snapshot::<task::Model>(events, Kind::Task) {
            Ok((t, _)) => t,
            Err(_) => {
                s.current::<task::Entity>(p, task::Column::TenantId, Kind::Task, h.task_id)
                    .await?
            }
        };
        Ok((h, task, ev))
    }
}

/// `recordQaGate`: the gate's snapshot and the story as the gate left it
/// (as it is now when the gate did not move it).
impl Replay for (qa_gate::Model, story::Model, event::Model) {
    async fn replay(s: &Services, p: &Principal, events: &[event::Model]) -> AppResult<Self> {
        let (g, ev) = snapshot::<qa_gate::Model>(events, Kind::QaGate)?;
        let story = match snapshot::<story::Model>(events, Kind::Story) {
            Ok((st, _)) => st,
            Err(_) => {
                s.current::<story::Entity>(p, story::Column::TenantId, Kind::Story, g.story_id)
                    .await?
            }
        };
        Ok((g, story, ev))
    }
}

/// `createArtifact`: artifact events record a summary, never the content.
impl Replay for (artifact::Model, event::Model) {
    async fn replay(s: &Services, p: &Principal, events: &[event::Model]) -> AppResult<Self> {
        let ev = first(events, Kind::Artifact)?;
        let a = s
            .current::<artifact::Entity>(
                p,
                artifact::Column::TenantId,
                Kind::Artifact,
                ev.subject_id,
            )
            .await?;
        Ok((a, ev))
    }
}

/// Persona context changes: context events record a summary, not the
/// whole state, so the context is returned as it is now.
impl Replay for (persona_context::Model, event::Model) {
    async fn replay(s: &Services, p: &Principal, events: &[event::Model]) -> AppResult<Self> {
        let ev = first(events, Kind::PersonaContext)?;
        let c = s
            .current::<persona_context::Entity>(
                p,
                persona_context::Column::TenantId,
                Kind::PersonaContext,
                ev.subject_id,
            )
            .await?;
        Ok((c, ev))
    }
}

/// `switchPersona`: the session's snapshot and the context the event
/// switched to (`toContextId`), as it is now.
impl Replay for (session::Model, persona_context::Model, event::Model) {
    async fn replay(s: &Services, p: &Principal, events: &[event::Model]) -> AppResult<Self> {
        let (sess, ev) = snapshot::<session::Model>(events, Kind::Session)?;
        let cid = ev
            .payload
            .get("toContextId")
            .and_then(|v| v.as_str())
            .and_then(|v| Uuid::parse_str(v).ok())
            .ok_or_else(|| AppError::Internal(anyhow::anyhow!("switch event without context")))?;
        let c = s
            .current::<persona_context::Entity>(
                p,
                persona_context::Column::TenantId,
                Kind::PersonaContext,
                cid,
            )
            .await?;
        Ok((sess, c, ev))
    }
}

/// `revertToCheckpoint`: the target and the versions it reverted
/// (`reverted`, in the event's order), as they are now.
impl Replay
    for (
        task_checkpoint::Model,
        Vec<task_checkpoint::Model>,
        event::Model,
    )
{
    async fn replay(s: &Services, p: &Principal, events: &[event::Model]) -> AppResult<Self> {
        let ev = first(events, Kind::TaskCheckpoint)?;
        let target = s
            .current::<task_checkpoint::Entity>(
                p,
                task_checkpoint::Column::TenantId,
                Kind::TaskCheckpoint,
                ev.subject_id,
            )
            .await?;
        let ids: Vec<Uuid> = ev
            .payload
            .get("reverted")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let mut found: std::collections::HashMap<Uuid, task_checkpoint::Model> =
            task_checkpoint::Entity::find()
                .filter(task_checkpoint::Column::TenantId.eq(p.tenant_id))
                .filter(task_checkpoint::Column::Id.is_in(ids.iter().copied()))
                .all(&s.reader(p.tenant_id))
                .await?
                .into_iter()
                .map(|c| (c.id, c))
                .collect();
        let reverted = ids.iter().filter_map(|i| found.remove(i)).collect();
        Ok((target, reverted, ev))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keep_is_at_least_a_day() {
        assert!(super::KEEP >= chrono::Duration::hours(24));
    }
}
