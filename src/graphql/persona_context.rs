//! Persona contexts: a persona's state and history within a session, their verbs, export and import.

use async_graphql::{Context, ID, InputObject, Json, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};

use serde_json::Value;

use super::limits::Counted;
use super::mutation::keyed;
use super::types::*;
use super::{AGENT_OR_OPERATOR, loaders, principal, services};
use crate::entity::persona_context;
use crate::ids::{self, Kind};

/// One persona's context inside one session.
#[derive(async_graphql::Description)]
pub struct PersonaContext(pub persona_context::Model);

#[Object(use_type_description)]
impl PersonaContext {
    /// Global id.
    pub(crate) async fn id(&self) -> ID {
        encode(Kind::PersonaContext, self.0.id)
    }
    /// The persona.
    async fn persona(&self, ctx: &Context<'_>) -> Result<Option<Persona>> {
        Ok(one(&loaders(ctx).personas, self.0.persona_id)
            .await?
            .map(Persona))
    }
    /// The enclosing context, when contexts nest.
    async fn parent(&self, ctx: &Context<'_>) -> Result<Option<PersonaContext>> {
        let Some(id) = self.0.parent_id else {
            return Ok(None);
        };
        Ok(one(&loaders(ctx).contexts, id).await?.map(PersonaContext))
    }
    /// Key-value state (a JSON object).
    async fn state(&self) -> Counted<Json<Value>> {
        Counted(Json(self.0.state.clone()))
    }
    /// Retained conversation history, oldest first (bounded; the oldest
    /// entries are dropped beyond the configured maximum).
    async fn history(&self) -> Counted<Json<Value>> {
        Counted(Json(self.0.history.clone()))
    }
    /// Entries currently retained in `history`.
    async fn history_count(&self) -> i64 {
        self.0
            .history
            .as_array()
            .map(|a| a.len() as i64)
            .unwrap_or(0)
    }
    /// Entries ever appended, dropped ones included.
    async fn history_total(&self) -> i64 {
        self.0.history_total
    }
    /// The tool the persona is using.
    async fn active_tool(&self) -> Counted<Option<&str>> {
        Counted(self.0.active_tool.as_deref())
    }
    /// The workflow the persona is following.
    async fn active_workflow(&self) -> Counted<Option<&str>> {
        Counted(self.0.active_workflow.as_deref())
    }
    /// Last time it was switched to or changed.
    async fn last_active_at(&self) -> DateTime<Utc> {
        self.0.last_active_at
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

keyed_input!(
    /// Input of `updatePersonaContext`.
    UpdatePersonaContextInput {
        /// The context.
        context_id: ID,
        /// An RFC 7386 JSON merge patch applied to the state (`null` removes a key).
        state_patch: Json<Value>,
        /// The tool the persona is now using.
        active_tool: Option<String>,
    }
);

keyed_input!(
    /// Input of `appendPersonaContextHistory`.
    AppendPersonaContextHistoryInput {
        /// The context.
        context_id: ID,
        /// The entry, any JSON (e.g. `{"role": "user", "content": "…"}`).
        entry: Json<Value>,
    }
);

payload!(
    /// Result of the persona context verbs.
    PersonaContextPayload {
        /// The context after the change.
        context: PersonaContext,
    }
);

/// Input of `exportPersonaContext`.
#[derive(InputObject)]
pub struct ExportPersonaContextInput {
    /// The context.
    pub context_id: ID,
    /// gzip the JSON before base64; default false.
    #[graphql(default)]
    pub compress: bool,
}

/// A portable copy of a persona context.
#[derive(SimpleObject, InputObject)]
#[graphql(input_name = "PersonaContextSnapshotInput")]
pub struct PersonaContextSnapshot {
    /// The snapshot: JSON (gzip-compressed when `compressed`), base64.
    pub data: String,
    /// Whether `data` holds gzip-compressed JSON.
    pub compressed: bool,
    /// `sha256:` + lower-case hex of the uncompressed JSON; checked on import.
    pub checksum: String,
    /// Size of the uncompressed JSON, in bytes; checked on import, where
    /// a size over `CEREBRAL_MAX_SNAPSHOT_BYTES` is refused before the
    /// data is decoded.
    pub size: i64,
}

/// Result of `exportPersonaContext`.
#[derive(SimpleObject)]
pub struct ExportPersonaContextPayload {
    /// The snapshot.
    pub snapshot: PersonaContextSnapshot,
}

keyed_input!(
    /// Input of `importPersonaContext`.
    ImportPersonaContextInput {
        /// The ACTIVE session to import into.
        session_id: ID,
        /// A snapshot as `exportPersonaContext` returned it.
        snapshot: PersonaContextSnapshot,
    }
);

fields! {
    /// PersonaContext mutations.
    object PersonaContextMutation;

    /// Exports a context (state, history, tool, workflow, persona key) as a
    /// portable snapshot with a SHA-256 checksum. Changes nothing.
    ///
    /// Roles: agent, operator, admin.
    mutation AGENT_OR_OPERATOR export_persona_context(ctx, input: ExportPersonaContextInput)
        -> ExportPersonaContextPayload {
        let id = ids::decode(Kind::PersonaContext, &input.context_id)?;
        let s = services(ctx)
            .export_context(principal(ctx), id, input.compress)
            .await?;
        Ok(ExportPersonaContextPayload {
            snapshot: PersonaContextSnapshot {
                data: s.data,
                compressed: s.compressed,
                checksum: s.checksum,
                size: s.size,
            },
        })
    }

    /// Imports a snapshot into a session, creating or replacing that
    /// persona's context there. A snapshot whose checksum or size does not
    /// match (corrupted or tampered), or whose JSON is larger than
    /// `CEREBRAL_MAX_SNAPSHOT_BYTES` once inflated, is refused with
    /// `BAD_USER_INPUT`; a history longer than `CEREBRAL_MAX_CONTEXT_HISTORY`
    /// keeps its newest entries.
    ///
    /// Roles: agent, operator, admin.
    mutation AGENT_OR_OPERATOR import_persona_context(ctx, input: ImportPersonaContextInput)
        -> PersonaContextPayload {
        let session = ids::decode(Kind::Session, &input.session_id)?;
        let snap = crate::service::persona_context::ContextSnapshot {
            data: input.snapshot.data,
            compressed: input.snapshot.compressed,
            checksum: input.snapshot.checksum,
            size: input.snapshot.size,
        };
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.import_context(principal(ctx), session, &snap).await
        })
        .await
    }

    /// Merges a patch into a context's state.
    ///
    /// Roles: agent, operator, admin.
    mutation AGENT_OR_OPERATOR update_persona_context(ctx, input: UpdatePersonaContextInput)
        -> PersonaContextPayload {
        let id = ids::decode(Kind::PersonaContext, &input.context_id)?;
        let tool = input.active_tool.map(Some);
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.update_persona_context(principal(ctx), id, input.state_patch.0, tool)
                .await
        })
        .await
    }

    /// Appends to a context's conversation history (bounded; the oldest
    /// entries are dropped beyond `CEREBRAL_MAX_CONTEXT_HISTORY`).
    ///
    /// Roles: agent, operator, admin.
    mutation AGENT_OR_OPERATOR append_persona_context_history(
        ctx,
        input: AppendPersonaContextHistoryInput
    ) -> PersonaContextPayload {
        let id = ids::decode(Kind::PersonaContext, &input.context_id)?;
        keyed(ctx, input.idempotency_key.as_deref(), |s| async move {
            s.append_context_history(principal(ctx), id, input.entry.0)
                .await
        })
        .await
    }
}
