//! Row-level security on PostgreSQL: which tenant a transaction acts for.
//!
//! The application filters every query by the caller's tenant; PostgreSQL
//! enforces the same boundary a second time (migration
//! `m20261122_000006_row_level_security`). Its policies compare each row's
//! `tenant_id` with the transaction-local setting `cerebral.tenant_id`, set
//! here with `set_config(…, true)` at the start of every transaction, so a
//! pooled connection never carries one request's tenant into the next: the
//! setting ends with the transaction, whether it commits, rolls back or
//! fails half-way.
//!
//! Writes already run in one transaction each ([`crate::service::Services::begin`]
//! sets the tenant first). Reads go through a [`Scoped`] handle, which runs
//! each statement in a short transaction of its own that first sets the
//! scope. Three scopes exist:
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

use tokio::sync::MutexGuard;
use uuid::Uuid;

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

/// The statement that opens every scoped transaction (counted as one
/// transaction by [`crate::db::StatementCounter`]).
pub const SET_SCOPE_SQL: &str = "SELECT set_config($1, $2, true)";

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
/// On PostgreSQL each statement (other than in [`Scope::Unscoped`]) runs in
/// a transaction of its own: `BEGIN`, `set_config`, the statement,
/// `COMMIT`. That costs round trips, not correctness: a statement that
/// fails rolls its transaction back and takes the setting with it.
///
/// A handle made with [`Scoped::per_request`] and then [`Scoped::pin`]ned
/// instead runs every statement of its clones in ONE transaction, begun
/// (and the scope set) at the first statement and ended when the last
/// clone is dropped: a GraphQL query reads one snapshot per statement
/// (`READ COMMITTED`) for the price of one `BEGIN`, one `set_config` and
/// one `COMMIT`, however many loaders it runs. It holds one pooled
/// connection meanwhile, so it is pinned only for query operations over
/// HTTP (never for a mutation, whose write transaction needs a connection
/// of its own, nor for a subscription, which lives for minutes).
#[derive(Clone)]
pub struct Scoped {
    db: DatabaseConnection,
    scope: Scope,
    pinned: Option<Arc<Pinned>>,
}

/// The transaction a pinned [`Scoped`] shares between its clones.
struct Pinned {
    /// Set by [`Scoped::pin`]; until then statements run one transaction each.
    active: AtomicBool,
    /// Begun at the first statement after pinning.
    txn: tokio::sync::Mutex<Option<DatabaseTransaction>>,
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // Nothing was written, so COMMIT and ROLLBACK end it alike; the
        // COMMIT runs after the answer went out, off the request's path.
        // Without a runtime (shutdown) the transaction's own drop queues a
        // ROLLBACK, which the pool sends before the connection is reused.
        if let Some(txn) = self.txn.get_mut().take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                if let Err(e) = txn.commit().await {
                    tracing::debug!(error = %e, "ending a request's read transaction failed");
                }
            });
        }
    }
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
            pinned: None,
        }
    }

    /// A handle for one request: like [`Scoped::new`] until [`Scoped::pin`]
    /// is called on it or a clone, then one shared transaction.
    pub fn per_request(db: DatabaseConnection, scope: Scope) -> Self {
        Scoped {
            db,
            scope,
            pinned: Some(Arc::new(Pinned {
                active: AtomicBool::new(false),
                txn: tokio::sync::Mutex::new(None),
            })),
        }
    }

    /// From now on the statements of this handle and its clones share one
    /// transaction (a no-op for a handle not made by
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

    /// The pinned transaction (begun on first use), locked for one
    /// statement; `None` when this handle is not pinned.
    async fn shared_txn(
        &self,
    ) -> Result<Option<MutexGuard<'_, Option<DatabaseTransaction>>>, DbErr> {
        let Some(p) = self
            .pinned
            .as_deref()
            .filter(|p| p.active.load(Ordering::Relaxed) && self.needs_scope())
        else {
            return Ok(None);
        };
        let mut guard = p.txn.lock().await;
        if guard.is_none() {
            *guard = Some(begin(&self.db, TransactionOptions::default(), self.scope).await?);
        }
        Ok(Some(guard))
    }
}

/// Runs `$call` on the pinned transaction if there is one (a failed
/// statement ends it: PostgreSQL refuses every later statement of an
/// aborted transaction, so the next one begins afresh), else in a
/// transaction of its own, else straight on the pool.
macro_rules! scoped {
    ($self:ident, |$c:ident| $call:expr) => {{
        if let Some(mut guard) = $self.shared_txn().await? {
            let out = match guard.as_ref() {
                Some($c) => $call.await,
                None => Err(DbErr::Custom(
                    "the request's read transaction is gone".into(),
                )),
            };
            if out.is_err() {
                guard.take();
            }
            out
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

impl Scoped {}

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
