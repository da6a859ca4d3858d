//! What operators watch: `/metrics` moves with what the server does,
//! `/readyz` says why a replica is not ready, and replicas that start at
//! once on one PostgreSQL database migrate it once, without racing.

use std::collections::BTreeMap;
use std::time::Duration;

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::support;

/// A scrape of `/metrics`: each sample line as (name, labels) → value.
struct Scrape {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
    body: String,
}

impl Scrape {
    async fn take(base: &str) -> Scrape {
        let resp = reqwest::get(format!("{base}/metrics"))
            .await
            .expect("/metrics answers");
        assert_eq!(resp.status(), 200);
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(ctype.starts_with("text/plain"), "content type {ctype}");
        let body = resp.text().await.expect("body");
        let samples = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| parse_sample(l).unwrap_or_else(|| panic!("not a sample line: {l}")))
            .collect();
        Scrape { samples, body }
    }

    /// The value of the series `name` whose labels include `labels`
    /// (summed over the others), or None when there is no such series.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .samples
            .iter()
            .filter(|(n, ls, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| ls.get(*k).is_some_and(|x| x == v))
            })
            .map(|(_, _, v)| *v)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no series {name} {labels:?} in\n{}", self.body))
    }

    /// Like [`Scrape::value`], zero when the series does not exist yet.
    fn count(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }
}

/// `name{k="v",…} value` or `name value`.
fn parse_sample(line: &str) -> Option<(String, BTreeMap<String, String>, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series.to_string(), BTreeMap::new(), value));
    };
    let mut labels = BTreeMap::new();
    for pair in rest.strip_suffix('}')?.split("\",") {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once("=\"")?;
        labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
    }
    Some((name.to_string(), labels, value))
}

const GRAPHQL: (&str, &str) = ("route", "/graphql");

/// Polls `/metrics` until `done` holds for a scrape (the task and HITL
/// counts are reused for a TTL, so they follow the work a little late).
async fn scrape_until(base: &str, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let scrape = Scrape::take(base).await;
        if done(&scrape) {
            return scrape;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never showed on /metrics:\n{}",
            scrape.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_requests_operations_events_and_work() {
    // Counts reused for a second only, so the test sees them move soon.
    let app = support::spawn_with(|c| c.server.metrics_counts_ttl_seconds = 1).await;
    let before = Scrape::take(&app.base).await;
    // Every task status is a series from the start, zeros included.
    for status in [
        "PENDING",
        "WORKING",
        "WAITING_FOR_HITL",
        "COMPLETED",
        "FAILED",
    ] {
        assert_eq!(before.value("cerebral_tasks", &[("status", status)]), 0.0);
    }
    assert_eq!(before.value("cerebral_hitl_requests_pending", &[]), 0.0);
    assert_eq!(before.value("cerebral_ws_connections_active", &[]), 0.0);
    let posts_before = before.count(
        "cerebral_http_requests_total",
        &[GRAPHQL, ("method", "POST"), ("status", "200")],
    );

    // A dashboard follows events over WebSocket meanwhile.
    let mut sub = app
        .subscribe(
            "subscription Follow { events(after: \"HEAD\") { cursor type } }",
            json!({}),
        )
        .await;
    let live = support::wait_metric(
        &app.base,
        "cerebral_ws_subscriptions_active",
        Duration::from_secs(5),
        |v| v == 1.0,
    )
    .await;
    assert_eq!(live, Ok(1.0), "one subscription is counted while it runs");

    let p = app
        .new_id(
            "mutation CreateProject { createProject(input: {name: \"observed\"}) { project { id } } }",
            json!({}),
        )
        .await;
    let mut tasks = Vec::new();
    for title in ["a", "b", "c"] {
        let t = app
            .new_id(
                "mutation CreateTask($p: ID!, $title: String!) { createTask(input: {projectId: $p, title: $title}) { task { id } } }",
                json!({ "p": p, "title": title }),
            )
            .await;
        tasks.push(t);
    }
    app.ok(
        "mutation StartTask($t: ID!) { startTask(input: {taskId: $t}) { task { id } } }",
        json!({ "t": tasks[0] }),
    )
    .await;
    app.ok(
        "mutation StartTask($t: ID!) { startTask(input: {taskId: $t}) { task { id } } }",
        json!({ "t": tasks[1] }),
    )
    .await;
    app.ok(
        "mutation Ask($t: ID!) { requestHitl(input: {taskId: $t, question: \"ship it?\"}) { hitlRequest { id } } }",
        json!({ "t": tasks[1] }),
    )
    .await;
    for _ in 0..2 {
        app.ok(
            "query ListProjects { projects(first: 5) { totalCount } }",
            json!({}),
        )
        .await;
    }
    // Ran, with an error: the task does not exist.
    let missing = app
        .post(
            "query Missing($t: ID!) { task(id: $t) { id } }",
            json!({ "t": format!("Task:{}", uuid::Uuid::now_v7()) }),
        )
        .await;
    assert!(
        missing["errors"].is_array() || missing["data"]["task"].is_null(),
        "{missing}"
    );
    let invalid = app
        .post(
            "mutation Invalid($t: ID!) { startTask(input: {taskId: $t}) { task { id } } }",
            json!({ "t": tasks[1] }),
        )
        .await;
    assert!(
        invalid["errors"].is_array(),
        "a waiting task cannot start: {invalid}"
    );
    // Refused before it ran: deeper than the depth limit.
    let deep = app
        .post(
            "query TooDeep { projects { nodes { tasks { nodes { project { tasks { nodes { project { tasks { nodes { project { id } } } } } } } } } } } }",
            json!({}),
        )
        .await;
    assert!(deep["errors"].is_array(), "{deep}");

    // The subscriber received the events (project, three tasks, two
    // starts, one HITL request).
    let mut seen = 0;
    while seen < 7 {
        match sub.next(Duration::from_secs(5)).await {
            Some(_) => seen += 1,
            None => panic!("only {seen} events reached the subscriber"),
        }
    }

    // Counted again once the first scrape's counts are a TTL old.
    let after = scrape_until(&app.base, "the three tasks", |s| {
        s.get("cerebral_tasks", &[("status", "WAITING_FOR_HITL")]) == Some(1.0)
    })
    .await;
    let op = |kind: &str, name: &str, outcome: &str| {
        after.count(
            "cerebral_graphql_operations_total",
            &[("type", kind), ("name", name), ("outcome", outcome)],
        )
    };
    assert_eq!(op("mutation", "CreateProject", "ok"), 1.0);
    assert_eq!(op("mutation", "CreateTask", "ok"), 3.0);
    assert_eq!(op("mutation", "StartTask", "ok"), 2.0);
    assert_eq!(op("query", "ListProjects", "ok"), 2.0);
    assert_eq!(op("mutation", "Invalid", "error"), 1.0);
    assert_eq!(
        op("query", "Missing", "ok") + op("query", "Missing", "error"),
        1.0
    );
    assert_eq!(op("query", "TooDeep", "refused"), 1.0);
    assert_eq!(
        op("subscription", "Follow", "ok"),
        1.0,
        "a started subscription counts"
    );
    assert_eq!(
        after.value(
            "cerebral_graphql_operation_duration_seconds_count",
            &[
                ("type", "query"),
                ("name", "ListProjects"),
                ("outcome", "ok")
            ]
        ),
        2.0
    );
    assert!(
        after.count(
            "cerebral_http_requests_total",
            &[GRAPHQL, ("method", "POST"), ("status", "200")]
        ) - posts_before
            >= 10.0,
        "every GraphQL POST is counted by route and status"
    );
    assert!(
        after.count(
            "cerebral_http_request_duration_seconds_count",
            &[GRAPHQL, ("method", "POST")]
        ) >= 10.0
    );

    assert_eq!(after.value("cerebral_tasks", &[("status", "PENDING")]), 1.0);
    assert_eq!(after.value("cerebral_tasks", &[("status", "WORKING")]), 1.0);
    assert_eq!(
        after.value("cerebral_tasks", &[("status", "WAITING_FOR_HITL")]),
        1.0
    );
    assert_eq!(
        after.value("cerebral_tasks", &[("status", "COMPLETED")]),
        0.0
    );
    assert_eq!(after.value("cerebral_hitl_requests_pending", &[]), 1.0);

    assert!(
        after.value("cerebral_events_published_total", &[])
            - before.count("cerebral_events_published_total", &[])
            >= 7.0
    );
    assert!(after.value("cerebral_events_delivered_total", &[]) >= 7.0);
    assert!(after.value("cerebral_subscriber_lag_events_count", &[]) >= 7.0);
    assert_eq!(after.value("cerebral_ws_connections_active", &[]), 1.0);
    assert_eq!(after.value("cerebral_ws_subscriptions_active", &[]), 1.0);
    let pool = after.value("cerebral_db_connections", &[("state", "in_use")])
        + after.value("cerebral_db_connections", &[("state", "idle")]);
    assert!(pool >= 1.0, "the pool has connections: {pool}");
    assert!(after.value("cerebral_db_statements_total", &[]) > 0.0);
    assert!(
        after.body.contains("# HELP cerebral_tasks "),
        "families carry help texts"
    );

    drop(sub);
    let gone = support::wait_metric(
        &app.base,
        "cerebral_ws_connections_active",
        Duration::from_secs(5),
        |v| v == 0.0,
    )
    .await;
    assert_eq!(gone, Ok(0.0), "a closed WebSocket is no longer counted");
}

#[tokio::test]
async fn operation_names_cannot_blow_up_the_label_set() {
    let app = support::spawn().await;
    for i in 0..210 {
        app.ok(
            &format!("query Q{i} {{ projects {{ totalCount }} }}"),
            json!({}),
        )
        .await;
    }
    app.ok("{ projects { totalCount } }", json!({})).await;
    let scrape = Scrape::take(&app.base).await;
    let names: std::collections::BTreeSet<&str> = scrape
        .samples
        .iter()
        .filter(|(n, _, _)| n == "cerebral_graphql_operations_total")
        .filter_map(|(_, ls, _)| ls.get("name").map(String::as_str))
        .collect();
    assert!(names.len() <= 202, "{} names", names.len());
    assert!(names.contains("other"), "names past the cap are `other`");
    assert!(names.contains("anonymous"));
    assert_eq!(
        scrape.value(
            "cerebral_graphql_operations_total",
            &[("name", "other"), ("outcome", "ok")]
        ),
        10.0
    );
}

async fn ready(base: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("/readyz answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn readyz_names_a_missing_migration_until_it_is_applied() {
    let app = support::spawn().await;
    let (db, _) = cerebral::db::connect(&app.database_url, 1)
        .await
        .expect("connect");
    let last = {
        use migration::MigratorTrait;
        let all = migration::Migrator::migrations();
        all.last().expect("migrations").name().to_string()
    };
    let backend = db.get_database_backend();
    let stmt = |sql: String| sea_orm::Statement::from_string(backend, sql);
    let row = db
        .query_one_raw(stmt(format!(
            "SELECT applied_at FROM seaql_migrations WHERE version = '{last}'"
        )))
        .await
        .expect("read")
        .expect("the migration is applied");
    let applied_at: i64 = row.try_get("", "applied_at").expect("applied_at");
    db.execute_raw(stmt(format!(
        "DELETE FROM seaql_migrations WHERE version = '{last}'"
    )))
    .await
    .expect("forget the migration");

    let (status, body) = ready(&app.base).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("migrations not applied") && reason.contains(&last),
        "{reason}"
    );
    // Still alive: liveness is not readiness.
    let alive = reqwest::get(format!("{}/healthz", app.base))
        .await
        .expect("healthz");
    assert_eq!(alive.status(), 200);

    db.execute_raw(stmt(format!(
        "INSERT INTO seaql_migrations (version, applied_at) VALUES ('{last}', {applied_at})"
    )))
    .await
    .expect("restore the migration row");
    let (status, body) = ready(&app.base).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ready")));
}

/// PostgreSQL only: the database refusing connections and the event
/// listener losing its connection each make the replica unready, and it
/// comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_database_and_the_listener() {
    if support::backend() != "postgres" {
        eprintln!("PostgreSQL only (the listener and a refusing server); skipped on SQLite");
        return;
    }
    let app = support::spawn().await;
    assert_eq!(ready(&app.base).await.0, 200);
    let name = app
        .database_url
        .rsplit('/')
        .next()
        .expect("database name")
        .to_string();
    let admin_url = std::env::var("TEST_DATABASE_URL").expect("postgres");
    let (admin, _) = cerebral::db::connect(&admin_url, 1).await.expect("admin");
    let kick = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    );
    admin
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .await
        .expect("close the database");
    admin.execute_unprepared(&kick).await.expect("kick");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut reasons = std::collections::BTreeSet::new();
    loop {
        let (status, body) = ready(&app.base).await;
        if status == 503 {
            reasons.insert(body["reason"].as_str().unwrap_or_default().to_string());
        }
        if reasons.iter().any(|r| r.contains("database unreachable")) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never unready; reasons seen {reasons:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The listener notices its terminated connection on its own task, a
    // moment after the pool's first failing statement made /readyz say so.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let connected = support::metric(&app.base, "cerebral_event_listener_connected").await;
        if connected == Some(0.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener never noticed it lost its connection: {connected:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    admin
        .execute_unprepared(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .await
        .expect("reopen the database");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = ready(&app.base).await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not ready again after the database came back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        support::metric(&app.base, "cerebral_event_listener_connected").await,
        Some(1.0)
    );
    // And events flow again through the reconnected listener.
    let mut sub = app
        .subscribe(
            "subscription { events(after: \"HEAD\", types: [PROJECT_CREATED]) { type } }",
            json!({}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    app.create_project("back").await;
    assert!(sub.next(Duration::from_secs(5)).await.is_some());
}

/// PostgreSQL only (SQLite is one process's embedded database): three
/// replicas started together on an empty database each try to migrate it;
/// the advisory lock lets one do it and the others find it done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_migrate_once() {
    if support::backend() != "postgres" {
        eprintln!("PostgreSQL only; skipped on SQLite");
        return;
    }
    let (url, _dir) = support::fresh_database().await;
    let replicas =
        futures::future::join_all((0..3).map(|_| support::ServerProcess::start(&url, &[]))).await;
    for r in &replicas {
        let (status, body) = ready(&r.base).await;
        assert_eq!(status, 200, "{body}\n{}", r.log());
        assert!(!r.log().contains("migrations failed"), "{}", r.log());
    }
    let (db, _) = cerebral::db::connect(&url, 1).await.expect("connect");
    let rows = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT version FROM seaql_migrations",
        ))
        .await
        .expect("read migrations");
    assert_eq!(rows.len(), migration_count(), "each migration applied once");
    assert!(
        cerebral::db::pending_migrations(&db)
            .await
            .expect("pending")
            .is_empty()
    );
}

fn migration_count() -> usize {
    use migration::MigratorTrait;
    migration::Migrator::migrations().len()
}

/// JSON logs carry the request id of the HTTP request and the GraphQL
/// spans down to the root resolver (the schema pipeline's `field` span), so one
/// client report finds the failing field's log line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_tie_a_resolver_error_to_its_request_id() {
    let server = support::ServerProcess::start_fresh(&[
        ("CEREBRAL_LOG_FORMAT", "json"),
        ("RUST_LOG", "info,sqlx=warn,sea_orm=warn"),
    ])
    .await;
    let id = format!("trace-{}", uuid::Uuid::now_v7().simple());
    let body = support::post_json(
        &reqwest::Client::new(),
        &format!("{}/graphql", server.base),
        None,
        &[("x-request-id", &id)],
        &json!({
            "query": "mutation Start($t: ID!) { startTask(input: {taskId: $t}) { task { id } } }",
            "variables": { "t": format!("Task:{}", uuid::Uuid::now_v7()) },
        }),
    )
    .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let line = loop {
        let found = server
            .log()
            .lines()
            .filter(|l| l.contains(&id))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["spans"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["name"] == "field"))
            });
        if let Some(v) = found {
            break v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no JSON log line with request id {id} inside a resolver span:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let spans = line["spans"].as_array().expect("spans");
    let names: Vec<&str> = spans.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(spans[0]["request_id"], id.as_str(), "{line}");
    assert_eq!(spans[0]["path"], "/graphql", "{line}");
    assert!(names.contains(&"execute"), "{names:?}");
    let field = spans
        .iter()
        .find(|s| s["name"] == "field")
        .expect("field span");
    assert_eq!(field["path"], "startTask", "{line}");
    assert_eq!(field["parent_type"], "Mutation", "{line}");
}

/// A server with `/metrics` on a listener of its own
/// (`CEREBRAL_METRICS_LISTEN`): (main base URL, metrics base URL, SQL
/// statement counter, services). The database is set up as in
/// `support::spawn_with`.
async fn spawn_with_metrics_listener(
    ttl_seconds: u64,
) -> (
    String,
    String,
    std::sync::Arc<cerebral::db::StatementCounter>,
    cerebral::service::Services,
    Option<tempfile::TempDir>,
) {
    let (url, dir) = support::fresh_database().await;
    let mut config = cerebral::config::Config::for_database(&url);
    if support::backend() == "postgres" {
        config.db.migration_database_url = Some(url.clone());
        config.db.database_url = support::serving_url(&url).await;
    }
    config.events.event_poll_ms = 0;
    config.lifecycle.sweep_interval_seconds = 0;
    config.lifecycle.agent_stale_seconds = 0;
    config.requests.rate_limit_per_second = 0;
    config.server.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    config.server.metrics_counts_ttl_seconds = ttl_seconds;
    let app = cerebral::app::App::build(&config)
        .await
        .expect("app builds");
    let main = format!("http://{}", app.local_addr());
    let metrics = format!("http://{}", app.metrics_addr().expect("a metrics listener"));
    let statements = app.statements();
    let services = app.services().clone();
    tokio::spawn(app.run_until_stopped());
    (main, metrics, statements, services, dir)
}

/// With `CEREBRAL_METRICS_LISTEN` the figures of every tenant are served on
/// that address only: the public listener answers 404 for `/metrics`, and
/// the metrics listener serves nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listener_serves_metrics_and_the_main_port_does_not() {
    let (main, metrics, _, _, _dir) = spawn_with_metrics_listener(30).await;
    let scrape = Scrape::take(&metrics).await;
    assert_eq!(
        scrape.value("cerebral_tasks", &[("status", "PENDING")]),
        0.0
    );
    assert!(
        scrape
            .body
            .contains("# HELP cerebral_hitl_requests_pending ")
    );

    let public = reqwest::get(format!("{main}/metrics"))
        .await
        .expect("main listener answers");
    assert_eq!(public.status(), 404, "/metrics on the public listener");
    let healthz = reqwest::get(format!("{main}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(healthz.status(), 200, "the main listener still serves");
    for path in ["/graphql", "/healthz", "/readyz"] {
        let resp = reqwest::get(format!("{metrics}{path}"))
            .await
            .expect("metrics listener answers");
        assert_eq!(resp.status(), 404, "{path} on the metrics listener");
    }
}

/// A burst of scrapes costs one count of the tasks and HITL requests per
/// TTL, not one per scrape: the counts scan every tenant's tables. Counted
/// with the server's own statement counter, against what one count costs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_storm_costs_one_count_per_ttl() {
    const SCRAPES: usize = 64;
    let (_, metrics, statements, services, _dir) = spawn_with_metrics_listener(3600).await;
    // What one count costs in statements on this back-end (on PostgreSQL
    // each read runs in a short transaction of its own).
    let before = statements.get();
    let (tasks, hitl) = cerebral::db::work_counts(&services.all_tenants()).await;
    assert!(tasks.is_some() && hitl.is_some(), "the counts work");
    let one_count = statements.get() - before;
    assert!(one_count >= 2, "two aggregates: {one_count} statements");

    let storm = || async {
        let client = reqwest::Client::new();
        let scrapes = (0..SCRAPES).map(|_| {
            let client = client.clone();
            let url = format!("{metrics}/metrics");
            async move {
                let resp = client.get(url).send().await.expect("scrape");
                assert_eq!(resp.status(), 200);
                let body = resp.text().await.expect("body");
                assert!(
                    body.contains("cerebral_tasks{status=\"PENDING\"} 0"),
                    "{body}"
                );
            }
        });
        let before = statements.get();
        futures::future::join_all(scrapes).await;
        statements.get() - before
    };
    // The cache is empty: the scrapes arrive together, one counts and the
    // others wait for its result.
    assert_eq!(
        storm().await,
        one_count,
        "{SCRAPES} concurrent scrapes ran more than one count"
    );
    // Within the TTL: no count at all.
    assert_eq!(storm().await, 0, "scrapes within the TTL counted again");
}

/// Once the TTL has passed, the next scrape counts again (and one scrape
/// storm after it still costs a single count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_taken_again_after_the_ttl() {
    let (main, metrics, statements, services, _dir) = spawn_with_metrics_listener(1).await;
    let first = Scrape::take(&metrics).await;
    assert_eq!(first.value("cerebral_tasks", &[("status", "PENDING")]), 0.0);
    let before = statements.get();
    cerebral::db::work_counts(&services.all_tenants()).await;
    let one_count = statements.get() - before;

    let client = reqwest::Client::new();
    let p = support::gql_ok(
        &client,
        &main,
        "mutation { createProject(input: {name: \"counted\"}) { project { id } } }",
        json!({}),
    )
    .await["createProject"]["project"]["id"]
        .clone();
    support::gql_ok(
        &client,
        &main,
        "mutation($p: ID!) { createTask(input: {projectId: $p, title: \"t\"}) { task { id } } }",
        json!({ "p": p }),
    )
    .await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = statements.get();
    let scrapes = (0..16).map(|_| Scrape::take(&metrics));
    let all = futures::future::join_all(scrapes).await;
    assert_eq!(
        statements.get() - before,
        one_count,
        "one count for the burst"
    );
    for s in &all {
        assert_eq!(s.value("cerebral_tasks", &[("status", "PENDING")]), 1.0);
    }
}

/// A WebSocket subscription is planned first and then runs light (one
/// event stream) when it has one root field; with two root fields it is
/// run again in full, and with its only root skipped it just completes.
/// Either way it gets its items and counts once as an operation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_that_do_not_plan_still_stream_and_count_once() {
    let app = support::spawn().await;
    let marker = support::create_project_cursor(app.http(), &app.base, "marker").await;
    let mut ws = support::RawWs::connect_and_init(&app.base).await;
    ws.send_json(json!({
        "id": "two",
        "type": "subscribe",
        "payload": {
            "operationName": "TwoRoots",
            "query": "subscription TwoRoots($a: String) { created: events(after: $a, types: [PROJECT_CREATED]) { type } again: events(after: $a, types: [PROJECT_CREATED]) { cursor } }",
            "variables": { "a": marker }
        }
    }))
    .await;
    ws.send_json(json!({
        "id": "skipped",
        "type": "subscribe",
        "payload": {
            "operationName": "Skipped",
            "query": "subscription Skipped($a: String) { events(after: $a) @skip(if: true) { type } }",
            "variables": { "a": marker }
        }
    }))
    .await;
    let done = ws
        .next_for("skipped", Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(done["type"], "complete", "{done}");

    app.create_project("seen twice").await;
    let mut roots = Vec::new();
    for _ in 0..2 {
        let msg = ws
            .next_for("two", Duration::from_secs(10))
            .await
            .expect("an item");
        assert_eq!(msg["type"], "next", "{msg}");
        let data = msg["payload"]["data"].as_object().expect("data").clone();
        roots.extend(data.keys().cloned());
    }
    roots.sort();
    assert_eq!(roots, ["again", "created"], "one item from each root");

    let scrape = scrape_until(&app.base, "the two subscriptions", |s| {
        s.count(
            "cerebral_graphql_operations_total",
            &[("type", "subscription"), ("name", "Skipped")],
        ) > 0.0
    })
    .await;
    for name in ["TwoRoots", "Skipped"] {
        assert_eq!(
            scrape.count(
                "cerebral_graphql_operations_total",
                &[("type", "subscription"), ("name", name), ("outcome", "ok")],
            ),
            1.0,
            "{name} counted once"
        );
    }
}
