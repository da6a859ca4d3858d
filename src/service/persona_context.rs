//! Persona contexts: a persona's state and history within a session,
//! changed by patches and appended turns, exported as a checksummed
//! snapshot and imported into another session.

use super::{EventRef, NewEvent, Services, Tx, now, with_members};
use crate::auth::Principal;
use crate::domain::{EventType, SessionStatus};
use crate::entity::{event, persona_context};
use crate::error::{AppError, AppResult};
use crate::ids::{Kind, encode};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect, Set,
};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use super::session::{load_session, require_not_overdue};

impl Services {
    /// Applies an RFC 7386 JSON merge patch to a context's state.
    #[tracing::instrument(skip(self, patch), fields(tenant = %p.tenant_id))]
    pub async fn update_persona_context(
        &self,
        p: &Principal,
        id: Uuid,
        patch: Json,
        active_tool: Option<Option<String>>,
    ) -> AppResult<(persona_context::Model, event::Model)> {
        if !patch.is_object() {
            return Err(AppError::bad_input(
                "statePatch must be a JSON object (RFC 7386 merge patch)",
            ));
        }
        // The patch travels in the event; the state it grows is fetched by id.
        self.json_within("statePatch", &patch, super::JsonLimit::Small)?;
        let mut tx = self.begin(p).await?;
        let ctx = lock_active_context(&tx, p, id).await?;
        let mut state = ctx.state.clone();
        json_patch::merge(&mut state, &patch);
        self.json_within("the patched state", &state, super::JsonLimit::Content)?;
        let t = now();
        let mut am = ctx.into_active_model();
        am.state = Set(state);
        if let Some(tool) = active_tool {
            am.active_tool = Set(tool);
        }
        am.updated_at = Set(t);
        am.last_active_at = Set(t);
        let ctx = am.update(&*tx).await?;
        let ev = context_event(&mut tx, &ctx, json!({ "statePatch": patch }));
        let done = tx.commit().await?;
        Ok((ctx, done.event(ev)))
    }

    /// Appends one entry to a context's conversation history, dropping the
    /// oldest beyond the configured bound.
    #[tracing::instrument(skip(self, entry), fields(tenant = %p.tenant_id))]
    pub async fn append_context_history(
        &self,
        p: &Principal,
        id: Uuid,
        entry: Json,
    ) -> AppResult<(persona_context::Model, event::Model)> {
        self.json_within("entry", &entry, super::JsonLimit::Small)?;
        let mut tx = self.begin(p).await?;
        let ctx = lock_active_context(&tx, p, id).await?;
        let mut history = ctx.history.as_array().cloned().unwrap_or_default();
        history.push(entry.clone());
        let max = self.settings().max_context_history.max(1);
        if history.len() > max {
            let excess = history.len() - max;
            history.drain(..excess);
        }
        let t = now();
        let total = ctx.history_total + 1;
        let mut am = ctx.into_active_model();
        am.history = Set(Json::Array(history));
        am.history_total = Set(total);
        am.updated_at = Set(t);
        am.last_active_at = Set(t);
        let ctx = am.update(&*tx).await?;
        let ev = context_event(&mut tx, &ctx, json!({ "appended": entry }));
        let done = tx.commit().await?;
        Ok((ctx, done.event(ev)))
    }
}

/// Locks the session of a context (which must be ACTIVE), then the context.
async fn lock_active_context(
    tx: &Tx<'_>,
    p: &Principal,
    id: Uuid,
) -> AppResult<persona_context::Model> {
    let session_id = persona_context::Entity::find_by_id(id)
        .filter(persona_context::Column::TenantId.eq(p.tenant_id))
        .one(&**tx)
        .await?
        .ok_or_else(|| AppError::not_found("PersonaContext", encode(Kind::PersonaContext, id)))?
        .session_id;
    let session = load_session(tx, p, session_id).await?;
    if session.status != SessionStatus::Active {
        return Err(AppError::bad_input(format!(
            "the context's session is {}; resume it before changing its contexts",
            sea_orm::ActiveEnum::to_value(&session.status)
        )));
    }
    require_not_overdue(&session)?;
    load_context(tx, p, id).await
}

pub(crate) async fn load_context(
    tx: &Tx<'_>,
    p: &Principal,
    id: Uuid,
) -> AppResult<persona_context::Model> {
    persona_context::Entity::find_by_id(id)
        .filter(persona_context::Column::TenantId.eq(p.tenant_id))
        .lock_exclusive()
        .one(&**tx)
        .await?
        .ok_or_else(|| AppError::not_found("PersonaContext", encode(Kind::PersonaContext, id)))
}

fn context_event(tx: &mut Tx<'_>, c: &persona_context::Model, extra: Json) -> EventRef {
    let payload = with_members(
        json!({
            "id": c.id, "sessionId": c.session_id, "personaId": c.persona_id,
            "historyTotal": c.history_total,
        }),
        extra,
    );
    tx.append(NewEvent::about(
        EventType::PersonaContextUpdated,
        c,
        payload,
    ))
}

/// A portable copy of a persona context (see [`Services::export_context`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ContextSnapshot {
    /// The snapshot document, base64 (standard alphabet, padded).
    pub data: String,
    /// Whether `data` is gzip-compressed JSON (else plain JSON).
    pub compressed: bool,
    /// `sha256:` + lower-case hex of the uncompressed JSON document.
    pub checksum: String,
    /// Size of the uncompressed JSON document, in bytes.
    pub size: i64,
}

/// The document inside a snapshot. `format` is checked on import so a
/// future layout can be told apart.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotDoc {
    pub(crate) format: String,
    pub(crate) persona: String,
    pub(crate) state: Json,
    pub(crate) history: Json,
    pub(crate) history_total: i64,
    pub(crate) active_tool: Option<String>,
    pub(crate) active_workflow: Option<String>,
    pub(crate) exported_at: chrono::DateTime<chrono::Utc>,
}

const SNAPSHOT_FORMAT: &str = "cerebral.persona-context/1";

/// A refusal of a snapshot: `BAD_USER_INPUT`, nothing written.
fn refuse_snapshot(why: &str) -> AppError {
    AppError::bad_input(format!("the snapshot is refused: {why}"))
}

/// The document of a snapshot being imported, its history already cut to
/// the newest entries kept.
struct ImportedDoc {
    pub(crate) persona: String,
    pub(crate) state: Json,
    pub(crate) history: std::collections::VecDeque<Json>,
    pub(crate) history_total: i64,
    pub(crate) active_tool: Option<String>,
    pub(crate) active_workflow: Option<String>,
}

/// Decodes, checks and parses a snapshot: CPU work (inflate, hash, parse)
/// for a blocking thread. The inflated JSON is read through a cap of
/// `limit` bytes, so a gzip bomb costs at most that much, and the history
/// never holds more than `max_history` parsed entries at a time.
fn decode_snapshot(
    snapshot: &ContextSnapshot,
    limit: usize,
    max_history: usize,
) -> AppResult<ImportedDoc> {
    use base64::Engine;
    use serde::de::DeserializeSeed;
    use std::io::Read;
    let too_large = || {
        refuse_snapshot(&format!(
            "its JSON is larger than {limit} bytes, the most accepted"
        ))
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(snapshot.data.trim())
        .map_err(|_| refuse_snapshot("it is not valid base64"))?;
    let json = if snapshot.compressed {
        let mut out = Vec::new();
        // One byte past the limit tells "too large" from "exactly the
        // limit"; the rest of the stream is never inflated.
        flate2::read::GzDecoder::new(&raw[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|_| refuse_snapshot("it is not valid gzip"))?;
        out
    } else {
        raw
    };
    if json.len() > limit {
        return Err(too_large());
    }
    if i64::try_from(json.len()).ok() != Some(snapshot.size) {
        return Err(refuse_snapshot(&format!(
            "it declares {} bytes of JSON but holds {}",
            snapshot.size,
            json.len()
        )));
    }
    if sha256_hex(&json) != snapshot.checksum.trim().to_lowercase() {
        return Err(refuse_snapshot(
            "its checksum does not match its content (corrupted or altered)",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(&json);
    let doc = DocSeed { max_history }
        .deserialize(&mut de)
        .and_then(|doc| de.end().map(|()| doc))
        .map_err(|e| refuse_snapshot(&format!("it is not a persona context snapshot ({e})")))?;
    let (format, doc) = doc;
    if format != SNAPSHOT_FORMAT {
        return Err(refuse_snapshot(&format!("unknown format '{format}'")));
    }
    if !doc.state.is_object() {
        return Err(refuse_snapshot("state must be an object"));
    }
    Ok(doc)
}

/// Reads a snapshot document (and its format) with the history bounded
/// while it is read.
struct DocSeed {
    pub(crate) max_history: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for DocSeed {
    type Value = (String, ImportedDoc);

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DocSeed {
    type Value = (String, ImportedDoc);

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a persona context snapshot object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        let mut format: Option<String> = None;
        let mut persona: Option<String> = None;
        let mut state: Option<Json> = None;
        let mut history = None;
        let mut history_total: Option<i64> = None;
        let mut active_tool: Option<String> = None;
        let mut active_workflow: Option<String> = None;
        let mut exported_at: Option<chrono::DateTime<chrono::Utc>> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "format" => format = Some(map.next_value()?),
                "persona" => persona = Some(map.next_value()?),
                "state" => state = Some(map.next_value()?),
                "history" => {
                    history = Some(map.next_value_seed(HistorySeed {
                        max: self.max_history,
                    })?);
                }
                "historyTotal" => history_total = Some(map.next_value()?),
                "activeTool" => active_tool = map.next_value()?,
                "activeWorkflow" => active_workflow = map.next_value()?,
                "exportedAt" => exported_at = Some(map.next_value()?),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        // Not used on import, but part of the format.
        exported_at.ok_or_else(|| A::Error::missing_field("exportedAt"))?;
        Ok((
            format.ok_or_else(|| A::Error::missing_field("format"))?,
            ImportedDoc {
                persona: persona.ok_or_else(|| A::Error::missing_field("persona"))?,
                state: state.ok_or_else(|| A::Error::missing_field("state"))?,
                history: history.ok_or_else(|| A::Error::missing_field("history"))?,
                history_total: history_total
                    .ok_or_else(|| A::Error::missing_field("historyTotal"))?,
                active_tool,
                active_workflow,
            },
        ))
    }
}

/// Reads a history array keeping only its newest `max` entries: an older
/// entry is dropped as soon as a newer one is read past the bound.
struct HistorySeed {
    pub(crate) max: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for HistorySeed {
    type Value = std::collections::VecDeque<Json>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for HistorySeed {
    type Value = std::collections::VecDeque<Json>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a history array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut kept = std::collections::VecDeque::with_capacity(self.max.min(1024));
        while let Some(entry) = seq.next_element::<Json>()? {
            if kept.len() >= self.max {
                kept.pop_front();
            }
            kept.push_back(entry);
        }
        Ok(kept)
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

impl Services {
    /// Exports a context as a portable snapshot: JSON (optionally gzip),
    /// base64, with a SHA-256 checksum of the JSON. Read-only, no event.
    pub async fn export_context(
        &self,
        p: &Principal,
        id: Uuid,
        compress: bool,
    ) -> AppResult<ContextSnapshot> {
        use base64::Engine;
        use std::io::Write;
        let ctx = persona_context::Entity::find_by_id(id)
            .filter(persona_context::Column::TenantId.eq(p.tenant_id))
            .one(&self.reader(p.tenant_id))
            .await?
            .ok_or_else(|| {
                AppError::not_found("PersonaContext", encode(Kind::PersonaContext, id))
            })?;
        let persona = crate::entity::persona::Entity::find_by_id(ctx.persona_id)
            .one(&self.reader(p.tenant_id))
            .await?
            .map(|m| m.key)
            .unwrap_or_default();
        let doc = SnapshotDoc {
            format: SNAPSHOT_FORMAT.into(),
            persona,
            state: ctx.state,
            history: ctx.history,
            history_total: ctx.history_total,
            active_tool: ctx.active_tool,
            active_workflow: ctx.active_workflow,
            exported_at: now(),
        };
        let json = serde_json::to_vec(&doc).map_err(|e| AppError::Internal(e.into()))?;
        let checksum = sha256_hex(&json);
        let payload = if compress {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(&json)
                .map_err(|e| AppError::Internal(e.into()))?;
            gz.finish().map_err(|e| AppError::Internal(e.into()))?
        } else {
            json.clone()
        };
        Ok(ContextSnapshot {
            data: base64::engine::general_purpose::STANDARD.encode(payload),
            compressed: compress,
            checksum,
            size: json.len() as i64,
        })
    }

    /// Imports a snapshot into an ACTIVE session: the checksum must match
    /// the decoded JSON, or the snapshot is refused (`BAD_USER_INPUT`) and
    /// nothing changes. The persona's context in that session is created or
    /// has its state and history replaced; one `PERSONA_CONTEXT_UPDATED`
    /// event records the import.
    ///
    /// A snapshot is small input that can expand (gzip): it is refused as
    /// soon as its JSON would pass `max_snapshot_bytes` (declared or
    /// actual), its history keeps the newest `max_context_history` entries
    /// while it is read, and the decoding runs on a blocking thread.
    #[tracing::instrument(skip(self, snapshot), fields(tenant = %p.tenant_id))]
    pub async fn import_context(
        &self,
        p: &Principal,
        session_id: Uuid,
        snapshot: &ContextSnapshot,
    ) -> AppResult<(persona_context::Model, event::Model)> {
        let limit = self.settings().max_snapshot_bytes;
        let max_history = self.settings().max_context_history.max(1);
        // Before any work: a snapshot that says it is too large is.
        let declared =
            usize::try_from(snapshot.size).map_err(|_| refuse_snapshot("its size is negative"))?;
        if declared > limit {
            return Err(refuse_snapshot(&format!(
                "it declares {declared} bytes of JSON; at most {limit} bytes are accepted"
            )));
        }
        let owned = snapshot.clone();
        let doc = tokio::task::spawn_blocking(move || decode_snapshot(&owned, limit, max_history))
            .await
            .map_err(|e| AppError::Internal(e.into()))??;
        let persona = self.find_persona(p, &doc.persona).await?;
        let history: Vec<Json> = doc.history.into();
        let mut tx = self.begin(p).await?;
        let session = load_session(&tx, p, session_id).await?;
        if session.status != SessionStatus::Active {
            return Err(AppError::bad_input(
                "contexts can only be imported into an ACTIVE session",
            ));
        }
        require_not_overdue(&session)?;
        let t = now();
        let existing = persona_context::Entity::find()
            .filter(persona_context::Column::TenantId.eq(p.tenant_id))
            .filter(persona_context::Column::UserId.eq(&session.user_id))
            .filter(persona_context::Column::PersonaId.eq(persona.id))
            .filter(persona_context::Column::SessionId.eq(session.id))
            .lock_exclusive()
            .one(&*tx)
            .await?;
        let is_new = existing.is_none();
        let mut am = match existing {
            Some(c) => c.into_active_model(),
            None => persona_context::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(p.tenant_id),
                user_id: Set(session.user_id.clone()),
                session_id: Set(session.id),
                persona_id: Set(persona.id),
                parent_id: Set(None),
                created_at: Set(t),
                ..Default::default()
            },
        };
        am.state = Set(doc.state);
        am.history = Set(Json::Array(history));
        am.history_total = Set(doc.history_total.max(0));
        am.active_tool = Set(doc.active_tool);
        am.active_workflow = Set(doc.active_workflow);
        am.last_active_at = Set(t);
        am.updated_at = Set(t);
        let ctx = if is_new {
            am.insert(&*tx).await?
        } else {
            am.update(&*tx).await?
        };
        let ev = context_event(
            &mut tx,
            &ctx,
            json!({ "imported": true, "checksum": snapshot.checksum }),
        );
        let done = tx.commit().await?;
        Ok((ctx, done.event(ev)))
    }
}
