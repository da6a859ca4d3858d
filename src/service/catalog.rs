//! The catalog: personas, teams and workflows, built in or imported.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::SimpleExpr;
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;
use uuid::Uuid;

use super::query::{Count, Page, PageAt, page_size};
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

/// A table of the catalog. Personas, teams and workflows have one shape —
/// rows named by a key per tenant, the built-in ones under the system
/// tenant, a tenant's own row hiding a built-in one with the same key — so
/// finding, listing and upserting them is written once, over this trait.
pub trait CatalogTable: EntityTrait {
    /// The kind of the table's global ids, and the noun of its `NOT_FOUND`.
    const KIND: Kind;
    /// The id column.
    const ID: Self::Column;
    /// The tenant column.
    const TENANT: Self::Column;
    /// The catalog key column.
    const KEY: Self::Column;
    /// The row's catalog key, which is also its cursor in a list.
    fn key(m: &Self::Model) -> &str;
    /// The tenant the row belongs to.
    fn tenant(m: &Self::Model) -> Uuid;
    /// The row's id.
    fn id(m: &Self::Model) -> Uuid;
    /// A new row: the columns that later imports of the same key keep.
    fn new_row(id: Uuid, tenant: Uuid, key: &str, at: DateTime<Utc>) -> Self::ActiveModel;
    /// Marks a row as written by an import, built in or not, at `at`.
    fn stamp(am: &mut Self::ActiveModel, builtin: bool, at: DateTime<Utc>);
}

/// The three catalog tables have the same identifying columns.
macro_rules! catalog_table {
    ($($m:ident => $kind:ident),*) => {$(
        impl CatalogTable for $m::Entity {
            const KIND: Kind = Kind::$kind;
            const ID: $m::Column = $m::Column::Id;
            const TENANT: $m::Column = $m::Column::TenantId;
            const KEY: $m::Column = $m::Column::Key;
            fn key(m: &$m::Model) -> &str {
                &m.key
            }
            fn tenant(m: &$m::Model) -> Uuid {
                m.tenant_id
            }
            fn id(m: &$m::Model) -> Uuid {
                m.id
            }
            fn new_row(id: Uuid, tenant: Uuid, key: &str, at: DateTime<Utc>) -> $m::ActiveModel {
                $m::ActiveModel {
                    id: Set(id),
                    tenant_id: Set(tenant),
                    key: Set(key.to_owned()),
                    created_at: Set(at),
                    ..Default::default()
                }
            }
            fn stamp(am: &mut $m::ActiveModel, builtin: bool, at: DateTime<Utc>) {
                am.builtin = Set(builtin);
                am.updated_at = Set(at);
            }
        }
    )*};
}

catalog_table!(persona => Persona, team => Team, workflow => Workflow);

/// Rows of `tenant` and of the built-in catalog.
pub fn visible<E: CatalogTable>(tenant: Uuid) -> SimpleExpr {
    E::TENANT.is_in([tenant, SYSTEM_TENANT])
}

impl Services {
    /// A team visible to the caller (its tenant's or built in), by id.
    pub async fn find_team(&self, p: &Principal, id: Uuid) -> AppResult<Option<team::Model>> {
        Ok(team::Entity::find_by_id(id)
            .filter(visible::<team::Entity>(p.tenant_id))
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
        self.write_pack(
            &Principal::system(),
            &pack,
            true,
            |counts| json!({ "counts": counts, "builtin": true, "fingerprint": fingerprint }),
        )
        .await?;
        Ok(true)
    }

    /// Upserts a parsed pack into the caller's tenant, all of it or nothing.
    #[tracing::instrument(skip(self, pack), fields(tenant = %p.tenant_id))]
    pub async fn import_catalog(
        &self,
        p: &Principal,
        pack: &CatalogPack,
    ) -> AppResult<ImportCounts> {
        self.write_pack(p, pack, false, |counts| {
            json!({
                "counts": counts,
                "personas": pack.personas.iter().map(|x| &x.key).collect::<Vec<_>>(),
                "teams": pack.teams.iter().map(|x| &x.key).collect::<Vec<_>>(),
                "workflows": pack.workflows.iter().map(|x| &x.key).collect::<Vec<_>>(),
            })
        })
        .await
    }

    /// Upserts `pack` into the tenant of `p` in one transaction with its
    /// `CATALOG_IMPORTED` event, whose payload `payload` makes from the counts.
    async fn write_pack(
        &self,
        p: &Principal,
        pack: &CatalogPack,
        builtin: bool,
        payload: impl FnOnce(&ImportCounts) -> serde_json::Value,
    ) -> AppResult<ImportCounts> {
        let mut tx = self.begin(p).await?;
        let tenant = p.tenant_id;
        for d in &pack.personas {
            upsert_persona(&tx, tenant, d, builtin).await?;
        }
        for d in &pack.teams {
            upsert_team(&tx, tenant, d, builtin).await?;
        }
        for d in &pack.workflows {
            upsert_workflow(&tx, tenant, d, builtin).await?;
        }
        let counts = ImportCounts {
            personas: pack.personas.len(),
            teams: pack.teams.len(),
            workflows: pack.workflows.len(),
        };
        tx.append(NewEvent {
            event_type: EventType::CatalogImported,
            project_id: None,
            task_id: None,
            subject: Subject::Catalog,
            subject_id: tenant,
            payload: payload(&counts),
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
        find_in::<persona::Entity, _>(&self.reader(p.tenant_id), p, id_or_key).await
    }

    /// A workflow by global id or catalog key (`greenfield-service`).
    pub async fn find_workflow(
        &self,
        p: &Principal,
        id_or_key: &str,
    ) -> AppResult<workflow::Model> {
        find_in::<workflow::Entity, _>(&self.reader(p.tenant_id), p, id_or_key).await
    }

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

    /// One page of a catalog table as the caller sees it, ordered by key
    /// (the cursor): the built-in rows and the tenant's own, an own row
    /// hiding a built-in one with the same key; `total` counts distinct
    /// keys.
    pub async fn catalog<E>(&self, p: &Principal, at: PageAt<String>) -> AppResult<Page<E::Model>>
    where
        E: CatalogTable,
        E::Model: Sync,
    {
        let db = self.reader(p.tenant_id);
        let limit = page_size(at.first)? as usize;
        let base = E::find().filter(visible::<E>(p.tenant_id));
        let total = Count::of(
            db.get_database_backend(),
            &base.clone().select_only().column(E::KEY).distinct(),
        );
        let mut q = base;
        if let Some(a) = at.after {
            q = q.filter(E::KEY.gt(a));
        }
        // At most two rows share a key (own and built-in).
        let rows = q
            .order_by_asc(E::KEY)
            .limit((limit as u64 + 1) * 2)
            .all(&db)
            .await?;
        let is_own = |m: &E::Model| E::tenant(m) == p.tenant_id;
        let own: HashSet<String> = rows
            .iter()
            .filter(|m| is_own(m))
            .map(|m| E::key(m).to_owned())
            .collect();
        let mut items: Vec<E::Model> = rows
            .into_iter()
            .filter(|m| is_own(m) || !own.contains(E::key(m)))
            .collect();
        let has_next = items.len() > limit;
        items.truncate(limit);
        Ok(Page {
            items,
            has_next,
            total,
        })
    }
}

/// A catalog row visible to `p` by global id or catalog key, the tenant's
/// own before the built-in one; on any connection (inside a transaction,
/// too). `NOT_FOUND` when there is none.
pub async fn find_in<E: CatalogTable, C: ConnectionTrait>(
    db: &C,
    p: &Principal,
    id_or_key: &str,
) -> AppResult<E::Model> {
    let q = E::find().filter(visible::<E>(p.tenant_id));
    let found = if id_or_key.contains(':') {
        let id = ids::decode(E::KIND, id_or_key)?;
        q.filter(E::ID.eq(id)).one(db).await?
    } else {
        q.filter(E::KEY.eq(id_or_key))
            .all(db)
            .await?
            .into_iter()
            .min_by_key(|m| E::tenant(m) == SYSTEM_TENANT)
    };
    found.ok_or_else(|| AppError::not_found(E::KIND.name(), id_or_key))
}

/// Inserts or updates the row of `tenant` named `key`, `fill` setting the
/// columns its definition gives; returns the row's id, which an update
/// keeps.
async fn upsert<E>(
    tx: &Tx<'_>,
    tenant: Uuid,
    key: &str,
    builtin: bool,
    fill: impl FnOnce(&mut E::ActiveModel),
) -> AppResult<Uuid>
where
    E: CatalogTable,
    E::Model: IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: ActiveModelBehavior + Send,
{
    let existing = E::find()
        .filter(E::TENANT.eq(tenant))
        .filter(E::KEY.eq(key))
        .one(&**tx)
        .await?;
    let t = now();
    let (id, mut am, is_new) = match existing {
        Some(m) => (E::id(&m), m.into_active_model(), false),
        None => {
            let id = Uuid::now_v7();
            (id, E::new_row(id, tenant, key, t), true)
        }
    };
    fill(&mut am);
    E::stamp(&mut am, builtin, t);
    write(tx, am, is_new).await?;
    Ok(id)
}

/// Inserts `am` as a new row or writes its changes to the existing one.
async fn write<A>(tx: &Tx<'_>, am: A, is_new: bool) -> AppResult<()>
where
    A: ActiveModelTrait + ActiveModelBehavior + Send,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
{
    if is_new {
        am.insert(&**tx).await?;
    } else {
        am.update(&**tx).await?;
    }
    Ok(())
}

async fn upsert_persona(tx: &Tx<'_>, tenant: Uuid, d: &PersonaDef, builtin: bool) -> AppResult<()> {
    upsert::<persona::Entity>(tx, tenant, &d.key, builtin, |am| {
        am.name = Set(d.name.clone());
        am.title = Set(d.title.clone());
        am.icon = Set(d.icon.clone());
        am.role = Set(d.role.clone());
        am.when_to_use = Set(d.when_to_use.clone());
        am.description = Set(d.description.clone());
        am.capabilities = Set(json!(d.capabilities));
    })
    .await?;
    Ok(())
}

async fn upsert_team(tx: &Tx<'_>, tenant: Uuid, d: &TeamDef, builtin: bool) -> AppResult<()> {
    let id = upsert::<team::Entity>(tx, tenant, &d.key, builtin, |am| {
        am.name = Set(d.name.clone());
        am.icon = Set(d.icon.clone());
        am.description = Set(d.description.clone());
    })
    .await?;
    let member = |(i, k): (usize, &String)| team_member::ActiveModel {
        team_id: Set(id),
        tenant_id: Set(tenant),
        position: Set(i as i32),
        persona_key: Set(k.clone()),
    };
    let workflow = |(i, k): (usize, &String)| team_workflow::ActiveModel {
        team_id: Set(id),
        tenant_id: Set(tenant),
        position: Set(i as i32),
        workflow_key: Set(k.clone()),
    };
    replace_rows(
        tx,
        team_member::Column::TeamId,
        id,
        d.persona_keys.iter().enumerate().map(member),
    )
    .await?;
    replace_rows(
        tx,
        team_workflow::Column::TeamId,
        id,
        d.workflow_keys.iter().enumerate().map(workflow),
    )
    .await
}

/// Replaces the rows of a team's ordered list (its members or its
/// workflows) with `rows`.
async fn replace_rows<A>(
    tx: &Tx<'_>,
    team_col: <A::Entity as EntityTrait>::Column,
    team: Uuid,
    rows: impl ExactSizeIterator<Item = A>,
) -> AppResult<()>
where
    A: ActiveModelTrait + Send,
{
    <A::Entity as EntityTrait>::delete_many()
        .filter(team_col.eq(team))
        .exec(&**tx)
        .await?;
    if rows.len() > 0 {
        <A::Entity as EntityTrait>::insert_many(rows)
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
    let id = upsert::<workflow::Entity>(tx, tenant, &d.key, builtin, |am| {
        am.name = Set(d.name.clone());
        am.description = Set(d.description.clone());
        am.kind = Set(d.kind.clone());
        am.project_types = Set(json!(d.project_types));
    })
    .await?;
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
        write(tx, am, is_new).await?;
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
