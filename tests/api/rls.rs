//! PostgreSQL row-level security, the second wall behind the application's
//! own tenant filters. The server migrates as the owner of the tables and
//! serves as a role that owns nothing, is not a superuser and has no
//! `BYPASSRLS` (`support::APP_ROLE`); each write transaction names its
//! tenant with a transaction-local setting, and each kept read session with
//! a session setting that never leaves it for the pool. On SQLite these
//! tests print why they skip.

use std::time::Duration;

use cerebral::auth::{Principal, Role};
/// Every tenant table, as the migrations list them.
static TENANT_TABLES: std::sync::LazyLock<Vec<&str>> =
    std::sync::LazyLock::new(migration::tenant_tables);
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, TransactionTrait};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support;

const SECRET: &str = "row-level-security-test-secret-0123456789";
const TENANT_A: Uuid = Uuid::from_u128(0xA);
const TENANT_B: Uuid = Uuid::from_u128(0xB);

fn token(tenant: Uuid) -> String {
    let roles: Vec<String> = ["viewer", "agent", "operator", "admin"]
        .iter()
        .map(|r| r.to_string())
        .collect();
    cerebral::auth::mint(SECRET, tenant, "rls-test", &roles, 3600).expect("token")
}

fn principal(tenant: Uuid) -> Principal {
    Principal {
        tenant_id: tenant,
        user_id: "rls-test".into(),
        roles: vec![Role::Viewer, Role::Agent, Role::Operator, Role::Admin],
    }
}

/// A server with a pool of `pool` connections and each tenant's seed
/// (`populate`), on PostgreSQL; None on SQLite, after saying that the test
/// (the name libtest gives its thread) was skipped.
async fn spawn(pool: u32, tenants: &[(Uuid, &str)]) -> Option<support::TestApp> {
    if support::backend() != "postgres" {
        let thread = std::thread::current();
        let test = thread.name().unwrap_or("this test");
        eprintln!("{test}: skipped, row-level security is PostgreSQL only (set TEST_DATABASE_URL)");
        return None;
    }
    let app = support::spawn_with(|c| {
        c.auth.jwt_secret = Some(SECRET.into());
        c.db.db_max_connections = pool;
    })
    .await;
    for (tenant, name) in tenants {
        populate(&app, *tenant, name).await;
    }
    Some(app)
}

async fn gql(app: &support::TestApp, tenant: Uuid, query: &str, variables: Value) -> Value {
    app.post_as(&token(tenant), query, variables).await
}

/// Gives a tenant a project with tasks, a started task, a question to a
/// human, an artifact, a checkpoint, an agent status and a session with a
/// persona context: a row in nearly every tenant table.
async fn populate(app: &support::TestApp, tenant: Uuid, name: &str) {
    app.bearer(&token(tenant)).seed(name).await;
}

async fn count(db: &impl ConnectionTrait, table: &str) -> i64 {
    db.query_one_raw(Statement::from_string(
        DbBackend::Postgres,
        format!("SELECT COUNT(*) AS n FROM {table}"),
    ))
    .await
    .unwrap_or_else(|e| panic!("count {table}: {e}"))
    .expect("a row")
    .try_get("", "n")
    .expect("n")
}

/// A transaction on `db` with the scope `scope` set, as the server opens
/// its own.
async fn scoped(
    db: &DatabaseConnection,
    scope: cerebral::rls::Scope,
) -> sea_orm::DatabaseTransaction {
    let txn = db.begin().await.expect("begin");
    cerebral::rls::set_scope(&txn, scope).await.expect("scope");
    txn
}

async fn connect(url: &str) -> DatabaseConnection {
    cerebral::db::connect(url, 1).await.expect("connect").0
}

#[tokio::test]
async fn every_tenant_table_forces_row_level_security() {
    let Some(app) = spawn(4, &[]).await else {
        return;
    };
    let owner = connect(&app.database_url).await;
    // Every table with a tenant_id column, found in the catalog rather than
    // in the migration's list, so a new table without a policy fails here.
    let rows = owner
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT c.relname::text AS t, c.relrowsecurity AS on, c.relforcerowsecurity AS forced, \
                    (SELECT COUNT(*) FROM pg_policies p WHERE p.tablename = c.relname AND p.policyname = 'tenant_isolation') AS policies \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = current_schema() AND c.relkind = 'r' \
                AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id') \
              ORDER BY 1",
        ))
        .await
        .expect("catalog");
    let mut tables = vec![];
    for r in rows {
        let t: String = r.try_get("", "t").expect("t");
        let on: bool = r.try_get("", "on").expect("on");
        let forced: bool = r.try_get("", "forced").expect("forced");
        let policies: i64 = r.try_get("", "policies").expect("policies");
        assert!(
            on && forced && policies == 1,
            "{t}: enabled {on}, forced {forced}, tenant policies {policies}"
        );
        tables.push(t);
    }
    let mut expected: Vec<String> = TENANT_TABLES.iter().map(|t| t.to_string()).collect();
    expected.sort();
    assert_eq!(tables, expected);
}

/// Tables with row-level security on, and policies, in the current schema.
async fn rls_state(owner: &DatabaseConnection) -> (i64, i64) {
    let row = owner
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT (SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                      WHERE n.nspname = current_schema() AND (c.relrowsecurity OR c.relforcerowsecurity)) AS tables, \
                    (SELECT COUNT(*) FROM pg_policies WHERE schemaname = current_schema()) AS policies",
        ))
        .await
        .expect("catalog")
        .expect("a row");
    (
        row.try_get("", "tables").expect("tables"),
        row.try_get("", "policies").expect("policies"),
    )
}

#[tokio::test]
async fn the_migration_comes_down_and_goes_up_again() {
    use migration::MigratorTrait;
    let Some(app) = spawn(4, &[(TENANT_A, "a")]).await else {
        return;
    };
    let owner = connect(&app.database_url).await;
    let n = TENANT_TABLES.len() as i64;
    // One tenant and one all-tenants policy per table, six catalog reads,
    // one expiry.
    let up = (n, 2 * n + 6 + 1);
    assert_eq!(rls_state(&owner).await, up);
    // Down to just before the row-level security migration: the ones
    // after it come down first.
    let names: Vec<String> = migration::Migrator::migrations()
        .iter()
        .map(|m| migration::MigrationName::name(m.as_ref()).to_string())
        .collect();
    let rls_at = names
        .iter()
        .position(|n| n.ends_with("row_level_security"))
        .expect("the row-level security migration");
    migration::Migrator::down(&owner, Some((names.len() - rls_at) as u32))
        .await
        .expect("down");
    assert_eq!(rls_state(&owner).await, (0, 0));
    // The policies went with it. The serving role's privileges were
    // granted to it by name when the server migrated, not by this
    // migration, so they stay: with the wall down it sees every row, and
    // only the application's filters are left.
    let serving = connect(&app.serving_url).await;
    assert_eq!(count(&serving, "projects").await, 1, "no policy any more");
    assert_eq!(count(&owner, "projects").await, 1, "data untouched");
    migration::Migrator::up(&owner, None).await.expect("up");
    assert_eq!(rls_state(&owner).await, up);
    assert_eq!(count(&serving, "projects").await, 0);
}

#[tokio::test]
async fn outside_a_tenant_transaction_the_serving_role_sees_no_rows() {
    let Some(app) = spawn(4, &[(TENANT_A, "a"), (TENANT_B, "b")]).await else {
        return;
    };
    let owner = connect(&app.database_url).await;
    let serving = connect(&app.serving_url).await;
    let mut populated = 0;
    for t in TENANT_TABLES.iter() {
        let rows = count(&owner, t).await;
        if rows > 0 {
            populated += 1;
        }
        assert_eq!(
            count(&serving, t).await,
            0,
            "{t}: {rows} rows, some visible without a tenant"
        );
    }
    // The zeros above mean something only if the rows exist.
    assert!(populated >= 15, "only {populated} tenant tables have rows");
    // An empty setting (what a finished transaction leaves behind on a
    // pooled connection) fails closed too, instead of erroring.
    let txn = serving.begin().await.expect("begin");
    txn.execute_unprepared("SELECT set_config('cerebral.tenant_id', '', true)")
        .await
        .expect("set");
    assert_eq!(count(&txn, "projects").await, 0);
    txn.commit().await.expect("commit");
    // After a tenant transaction ends, its setting is gone from the connection.
    let txn = scoped(&serving, cerebral::rls::Scope::Tenant(TENANT_A)).await;
    assert_eq!(count(&txn, "projects").await, 1);
    txn.commit().await.expect("commit");
    assert_eq!(count(&serving, "projects").await, 0);
    // The built-in catalog (the nil tenant) is readable by every tenant,
    // and by nobody outside one.
    let catalog = count(&owner, "personas").await;
    let txn = scoped(&serving, cerebral::rls::Scope::Tenant(TENANT_B)).await;
    assert_eq!(count(&txn, "personas").await, catalog);
    txn.commit().await.expect("commit");
    assert_eq!(count(&serving, "personas").await, 0);
}

#[tokio::test]
async fn a_row_for_another_tenant_is_refused_by_with_check() {
    let Some(app) = spawn(4, &[(TENANT_B, "b")]).await else {
        return;
    };
    let serving = connect(&app.serving_url).await;
    let insert = |tenant: Uuid, key: &str| {
        Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO idempotency_keys (tenant_id, key, operation, request_hash, event_seqs, created_at) \
             VALUES ($1, $2, 'op', 'hash', '[]'::jsonb, now())",
            [tenant.into(), key.into()],
        )
    };
    // As tenant A: its own row goes in (the statement itself is sound) ...
    let txn = scoped(&serving, cerebral::rls::Scope::Tenant(TENANT_A)).await;
    txn.execute_raw(insert(TENANT_A, "own"))
        .await
        .expect("own row");
    // ... one for tenant B does not.
    let err = txn
        .execute_raw(insert(TENANT_B, "foreign"))
        .await
        .expect_err("a foreign row must be refused");
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(txn);
    // Nor can a tenant move its row to another tenant, or touch B's rows.
    let txn = scoped(&serving, cerebral::rls::Scope::Tenant(TENANT_A)).await;
    txn.execute_raw(insert(TENANT_A, "mine"))
        .await
        .expect("own row");
    let err = txn
        .execute_unprepared(&format!(
            "UPDATE idempotency_keys SET tenant_id = '{TENANT_B}' WHERE key = 'mine'"
        ))
        .await
        .expect_err("moving a row to another tenant must be refused");
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(txn);
    let txn = scoped(&serving, cerebral::rls::Scope::Tenant(TENANT_A)).await;
    let gone = txn
        .execute_unprepared("DELETE FROM projects")
        .await
        .expect("delete");
    assert_eq!(
        gone.rows_affected(),
        0,
        "tenant A deleted tenant B's project"
    );
    drop(txn);
    // Reading every tenant is read-only: no insert, update or delete.
    let txn = scoped(&serving, cerebral::rls::Scope::AllTenants).await;
    assert_eq!(count(&txn, "projects").await, 1);
    let err = txn
        .execute_raw(insert(TENANT_B, "everyone"))
        .await
        .expect_err("the all-tenants scope must not write");
    assert!(err.to_string().contains("row-level security"), "{err}");
    drop(txn);
    let txn = scoped(&serving, cerebral::rls::Scope::AllTenants).await;
    let changed = txn
        .execute_unprepared("UPDATE projects SET name = 'hijacked'")
        .await
        .expect("update");
    assert_eq!(changed.rows_affected(), 0);
    drop(txn);
}

#[tokio::test]
async fn the_serving_role_is_bound_by_row_level_security() {
    let Some(app) = spawn(4, &[]).await else {
        return;
    };
    let serving = connect(&app.serving_url).await;
    let check = cerebral::rls::check_role(&serving)
        .await
        .expect("check")
        .expect("PostgreSQL");
    assert_eq!(check.role, support::APP_ROLE);
    assert!(!check.superuser, "{check:?}");
    assert!(!check.bypass_rls, "{check:?}");
    assert!(check.owned_tables.is_empty(), "{check:?}");
    assert!(check.weaknesses().is_empty());
    // The check can fail: the owner the tests migrate as is a superuser
    // that owns every table.
    let owner = connect(&app.database_url).await;
    let check = cerebral::rls::check_role(&owner)
        .await
        .expect("check")
        .expect("PostgreSQL");
    assert!(
        check.superuser && check.owned_tables.len() > TENANT_TABLES.len(),
        "{check:?}"
    );
    assert!(!check.weaknesses().is_empty());
}

const READ: &str = "{ projects(first: 30) { totalCount nodes { name tasks(first: 3) { nodes { project { name } } } } } events(first: 30) { nodes { project { name } } } hitlRequests { totalCount } artifacts { totalCount } sessions { totalCount } }";

/// Every project name a response shows, wherever it appears.
fn names(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "name"
                    && let Some(s) = x.as_str()
                {
                    out.push(s.to_string());
                }
                names(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| names(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn a_thousand_requests_alternating_tenants_on_one_connection_never_see_a_foreign_row() {
    // Two pooled connections: one that every read (the event fan-out's
    // included) shares as a session, switching tenants each time, and the
    // reserve, which every write transaction reuses.
    let Some(app) = spawn(2, &[(TENANT_A, "a-0"), (TENANT_B, "b-0")]).await else {
        return;
    };
    // A subscriber of tenant A replaying the log and then following it live:
    // its reads share the one connection too.
    let mut ws = support::RawWs::connect(&app.base).await;
    ws.send_json(json!({
        "type": "connection_init",
        "payload": { "Authorization": format!("Bearer {}", token(TENANT_A)) },
    }))
    .await;
    let ack = ws.next_json(Duration::from_secs(10)).await.expect("ack");
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    ws.subscribe(
        "1",
        "subscription { events(after: \"0\", types: [PROJECT_CREATED]) { project { name } } }",
        json!({}),
    )
    .await;
    // Read all along (a socket left unread would miss its pings and close).
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(data) = ws.next_data("1", Duration::from_secs(600)).await {
            if seen_tx.send(data).is_err() {
                break;
            }
        }
    });
    let started = std::time::Instant::now();
    let mut created = [1usize, 1usize];
    for i in 0..1000 {
        let (tenant, prefix, slot) = if i % 2 == 0 {
            (TENANT_A, "a-", 0)
        } else {
            (TENANT_B, "b-", 1)
        };
        match i % 50 {
            // A write now and then, so both tenants' data keeps changing.
            7 | 8 => {
                app.bearer(&token(tenant))
                    .create_project_from(&format!("{prefix}{i}"), "greenfield-service")
                    .await;
                created[slot] += 1;
            }
            // A transaction that fails after it wrote, on the one
            // connection: it rolls back, and the next request (the other
            // tenant) must not inherit anything from it.
            13 => {
                let p = principal(tenant);
                let tx = app.services.begin(&p).await.expect("begin");
                tx.execute_unprepared(&format!(
                    "UPDATE projects SET name = 'leak-{i}' WHERE tenant_id = '{tenant}'"
                ))
                .await
                .expect("write");
                let err = tx
                    .execute_unprepared("SELECT 1 / 0")
                    .await
                    .expect_err("division by zero");
                assert!(err.to_string().contains("division by zero"), "{err}");
                drop(tx);
                // And one over HTTP that fails inside its transaction (the
                // workflow is looked up after the tenant is set).
                let r = gql(&app, tenant, "mutation { createProject(input: {name: \"bad\", workflowId: \"no-such-workflow\"}) { project { id } } }", json!({})).await;
                assert!(r.get("errors").is_some(), "{r}");
            }
            _ => {}
        }
        let r = gql(&app, tenant, READ, json!({})).await;
        assert!(r.get("errors").is_none(), "request {i}: {r}");
        let mut seen = vec![];
        names(&r["data"], &mut seen);
        assert!(!seen.is_empty(), "request {i} saw nothing: {r}");
        for n in &seen {
            assert!(
                n.starts_with(prefix),
                "request {i} as {prefix} saw {n}: {r}"
            );
        }
        assert_eq!(
            r["data"]["projects"]["totalCount"],
            json!(created[slot]),
            "request {i}"
        );
        assert_eq!(
            r["data"]["hitlRequests"]["totalCount"],
            json!(1),
            "request {i}"
        );
        assert_eq!(
            r["data"]["artifacts"]["totalCount"],
            json!(1),
            "request {i}"
        );
        assert_eq!(r["data"]["sessions"]["totalCount"], json!(1), "request {i}");
    }
    eprintln!("1000 alternating requests in {:?}", started.elapsed());
    // The subscriber heard of every project of its tenant (the fan-out
    // reads all tenants' events, read-only) and of no other.
    for n in 0..created[0] {
        let data = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("subscriber stalled after {n} events"));
        let name = data["events"]["project"]["name"]
            .as_str()
            .unwrap_or_default();
        assert!(name.starts_with("a-"), "tenant A's subscriber saw {data}");
    }
    let extra = tokio::time::timeout(Duration::from_millis(300), seen_rx.recv()).await;
    assert!(
        extra.is_err(),
        "tenant A's subscriber saw more projects than tenant A has: {extra:?}"
    );
}

/// The scope a read session sets for itself (`cerebral::rls::sessions`)
/// never reaches the pool. On a pool of two (one for sessions, one kept in
/// reserve), after reads of tenant A that finish, fail, or are dropped with
/// their statement on the wire: with the reserve held, the pool hands out
/// its other connection only once the session has given it back (or
/// closed it), and that connection has no tenant and sees no row.
#[tokio::test]
async fn a_read_session_never_hands_its_tenant_to_the_pool() {
    let Some(app) = spawn(2, &[(TENANT_A, "a")]).await else {
        return;
    };
    let (sessions, pool) = sessions_and_pool(&app);
    let reader = app.services.reader(TENANT_A);
    let read =
        |sql: &'static str| reader.query_one_raw(Statement::from_string(DbBackend::Postgres, sql));
    let mut kept = 0;
    for round in 0..40 {
        match round % 4 {
            // A whole read: the session rests, tenant set.
            0 => {
                assert_eq!(count(&reader, "projects").await, 1, "round {round}");
                kept += sessions.idle();
            }
            // A read the server refuses: the session is still in step.
            1 => {
                read("SELECT 1 / 0 AS n")
                    .await
                    .expect_err("division by zero");
            }
            // Dropped with its statement in flight (a cancelled request):
            // the session has answers unread and is closed, not kept.
            _ => {
                support::drop_after_polls(read("SELECT pg_sleep(0.05) IS NULL AS n"), round % 4)
                    .await;
            }
        }
        pool_hands_out_clean_connections(&pool, &sessions, round).await;
    }
    assert!(kept > 0, "no whole read left its session resting");
    // And the requests that follow still read their own tenant's rows.
    populate(&app, TENANT_B, "b").await;
    let r = gql(
        &app,
        TENANT_B,
        "{ projects(first: 5) { nodes { name } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        r["data"]["projects"]["nodes"],
        json!([{ "name": "b" }]),
        "{r}"
    );
}

/// Writes run on read sessions too (`rls::write`): `BEGIN` and the tenant
/// in one statement, the tenant kept for the session only if the write
/// commits. Same pool of two (one session, one reserve), after writes of
/// tenant A that commit, fail, or are dropped with their statement on the
/// wire, some of them on the session tenant B's read left resting: a write
/// changes tenant A's rows only, one that did not commit changed nothing,
/// and the pool hands out connections with no tenant that see no row.
#[tokio::test]
async fn a_write_on_a_session_keeps_to_its_tenant_and_never_hands_it_to_the_pool() {
    let Some(app) = spawn(2, &[(TENANT_A, "a"), (TENANT_B, "b")]).await else {
        return;
    };
    let (sessions, pool) = sessions_and_pool(&app);
    let (pa, reader_a, reader_b) = (
        principal(TENANT_A),
        app.services.reader(TENANT_A),
        app.services.reader(TENANT_B),
    );
    let names = |r: cerebral::rls::Scoped| async move {
        r.query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT name FROM projects ORDER BY name",
        ))
        .await
        .expect("read")
        .iter()
        .map(|row| row.try_get::<String>("", "name").expect("name"))
        .collect::<Vec<_>>()
    };
    let write = |sql: String| {
        let (app, pa) = (&app, &pa);
        async move {
            let tx = app.services.begin(pa).await.expect("begin");
            let n = tx
                .execute_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await?
                .rows_affected();
            tx.commit().await.expect("commit");
            Ok::<u64, sea_orm::DbErr>(n)
        }
    };
    let mut on_a_session = 0;
    let mut expected = "a".to_string();
    for round in 0..40 {
        // Tenant B's read leaves the one session resting as B's.
        assert_eq!(names(reader_b.clone()).await, ["b"], "round {round}");
        match round % 4 {
            // A write that commits: every project it can reach is A's.
            0 => {
                expected = format!("a{round}");
                let n = write(format!("UPDATE projects SET name = '{expected}'"))
                    .await
                    .expect("write");
                assert_eq!(
                    n, 1,
                    "round {round}: the write reached another tenant's rows"
                );
                // Written on the session B's read left, that session is now
                // A's: A's read sets no tenant. (The event fan-out may have
                // had it in use, and the write then went to the pool.)
                let before = app.statements.transactions();
                assert_eq!(names(reader_a.clone()).await, [expected.as_str()]);
                if app.statements.transactions() == before {
                    on_a_session += 1;
                }
            }
            // A write the server refuses half-way: rolled back.
            1 => {
                write("UPDATE projects SET name = (1 / 0)::text".into())
                    .await
                    .expect_err("division by zero");
            }
            // Dropped with its statement in flight (a cancelled request):
            // nothing of it commits.
            _ => {
                let sql =
                    "WITH s AS (SELECT pg_sleep(0.05)) UPDATE projects SET name = 'dropped' FROM s";
                support::drop_after_polls(write(sql.into()), round % 4).await;
            }
        }
        assert_eq!(
            names(reader_a.clone()).await,
            [expected.as_str()],
            "round {round}"
        );
        assert_eq!(names(reader_b.clone()).await, ["b"], "round {round}");
        pool_hands_out_clean_connections(&pool, &sessions, round).await;
    }
    assert!(on_a_session > 0, "no write ran on a resting session");
}

/// The server's read sessions and the pool under them.
fn sessions_and_pool(
    app: &support::TestApp,
) -> (
    std::sync::Arc<cerebral::rls::Sessions>,
    sea_orm::sqlx::PgPool,
) {
    let sessions = app
        .services
        .sessions()
        .expect("PostgreSQL has read sessions");
    let pool = app
        .services
        .unscoped()
        .get_postgres_connection_pool()
        .clone();
    (sessions, pool)
}

/// Takes both connections of a pool of two (the reserve, then the one the
/// session holds, handed back as a writer would have it) and checks that
/// each carries no tenant, sees no row and has no transaction open.
async fn pool_hands_out_clean_connections(
    pool: &sea_orm::sqlx::PgPool,
    sessions: &cerebral::rls::Sessions,
    round: usize,
) {
    let within = Duration::from_secs(10);
    let reserve = tokio::time::timeout(within, pool.acquire())
        .await
        .expect("the reserve is free")
        .expect("acquire");
    // Would a writer wait? Then the resting session is handed back (asked
    // again while the event fan-out, which reads on sessions too, may have
    // had it in use).
    let started = std::time::Instant::now();
    let other = loop {
        sessions.make_room().await;
        match tokio::time::timeout(Duration::from_millis(200), pool.acquire()).await {
            Ok(c) => break c.expect("acquire"),
            Err(_) => assert!(
                started.elapsed() < within,
                "round {round}: the session's connection never came back"
            ),
        }
    };
    for (which, mut c) in [("reserve", reserve), ("other", other)] {
        let (tenant, all, rows): (String, String, i64) = sea_orm::sqlx::query_as(
            "SELECT COALESCE(current_setting('cerebral.tenant_id', true), ''), \
                    COALESCE(current_setting('cerebral.all_tenants', true), ''), \
                    (SELECT COUNT(*) FROM projects)",
        )
        .fetch_one(&mut *c)
        .await
        .expect("query");
        assert_eq!(
            (tenant.as_str(), all.as_str(), rows),
            ("", "", 0),
            "round {round}: {which}"
        );
        // And no transaction left open: a savepoint needs one.
        let savepoint = sea_orm::sqlx::raw_sql("SAVEPOINT probe")
            .execute(&mut *c)
            .await;
        assert!(
            savepoint.is_err(),
            "round {round}: {which} came back inside a transaction"
        );
    }
}

/// A login role of the cluster that is neither the owner nor the serving
/// role: what someone holding another application's credentials has.
const OTHER_ROLE: &str = "cerebral_test_other";

/// The tables are granted to the serving role by name, not to `PUBLIC`: a
/// role that can connect could otherwise set `cerebral.tenant_id` itself
/// and read that tenant's rows (row-level security trusts the setting).
/// Tables a later migration creates follow the same default privileges.
#[tokio::test]
async fn tables_are_granted_to_the_serving_role_and_not_to_public() {
    let Some(app) = spawn(4, &[(TENANT_A, "a")]).await else {
        return;
    };
    let owner = connect(&app.database_url).await;
    owner
        .execute_unprepared(&format!(
            "DO $$ BEGIN CREATE ROLE {OTHER_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ))
        .await
        .expect("create another role");
    // What a later migration would do, as the owner.
    owner
        .execute_unprepared("CREATE TABLE later_table (x integer)")
        .await
        .expect("a later table");
    let grantees = |table: &'static str| {
        let owner = owner.clone();
        async move {
            let rows = owner
                .query_all_raw(Statement::from_string(
                    DbBackend::Postgres,
                    format!(
                        "SELECT DISTINCT COALESCE(r.rolname, 'PUBLIC') AS grantee \
                         FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a \
                         LEFT JOIN pg_roles r ON r.oid = a.grantee \
                         WHERE c.relname = '{table}' AND a.privilege_type = 'SELECT'"
                    ),
                ))
                .await
                .expect("read the grants");
            rows.iter()
                .map(|r| r.try_get::<String>("", "grantee").expect("grantee"))
                .collect::<Vec<_>>()
        }
    };
    for t in TENANT_TABLES
        .iter()
        .copied()
        .chain(["seaql_migrations", "later_table"])
    {
        let g = grantees(t).await;
        assert!(g.iter().any(|g| g == support::APP_ROLE), "{t}: {g:?}");
        assert!(
            !g.iter().any(|g| g == "PUBLIC"),
            "{t} is granted to PUBLIC: {g:?}"
        );
    }

    // Another role that can connect cannot name a tenant and read its rows.
    let mut other_url = reqwest::Url::parse(&app.database_url).expect("URL");
    other_url.set_username(OTHER_ROLE).expect("user");
    other_url.set_password(None).expect("no password");
    let other = connect(other_url.as_str()).await;
    let txn = other.begin().await.expect("begin");
    cerebral::rls::set_scope(&txn, cerebral::rls::Scope::Tenant(TENANT_A))
        .await
        .expect("anyone may set the setting");
    let read = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT COUNT(*) AS n FROM projects",
        ))
        .await;
    let err = read.expect_err("another role reads a tenant's projects");
    assert!(err.to_string().contains("permission denied"), "{err}");
    drop(txn);
    // The serving role itself still works, behind the wall.
    assert_eq!(
        gql(&app, TENANT_A, "{ projects { totalCount } }", json!({})).await["data"]["projects"]["totalCount"],
        1
    );
}

/// A replica given only the serving role (no owner URL, as in the compose
/// and Kubernetes examples, where a migration job runs as the owner)
/// starts once the migrations are applied, and on a database that still
/// needs them it refuses to start and says what to do.
#[tokio::test]
async fn a_replica_with_only_the_serving_role_starts_once_migrated() {
    let Some(app) = spawn(4, &[(TENANT_A, "a")]).await else {
        return;
    };
    let serving_only = |url: String| {
        let mut config = cerebral::config::Config::for_database(url);
        config.auth.jwt_secret = Some(SECRET.into());
        config.events.event_poll_ms = 0;
        config.lifecycle.sweep_interval_seconds = 0;
        config.lifecycle.agent_stale_seconds = 0;
        config
    };
    let replica = cerebral::app::App::build(&serving_only(app.serving_url.clone()))
        .await
        .expect("a serving-only replica starts on a migrated database");
    let base = format!("http://{}", replica.local_addr());
    tokio::spawn(replica.run_until_stopped());
    let body = support::post_json(
        app.http(),
        &format!("{base}/graphql"),
        Some(&token(TENANT_A)),
        &[],
        &json!({ "query": "{ projects { totalCount } }" }),
    )
    .await;
    assert_eq!(body["data"]["projects"]["totalCount"], 1, "{body}");

    let (fresh, _) = support::fresh_database().await;
    let fresh_serving = support::serving_url(&fresh).await;
    let err = match cerebral::app::App::build(&serving_only(fresh_serving)).await {
        Ok(_) => panic!("a serving role cannot migrate an empty database"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("cerebral migrate up"), "{err}");
}
