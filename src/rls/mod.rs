//! Row-level security on PostgreSQL: which tenant a transaction acts for.
//!
//! The application filters every query by the caller's tenant; PostgreSQL
//! enforces the same boundary a second time (migration
//! `m20261122_000006_row_level_security`). Its policies compare each row's
//! `tenant_id` with the setting `cerebral.tenant_id`.
//!
//! Writes run in one transaction each ([`crate::service::Services::begin`],
//! [`mod@write`]) whose first statement sets the tenant: on a pooled
//! connection for that transaction only (`set_config(…, true)`), on a kept
//! session for the session, which PostgreSQL keeps only if the transaction
//! commits; either way a write that rolls back or fails half-way leaves
//! no setting of its own behind. Reads go through a [`Scoped`] handle,
//! which runs them on a connection with the scope set for its session, kept out
//! of the pool by [`sessions`] for as long as it carries one (the pool
//! never hands a connection with a scope set to anyone else), or, without
//! sessions, each statement in a short transaction of its own that first
//! sets the scope. Three scopes exist:
//! - [`Scope::Tenant`]: the normal case, every request path;
//! - [`Scope::AllTenants`]: read-only work across tenants that the server
//!   legitimately does (the event fan-out, the sweeper's scans, metrics);
//!   the policies let it read, never write (except expiring idempotency
//!   keys);
//! - [`Scope::Unscoped`]: statements on tables without tenant rows
//!   (health pings, the event head, the migration table).
//!
//! On SQLite there is no row-level security; every scope runs statements
//! straight on the pool, as before.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement, TransactionOptions, TransactionTrait,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

pub use crate::db::SET_SCOPE_SQL;

use tokio::sync::MutexGuard;
use uuid::Uuid;

pub mod sessions;
pub mod write;
pub use sessions::{Session, Sessions};
pub use write::WriteTxn;

/// Whose rows a transaction may see and change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One tenant's rows (and the built-in catalog, read-only).
    Tenant(Uuid),
    /// Every tenant's rows, read-only.
    AllTenants,
    /// No setting at all: tenant tables look empty.
    Unscoped,
}

/// Sets `scope` for the rest of the transaction `txn` (PostgreSQL only; a
/// no-op elsewhere). Must be the first statement of the transaction.
pub async fn set_scope(txn: &impl ConnectionTrait, scope: Scope) -> Result<(), DbErr> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let (name, value) = match scope {
        Scope::Tenant(t) => ("cerebral.tenant_id", t.to_string()),
        Scope::AllTenants => ("cerebral.all_tenants", "on".to_string()),
        Scope::Unscoped => return Ok(()),
    };
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        SET_SCOPE_SQL,
        [name.into(), value.into()],
    ))
    .await?;
    Ok(())
}

/// Begins a transaction on `db` whose first statement sets `scope`.
///
/// On PostgreSQL the two run in a task of their own, so the caller being
/// dropped half-way (its client left, its request timed out) cannot stop
/// them between sending `BEGIN` and reading its answer. sqlx counts a
/// transaction only once that answer is read, so a `BEGIN` cut off there
/// left the server inside a transaction that nothing would roll back: the
/// connection went back to the pool that way, and the next `BEGIN` on it
/// found a transaction already open. Run to its end, the transaction is
/// either handed to the caller or, when the caller is gone, dropped, and a
/// dropped transaction queues its `ROLLBACK` (which the pool reads before
/// reuse: [`crate::db`]).
pub async fn begin(
    db: &DatabaseConnection,
    options: TransactionOptions,
    scope: Scope,
) -> Result<DatabaseTransaction, DbErr> {
    async fn run(
        db: DatabaseConnection,
        options: TransactionOptions,
        scope: Scope,
    ) -> Result<DatabaseTransaction, DbErr> {
        let txn = db.begin_with_options(options).await?;
        set_scope(&txn, scope).await?;
        Ok(txn)
    }
    if db.get_database_backend() != DbBackend::Postgres {
        return run(db.clone(), options, scope).await;
    }
    tokio::spawn(run(db.clone(), options, scope))
        .await
        .map_err(|e| DbErr::Custom(format!("beginning a transaction failed: {e}")))?
}

/// Commits `txn`; on PostgreSQL in a task of its own, so that a `COMMIT`
/// once sent is also answered and the connection is handed back clean,
/// whether or not the caller is still waiting (see [`begin`]).
pub async fn commit(txn: DatabaseTransaction) -> Result<(), DbErr> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return txn.commit().await;
    }
    tokio::spawn(txn.commit())
        .await
        .map_err(|e| DbErr::Custom(format!("committing a transaction failed: {e}")))?
}

/// A handle on the pool whose statements run under one [`Scope`]. Cheap to
/// clone; use it wherever a `&DatabaseConnection` was used for reads.
///
/// On PostgreSQL its statements run on a [`Session`]: a connection with
/// the scope set for its session, kept between reads by [`Sessions`] (see
/// [`sessions`]), so a read costs its statements and nothing else. A
/// handle without sessions runs each statement in a transaction of its
/// own: `BEGIN`, `set_config`, the statement, `COMMIT`; a statement that
/// fails rolls its transaction back and takes the setting with it.
///
/// A handle made with [`Scoped::per_request`] and then [`Scoped::pin`]ned
/// instead runs every statement of its clones on ONE session, taken at the
/// first statement and given back when the last clone is dropped: a
/// GraphQL query of four levels costs four statements. It holds one pooled
/// connection meanwhile, so it is pinned only for query operations over
/// HTTP (never for a mutation, whose write transaction needs a connection
/// of its own, nor for a subscription, which lives for minutes).
#[derive(Clone)]
pub struct Scoped {
    db: DatabaseConnection,
    scope: Scope,
    sessions: Option<Arc<Sessions>>,
    /// Whether statements on sessions count towards
    /// [`crate::db::StatementCounter`] (background work's do not).
    counted: bool,
    pinned: Option<Arc<Pinned>>,
}

/// The session a pinned [`Scoped`] shares between its clones.
struct Pinned {
    /// Set by [`Scoped::pin`]; until then statements take a session each.
    active: AtomicBool,
    /// Taken at the first statement after pinning; dropping it (with the
    /// last clone) hands the connection back to [`Sessions`].
    session: tokio::sync::Mutex<Option<Session>>,
}

impl std::fmt::Debug for Scoped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scoped")
            .field("scope", &self.scope)
            .finish()
    }
}

impl Scoped {
    /// Statements on `db` under `scope`.
    pub fn new(db: DatabaseConnection, scope: Scope) -> Self {
        Scoped {
            db,
            scope,
            sessions: None,
            counted: true,
            pinned: None,
        }
    }

    /// The same handle, its statements on sessions left out of the
    /// statement counter (as [`crate::db::uncounted`] does for the pool).
    pub fn uncounted(self) -> Self {
        Scoped {
            counted: false,
            ..self
        }
    }

    /// Statements on `db` under `scope`, a tenant's on `sessions` (see
    /// [`Scoped`]).
    pub fn with_sessions(
        db: DatabaseConnection,
        scope: Scope,
        sessions: Option<Arc<Sessions>>,
    ) -> Self {
        Scoped {
            sessions,
            ..Scoped::new(db, scope)
        }
    }

    /// A handle for one request: like [`Scoped::with_sessions`] until
    /// [`Scoped::pin`] is called on it or a clone, then one shared session
    /// (without sessions, pinning changes nothing).
    pub fn per_request(
        db: DatabaseConnection,
        scope: Scope,
        sessions: Option<Arc<Sessions>>,
    ) -> Self {
        Scoped {
            pinned: Some(Arc::new(Pinned {
                active: AtomicBool::new(false),
                session: tokio::sync::Mutex::new(None),
            })),
            ..Scoped::with_sessions(db, scope, sessions)
        }
    }

    /// From now on the statements of this handle and its clones share one
    /// read session (a no-op for a handle not made by
    /// [`Scoped::per_request`]).
    pub fn pin(&self) {
        if let Some(p) = &self.pinned {
            p.active.store(true, Ordering::Relaxed);
        }
    }

    /// The scope statements run under.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The rows of `stmt`, read one at a time and kept while their `size`
    /// adds up to at most `max_bytes` (the first row always): a page whose
    /// rows may be large is bounded by the memory it takes, not only by
    /// its row count. Returns the rows kept and whether any row was left
    /// unread (the caller reads on from the last one).
    pub async fn rows_within<M>(
        &self,
        stmt: Statement,
        max_bytes: usize,
        size: impl Fn(&M) -> usize + Send,
    ) -> Result<(Vec<M>, bool), DbErr>
    where
        M: sea_orm::FromQueryResult + Send,
    {
        use sea_orm::StreamTrait;
        async fn take<M, S>(
            rows: S,
            max_bytes: usize,
            size: impl Fn(&M) -> usize,
        ) -> Result<(Vec<M>, bool), DbErr>
        where
            M: sea_orm::FromQueryResult,
            S: futures::Stream<Item = Result<QueryResult, DbErr>>,
        {
            use futures::StreamExt;
            futures::pin_mut!(rows);
            let mut kept = Vec::new();
            let mut total = 0usize;
            while let Some(row) = rows.next().await {
                let m = M::from_query_result(&row?, "")?;
                total = total.saturating_add(size(&m));
                if total > max_bytes && !kept.is_empty() {
                    // Dropping the stream stops the read; the rest of the
                    // result is discarded unparsed.
                    return Ok((kept, true));
                }
                kept.push(m);
            }
            Ok((kept, false))
        }
        scoped!(self, |c| async {
            let rows = c.stream_raw(stmt).await?;
            take(rows, max_bytes, size).await
        })
    }

    /// Begins a transaction with the scope set, or `None` when statements
    /// can go straight to the pool (SQLite, or nothing to set).
    async fn scoped_txn(&self) -> Result<Option<DatabaseTransaction>, DbErr> {
        if !self.needs_scope() {
            return Ok(None);
        }
        begin(&self.db, TransactionOptions::default(), self.scope)
            .await
            .map(Some)
    }

    fn needs_scope(&self) -> bool {
        self.db.get_database_backend() == DbBackend::Postgres && self.scope != Scope::Unscoped
    }

    /// The sessions statements run on, when there are any and the scope
    /// needs setting.
    fn scoped_sessions(&self) -> Option<&Arc<Sessions>> {
        self.sessions.as_ref().filter(|_| self.needs_scope())
    }

    /// The pinned session (taken on first use), locked for one statement;
    /// `None` when this handle is not pinned or has no sessions.
    async fn shared_session(&self) -> Result<Option<MutexGuard<'_, Option<Session>>>, DbErr> {
        let Some(p) = self
            .pinned
            .as_deref()
            .filter(|p| p.active.load(Ordering::Relaxed))
        else {
            return Ok(None);
        };
        let Some(sessions) = self.scoped_sessions() else {
            return Ok(None);
        };
        let mut guard = p.session.lock().await;
        if guard.is_none() {
            *guard = Some(sessions.checkout(self.scope, self.counted).await?);
        }
        Ok(Some(guard))
    }
}

/// Runs `$call` on the pinned session if there is one (a failed statement
/// gives it back, and the next one takes a session afresh), else on a
/// session of its own, else in a transaction of its own, else straight on
/// the pool.
macro_rules! scoped {
    ($self:ident, |$c:ident| $call:expr) => {{
        if let Some(mut guard) = $self.shared_session().await? {
            let out = match guard.as_mut() {
                Some($c) => $call.await,
                None => Err(DbErr::Custom("the request's read session is gone".into())),
            };
            if out.is_err() {
                guard.take();
            }
            out
        } else if let Some(sessions) = $self.scoped_sessions() {
            let mut session = sessions.checkout($self.scope, $self.counted).await?;
            let $c = &mut session;
            $call.await
        } else {
            match $self.scoped_txn().await? {
                None => {
                    let $c = &$self.db;
                    $call.await
                }
                Some(txn) => {
                    let out = {
                        let $c = &txn;
                        $call.await?
                    };
                    commit(txn).await?;
                    Ok(out)
                }
            }
        }
    }};
}
use scoped;

#[sea_orm::prelude::async_trait::async_trait]
impl ConnectionTrait for Scoped {
    fn get_database_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        scoped!(self, |c| c.execute_raw(stmt))
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        scoped!(self, |c| c.execute_unprepared(sql))
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        scoped!(self, |c| c.query_one_raw(stmt))
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        scoped!(self, |c| c.query_all_raw(stmt))
    }

    fn support_returning(&self) -> bool {
        self.db.support_returning()
    }
}

/// What start-up found out about the serving role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleCheck {
    /// The role the server's pool logs in as.
    pub role: String,
    /// Superusers pass every policy.
    pub superuser: bool,
    /// So do roles with `BYPASSRLS`.
    pub bypass_rls: bool,
    /// Tenant tables the role owns (owners pass unless `FORCE` is on; an
    /// owner can also turn the policies off).
    pub owned_tables: Vec<String>,
}

impl RoleCheck {
    /// Why row-level security does not hold for this role, if it does not.
    pub fn weaknesses(&self) -> Vec<String> {
        let mut out = vec![];
        if self.superuser {
            out.push("is a superuser (superusers bypass row-level security)".to_string());
        }
        if self.bypass_rls {
            out.push("has BYPASSRLS".to_string());
        }
        if !self.owned_tables.is_empty() {
            out.push(format!(
                "owns {} (an owner can disable the policies)",
                self.owned_tables.join(", ")
            ));
        }
        out
    }
}

/// Checks the role `db` logs in as (PostgreSQL only; `None` on SQLite).
pub async fn check_role(db: &DatabaseConnection) -> Result<Option<RoleCheck>, DbErr> {
    if db.get_database_backend() != DbBackend::Postgres {
        return Ok(None);
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_user::text AS role, rolsuper, rolbypassrls \
               FROM pg_roles WHERE rolname = current_user",
        ))
        .await?
        .ok_or_else(|| DbErr::Custom("the current role is not in pg_roles".into()))?;
    let owned = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT tablename::text AS t FROM pg_tables \
              WHERE schemaname = current_schema() AND tableowner = current_user \
              ORDER BY tablename",
        ))
        .await?;
    Ok(Some(RoleCheck {
        role: row.try_get("", "role")?,
        superuser: row.try_get("", "rolsuper")?,
        bypass_rls: row.try_get("", "rolbypassrls")?,
        owned_tables: owned
            .iter()
            .filter_map(|r| r.try_get::<String>("", "t").ok())
            .collect(),
    }))
}
