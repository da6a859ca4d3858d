//! The catalog: personas, teams and workflows (built in or imported from a V4-format pack), their queries and `importCatalog`.

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use uuid::Uuid;

use super::limits::Counted;
use super::mutation::keyed;
use super::types::*;
use super::{ADMIN, loaders, principal, services};
use crate::entity::{persona, team, workflow, workflow_step};
use crate::error::AppError;
use crate::ids::Kind;
use crate::service::catalog::CatalogTable;
use crate::service::query::PageAt;

/// An agent role: built in (visible to every tenant) or the tenant's own.
#[derive(async_graphql::Description)]
pub struct Persona(pub std::sync::Arc<persona::Model>);

#[Object(use_type_description)]
impl Persona {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::Persona, self.0.id)
    }
    /// Catalog key, e.g. `analyst`; accepted wherever a persona id is.
    async fn key(&self) -> Counted<&str> {
        Counted(&self.0.key)
    }
    /// The persona's name, e.g. `Mary`.
    async fn name(&self) -> Counted<&str> {
        Counted(&self.0.name)
    }
    /// Job title, e.g. `Business Analyst`.
    async fn title(&self) -> Counted<&str> {
        Counted(&self.0.title)
    }
    /// An emoji icon.
    async fn icon(&self) -> Counted<Option<&str>> {
        Counted(self.0.icon.as_deref())
    }
    /// The role it plays.
    async fn role(&self) -> Counted<Option<&str>> {
        Counted(self.0.role.as_deref())
    }
    /// When to call on it.
    async fn when_to_use(&self) -> Counted<Option<&str>> {
        Counted(self.0.when_to_use.as_deref())
    }
    /// A short description.
    async fn description(&self) -> Counted<Option<&str>> {
        Counted(self.0.description.as_deref())
    }
    /// Names of the commands it offers.
    async fn capabilities(&self) -> Counted<Vec<String>> {
        Counted(crate::service::json_strings(&self.0.capabilities))
    }
    /// Whether it comes with Cerebral (true) or was imported by the tenant.
    async fn builtin(&self) -> bool {
        self.0.builtin
    }
}

/// A named bundle of personas and workflows.
#[derive(async_graphql::Description)]
pub struct Team(pub team::Model);

#[Object(use_type_description)]
impl Team {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::Team, self.0.id)
    }
    /// Catalog key, e.g. `team-fullstack`.
    async fn key(&self) -> Counted<&str> {
        Counted(&self.0.key)
    }
    /// Display name.
    async fn name(&self) -> Counted<&str> {
        Counted(&self.0.name)
    }
    /// An emoji icon.
    async fn icon(&self) -> Counted<Option<&str>> {
        Counted(self.0.icon.as_deref())
    }
    /// A short description.
    async fn description(&self) -> Counted<Option<&str>> {
        Counted(self.0.description.as_deref())
    }
    /// Whether it comes with Cerebral.
    async fn builtin(&self) -> bool {
        self.0.builtin
    }
    /// Members in team order; keys that name no known persona are left out.
    async fn personas(&self, ctx: &Context<'_>) -> Result<Counted<Vec<Persona>>> {
        let keys = team_keys(ctx, self.0.id, |(personas, _)| personas).await?;
        in_key_order(&loaders(ctx).personas_by_key, keys, Persona).await
    }
    /// Workflows in team order; unknown keys are left out.
    async fn workflows(&self, ctx: &Context<'_>) -> Result<Counted<Vec<Workflow>>> {
        let keys = team_keys(ctx, self.0.id, |(_, workflows)| workflows).await?;
        in_key_order(&loaders(ctx).workflows_by_key, keys, Workflow).await
    }
}

/// A workflow definition: ordered steps, each a persona producing artifacts.
#[derive(async_graphql::Description)]
pub struct Workflow(pub workflow::Model);

#[Object(use_type_description)]
impl Workflow {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::Workflow, self.0.id)
    }
    /// Catalog key, e.g. `greenfield-service`; accepted wherever a workflow id is.
    async fn key(&self) -> Counted<&str> {
        Counted(&self.0.key)
    }
    /// Display name.
    async fn name(&self) -> Counted<&str> {
        Counted(&self.0.name)
    }
    /// A short description.
    async fn description(&self) -> Counted<Option<&str>> {
        Counted(self.0.description.as_deref())
    }
    /// `greenfield`, `brownfield` or another kind named by the pack.
    async fn kind(&self) -> Counted<Option<&str>> {
        Counted(self.0.kind.as_deref())
    }
    /// Project types it suits, e.g. `rest-api`.
    async fn project_types(&self) -> Counted<Vec<String>> {
        Counted(crate::service::json_strings(&self.0.project_types))
    }
    /// Whether it comes with Cerebral.
    async fn builtin(&self) -> bool {
        self.0.builtin
    }
    /// Steps in order (a definition has tens of steps, not thousands).
    async fn steps(&self, ctx: &Context<'_>) -> Result<Counted<Vec<WorkflowStep>>> {
        let steps = one(&loaders(ctx).workflow_steps, self.0.id).await?;
        Ok(Counted(
            steps
                .unwrap_or_default()
                .into_iter()
                .map(WorkflowStep)
                .collect(),
        ))
    }
}

/// One step of a workflow.
#[derive(async_graphql::Description)]
pub struct WorkflowStep(pub workflow_step::Model);

#[Object(use_type_description)]
impl WorkflowStep {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::WorkflowStep, self.0.id)
    }
    /// Key unique within the workflow, e.g. `pm-prd-md`.
    async fn key(&self) -> Counted<&str> {
        Counted(&self.0.key)
    }
    /// 0-based order.
    async fn position(&self) -> i32 {
        self.0.position
    }
    /// The agent as the definition names it, e.g. `analyst/pm` or `various`.
    async fn agent(&self) -> Counted<Option<&str>> {
        Counted(self.0.agent.as_deref())
    }
    /// The persona that does it (the first one named).
    async fn persona(&self, ctx: &Context<'_>) -> Result<Option<Persona>> {
        let Some(k) = self.0.persona_key.clone() else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).personas_by_key, k).await?.map(Persona))
    }
    /// What it does, e.g. `create_story` or `validate`.
    async fn action(&self) -> Counted<Option<&str>> {
        Counted(self.0.action.as_deref())
    }
    /// Artifacts it creates, e.g. `prd.md`.
    async fn creates(&self) -> Counted<Vec<String>> {
        Counted(crate::service::json_strings(&self.0.creates))
    }
    /// Artifacts it needs.
    async fn requires(&self) -> Counted<Vec<String>> {
        Counted(crate::service::json_strings(&self.0.requires))
    }
    /// Artifacts it updates.
    async fn updates(&self) -> Counted<Vec<String>> {
        Counted(crate::service::json_strings(&self.0.updates))
    }
    /// Whether the step may be skipped.
    async fn optional(&self) -> bool {
        self.0.optional
    }
    /// The condition under which it runs, if any.
    async fn condition(&self) -> Counted<Option<&str>> {
        Counted(self.0.condition.as_deref())
    }
    /// How it repeats, e.g. `for_each_epic`.
    async fn repeats(&self) -> Counted<Option<&str>> {
        Counted(self.0.repeats.as_deref())
    }
    /// Whether a human must approve its outcome (a HITL gate).
    async fn requires_approval(&self) -> bool {
        self.0.requires_approval
    }
    /// Whether it is a control marker (e.g. `workflow_end`) rather than work.
    async fn is_control(&self) -> bool {
        self.0.is_control
    }
    /// Notes of the definition (imported packs only).
    async fn notes(&self) -> Counted<Option<&str>> {
        Counted(self.0.notes.as_deref())
    }
}

/// The persona or workflow keys of a team, in team order.
async fn team_keys(
    ctx: &Context<'_>,
    team: Uuid,
    pick: impl FnOnce((Vec<String>, Vec<String>)) -> Vec<String>,
) -> Result<Vec<String>> {
    let both = loaders(ctx)
        .team_keys
        .load_one(team)
        .await
        .map_err(db_err)?
        .unwrap_or_default();
    Ok(pick(both))
}

/// The rows `keys` name, in their order; keys that name nothing are left
/// out.
async fn in_key_order<L, T>(
    loader: &async_graphql::dataloader::DataLoader<L>,
    keys: Vec<String>,
    wrap: impl Fn(L::Value) -> T,
) -> Result<Counted<Vec<T>>>
where
    L: async_graphql::dataloader::Loader<String, Error = loaders::LoadError>,
{
    let mut found = loader
        .load_many(keys.iter().cloned())
        .await
        .map_err(db_err)?;
    Ok(Counted(
        keys.iter()
            .filter_map(|k| found.remove(k))
            .map(wrap)
            .collect(),
    ))
}

/// One page of a catalog list as the caller sees it; the key is the
/// cursor.
async fn catalog_list<E, T>(
    ctx: &Context<'_>,
    first: Option<i32>,
    after: Option<String>,
    wrap: impl Fn(E::Model) -> T,
) -> Result<Conn<T>>
where
    E: CatalogTable,
    E::Model: Sync,
    T: async_graphql::ContainerType,
{
    let has_previous = after.is_some();
    let pg = services(ctx)
        .catalog::<E>(principal(ctx), PageAt { first, after })
        .await?;
    Ok(page_connection(
        pg,
        has_previous,
        |m| E::key(m).to_owned(),
        wrap,
    ))
}

/// A catalog entry looked up by id or key, `None` when there is none (a
/// bad id is still an error).
fn found<M, T>(lookup: Result<M, AppError>, wrap: impl FnOnce(M) -> T) -> Result<Option<T>> {
    match lookup {
        Ok(m) => Ok(Some(wrap(m))),
        Err(AppError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One file of a catalog pack.
#[derive(InputObject)]
pub struct CatalogFileInput {
    /// Path inside the pack, e.g. `agents/po.md`, `agent-teams/team-all.yaml`,
    /// `workflows/greenfield-service.yaml`; the folder decides the kind.
    pub path: String,
    /// The file's text.
    pub content: String,
}

/// Input of `importCatalog`.
#[derive(InputObject)]
pub struct ImportCatalogInput {
    /// The files of a V4-format pack (at most 500).
    pub files: Vec<CatalogFileInput>,
    /// Makes the request safe to retry: a repeat with the same key and the
    /// same files writes nothing again and returns the catalog entries; the
    /// same key with other files is `CONFLICT`. Per tenant, kept ≥ 24 h.
    pub idempotency_key: Option<String>,
}

/// A file that could not be imported.
#[derive(SimpleObject)]
pub struct ImportFileError {
    /// The file's path as given.
    pub path: String,
    /// Why it was refused.
    pub reason: String,
}

/// Result of `importCatalog`.
#[derive(SimpleObject)]
pub struct ImportCatalogPayload {
    /// Personas inserted or updated.
    pub personas: Vec<Persona>,
    /// Teams inserted or updated.
    pub teams: Vec<Team>,
    /// Workflows inserted or updated.
    pub workflows: Vec<Workflow>,
    /// Files refused, with the reason; nothing of them was written.
    pub errors: Vec<ImportFileError>,
}

/// Catalog queries.
#[derive(Default)]
pub struct CatalogQuery;

#[Object]
impl CatalogQuery {
    /// Every persona the caller can use: built-ins and the tenant's own.
    /// Ordered by key; the cursor is the key. A tenant's own entry hides a
    /// built-in one with the same key.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn personas(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Key of the last entry already seen.")] after: Option<String>,
    ) -> Result<Conn<Persona>> {
        catalog_list::<persona::Entity, _>(ctx, first, after, |m| Persona(m.into())).await
    }

    /// A persona by global id or catalog key (e.g. `analyst`).
    async fn persona(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `Persona` id or key.")] id: ID,
    ) -> Result<Option<Persona>> {
        found(services(ctx).find_persona(principal(ctx), &id).await, |m| {
            Persona(m.into())
        })
    }

    /// Every team the caller can use.
    /// Ordered by key; the cursor is the key. A tenant's own entry hides a
    /// built-in one with the same key.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn teams(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Key of the last entry already seen.")] after: Option<String>,
    ) -> Result<Conn<Team>> {
        catalog_list::<team::Entity, _>(ctx, first, after, Team).await
    }

    /// Every workflow the caller can use.
    /// Ordered by key; the cursor is the key. A tenant's own entry hides a
    /// built-in one with the same key.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn workflows(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 0–100; default 20.")] first: Option<i32>,
        #[graphql(desc = "Key of the last entry already seen.")] after: Option<String>,
    ) -> Result<Conn<Workflow>> {
        catalog_list::<workflow::Entity, _>(ctx, first, after, Workflow).await
    }

    /// A workflow by global id or catalog key (e.g. `greenfield-service`).
    async fn workflow(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A `Workflow` id or key.")] id: ID,
    ) -> Result<Option<Workflow>> {
        found(
            services(ctx).find_workflow(principal(ctx), &id).await,
            Workflow,
        )
    }
}

fields! {
    /// Catalog mutations.
    object CatalogMutation;

    /// Imports personas, teams and workflows from the files of a V4-format
    /// pack (an upsert by key, so repeating it is harmless and needs no
    /// idempotency key) into the caller's tenant (insert or update by key). A malformed
    /// file is reported in `errors` and contributes nothing; the others
    /// still import. So is a file with YAML anchors or aliases (their
    /// expansion has no bound), a file over `CEREBRAL_MAX_CATALOG_FILE_BYTES`
    /// and the files past `CEREBRAL_MAX_CATALOG_IMPORT_BYTES` in all.
    ///
    /// Roles: admin.
    mutation ADMIN import_catalog(ctx, input: ImportCatalogInput) -> ImportCatalogPayload {
        if input.files.len() > 500 {
            return Err(crate::error::AppError::bad_input("at most 500 files per import").into());
        }
        let files: Vec<(String, String)> = input
            .files
            .into_iter()
            .map(|f| (f.path, f.content))
            .collect();
        let s = services(ctx);
        // Parsing is CPU work (and a file may be large): off the async
        // workers, within the catalog limits.
        let limits = s.settings().catalog_limits;
        let report =
            tokio::task::spawn_blocking(move || crate::catalog::parse_files_with(&files, &limits))
                .await
                .map_err(|e| crate::error::AppError::Internal(e.into()))?;
        let p = principal(ctx);
        let has_items = !(report.pack.personas.is_empty()
            && report.pack.teams.is_empty()
            && report.pack.workflows.is_empty());
        let pack = &report.pack;
        // The answer is read back from the catalog either way, so a replay
        // only has to skip the write.
        keyed::<(), _, _, _>(ctx, input.idempotency_key.as_deref(), |s| async move {
            if has_items {
                s.import_catalog(p, pack).await?;
            }
            Ok(())
        })
        .await?;
        let mut personas = vec![];
        for d in &report.pack.personas {
            personas.push(Persona(s.find_persona(p, &d.key).await?.into()));
        }
        let mut workflows = vec![];
        for d in &report.pack.workflows {
            workflows.push(Workflow(s.find_workflow(p, &d.key).await?));
        }
        let teams = s
            .find_teams(p, report.pack.teams.iter().map(|t| t.key.clone()).collect())
            .await?
            .into_iter()
            .map(Team)
            .collect();
        Ok(ImportCatalogPayload {
            personas,
            teams,
            workflows,
            errors: report
                .errors
                .into_iter()
                .map(|e| ImportFileError {
                    path: e.path,
                    reason: e.reason,
                })
                .collect(),
        })
    }
}
