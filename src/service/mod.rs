//! The only writer. Every change runs in one database transaction that also
//! appends its event rows; events are published to subscribers only after
//! the commit succeeds.
//!
//! Flow of one change: begin → lock what the decision depends on → domain
//! transition check → write → queue events → commit (the events are written
//! last; on PostgreSQL their log positions come from the transaction's own
//! id, so writers of different rows share no lock) → publish.
//!
//! Concurrency rules, the same for every writer:
//! - Rows a decision is taken from are locked (`SELECT … FOR UPDATE`, or
//!   `FOR SHARE` when only their state must not change) before the decision,
//!   in one order: project → task → HITL requests; session → persona
//!   context; on SQLite the event counter always last. One order means no
//!   deadlocks.
//! - Task updates are also guarded (`… WHERE id = ? AND status = ? AND
//!   version = ?`): zero rows means someone else won, and the change is
//!   refused with `CONFLICT`.
//! - Uniqueness races (two first reports of an agent, two checkpoint writers
//!   of one version) end in a unique index, also reported as `CONFLICT`.
//! - On SQLite, writers are serialised by an in-process lock and
//!   `BEGIN IMMEDIATE`; `FOR UPDATE` is not needed there and not emitted.

pub mod agent;
pub mod analytics;
pub mod artifact;
pub mod catalog;
pub mod checkpoint;
pub mod hitl;
pub mod idempotency;
pub mod persona_context;
pub mod project;
pub mod qa_gate;
pub mod query;
pub mod session;
pub mod story;
pub mod sweeper;
pub mod task;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, EntityTrait, Statement};
use serde_json::Value as Json;
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

use crate::auth::Principal;
use crate::domain::EventType;
use crate::entity::{self, event};
use crate::error::{AppError, AppResult};
use crate::events::EventBus;
use crate::ids::Kind;
use crate::rls::{Scope, Scoped, Sessions, WriteTxn};

/// Settings the services need.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    /// Inactivity after which a session expires.
    pub session_timeout: chrono::Duration,
    /// Entries kept in a persona context's history.
    pub max_context_history: usize,
    /// Largest persona context snapshot JSON an import inflates, in bytes.
    pub max_snapshot_bytes: usize,
    /// Size bounds of a catalog import (`importCatalog`).
    pub catalog_limits: crate::catalog::ImportLimits,
    /// Live (ACTIVE or SUSPENDED) sessions one user may hold; starting one
    /// more expires the least recently active.
    pub max_sessions_per_user: usize,
    /// Checkpoints kept per task whatever their age.
    pub max_checkpoints_per_task: u64,
    /// Age beyond which other checkpoints are dropped.
    pub checkpoint_retention: chrono::Duration,
    /// Largest small JSON input, as JSON text in bytes: task output, HITL
    /// responses and schemas, persona-context patches and history entries
    /// (they travel in events, so they must stay small).
    pub max_json_bytes: usize,
    /// Largest JSON content, as JSON text in bytes: artifact content,
    /// checkpoint state and persona-context state (fetched by id, never
    /// carried in events).
    pub max_content_bytes: usize,
}

/// Which byte limit a JSON input falls under (see [`ServiceSettings`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonLimit {
    /// [`ServiceSettings::max_json_bytes`].
    Small,
    /// [`ServiceSettings::max_content_bytes`].
    Content,
}

/// Whether `value` as JSON text is longer than `max` bytes, found out
/// without writing more than `max + 1` bytes anywhere.
pub fn json_longer_than(value: &Json, max: usize) -> bool {
    struct Count {
        n: usize,
        max: usize,
    }
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.n += buf.len();
            if self.n > self.max {
                // Stops the serialiser: the answer is known.
                return Err(std::io::Error::other("over the limit"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(&mut Count { n: 0, max }, value).is_err()
}

/// The service layer: the database, the event bus and the write lock.
#[derive(Clone)]
pub struct Services {
    inner: Arc<Inner>,
    /// The idempotency key a keyed mutation runs under
    /// ([`Services::keyed`]); every transaction begun through this handle
    /// records it at commit.
    claim: Option<Arc<idempotency::Claim>>,
}

struct Inner {
    db: DatabaseConnection,
    bus: EventBus,
    settings: ServiceSettings,
    /// SQLite allows one writer at a time and a deferred transaction that
    /// upgrades to a writer can fail with `SQLITE_BUSY` at once, whatever the
    /// busy timeout. Serialising writers in-process avoids that; PostgreSQL
    /// needs no such lock.
    sqlite_writer: Option<Mutex<()>>,
    /// Tenants' read connections kept between reads (PostgreSQL; see
    /// [`crate::rls::sessions`]).
    sessions: Option<Arc<Sessions>>,
}

/// One write transaction: the database transaction, the writer lock on
/// SQLite, and the sequence numbers of the events it appended.
pub struct Tx<'a> {
    txn: WriteTxn,
    _writer: Option<MutexGuard<'a, ()>>,
    bus: &'a EventBus,
    principal: &'a Principal,
    pending: Vec<NewEvent>,
    claim: Option<idempotency::Claim>,
}

/// What an event is about: an object with a global id, or a tenant's
/// catalog (then `subject_id` is the tenant). Stored as the event's
/// `subjectType`, the object's GraphQL type name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// An object of this kind.
    Object(Kind),
    /// The catalog of personas, teams and workflows.
    Catalog,
}

impl Subject {
    /// The stored `subjectType`.
    pub fn name(self) -> &'static str {
        match self {
            Subject::Object(k) => k.name(),
            Subject::Catalog => "Catalog",
        }
    }
}

impl From<Kind> for Subject {
    fn from(k: Kind) -> Self {
        Subject::Object(k)
    }
}

/// What an event says; the transaction adds tenant, actor, sequence and time.
pub struct NewEvent {
    /// What happened.
    pub event_type: EventType,
    /// The project it belongs to, if any.
    pub project_id: Option<Uuid>,
    /// The task it belongs to, if any.
    pub task_id: Option<Uuid>,
    /// What changed.
    pub subject: Subject,
    /// Id of the changed object.
    pub subject_id: Uuid,
    /// A JSON snapshot of what changed.
    pub payload: Json,
}

impl NewEvent {
    /// An event about `row`: its kind, id, project and task (the columns
    /// subscriptions filter on) come from the row, so no call site can pair
    /// a task's id with another project.
    pub fn about<S: EventSubject>(event_type: EventType, row: &S, payload: Json) -> Self {
        let (subject, subject_id, project_id, task_id) = row.scope();
        NewEvent {
            event_type,
            project_id,
            task_id,
            subject: subject.into(),
            subject_id,
            payload,
        }
    }

    /// An event about `row` whose payload is the row itself.
    pub fn snapshot<S: EventSubject + serde::Serialize>(event_type: EventType, row: &S) -> Self {
        Self::about(event_type, row, snapshot(row))
    }
}

/// A row an event can be about.
pub trait EventSubject {
    /// Its kind and id, and the project and task it belongs to.
    fn scope(&self) -> (Kind, Uuid, Option<Uuid>, Option<Uuid>);
}

impl EventSubject for entity::project::Model {
    fn scope(&self) -> (Kind, Uuid, Option<Uuid>, Option<Uuid>) {
        (Kind::Project, self.id, Some(self.id), None)
    }
}

impl EventSubject for entity::epic::Model {
    fn scope(&self) -> (Kind, Uuid, Option<Uuid>, Option<Uuid>) {
        (Kind::Epic, self.id, Some(self.project_id), None)
    }
}

impl EventSubject for entity::story::Model {
    fn scope(&self) -> (Kind, Uuid, Option<Uuid>, Option<Uuid>) {
        (Kind::Story, self.id, Some(self.project_id), None)
    }
}

impl EventSubject for entity::qa_gate::Model {
    fn scope(&self) -> (Kind, Uuid, Option<Uuid>, Option<Uuid>) {
        (Kind::QaGate, self.id, Some(self.project_id), None)
    }
}

impl EventSubject for entity::task::Model {
    fn scope(&self) -> (Kind, Uuid, Option<Uuid>, Option<Uuid>) {
        (Kind::Task, self.id, Some(self.project_id), Some(self.id))
    }
}

impl EventSubject for entity::hitl_request::Model {
    fn scope(&self) -> (Kind, Uuid, Option<Uuid>, Option<Uuid>) {
        (
            Kind::HitlRequest,
            self.id,
            Some(self.project_id),
            Some(self.task_id),
        )
    }
}

impl EventSubject for entity::task_checkpoint::Model {
    fn scope(&self) -> (Kind, Uuid, Option<Uuid>, Option<Uuid>) {
        let (project, task) = (Some(self.project_id), Some(self.task_id));
        (Kind::TaskCheckpoint, self.id, project, task)
    }
}

impl EventSubject for entity::artifact::Model {
    fn scope(&self) -> (Kind, Uuid, Option<Uuid>, Option<Uuid>) {
        (Kind::Artifact, self.id, Some(self.project_id), self.task_id)
    }
}

impl EventSubject for entity::agent_status::Model {
    fn scope(&self) -> (Kind, Uuid, Option<Uuid>, Option<Uuid>) {
        let (project, task) = (Some(self.project_id), self.current_task_id);
        (Kind::AgentStatus, self.id, project, task)
    }
}

/// Sessions and persona contexts belong to a user, not to a project.
impl EventSubject for entity::session::Model {
    fn scope(&self) -> (Kind, Uuid, Option<Uuid>, Option<Uuid>) {
        (Kind::Session, self.id, None, None)
    }
}

impl EventSubject for entity::persona_context::Model {
    fn scope(&self) -> (Kind, Uuid, Option<Uuid>, Option<Uuid>) {
        (Kind::PersonaContext, self.id, None, None)
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = WriteTxn;
    fn deref(&self) -> &WriteTxn {
        &self.txn
    }
}

/// A handle to an event appended in a [`Tx`]; [`Committed::event`] turns it
/// into the stored row once the transaction has committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRef(usize);

/// The events a committed transaction appended, in order.
pub struct Committed {
    events: Vec<event::Model>,
}

impl Committed {
    /// The stored event behind a handle.
    pub fn event(&self, r: EventRef) -> event::Model {
        self.events[r.0].clone()
    }
}

impl Tx<'_> {
    /// Queues an event; it is written at commit, after every row change of
    /// the transaction (on SQLite the counter row is then taken last, so
    /// lock order is the same in every transaction).
    pub fn append(&mut self, e: NewEvent) -> EventRef {
        self.pending.push(e);
        EventRef(self.pending.len() - 1)
    }

    /// Adds a field to the payload of a queued event.
    pub fn annotate(&mut self, r: EventRef, key: &str, value: Json) {
        if let Some(obj) = self
            .pending
            .get_mut(r.0)
            .and_then(|e| e.payload.as_object_mut())
        {
            obj.insert(key.to_string(), value);
        }
    }

    /// Writes the queued events, commits, then tells subscribers. A failed
    /// commit publishes nothing.
    ///
    /// Where an event goes in the log (its `seq`, the stream cursor) is
    /// decided here, without any lock shared with other writers: on
    /// PostgreSQL it is the writing transaction's id and the event's index
    /// within it ([`crate::events::position`]); on SQLite, whose writers
    /// take turns anyway, the next numbers of the `event_sequence` counter.
    /// See `crate::events` for how readers turn those into one total order.
    pub async fn commit(mut self) -> AppResult<Committed> {
        let mut events = Vec::with_capacity(self.pending.len());
        if !self.pending.is_empty() {
            let n = self.pending.len() as i64;
            let backend = self.txn.get_database_backend();
            let t = now();
            // Moved, not cloned: a payload may be 64 KiB.
            let pending = std::mem::take(&mut self.pending);
            let principal = &self.principal;
            let rows = |first: i64| {
                pending
                    .into_iter()
                    .enumerate()
                    .map(move |(i, e)| event::Model {
                        seq: first + i as i64,
                        id: Uuid::now_v7(),
                        tenant_id: principal.tenant_id,
                        event_type: e.event_type,
                        project_id: e.project_id,
                        task_id: e.task_id,
                        subject_type: e.subject.name().to_string(),
                        subject_id: e.subject_id,
                        actor: principal.user_id.clone(),
                        payload: e.payload,
                        created_at: t,
                    })
            };
            match backend {
                sea_orm::DbBackend::Postgres => {
                    // Positions from this transaction's id, computed by the
                    // insert itself (no round trip to ask for the id, no
                    // row locked: concurrent writers never wait here).
                    crate::events::position(0, n as usize)?;
                    let inserted = rows(0).collect::<Vec<_>>();
                    let stmt = crate::events::insert_at_positions(&inserted)?;
                    let returned = self.txn.query_all_raw(stmt).await?;
                    let seq: i64 = returned
                        .first()
                        .ok_or_else(|| {
                            AppError::Internal(anyhow::anyhow!("the events insert returned no row"))
                        })?
                        .try_get("", "seq")?;
                    let first = crate::events::first_position(seq)?;
                    events.extend(inserted.into_iter().enumerate().map(|(i, mut e)| {
                        e.seq = first + i as i64;
                        e
                    }));
                }
                _ => {
                    let row = self
                        .txn
                        .query_one_raw(Statement::from_sql_and_values(
                            backend,
                            "UPDATE event_sequence SET last_seq = last_seq + ? WHERE name = 'events' RETURNING last_seq",
                            [n.into()],
                        ))
                        .await?
                        .ok_or_else(|| {
                            AppError::Internal(anyhow::anyhow!("event_sequence row missing"))
                        })?;
                    let last: i64 = row.try_get("", "last_seq")?;
                    events.extend(rows(last - n + 1));
                    event::Entity::insert_many(
                        events.iter().cloned().map(event::ActiveModel::from),
                    )
                    .exec(&self.txn)
                    .await?;
                }
            }
        }
        if let Some(claim) = self.claim.take() {
            use sea_orm::ActiveModelTrait;
            let row = crate::entity::idempotency_key::ActiveModel {
                tenant_id: sea_orm::Set(self.principal.tenant_id),
                key: sea_orm::Set(claim.key.clone()),
                operation: sea_orm::Set(claim.operation),
                request_hash: sea_orm::Set(claim.request_hash),
                event_seqs: sea_orm::Set(serde_json::json!(
                    events.iter().map(|e| e.seq).collect::<Vec<_>>()
                )),
                created_at: sea_orm::Set(now()),
            };
            // A racing request with the same key committed first: this one
            // must not apply, and its transaction rolls back with it.
            row.insert(&self.txn).await.map_err(|e| match AppError::from(e) {
                AppError::Conflict(_) => AppError::Conflict(format!(
                    "a request with idempotencyKey '{}' was applied at the same time; retry to receive its result",
                    claim.key
                )),
                other => other,
            })?;
        }
        self.txn.commit().await?;
        if let Some(last) = events.last() {
            // After the commit: the fan-out reads it from the log, and other
            // replicas hear of it through one NOTIFY sent outside any write
            // transaction (see `EventBus::committed`).
            self.bus.committed(last.seq);
        }
        Ok(Committed { events })
    }
}

tokio::task_local! {
    /// The reader of the GraphQL request this task is executing.
    static REQUEST_READER: Scoped;
}

impl Services {
    /// Builds the service layer over a migrated database.
    /// Tenants' reads run on `sessions` when given (PostgreSQL: see
    /// [`crate::rls::sessions`]), else one transaction per statement.
    pub fn new(
        db: DatabaseConnection,
        bus: EventBus,
        settings: ServiceSettings,
        sessions: Option<Arc<Sessions>>,
    ) -> Self {
        let sqlite_writer = crate::db::is_sqlite(&db).then(|| Mutex::new(()));
        Services {
            inner: Arc::new(Inner {
                db,
                bus,
                settings,
                sqlite_writer,
                sessions,
            }),
            claim: None,
        }
    }

    /// The pool's connections and how many of them are idle: waiting in
    /// the pool, or resting between reads in [`Sessions`] (idle to the
    /// database either way).
    pub fn pool_stats(&self) -> (u64, u64) {
        let (size, idle) = crate::db::pool_stats(&self.inner.db);
        let resting = self.inner.sessions.as_ref().map_or(0, |s| s.idle() as u64);
        (size, idle + resting)
    }

    /// Tenants' read sessions (PostgreSQL), for readers built outside this
    /// layer.
    pub fn sessions(&self) -> Option<Arc<Sessions>> {
        self.inner.sessions.clone()
    }

    /// Reads on behalf of `tenant`: on PostgreSQL each statement runs on a
    /// read session scoped to that tenant, so row-level security shows no
    /// other tenant's rows whatever the query says (see [`crate::rls`]).
    ///
    /// Inside [`Services::with_request_reader`] for the same tenant it is
    /// that request's handle, so the service layer's reads join the
    /// request's one session instead of taking a second pooled
    /// connection while the first is held (which, with every connection
    /// held by a request waiting for a second, would stall the pool).
    pub fn reader(&self, tenant: Uuid) -> Scoped {
        REQUEST_READER
            .try_with(|r| (r.scope() == Scope::Tenant(tenant)).then(|| r.clone()))
            .ok()
            .flatten()
            .unwrap_or_else(|| {
                Scoped::with_sessions(
                    self.inner.db.clone(),
                    Scope::Tenant(tenant),
                    self.sessions(),
                )
            })
    }

    /// A reader for one GraphQL request of `tenant` (see
    /// [`Scoped::per_request`]): statements take a session each until it is
    /// pinned, then share one.
    pub fn request_reader(&self, tenant: Uuid) -> Scoped {
        Scoped::per_request(
            self.inner.db.clone(),
            Scope::Tenant(tenant),
            self.sessions(),
        )
    }

    /// Runs `f` with `reader` as what [`Services::reader`] returns for its
    /// tenant, in this task (not in tasks `f` spawns: DataLoaders get the
    /// handle explicitly).
    pub async fn with_request_reader<F: std::future::Future>(reader: Scoped, f: F) -> F::Output {
        REQUEST_READER.scope(reader, f).await
    }

    /// Reads across every tenant, for the few jobs that need them (the
    /// sweeper's scans, idempotency-key expiry, metrics). Read-only under
    /// row-level security; changes go through [`Services::begin`].
    pub fn all_tenants(&self) -> Scoped {
        Scoped::new(self.inner.db.clone(), Scope::AllTenants)
    }

    /// The pool itself, for statements that touch no tenant rows (health
    /// pings, the event head, the migration table). On PostgreSQL tenant
    /// tables look empty through it.
    pub fn unscoped(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The event bus.
    pub fn bus(&self) -> &EventBus {
        &self.inner.bus
    }

    /// The settings.
    pub fn settings(&self) -> &ServiceSettings {
        &self.inner.settings
    }

    /// Refuses `value` (the input field `field`) with `BAD_USER_INPUT`,
    /// naming the field and the limit, when its JSON text is longer than
    /// `limit` allows. Every JSON a caller sends passes through here
    /// before anything is written.
    pub fn json_within(&self, field: &str, value: &Json, limit: JsonLimit) -> AppResult<()> {
        let (max, setting) = match limit {
            JsonLimit::Small => (
                self.inner.settings.max_json_bytes,
                "CEREBRAL_MAX_JSON_BYTES",
            ),
            JsonLimit::Content => (
                self.inner.settings.max_content_bytes,
                "CEREBRAL_MAX_CONTENT_BYTES",
            ),
        };
        if json_longer_than(value, max) {
            return Err(AppError::bad_input(format!(
                "{field} is longer than {max} bytes of JSON ({setting})"
            )));
        }
        Ok(())
    }

    /// Begins a write transaction on behalf of `principal`.
    pub async fn begin<'a>(&'a self, principal: &'a Principal) -> AppResult<Tx<'a>> {
        let writer = match &self.inner.sqlite_writer {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        // IMMEDIATE takes SQLite's write lock at BEGIN, so a transaction
        // never fails half-way upgrading from reader to writer when another
        // process (`cerebral import`) writes the same file.
        // On PostgreSQL row-level security sees this tenant for the whole
        // transaction (`rls::write`); BEGIN and the setting run to their
        // end even when this request is cancelled meanwhile.
        let txn = WriteTxn::begin(
            &self.inner.db,
            self.inner.sessions.as_ref(),
            sea_orm::TransactionOptions {
                sqlite_transaction_mode: self
                    .inner
                    .sqlite_writer
                    .as_ref()
                    .map(|_| sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            },
            principal.tenant_id,
        )
        .await?;
        Ok(Tx {
            txn,
            _writer: writer,
            bus: &self.inner.bus,
            principal,
            pending: Vec::new(),
            claim: self.claim.as_deref().cloned(),
        })
    }
}

/// The current time, truncated to microseconds so it survives a round trip
/// through PostgreSQL unchanged.
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// Serialises a model for an event payload.
pub fn snapshot<T: serde::Serialize>(v: &T) -> Json {
    serde_json::to_value(v).unwrap_or(Json::Null)
}

/// `base` with the members of `extra` added (or replaced); an `extra` that
/// is not an object adds nothing.
pub fn with_members(mut base: Json, extra: Json) -> Json {
    if let (Some(obj), Json::Object(extra)) = (base.as_object_mut(), extra) {
        obj.extend(extra);
    }
    base
}

/// The strings of a JSON array column (other items and non-arrays are
/// ignored: catalog lists are written by us and read leniently).
pub fn json_strings(v: &Json) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Refuses the change with `CONFLICT` when a guarded update touched no row.
pub fn guarded(rows: u64, what: &str) -> AppResult<()> {
    if rows == 0 {
        Err(AppError::Conflict(format!(
            "{what} was changed by someone else at the same time; reload it and try again"
        )))
    } else {
        Ok(())
    }
}
