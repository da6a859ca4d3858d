//! Read connections that keep a tenant between requests (PostgreSQL).
//!
//! A scoped read used to cost four round trips besides its statements:
//! `BEGIN`, `set_config`, `COMMIT`, and the ping sqlx sends when a
//! connection goes back to its pool. For the small queries a dashboard
//! sends, those were most of the database's work and most of the
//! server's syscalls (docs/benchmarks.md, "sessions").
//!
//! Here a connection taken for a tenant's reads sets the tenant for its
//! session (`set_config(…, false)`) and, when the reads are done, waits in
//! [`Sessions`] instead of going back to the pool: the next read of the
//! same tenant takes it as it is and sends nothing but its statements. A
//! read of another tenant sets its own tenant first (one round trip).
//! Writes take a session too when one is at hand without waiting
//! ([`Sessions::checkout_for_write`], [`super::write`]): the tenant is set
//! with the `BEGIN`, and kept for the session only if the write commits.
//! A session dropped inside a transaction queues its `ROLLBACK` first.
//!
//! The rule that keeps tenants apart: **a connection with a tenant set for
//! its session never reaches the pool.** It leaves [`Sessions`] only
//! through [`release`], which resets the setting (and closes the
//! connection if the reset fails), or it is closed. A session dropped
//! while a statement was in flight (its request was cancelled) has answers
//! unread: they are read first, as the pool does (`crate::db::settle`),
//! and the connection then reset, or closed.
//!
//! Sessions are checked out of the pool's point of view, resting or not,
//! and a caller waiting on the pool would wait in vain for a connection
//! resting here. So sessions hold at most the pool's size less a
//! [`reserve`] (a quarter, at least one) that only callers of the pool use,
//! readers wait for each other here (first come, first served) rather
//! than on the pool, writers never wait here (a writer finding no session
//! at hand goes to the pool, and if the pool is at its size has a resting
//! session handed back first: [`Sessions::make_room`]), and sessions
//! resting for [`IDLE_FOR`] go back on their own (checked every half of
//! it). A pool of one has no sessions.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

pub use crate::db::{BEGIN_WRITE_SQL_PREFIX, SET_SESSION_SCOPE_SQL};

use super::Scope;
use crate::db::StatementCounter;
use futures::{Stream, StreamExt};
use sea_orm::sea_query::Values;
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::{PgPool, PgRow};
use sea_orm::sqlx::{self, Postgres};
use sea_orm::{ConnAcquireErr, DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use sea_query_sqlx::SqlxValues;

/// `BEGIN` and the writer's tenant, sent as one simple-protocol string:
/// one round trip where sea-orm's `begin` and a `set_config` take two.
///
/// The tenant is set for the session, inside the transaction: PostgreSQL
/// keeps such a setting only if the transaction commits and undoes it if
/// it rolls back. So row-level security sees this tenant for the whole
/// write, and afterwards the session either rests as this tenant's (after
/// `COMMIT`, ready for the reads that answer the mutation) or as it was.
/// Both settings are set, so a session that read every tenant (the
/// fan-out's) writes as this one tenant only. The tenant is inlined: a
/// UUID prints as hexadecimal digits and dashes only, so nothing a caller
/// sends reaches this text.
pub fn begin_write_sql(tenant: uuid::Uuid) -> String {
    format!(
        "{BEGIN_WRITE_SQL_PREFIX}{tenant}', false), set_config('cerebral.all_tenants', '', false)"
    )
}

/// What hands a session back to the pool: both settings gone.
const RESET_SQL: &str = "RESET cerebral.tenant_id; RESET cerebral.all_tenants";

/// How long a connection may wait here unused before it goes back to the
/// pool: the same age past which the pool pings a connection before
/// handing it out (`crate::db`), since the server may have closed it.
pub const IDLE_FOR: Duration = Duration::from_secs(10);

/// Connections waiting between reads, each with a scope (a tenant, or
/// every tenant for the event fan-out) set for its session. Shared by
/// every reader of the server.
pub struct Sessions {
    pool: PgPool,
    counter: Option<Arc<StatementCounter>>,
    state: Mutex<State>,
    /// One permit per session in use, `cap` in all, handed out first come
    /// first served (tokio's semaphore is fair): a reader that waits, the
    /// event fan-out's included, is served before any that came later.
    in_use: Arc<tokio::sync::Semaphore>,
    /// Connections sessions may hold at once, in use or resting: the
    /// pool's size less its reserve.
    cap: usize,
}

#[derive(Default)]
struct State {
    /// Resting sessions, in the order they came back.
    idle: Vec<Idle>,
    /// Connections held here, in use or resting (at most `cap`).
    held: usize,
}

struct Idle {
    conn: PoolConnection<Postgres>,
    scope: Scope,
    since: Instant,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("cap", &self.cap).finish()
    }
}

/// The connections of the pool that sessions never hold, for everything
/// else that takes a connection from the pool directly (writes, the
/// listener's and notifier's statements, health checks): a quarter of the
/// pool, and at least one. A caller waiting on the pool is then only ever
/// waiting for connections that go back to the pool.
pub fn reserve(pool_size: u32) -> u32 {
    (pool_size / 4).max(1)
}

impl Sessions {
    /// Sessions over `pool`, counting their statements on `counter`, or
    /// `None` when the pool is too small to spare a connection beyond
    /// its [`reserve`]. Spawns the task that hands back connections idle
    /// for [`IDLE_FOR`] (so it must be called inside a Tokio runtime); the
    /// task ends when the returned handle's last clone is dropped.
    pub fn new(pool: PgPool, counter: Option<Arc<StatementCounter>>) -> Option<Arc<Self>> {
        let max = pool.options().get_max_connections();
        let cap = max.saturating_sub(reserve(max)) as usize;
        if cap == 0 {
            return None;
        }
        let sessions = Arc::new(Sessions {
            pool,
            counter,
            state: Mutex::new(State::default()),
            in_use: Arc::new(tokio::sync::Semaphore::new(cap)),
            cap,
        });
        tokio::spawn(sweep(Arc::downgrade(&sessions)));
        Some(sessions)
    }

    /// A connection with `scope` set for its session, once one of the
    /// `cap` sessions is free (in arrival order, within the pool's acquire
    /// timeout): one resting here with the same scope (no round trip);
    /// else a new one from the pool, while sessions hold fewer than their
    /// cap; else one another scope left here, which then exists (sessions
    /// in use are fewer than the cap). Any but the first gets its scope
    /// set first. [`Scope::Unscoped`] needs no session and is refused. The
    /// session's statements are counted when `counted` says so.
    pub async fn checkout(self: &Arc<Self>, scope: Scope, counted: bool) -> Result<Session, DbErr> {
        if scope == Scope::Unscoped {
            return Err(DbErr::Custom("an unscoped read needs no session".into()));
        }
        let wait = self.pool.options().get_acquire_timeout();
        let permit = match tokio::time::timeout(wait, self.in_use.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => return Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)),
        };
        let found = {
            let mut st = self.lock();
            let now = Instant::now();
            let fresh = |i: &Idle| now.duration_since(i.since) < IDLE_FOR;
            if let Some(n) = st.idle.iter().rposition(|i| i.scope == scope && fresh(i)) {
                Found::Same(st.idle.remove(n).conn)
            } else if st.held < self.cap {
                st.held += 1;
                Found::Room
            } else {
                // Held are `cap`, in use fewer: one rests. The most recent
                // (the oldest may have rested long enough to be stale).
                st.idle
                    .pop()
                    .map_or(Found::Nothing, |i| Found::Other(i.conn))
            }
        };
        let conn = match found {
            Found::Same(conn) => return Ok(self.session(conn, scope, counted, permit)),
            Found::Other(conn) => conn,
            Found::Room => {
                // Counted before the wait: if it fails or this future is
                // dropped meanwhile, the count goes down again.
                let mut slot = Slot(Some(self));
                let conn = self.pool.acquire().await.map_err(acquire_err)?;
                slot.0 = None;
                conn
            }
            Found::Nothing => {
                return Err(DbErr::Custom(
                    "read sessions: none resting although all are held".into(),
                ));
            }
        };
        let mut session = self.session(conn, scope, counted, permit);
        session.set_scope().await?;
        Ok(session)
    }

    /// A connection for one write transaction of `tenant`, without waiting
    /// for the other sessions: a resting one (one of the same tenant
    /// first, then the most recent), else a new one from the pool while
    /// sessions hold fewer than their cap. `None` when neither is at hand
    /// at once (readers are queued, or every session is in use): the
    /// writer then takes its connection from the pool's reserve as before.
    /// A writer never waits here, so a request holding a session cannot
    /// wait on another one for its write.
    ///
    /// The write sets its tenant when it begins ([`Session::begin_write`]);
    /// after `COMMIT` the session rests as that tenant's.
    pub async fn checkout_for_write(
        self: &Arc<Self>,
        tenant: uuid::Uuid,
        counted: bool,
    ) -> Result<Option<Session>, DbErr> {
        let Ok(permit) = self.in_use.clone().try_acquire_owned() else {
            return Ok(None);
        };
        let found = {
            let mut st = self.lock();
            let now = Instant::now();
            let fresh = |i: &Idle| now.duration_since(i.since) < IDLE_FOR;
            let pick = st
                .idle
                .iter()
                .rposition(|i| i.scope == Scope::Tenant(tenant) && fresh(i))
                .or_else(|| st.idle.iter().rposition(fresh));
            if let Some(n) = pick {
                Some(st.idle.remove(n))
            } else if st.held < self.cap {
                st.held += 1;
                None
            } else {
                return Ok(None);
            }
        };
        if let Some(i) = found {
            return Ok(Some(self.session(i.conn, i.scope, counted, permit)));
        }
        let mut slot = Slot(Some(self));
        let conn = self.pool.acquire().await.map_err(acquire_err)?;
        slot.0 = None;
        Ok(Some(self.session(conn, Scope::Unscoped, counted, permit)))
    }

    /// Hands the longest-resting session back to the pool when the pool
    /// has no connection idle and may open no more, so that a caller about
    /// to take one from the pool directly (a write transaction) need not
    /// wait for its reserve while sessions rest.
    pub async fn make_room(&self) {
        let max = self.pool.options().get_max_connections();
        if self.pool.num_idle() > 0 || self.pool.size() < max {
            return;
        }
        let oldest = {
            let mut st = self.lock();
            (!st.idle.is_empty()).then(|| st.idle.remove(0))
        };
        if let Some(i) = oldest {
            self.hand_back(i.conn).await;
        }
    }

    /// Resets a resting session taken out of the list and gives its
    /// connection back to the pool, in a task of its own: a caller dropped
    /// meanwhile must not leave it on its way there with its scope set.
    async fn hand_back(&self, conn: PoolConnection<Postgres>) {
        let released = tokio::spawn(release(conn));
        self.let_go();
        let _ = released.await;
    }

    /// Sessions resting here now.
    pub fn idle(&self) -> usize {
        self.lock().idle.len()
    }

    fn session(
        self: &Arc<Self>,
        conn: PoolConnection<Postgres>,
        scope: Scope,
        counted: bool,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> Session {
        Session {
            permit: Some(permit),
            conn: Some(conn),
            scope,
            clean: true,
            home: Arc::downgrade(self),
            counter: self.counter.clone().filter(|_| counted),
        }
    }

    fn put_back(&self, conn: PoolConnection<Postgres>, scope: Scope) {
        self.lock().idle.push(Idle {
            conn,
            scope,
            since: Instant::now(),
        });
    }

    /// One connection fewer held here (given back to the pool, or closed).
    fn let_go(&self) {
        let mut st = self.lock();
        st.held = st.held.saturating_sub(1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state as it was: a
        // list of connections and a count, still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A connection counted as held before it is, let go unless disarmed.
struct Slot<'a>(Option<&'a Sessions>);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.0 {
            s.let_go();
        }
    }
}

impl Drop for State {
    fn drop(&mut self) {
        // The last handle is gone while sessions rest: they close rather
        // than go back to a pool that may outlive this struct.
        for i in &mut self.idle {
            i.conn.close_on_drop();
        }
    }
}

/// What [`Sessions::checkout`] found.
enum Found {
    Same(PoolConnection<Postgres>),
    Other(PoolConnection<Postgres>),
    Room,
    Nothing,
}

/// Every few seconds, hands back what rested longer than [`IDLE_FOR`].
async fn sweep(sessions: Weak<Sessions>) {
    let mut tick = tokio::time::interval(IDLE_FOR / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(s) = sessions.upgrade() else { return };
        let stale: Vec<Idle> = {
            let mut st = s.lock();
            let now = Instant::now();
            let (stale, fresh) = std::mem::take(&mut st.idle)
                .into_iter()
                .partition(|i| now.duration_since(i.since) >= IDLE_FOR);
            st.idle = fresh;
            stale
        };
        for i in stale {
            s.hand_back(i.conn).await;
        }
    }
}

/// Resets the session's scope and lets the connection go back to the
/// pool; closes it instead when the reset does not succeed.
async fn release(mut conn: PoolConnection<Postgres>) {
    let reset = sqlx::raw_sql(RESET_SQL).execute(&mut *conn).await;
    if let Err(error) = reset {
        tracing::debug!(%error, "resetting a read session failed; closing its connection");
        conn.close_on_drop();
    }
}

/// One connection with a scope set for its session, lent to one reader
/// until dropped. Its statements run one implicit transaction each (as
/// `READ COMMITTED` statements do in an explicit one).
pub struct Session {
    /// Given up once the connection is back (resting, or let go after a
    /// drain): the next reader in line then finds it, and sessions in use
    /// plus resting never exceed what they hold.
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    conn: Option<PoolConnection<Postgres>>,
    scope: Scope,
    /// False while a statement is in flight: a session dropped then has
    /// answers unread and is closed instead of kept.
    clean: bool,
    home: Weak<Sessions>,
    counter: Option<Arc<StatementCounter>>,
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if sqlx::Connection::is_in_transaction(&*conn) {
            // A write that ended without its COMMIT (an error, or its
            // request cancelled): the ROLLBACK goes out with the drain
            // below, which reads every answer still owed.
            <sqlx::postgres::PgTransactionManager as sqlx_core::transaction::TransactionManager>::start_rollback(&mut conn);
            self.clean = false;
        }
        match self.home.upgrade() {
            Some(home) if self.clean => home.put_back(conn, self.scope),
            // Answers are unread: read them (the statement left running
            // ends by its timeout) before the connection goes back, scope
            // reset, as `crate::db` does for the pool; still counted as
            // held meanwhile, so sessions never hold more than their cap.
            Some(home) => match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    let permit = self.permit.take();
                    rt.spawn(async move {
                        let within = crate::db::SETTLE_WITHOUT_STATEMENT_TIMEOUT;
                        match crate::db::settle(&mut conn, within).await {
                            Ok(true) => release(conn).await,
                            _ => conn.close_on_drop(),
                        }
                        home.let_go();
                        drop(permit);
                    });
                }
                Err(_) => {
                    conn.close_on_drop();
                    drop(conn);
                    home.let_go();
                }
            },
            // The server is shutting down: never hand a scope to the pool.
            None => conn.close_on_drop(),
        }
    }
}

impl Session {
    async fn set_scope(&mut self) -> Result<(), DbErr> {
        let (tenant, all) = match self.scope {
            Scope::Tenant(t) => (t.to_string(), ""),
            Scope::AllTenants => (String::new(), "on"),
            Scope::Unscoped => (String::new(), ""),
        };
        let stmt = Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            SET_SESSION_SCOPE_SQL,
            [tenant.into(), all.into()],
        );
        let set = self.query_all_raw(stmt).await.map(drop);
        if set.is_err() {
            // Whatever scope the connection has now, it is not this one.
            self.clean = false;
        }
        set
    }

    /// Runs `stmt`, for its effect.
    pub async fn execute_raw(&mut self, stmt: Statement) -> Result<ExecResult, DbErr> {
        let (conn, clean) = self.start(&stmt.sql)?;
        let out = query(&stmt).execute(&mut **conn).await;
        *clean = settled(&out);
        out.map(ExecResult::from).map_err(exec_err)
    }

    /// Runs `sql` without parameters (simple protocol).
    pub async fn execute_unprepared(&mut self, sql: &str) -> Result<ExecResult, DbErr> {
        let (conn, clean) = self.start(sql)?;
        let out = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut **conn)
            .await;
        *clean = settled(&out);
        out.map(ExecResult::from).map_err(exec_err)
    }

    /// The first row of `stmt`, if any.
    pub async fn query_one_raw(&mut self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        let (conn, clean) = self.start(&stmt.sql)?;
        let out = query(&stmt).fetch_optional(&mut **conn).await;
        *clean = settled(&out);
        out.map(|r| r.map(QueryResult::from)).map_err(query_err)
    }

    /// Every row of `stmt`.
    pub async fn query_all_raw(&mut self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let (conn, clean) = self.start(&stmt.sql)?;
        let out = query(&stmt).fetch_all(&mut **conn).await;
        *clean = settled(&out);
        out.map(|rows| rows.into_iter().map(QueryResult::from).collect())
            .map_err(query_err)
    }

    /// The rows of `stmt` one at a time. A stream dropped before its end
    /// leaves rows unread, so the session is then closed, not kept.
    pub async fn stream_raw(
        &mut self,
        stmt: Statement,
    ) -> Result<impl Stream<Item = Result<QueryResult, DbErr>> + Send + '_, DbErr> {
        let (conn, clean) = self.start(&stmt.sql)?;
        let values = stmt.values.unwrap_or(Values(Vec::new()));
        let rows =
            sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql), SqlxValues(values)).fetch(&mut **conn);
        Ok(Ended {
            rows,
            clean,
            broken: false,
        })
    }

    /// Opens a write transaction for `tenant`: [`begin_write_sql`], one
    /// round trip. Any failure leaves the connection in a state not known
    /// here, so the session is then drained and reset, or closed.
    pub async fn begin_write(&mut self, tenant: uuid::Uuid) -> Result<(), DbErr> {
        use sqlx::SqlSafeStr;
        use sqlx_core::transaction::TransactionManager;
        let sql = begin_write_sql(tenant);
        let (conn, clean) = self.start(&sql)?;
        let out = sqlx::postgres::PgTransactionManager::begin(
            &mut **conn,
            Some(sqlx::AssertSqlSafe(sql).into_sql_str()),
        )
        .await;
        *clean = out.is_ok();
        out.map_err(exec_err)
    }

    /// Commits the write transaction [`Session::begin_write`] opened for
    /// `tenant` (not counted as a statement, as sea-orm's `COMMIT` is not);
    /// the session is then that tenant's. A failed `COMMIT` ends the
    /// transaction on the server, but not in sqlx's count: the session is
    /// then drained and closed, not kept.
    pub async fn commit_write(&mut self, tenant: uuid::Uuid) -> Result<(), DbErr> {
        use sqlx_core::transaction::TransactionManager;
        let (conn, clean) = self.in_flight()?;
        let out = sqlx::postgres::PgTransactionManager::commit(&mut **conn).await;
        *clean = out.is_ok();
        if out.is_ok() {
            self.scope = Scope::Tenant(tenant);
        }
        out.map_err(exec_err)
    }

    /// Counts the statement and marks it in flight.
    fn start(&mut self, sql: &str) -> Result<(&mut PoolConnection<Postgres>, &mut bool), DbErr> {
        if let Some(c) = &self.counter {
            c.count(sql);
        }
        self.in_flight()
    }

    /// Marks a statement in flight.
    fn in_flight(&mut self) -> Result<(&mut PoolConnection<Postgres>, &mut bool), DbErr> {
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| DbErr::Custom("a read session was used after it ended".into()))?;
        self.clean = false;
        Ok((conn, &mut self.clean))
    }
}

/// A row stream that marks its session clean once read to the end.
struct Ended<'a, S> {
    rows: S,
    clean: &'a mut bool,
    /// An error other than the server's came: the end is not in step.
    broken: bool,
}

impl<S> Stream for Ended<'_, S>
where
    S: Stream<Item = Result<PgRow, sqlx::Error>> + Unpin,
{
    type Item = Result<QueryResult, DbErr>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        match self.rows.poll_next_unpin(cx) {
            Poll::Ready(None) => {
                *self.clean = !self.broken;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                // An error the server answered ends the statement in step
                // (sqlx reads on to its end before the next one).
                if matches!(&e, sqlx::Error::Database(d) if !ends_connection(d.as_ref())) {
                    *self.clean = true;
                } else {
                    self.broken = true;
                }
                Poll::Ready(Some(Err(query_err(e))))
            }
            Poll::Ready(Some(Ok(row))) => Poll::Ready(Some(Ok(QueryResult::from(row)))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Whether the connection is in step after a statement that ended so: an
/// error the server answered leaves it so (sqlx reads the rest of that
/// answer before the next statement), unless the answer says the
/// connection is ending ([`ends_connection`]); any other error may not.
fn settled<T>(out: &Result<T, sqlx::Error>) -> bool {
    match out {
        Ok(_) => true,
        Err(sqlx::Error::Database(e)) => !ends_connection(e.as_ref()),
        Err(_) => false,
    }
}

/// An error after which the server closes the connection: `FATAL` or
/// `PANIC` (its backend was terminated, the server is shutting down) or a
/// connection exception (class `08`). A session that met one is closed,
/// not kept to fail the next reader too.
fn ends_connection(e: &dyn sqlx::error::DatabaseError) -> bool {
    use sqlx::postgres::{PgDatabaseError, PgSeverity};
    let fatal = e
        .try_downcast_ref::<PgDatabaseError>()
        .is_some_and(|pg| matches!(pg.severity(), PgSeverity::Fatal | PgSeverity::Panic));
    fatal || e.code().is_some_and(|c| c.starts_with("08"))
}

/// `stmt` as sqlx runs it, as sea-orm's own PostgreSQL driver builds it.
fn query(stmt: &Statement) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = stmt.values.clone().unwrap_or(Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values))
}

// The same variants sea-orm's driver reports, so that callers telling
// errors apart (a statement timeout, a lost connection) see no difference.
fn query_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(e)))
}

fn exec_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(e)))
}

/// As sea-orm's driver reports a failed pool acquire.
fn acquire_err(e: sqlx::Error) -> DbErr {
    match e {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        e => DbErr::Conn(RuntimeErr::SqlxError(Arc::new(e))),
    }
}
