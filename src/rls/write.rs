//! Write transactions: one per mutation, its first statement setting the
//! writer's tenant.
//!
//! On PostgreSQL with [`Sessions`] a write runs on a session's connection
//! when one is at hand without waiting ([`Sessions::checkout_for_write`]):
//! `BEGIN` and the tenant go out as one statement, and the connection
//! rests again after `COMMIT`, as the tenant's session, instead of going
//! through the pool's return check. A `reportTaskProgress` then costs its
//! statements, `BEGIN` and `COMMIT`: two round trips fewer than sea-orm's
//! `begin`, a `set_config` of its own and the pool's ping
//! (docs/benchmarks.md, "Writes on sessions"). Otherwise (SQLite, a pool
//! too small for sessions, every session in use, or a resting session
//! found dead) it is sea-orm's transaction on a pooled connection, the
//! tenant set for that transaction only.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, Statement, TransactionOptions,
};
use std::sync::Arc;
use uuid::Uuid;

use super::{Scope, Session, Sessions};

/// One write transaction of one tenant (see the module's documentation).
/// Dropped without [`WriteTxn::commit`] it rolls back.
pub enum WriteTxn {
    /// sea-orm's transaction on a pooled connection (its first statement
    /// sets the tenant: [`super::begin`]).
    Pooled(DatabaseTransaction),
    /// A transaction on a session's connection.
    Session(SessionTxn),
}

impl WriteTxn {
    /// Begins a write transaction for `tenant`: on a session when
    /// `sessions` has one at hand, else on the pool with `options`.
    pub async fn begin(
        db: &DatabaseConnection,
        sessions: Option<&Arc<Sessions>>,
        options: TransactionOptions,
        tenant: Uuid,
    ) -> Result<Self, DbErr> {
        if let Some(s) = sessions
            && db.get_database_backend() == DbBackend::Postgres
        {
            if let Some(session) = s.checkout_for_write(tenant, true).await? {
                // A resting session whose connection died meanwhile (its
                // backend terminated, a failover) fails here, before the
                // write did anything: it is closed, and the write begins
                // on the pool instead of failing.
                match SessionTxn::begin(session, tenant).await {
                    Ok(txn) => return Ok(Self::Session(txn)),
                    Err(error) => {
                        tracing::debug!(%error, "a write could not begin on a kept session; beginning on the pool");
                    }
                }
            }
            // Going to the pool: never wait there for a connection that is
            // only resting between reads.
            s.make_room().await;
        }
        super::begin(db, options, Scope::Tenant(tenant))
            .await
            .map(Self::Pooled)
    }

    /// Commits. On PostgreSQL the `COMMIT` runs in a task of its own, so
    /// that once sent it is also answered and the connection comes back
    /// clean, whether or not the caller still waits (see [`super::begin`]).
    pub async fn commit(self) -> Result<(), DbErr> {
        match self {
            WriteTxn::Pooled(txn) => super::commit(txn).await,
            WriteTxn::Session(txn) => txn.commit().await,
        }
    }
}

/// A write transaction on a session's connection. Dropped uncommitted, the
/// session queues its `ROLLBACK` and is drained before it rests or goes
/// back to the pool (see [`Session`]'s `Drop`).
pub struct SessionTxn {
    session: tokio::sync::Mutex<Session>,
    tenant: Uuid,
}

impl SessionTxn {
    /// Sends `BEGIN` and the tenant ([`Session::begin_write`]) in a task of
    /// its own: a caller dropped between sending it and reading its answer
    /// cannot leave the connection inside a transaction sqlx does not know
    /// of.
    async fn begin(mut session: Session, tenant: Uuid) -> Result<Self, DbErr> {
        tokio::spawn(async move {
            session.begin_write(tenant).await?;
            Ok(SessionTxn {
                session: tokio::sync::Mutex::new(session),
                tenant,
            })
        })
        .await
        .map_err(|e| DbErr::Custom(format!("beginning a transaction failed: {e}")))?
    }

    async fn commit(self) -> Result<(), DbErr> {
        let tenant = self.tenant;
        let mut session = self.session.into_inner();
        tokio::spawn(async move { session.commit_write(tenant).await })
            .await
            .map_err(|e| DbErr::Custom(format!("committing a transaction failed: {e}")))?
    }
}

#[sea_orm::prelude::async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            WriteTxn::Pooled(t) => t.get_database_backend(),
            WriteTxn::Session(_) => DbBackend::Postgres,
        }
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        match self {
            WriteTxn::Pooled(t) => t.execute_raw(stmt).await,
            WriteTxn::Session(t) => t.session.lock().await.execute_raw(stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            WriteTxn::Pooled(t) => t.execute_unprepared(sql).await,
            WriteTxn::Session(t) => t.session.lock().await.execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            WriteTxn::Pooled(t) => t.query_one_raw(stmt).await,
            WriteTxn::Session(t) => t.session.lock().await.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            WriteTxn::Pooled(t) => t.query_all_raw(stmt).await,
            WriteTxn::Session(t) => t.session.lock().await.query_all_raw(stmt).await,
        }
    }

    fn support_returning(&self) -> bool {
        match self {
            WriteTxn::Pooled(t) => t.support_returning(),
            WriteTxn::Session(_) => true,
        }
    }
}
