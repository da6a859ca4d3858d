//! Database connection and migrations.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

/// Counts SQL statements executed through the pool, and the scoped
/// transactions among them; exposed on `/metrics` and used by tests to
/// prove DataLoader batching and that a query sets its tenant at most once.
#[derive(Debug, Default)]
pub struct StatementCounter {
    statements: AtomicU64,
    transactions: AtomicU64,
}

impl StatementCounter {
    /// Statements executed so far (`BEGIN` and `COMMIT` not included;
    /// the `set_config` that opens a scoped transaction is).
    pub fn get(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    /// Times a row-level-security scope was set so far (PostgreSQL): each
    /// scoped transaction opens with [`crate::rls::set_scope`]'s
    /// `set_config`, and a read session sets its tenant once for as long
    /// as it serves that tenant ([`crate::rls::sessions`]); those
    /// `set_config`s are what is counted.
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    pub(crate) fn count(&self, sql: &str) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        if sql.starts_with(SET_SCOPE_SQL)
            || sql.starts_with(SET_SESSION_SCOPE_SQL)
            || sql.starts_with(BEGIN_WRITE_SQL_PREFIX)
        {
            self.transactions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

// The statements that open a tenant scope. `crate::rls` writes them; they
// live here so the statement counter can tell them apart without the
// connection layer depending on the security layer above it.

/// The statement that opens every scoped transaction (counted as one
/// transaction by [`StatementCounter`]).
pub const SET_SCOPE_SQL: &str = "SELECT set_config($1, $2, true)";

/// The statement that sets a session's scope: both settings at once, so
/// that a session switched from one scope to another keeps nothing of the
/// first (counted by [`StatementCounter`] as a scope set, like
/// [`SET_SCOPE_SQL`]).
pub const SET_SESSION_SCOPE_SQL: &str = "SELECT set_config('cerebral.tenant_id', $1, false), \
     set_config('cerebral.all_tenants', $2, false)";

/// How the statement that opens a write transaction on a session starts
/// (see `crate::rls::sessions::begin_write_sql`; counted by [`StatementCounter`] as a scope
/// set).
pub const BEGIN_WRITE_SQL_PREFIX: &str = "BEGIN; SELECT set_config('cerebral.tenant_id', '";

/// Connects, creating the SQLite file and its folder when needed.
///
/// SQLite runs with WAL (readers do not block the writer) and foreign keys on;
/// writes are serialised in the service layer, so the busy timeout only covers
/// other processes touching the file.
pub async fn connect(
    url: &str,
    max_connections: u32,
) -> anyhow::Result<(DatabaseConnection, Arc<StatementCounter>)> {
    connect_with(url, max_connections, None).await
}

/// Like [`connect`]; on PostgreSQL every statement of the pool is also
/// cancelled by the server after `statement_timeout`, so a request that
/// timed out does not leave its query running (or waiting on a lock) after
/// the request has been answered. Migrations must not run on such a pool.
pub async fn connect_with(
    url: &str,
    max_connections: u32,
    statement_timeout: Option<Duration>,
) -> anyhow::Result<(DatabaseConnection, Arc<StatementCounter>)> {
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings a connection when it comes back (after `settle`,
        // below) and, by default, again each time it is taken: a round
        // trip before every transaction. Taken within seconds of its
        // return it is known good; only one idle for longer (the server
        // may have closed it) is pinged first.
        .test_before_acquire_if_idle_for(Duration::from_secs(10))
        .sqlx_logging(false);
    if url.starts_with("sqlite:") {
        ensure_sqlite_folder(url)?;
        opts.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
        });
    }
    if let Some(t) = statement_timeout
        && url.starts_with("postgres")
    {
        let ms = t.as_millis().to_string();
        opts.map_sqlx_postgres_opts(move |o| o.options([("statement_timeout", ms.as_str())]));
    }
    if url.starts_with("postgres") {
        // What a cancelled request left running ends by the statement
        // timeout; the margin covers the round trips after it.
        let within =
            statement_timeout.map_or(SETTLE_WITHOUT_STATEMENT_TIMEOUT, |t| t + SETTLE_MARGIN);
        opts.map_sqlx_postgres_pool_opts(move |o| {
            o.after_release(move |conn, _| Box::pin(settle(conn, within)))
        });
    }
    let postgres = url.starts_with("postgres");
    // On PostgreSQL the first connections are opened together, below,
    // instead of one by one.
    opts.connect_lazy(postgres);
    let mut db = Database::connect(opts)
        .await
        .with_context(|| format!("cannot connect to {}", redact(url)))?;
    if postgres {
        warm_up(&db, WARM_CONNECTIONS.min(max_connections))
            .await
            .with_context(|| format!("cannot connect to {}", redact(url)))?;
    }
    let counter = Arc::new(StatementCounter::default());
    let c = counter.clone();
    db.set_metric_callback(move |info| c.count(&info.statement.sql));
    Ok((db, counter))
}

/// Connections a PostgreSQL pool opens at once when it is created.
///
/// Opening a connection (TCP, TLS, authentication, the server starting a
/// backend) costs far more than the statements start-up runs on it, and
/// sqlx puts a connection back in the pool only after a round trip of its
/// own: with one connection, the statement that follows another found none
/// idle and opened a second connection on the spot, one after the other.
/// Opened together, the second one costs no wait; start-up's statements
/// alternate between them.
const WARM_CONNECTIONS: u32 = 2;

/// Opens `n` connections of `db`'s pool at the same time and returns once
/// they are all idle in it (or as soon as one fails: the error of the
/// first connection that could not be opened).
async fn warm_up(db: &DatabaseConnection, n: u32) -> anyhow::Result<()> {
    let pool = db.get_postgres_connection_pool();
    let opened = futures::future::try_join_all((0..n).map(|_| pool.acquire())).await?;
    drop(opened);
    // Dropping hands each connection to a task that checks it and puts it
    // back; wait for that (a round trip), within a bound.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while pool.num_idle() < n as usize && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

/// How long past its statement timeout a returned connection may take to
/// answer before it is closed instead of reused.
const SETTLE_MARGIN: Duration = Duration::from_secs(1);

/// The same bound on a pool without a statement timeout (the migrator's,
/// the command line's, a server with no request timeout).
pub(crate) const SETTLE_WITHOUT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Readies a PostgreSQL connection that comes back to the pool, before
/// sqlx's own check (a bare `Sync` round trip) and before anyone else can
/// use it.
///
/// A request dropped half-way (its client left, or its timeout fired)
/// returns its connection with answers still unread: the statement it
/// stopped waiting for, and the `ROLLBACK` its dropped transaction queued.
/// sqlx's check reads them, but gives up on the first error in the backlog
/// (the cancelled statement's `57014`) and then "hard closes" the
/// connection: over TLS that close waits for the server to send something,
/// which an idle server never does, so the connection stayed open, idle
/// after its `ROLLBACK`, and its pool slot never came back (two such
/// requests wedged a pool of two).
///
/// Here the backlog is read to its end, errors included, within `within`;
/// the connection goes back only when everything is answered and sqlx counts
/// no open transaction (so its queued `ROLLBACK` has run). Otherwise it is
/// closed gracefully (`Terminate`, which the server answers by closing its
/// end, so no TLS read waits forever) and the pool opens a replacement.
/// Never an `Err`: sqlx's answer to that is the hard close above.
pub(crate) async fn settle(
    conn: &mut sea_orm::sqlx::postgres::PgConnection,
    within: Duration,
) -> Result<bool, sea_orm::sqlx::Error> {
    use sea_orm::sqlx::Connection;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        // `flush` sends what is queued and reads until every answer the
        // connection still expects has come: no round trip when nothing is
        // outstanding (the usual return), so the only one stays sqlx's.
        match tokio::time::timeout_at(deadline, conn.flush()).await {
            Ok(Ok(())) => break,
            // An answer the cancelled request never read; the rest of the
            // backlog follows it.
            Ok(Err(sea_orm::sqlx::Error::Database(_))) => continue,
            Ok(Err(error)) => {
                tracing::warn!(%error, "a returned database connection is broken; closing it");
                return Ok(false);
            }
            Err(_) => {
                tracing::warn!(
                    within_ms = within.as_millis() as u64,
                    "a returned database connection did not answer in time; closing it"
                );
                return Ok(false);
            }
        }
    }
    if conn.is_in_transaction() {
        tracing::warn!("a database connection came back inside a transaction; closing it");
        return Ok(false);
    }
    Ok(true)
}

/// Another handle on the same pool that does not count its statements:
/// background work (the event fan-out) would otherwise show up in the
/// per-request statement figures at random moments.
pub fn uncounted(db: &DatabaseConnection) -> DatabaseConnection {
    if is_sqlite(db) {
        sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(db.get_sqlite_connection_pool().clone())
    } else {
        sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(
            db.get_postgres_connection_pool().clone(),
        )
    }
}

/// The advisory lock key replicas take around start-up migrations
/// (`cerebral` in ASCII): one migrates, the others wait, then find
/// nothing left to do.
const MIGRATION_LOCK: i64 = 0x6365_7265_6272_616c;

/// Applies every pending migration. On PostgreSQL `db` must be a pool of
/// one connection: the session-level advisory lock taken here is held by
/// that connection while the migrator runs on it, so several replicas
/// starting at once migrate one after the other instead of racing on the
/// same `CREATE TABLE`s.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    migrate_granting(db, None).await
}

/// Like [`migrate`]; then, on PostgreSQL and when `serving_role` is a role
/// other than the one migrating, gives the table privileges to that role
/// alone: `SELECT, INSERT, UPDATE, DELETE` on every table of the schema
/// (and, as default privileges, on the tables later migrations create) to
/// `serving_role`, and none to `PUBLIC`. Migration
/// `m20261122_000006_row_level_security` granted them to `PUBLIC`, so any
/// role that could connect could read what row-level security let it; it
/// is released, so it stays as it is and this runs after it, under the
/// same advisory lock (concurrent `GRANT`s on one table can fail), each
/// time migrations are applied. See [`serving_role`].
pub async fn migrate_granting(
    db: &DatabaseConnection,
    serving_role: Option<&str>,
) -> anyhow::Result<()> {
    if is_sqlite(db) {
        // SQLite serialises writers on the file itself.
        return Migrator::up(db, None).await.context("migrations failed");
    }
    db.execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .await
        .context("cannot take the migration lock")?;
    let mut result = Migrator::up(db, None).await.context("migrations failed");
    if result.is_ok()
        && let Some(role) = serving_role
    {
        result = grant_to(db, role).await;
    }
    // Released with the session anyway; unlocking now lets the next
    // replica go without waiting for the pool to close.
    let _ = db
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .await;
    result
}

/// The role `database_url` logs in as, on PostgreSQL (None for SQLite or a
/// URL that does not parse): the serving role whose table privileges
/// [`migrate_granting`] sets when it is not the migrating role.
pub fn serving_role(database_url: &str) -> Option<String> {
    use std::str::FromStr;
    if !database_url.starts_with("postgres") {
        return None;
    }
    sea_orm::sqlx::postgres::PgConnectOptions::from_str(database_url)
        .ok()
        .map(|o| o.get_username().to_string())
        .filter(|u| !u.is_empty())
}

/// Table privileges to `role` alone (see [`migrate_granting`]); nothing
/// when `role` is the role of `db` itself (one role migrates and serves).
async fn grant_to(db: &DatabaseConnection, role: &str) -> anyhow::Result<()> {
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT current_user::text AS u, quote_ident(current_schema()) AS s",
        ))
        .await
        .context("cannot read the migrating role")?
        .context("no current role")?;
    let me: String = row.try_get("", "u")?;
    let schema: String = row.try_get("", "s")?;
    if me == role {
        return Ok(());
    }
    let grantee = format!("\"{}\"", role.replace('"', "\"\""));
    let privileges = "SELECT, INSERT, UPDATE, DELETE";
    db.execute_unprepared(&format!(
        "REVOKE {privileges} ON ALL TABLES IN SCHEMA {schema} FROM PUBLIC;\n\
         ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} REVOKE {privileges} ON TABLES FROM PUBLIC;\n\
         GRANT {privileges} ON ALL TABLES IN SCHEMA {schema} TO {grantee};\n\
         ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT {privileges} ON TABLES TO {grantee};"
    ))
    .await
    .with_context(|| format!("cannot grant the tables to the serving role {role}"))?;
    tracing::info!(
        role,
        "table privileges granted to the serving role (and not to PUBLIC)"
    );
    Ok(())
}

/// The migrations this binary knows that the database has not applied,
/// by name. Reads `seaql_migrations` only: unlike the migrator's own
/// status call it never creates that table, so a role without DDL rights
/// can ask.
pub async fn pending_migrations(db: &DatabaseConnection) -> anyhow::Result<Vec<String>> {
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations",
        ))
        .await?;
    let applied: std::collections::HashSet<String> = rows
        .iter()
        .filter_map(|r| r.try_get::<String>("", "version").ok())
        .collect();
    Ok(Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .filter(|n| !applied.contains(n))
        .collect())
}

/// The pool's open connections and how many of them are idle.
pub fn pool_stats(db: &DatabaseConnection) -> (u64, u64) {
    if is_sqlite(db) {
        let p = db.get_sqlite_connection_pool();
        (u64::from(p.size()), p.num_idle() as u64)
    } else {
        let p = db.get_postgres_connection_pool();
        (u64::from(p.size()), p.num_idle() as u64)
    }
}

/// Tasks by status and pending HITL requests over all tenants, for
/// `/metrics` (each `None` when its count failed): two aggregate reads
/// per scrape. On PostgreSQL `db` must see every tenant
/// ([`crate::rls::Scope::AllTenants`]).
pub async fn work_counts(db: &impl ConnectionTrait) -> (Option<Vec<(String, u64)>>, Option<u64>) {
    let backend = db.get_database_backend();
    let tasks = db
        .query_all_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT status, COUNT(*) AS n FROM tasks GROUP BY status",
        ))
        .await
        .ok()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| {
                    let status: String = r.try_get("", "status").ok()?;
                    let n: i64 = r.try_get("", "n").ok()?;
                    Some((status, n.max(0) as u64))
                })
                .collect()
        });
    let hitl = db
        .query_one_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT COUNT(*) AS n FROM hitl_requests WHERE status = 'PENDING'",
        ))
        .await
        .ok()
        .flatten()
        .and_then(|r| r.try_get::<i64>("", "n").ok())
        .map(|n| n.max(0) as u64);
    (tasks, hitl)
}

/// Whether the database answers a trivial query.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

/// Whether this is the embedded SQLite back-end.
pub fn is_sqlite(db: &DatabaseConnection) -> bool {
    db.get_database_backend() == DbBackend::Sqlite
}

/// The URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn ensure_sqlite_folder(url: &str) -> anyhow::Result<()> {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            super::redact("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}
