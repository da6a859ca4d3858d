//! The catalog: personas, teams and workflows, built in or imported.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::{NewEvent, Services, Subject, Tx, now};
use crate::auth::{Principal, SYSTEM_TENANT};
use crate::catalog::{CatalogPack, PersonaDef, TeamDef, WorkflowDef};
use crate::domain::EventType;
use crate::entity::{event, persona, team, team_member, team_workflow, workflow, workflow_step};
use crate::error::{AppError, AppResult};
use crate::ids::{self, Kind};

/// How many catalog items an import wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportCounts {
    /// Personas inserted or updated.
    pub personas: usize,
    /// Teams inserted or updated.
    pub teams: usize,
    /// Workflows inserted or updated.
    pub workflows: usize,
}

/// Rows of `tenant` and of the built-in catalog, the tenant's own first when
/// both have the same key.
pub fn visible(tenant: Uuid) -> Condition {
    Condition::any()
        .add(persona::Column::TenantId.eq(tenant))
        .add(persona::Column::TenantId.eq(SYSTEM_TENANT))
}

impl Services {
    /// A team visible to the caller (its tenant's or built in), by id.
    pub async fn find_team(&self, p: &Principal, id: Uuid) -> AppResult<Option<team::Model>> {
        Ok(team::Entity::find_by_id(id)
            .filter(team::Column::TenantId.is_in([p.tenant_id, SYSTEM_TENANT]))
            .one(&self.reader(p.tenant_id))
            .await?)
    }

    /// Loads the built-in catalog into the system tenant when it is missing or
    /// differs from the one compiled into this binary (compared by a hash in
    /// the last `CATALOG_IMPORTED` event of the system tenant).
    pub async fn load_builtin_catalog(&self) -> AppResult<bool> {
        let pack = crate::catalog::builtin();
        let fingerprint = format!(
            "{:x}",
            fnv1a(&serde_json::to_vec(&pack).unwrap_or_default())
        );
        let last = event::Entity::find()
            .filter(event::Column::TenantId.eq(SYSTEM_TENANT))
            .filter(event::Column::EventType.eq(EventType::CatalogImported))
            .order_by_desc(event::Column::Seq)
            .one(&self.reader(SYSTEM_TENANT))
            .await?;
        if last
            .as_ref()
            .and_then(|e| e.payload.get("fingerprint"))
            .and_then(|v| v.as_str())
            == Some(fingerprint.as_str())
        {
            return Ok(false);
        }
        let principal = Principal::system();
        let mut tx = self.begin(&principal).await?;
        let counts = write_pack(&tx, SYSTEM_TENANT, &pack, true).await?;
        tx.append(NewEvent {
            event_type: EventType::CatalogImported,
            project_id: None,
            task_id: None,
            subject: Subject::Catalog,
            subject_id: SYSTEM_TENANT,
            payload: json!({ "counts": counts, "builtin": true, "fingerprint": fingerprint }),
        });
        tx.commit().await?;
        Ok(true)
    }

    /// Upserts a parsed pack into the caller's tenant, all of it or nothing.
    #[tracing::instrument(skip(self, pack), fields(tenant = %p.tenant_id))]
    pub async fn import_catalog(
        &self,
        p: &Principal,
        pack: &CatalogPack,
    ) -> AppResult<ImportCounts> {
        let mut tx = self.begin(p).await?;
        let counts = write_pack(&tx, p.tenant_id, pack, false).await?;
        tx.append(NewEvent {
            event_type: EventType::CatalogImported,
            project_id: None,
            task_id: None,
            subject: Subject::Catalog,
            subject_id: p.tenant_id,
            payload: json!({
                "counts": counts,
                "personas": pack.personas.iter().map(|x| &x.key).collect::<Vec<_>>(),
                "teams": pack.teams.iter().map(|x| &x.key).collect::<Vec<_>>(),
                "workflows": pack.workflows.iter().map(|x| &x.key).collect::<Vec<_>>(),
            }),
        });
        tx.commit().await?;
        Ok(counts)
    }

    /// The id of an optional persona given by global id or key; `NOT_FOUND`
    /// when given and unknown.
    pub async fn find_persona_id<S: AsRef<str>>(
        &self,
        p: &Principal,
        id_or_key: Option<S>,
    ) -> AppResult<Option<Uuid>> {
        match id_or_key {
            Some(k) => Ok(Some(self.find_persona(p, k.as_ref()).await?.id)),
            None => Ok(None),
        }
    }

    /// A persona by global id or catalog key (`analyst`), the tenant's own
    /// before the built-in one.
    pub async fn find_persona(&self, p: &Principal, id_or_key: &str) -> AppResult<persona::Model> {
        let q = persona::Entity::find().filter(visible(p.tenant_id));
        let found = if id_or_key.contains(':') {
            let id = ids::decode(Kind::Persona, id_or_key)?;
            q.filter(persona::Column::Id.eq(id))
                .one(&self.reader(p.tenant_id))
                .await?
        } else {
            q.filter(persona::Column::Key.eq(id_or_key))
                .all(&self.reader(p.tenant_id))
                .await?
                .into_iter()
                .min_by_key(|m| m.tenant_id == SYSTEM_TENANT)
        };
        found.ok_or_else(|| AppError::not_found("Persona", id_or_key))
    }

    /// A workflow by global id or catalog key (`greenfield-service`).
    pub async fn find_workflow(
        &self,
        p: &Principal,
        id_or_key: &str,
    ) -> AppResult<workflow::Model> {
        find_workflow_in(&self.reader(p.tenant_id), p, id_or_key).await
    }
}

/// [`Services::find_workflow`] on any connection (inside a transaction, too).
pub async fn find_workflow_in<C: sea_orm::ConnectionTrait>(
    db: &C,
    p: &Principal,
    id_or_key: &str,
) -> AppResult<workflow::Model> {
    let q = workflow::Entity::find().filter(
        Condition::any()
            .add(workflow::Column::TenantId.eq(p.tenant_id))
            .add(workflow::Column::TenantId.eq(SYSTEM_TENANT)),
    );
    let found = if id_or_key.contains(':') {
        let id = ids::decode(Kind::Workflow, id_or_key)?;
        q.filter(workflow::Column::Id.eq(id)).one(db).await?
    } else {
        q.filter(workflow::Column::Key.eq(id_or_key))
            .all(db)
            .await?
            .into_iter()
            .min_by_key(|m| m.tenant_id == SYSTEM_TENANT)
    };
    found.ok_or_else(|| AppError::not_found("Workflow", id_or_key))
}

async fn write_pack(
    tx: &Tx<'_>,
    tenant: Uuid,
    pack: &CatalogPack,
    builtin: bool,
) -> AppResult<ImportCounts> {
    for def in &pack.personas {
        upsert_persona(tx, tenant, def, builtin).await?;
    }
    for def in &pack.teams {
        upsert_team(tx, tenant, def, builtin).await?;
    }
    for def in &pack.workflows {
        upsert_workflow(tx, tenant, def, builtin).await?;
    }
    Ok(ImportCounts {
        personas: pack.personas.len(),
        teams: pack.teams.len(),
        workflows: pack.workflows.len(),
    })
}

async fn upsert_persona(tx: &Tx<'_>, tenant: Uuid, d: &PersonaDef, builtin: bool) -> AppResult<()> {
    let existing = persona::Entity::find()
        .filter(persona::Column::TenantId.eq(tenant))
        .filter(persona::Column::Key.eq(&d.key))
        .one(&**tx)
        .await?;
    let t = now();
    let is_new = existing.is_none();
    let mut am = match existing {
        Some(m) => m.into_active_model(),
        None => persona::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(tenant),
            key: Set(d.key.clone()),
            created_at: Set(t),
            ..Default::default()
        },
    };
    am.name = Set(d.name.clone());
    am.title = Set(d.title.clone());
    am.icon = Set(d.icon.clone());
    am.role = Set(d.role.clone());
    am.when_to_use = Set(d.when_to_use.clone());
    am.description = Set(d.description.clone());
    am.capabilities = Set(json!(d.capabilities));
    am.builtin = Set(builtin);
    am.updated_at = Set(t);
    if is_new {
        am.insert(&**tx).await?;
    } else {
        am.update(&**tx).await?;
    }
    Ok(())
}

async fn upsert_team(tx: &Tx<'_>, tenant: Uuid, d: &TeamDef, builtin: bool) -> AppResult<()> {
    let existing = team::Entity::find()
        .filter(team::Column::TenantId.eq(tenant))
        .filter(team::Column::Key.eq(&d.key))
        .one(&**tx)
        .await?;
    let t = now();
    let id = existing.as_ref().map(|m| m.id).unwrap_or_else(Uuid::now_v7);
    let is_new = existing.is_none();
    let mut am = match existing {
        Some(m) => m.into_active_model(),
        None => team::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant),
            key: Set(d.key.clone()),
            created_at: Set(t),
            ..Default::default()
        },
    };
    am.name = Set(d.name.clone());
    am.icon = Set(d.icon.clone());
    am.description = Set(d.description.clone());
    am.builtin = Set(builtin);
    am.updated_at = Set(t);
    if is_new {
        am.insert(&**tx).await?;
    } else {
        am.update(&**tx).await?;
    }
    team_member::Entity::delete_many()
        .filter(team_member::Column::TeamId.eq(id))
        .exec(&**tx)
        .await?;
    team_workflow::Entity::delete_many()
        .filter(team_workflow::Column::TeamId.eq(id))
        .exec(&**tx)
        .await?;
    if !d.persona_keys.is_empty() {
        team_member::Entity::insert_many(d.persona_keys.iter().enumerate().map(|(i, k)| {
            team_member::ActiveModel {
                team_id: Set(id),
                tenant_id: Set(tenant),
                position: Set(i as i32),
                persona_key: Set(k.clone()),
            }
        }))
        .exec(&**tx)
        .await?;
    }
    if !d.workflow_keys.is_empty() {
        team_workflow::Entity::insert_many(d.workflow_keys.iter().enumerate().map(|(i, k)| {
            team_workflow::ActiveModel {
                team_id: Set(id),
                tenant_id: Set(tenant),
                position: Set(i as i32),
                workflow_key: Set(k.clone()),
            }
        }))
        .exec(&**tx)
        .await?;
    }
    Ok(())
}

async fn upsert_workflow(
    tx: &Tx<'_>,
    tenant: Uuid,
    d: &WorkflowDef,
    builtin: bool,
) -> AppResult<()> {
    let existing = workflow::Entity::find()
        .filter(workflow::Column::TenantId.eq(tenant))
        .filter(workflow::Column::Key.eq(&d.key))
        .one(&**tx)
        .await?;
    let t = now();
    let id = existing.as_ref().map(|m| m.id).unwrap_or_else(Uuid::now_v7);
    let is_new = existing.is_none();
    let mut am = match existing {
        Some(m) => m.into_active_model(),
        None => workflow::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant),
            key: Set(d.key.clone()),
            created_at: Set(t),
            ..Default::default()
        },
    };
    am.name = Set(d.name.clone());
    am.description = Set(d.description.clone());
    am.kind = Set(d.kind.clone());
    am.project_types = Set(json!(d.project_types));
    am.builtin = Set(builtin);
    am.updated_at = Set(t);
    if is_new {
        am.insert(&**tx).await?;
    } else {
        am.update(&**tx).await?;
    }
    // Steps are matched by key and updated in place, so tasks created from
    // them keep their step (and its gate and artifacts) across re-imports;
    // only steps whose key disappeared are deleted.
    let mut old: HashMap<String, workflow_step::Model> = workflow_step::Entity::find()
        .filter(workflow_step::Column::WorkflowId.eq(id))
        .all(&**tx)
        .await?
        .into_iter()
        .map(|m| (m.key.clone(), m))
        .collect();
    for st in &d.steps {
        let existing = old.remove(&st.key);
        let is_new = existing.is_none();
        let mut am = match existing {
            Some(m) => m.into_active_model(),
            None => workflow_step::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(tenant),
                workflow_id: Set(id),
                key: Set(st.key.clone()),
                ..Default::default()
            },
        };
        am.position = Set(st.position);
        am.agent = Set(st.agent.clone());
        am.persona_key = Set(st.persona_key.clone());
        am.action = Set(st.action.clone());
        am.creates = Set(json!(st.creates));
        am.requires = Set(json!(st.requires));
        am.updates = Set(json!(st.updates));
        am.optional = Set(st.optional);
        am.condition = Set(st.condition.clone());
        am.repeats = Set(st.repeats.clone());
        am.requires_approval = Set(st.requires_approval);
        am.is_control = Set(st.is_control);
        am.notes = Set(st.notes.clone());
        if is_new {
            am.insert(&**tx).await?;
        } else {
            am.update(&**tx).await?;
        }
    }
    if !old.is_empty() {
        workflow_step::Entity::delete_many()
            .filter(workflow_step::Column::Id.is_in(old.into_values().map(|m| m.id)))
            .exec(&**tx)
            .await?;
    }
    Ok(())
}

/// FNV-1a, enough to notice that the compiled-in catalog changed.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Services {
    /// The caller's own teams with these keys.
    pub async fn find_teams(
        &self,
        p: &Principal,
        keys: Vec<String>,
    ) -> AppResult<Vec<team::Model>> {
        Ok(team::Entity::find()
            .filter(team::Column::TenantId.eq(p.tenant_id))
            .filter(team::Column::Key.is_in(keys))
            .order_by_asc(team::Column::Key)
            .all(&self.reader(p.tenant_id))
            .await?)
    }
}
