//! Abuse limits and GraphQL over HTTP: every oversized, overdeep, overwide
//! or overfrequent request is refused before it runs, with its own stable
//! `extensions.code`, and responses follow graphql-over-http to the letter.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support;

async fn post_raw(
    app: &support::TestApp,
    body: Value,
    accept: Option<&str>,
) -> (u16, String, Value) {
    let mut req = app.http().post(app.graphql_url()).json(&body);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, ct, resp.json().await.expect("json"))
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

async fn refused_with(app: &support::TestApp, query: &str, expected: &str) {
    let (status, _, body) = post_raw(app, json!({ "query": query }), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(code(&body), expected, "{body}");
    assert!(
        body.get("data").is_none(),
        "nothing ran, so no data key: {body}"
    );
}

async fn accepted(app: &support::TestApp, query: &str) -> Value {
    let (status, _, body) = post_raw(app, json!({ "query": query }), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["errors"].is_null(), "{body}");
    body
}

#[tokio::test]
async fn document_shape_limits_refuse_before_anything_runs() {
    let app = support::spawn().await;
    // Depth: 10 is the most; introspection (GraphiQL's query nests twelve
    // levels) does not count.
    accepted(&app, "{ projects(first: 1) { nodes { tasks(first: 1) { nodes { project { tasks(first: 1) { nodes { project { tasks(first: 1) { totalCount } } } } } } } } } }").await;
    refused_with(&app, "{ projects { nodes { tasks { nodes { project { tasks { nodes { project { tasks { nodes { project { id } } } } } } } } } } } }", "MAX_DEPTH_EXCEEDED").await;
    accepted(&app, "{ __schema { types { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } }").await;
    // Aliases: 30 at most, counted through fragments.
    let ids = |n: usize| {
        (0..n)
            .map(|i| format!("a{i}: id"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let aliases = |n: usize| format!("{{ projects {{ nodes {{ {} }} }} }}", ids(n));
    accepted(
        &app,
        &format!(
            "query {{ projects {{ nodes {{ ...F }} }} }} fragment F on Project {{ {} }}",
            ids(30)
        ),
    )
    .await;
    refused_with(
        &app,
        &format!(
            "query {{ projects {{ nodes {{ ...F ...F }} }} }} fragment F on Project {{ {} }}",
            ids(16)
        ),
        "MAX_ALIASES_EXCEEDED",
    )
    .await;
    refused_with(&app, &aliases(31), "MAX_ALIASES_EXCEEDED").await;
    // Root fields: 20 at most.
    accepted(&app, &format!("{{ {} }}", "__typename ".repeat(20))).await;
    refused_with(
        &app,
        &format!("{{ {} }}", "__typename ".repeat(21)),
        "MAX_ROOT_FIELDS_EXCEEDED",
    )
    .await;
    // Directives: 10 per field at most.
    refused_with(
        &app,
        &format!("{{ __typename {} }}", "@include(if: true) ".repeat(11)),
        "MAX_DIRECTIVES_EXCEEDED",
    )
    .await;
    // Tokens (15,000) and bytes (32 KiB), before the parser sees them.
    let tokens = format!("{{ {} }}", "a ".repeat(15_000));
    assert!(tokens.len() < 32 * 1024);
    refused_with(&app, &tokens, "DOCUMENT_TOO_LARGE").await;
    let bytes = format!("{{ __typename }} #{}", "x".repeat(33 * 1024));
    refused_with(&app, &bytes, "DOCUMENT_TOO_LARGE").await;
    // Complexity: a page costs its size times what it selects, so two
    // levels of 100 pass and three are refused.
    accepted(
        &app,
        "{ projects(first: 100) { nodes { id tasks(first: 100) { nodes { id } } } } }",
    )
    .await;
    refused_with(&app, "{ projects(first: 100) { nodes { tasks(first: 100) { nodes { checkpoints(first: 100) { nodes { id } } } } } } }", "MAX_COMPLEXITY_EXCEEDED").await;
    // Page size: 100 at most.
    let (_, _, body) = post_raw(
        &app,
        json!({ "query": "{ projects(first: 101) { totalCount } }" }),
        None,
    )
    .await;
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
}

#[tokio::test]
async fn errors_are_capped_and_batches_are_bounded() {
    let app = support::spawn().await;
    // 150 unknown fields: 150 validation errors, of which 99 are returned
    // and one more says how many were left out.
    let fields: String = (0..150).map(|i| format!("nope{i} ")).collect();
    let (_, _, body) = post_raw(
        &app,
        json!({ "query": format!("{{ projects {{ nodes {{ {fields} }} }} }}") }),
        None,
    )
    .await;
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 100, "{body}");
    assert_eq!(errors[99]["extensions"]["code"], "TOO_MANY_ERRORS");
    assert!(
        errors[99]["message"]
            .as_str()
            .expect("message")
            .starts_with("51 more errors")
    );

    let op =
        json!({ "query": "mutation { createProject(input: {name: \"b\"}) { project { id } } }" });
    let (status, _, body) = post_raw(&app, Value::Array(vec![op.clone(); 11]), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(code(&body), "BATCH_TOO_LARGE");
    let count = accepted(&app, "{ projects { totalCount } }").await;
    assert_eq!(
        count["data"]["projects"]["totalCount"], 0,
        "a refused batch ran"
    );
    let (status, _, body) = post_raw(&app, Value::Array(vec![op; 10]), None).await;
    assert_eq!(status, 200);
    assert_eq!(body.as_array().expect("batch").len(), 10);
}

/// Sends `len` bytes of body, chunked (no Content-Length), and returns the
/// status line of the answer.
async fn chunked_post(base: &str, len: usize) -> String {
    let addr = base.trim_start_matches("http://").to_string();
    let s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut rd, mut wr) = s.into_split();
    // The server may answer and stop reading before everything is sent, so
    // the writer runs on its own.
    let writer = tokio::spawn(async move {
        let head = format!(
            "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        wr.write_all(head.as_bytes()).await?;
        // A JSON string that never ends, 64 KiB at a time.
        let mut sent = 0;
        while sent < len {
            let mut chunk = if sent == 0 {
                "{\"query\": \"".to_string()
            } else {
                String::new()
            };
            chunk.push_str(&" ".repeat(64 * 1024 - chunk.len()));
            sent += chunk.len();
            wr.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
                .await?;
        }
        wr.write_all(b"0\r\n\r\n").await
    });
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    writer.abort();
    String::from_utf8_lossy(&got)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_with_or_without_a_length() {
    let app = support::spawn().await;
    let big = json!({ "query": format!("{{ __typename }} #{}", "x".repeat(1024 * 1024)) });
    let (status, _, body) = post_raw(&app, big, None).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(code(&body), "PAYLOAD_TOO_LARGE");
    let line = chunked_post(&app.base, 2 * 1024 * 1024).await;
    assert!(line.contains(" 413 "), "{line}");
    // Just under the limit is read (and then refused for its document
    // size, not its body size).
    let (status, _, body) = post_raw(
        &app,
        json!({ "query": format!("{{ __typename }} #{}", "x".repeat(1000 * 1024)) }),
        None,
    )
    .await;
    assert_eq!((status, code(&body)), (200, "DOCUMENT_TOO_LARGE"), "{body}");
}

#[tokio::test]
async fn graphql_over_http_media_types_and_status_codes() {
    let app = support::spawn().await;
    let q = json!({ "query": "{ projects { totalCount } }" });
    for accept in [
        None,
        Some("application/json"),
        Some("*/*"),
        Some("application/json, text/plain"),
    ] {
        let (status, ct, body) = post_raw(&app, q.clone(), accept).await;
        assert_eq!(
            (status, ct.as_str()),
            (200, "application/json"),
            "{accept:?}: {body}"
        );
    }
    let gr = Some("application/graphql-response+json");
    let (status, ct, body) = post_raw(&app, q.clone(), gr).await;
    assert_eq!(
        (status, ct.as_str()),
        (200, "application/graphql-response+json"),
        "{body}"
    );
    assert_eq!(body["data"]["projects"]["totalCount"], 0);
    // Unparseable and invalid documents: 400 with the new type, 200 with
    // the legacy one; neither has a data key.
    for doc in ["{ projects { ", "{ nope }"] {
        let (status, _, body) = post_raw(&app, json!({ "query": doc }), gr).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.get("data").is_none(), "{body}");
        let (status, _, body) =
            post_raw(&app, json!({ "query": doc }), Some("application/json")).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("data").is_none(), "{body}");
    }
    // An operation that ran and failed is 200 with data null.
    let (status, _, body) = post_raw(&app, json!({ "query": "mutation { completeProject(input: {projectId: \"nope\"}) { project { id } } }" }), gr).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("data").is_some(), "{body}");
    // Nothing we can send is acceptable: 406.
    let (status, _, body) = post_raw(&app, q.clone(), Some("text/csv")).await;
    assert_eq!((status, code(&body)), (406, "NOT_ACCEPTABLE"));
    // A body that is not a GraphQL request: 400.
    let resp = app
        .http()
        .post(app.graphql_url())
        .header("content-type", "application/json")
        .body("[1, 2")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 400);
    // A mutation by GET: 405 with Allow: POST, and it does not run.
    let resp = app
        .get("mutation { createProject(input: {name: \"get\"}) { project { id } } }")
        .await;
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(
        resp.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    let (_, _, body) = post_raw(&app, q.clone(), None).await;
    assert_eq!(body["data"]["projects"]["totalCount"], 0);
    // A query by GET runs, with the same negotiation.
    let resp = app
        .http()
        .get(app.graphql_url())
        .header("accept", "application/graphql-response+json")
        .query(&[("query", "{ projects { totalCount } }")])
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/graphql-response+json")
    );
}

#[tokio::test]
async fn introspection_and_suggestions_can_be_switched_off() {
    let app = support::spawn_with(|c| c.query.introspection = false).await;
    refused_with(
        &app,
        "{ __schema { types { name } } }",
        "INTROSPECTION_DISABLED",
    )
    .await;
    refused_with(
        &app,
        "{ projects { nodes { __type(name: \"Project\") { name } } } }",
        "INTROSPECTION_DISABLED",
    )
    .await;
    let (_, _, body) = post_raw(
        &app,
        json!({ "query": "{ projectz { totalCount } }" }),
        None,
    )
    .await;
    assert!(
        !body.to_string().to_lowercase().contains("did you mean"),
        "{body}"
    );
    accepted(&app, "{ projects { totalCount } }").await;
    // On by default.
    let on = support::spawn().await;
    let (_, _, body) = post_raw(&on, json!({ "query": "{ projectz { totalCount } }" }), None).await;
    assert!(body.to_string().contains("Did you mean"), "{body}");
}

/// A server with a 1 s request timeout, a project on it, and a
/// transaction from outside holding the database's write lock (SQLite) or
/// the project's row lock (PostgreSQL), so a mutation of it waits.
async fn locked_project() -> (
    support::TestApp,
    String,
    sea_orm::DatabaseConnection,
    sea_orm::DatabaseTransaction,
    bool,
) {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let app = support::spawn_with(|c| c.requests.request_timeout_seconds = 1).await;
    let pid = accepted(
        &app,
        "mutation { createProject(input: {name: \"slow\"}) { project { id } } }",
    )
    .await["data"]["createProject"]["project"]["id"]
        .as_str()
        .expect("id")
        .to_string();
    let (db, _) = cerebral::db::connect(&app.database_url, 1)
        .await
        .expect("connect");
    let sqlite = cerebral::db::is_sqlite(&db);
    let txn = db
        .begin_with_options(sea_orm::TransactionOptions {
            sqlite_transaction_mode: sqlite.then_some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await
        .expect("begin");
    if !sqlite {
        txn.execute_unprepared("SELECT id FROM projects FOR UPDATE")
            .await
            .expect("lock");
    }
    (app, pid, db, txn, sqlite)
}

/// Releases the lock [`locked_project`] holds and, a moment later, reads
/// the project's status: the whole answer.
async fn release_and_read(
    app: &support::TestApp,
    pid: &str,
    txn: sea_orm::DatabaseTransaction,
) -> Value {
    txn.rollback().await.expect("rollback");
    tokio::time::sleep(Duration::from_millis(300)).await;
    accepted(
        app,
        &format!("{{ node(id: \"{pid}\") {{ ... on Project {{ status }} }} }}"),
    )
    .await
}

/// Holds the database's write lock (SQLite) or the project's row lock
/// (PostgreSQL) from outside the server, so a mutation waits on it.
#[tokio::test]
async fn a_request_over_its_time_is_cancelled_and_changes_nothing() {
    use sea_orm::ConnectionTrait;
    let (app, pid, _db, txn, sqlite) = locked_project().await;
    let started = std::time::Instant::now();
    let (status, _, body) = post_raw(&app, json!({ "query": format!("mutation {{ completeProject(input: {{projectId: \"{pid}\"}}) {{ project {{ status }} }} }}") }), None).await;
    assert_eq!(status, 504, "{body}");
    assert_eq!(code(&body), "TIMEOUT");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    if !sqlite {
        // PostgreSQL ended the waiting statement itself (statement_timeout):
        // nobody waits on our lock any more.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let waiting = txn
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*)::bigint AS n FROM pg_locks WHERE NOT granted",
            ))
            .await
            .expect("pg_locks")
            .expect("row");
        assert_eq!(waiting.try_get::<i64>("", "n").expect("n"), 0);
    }
    let body = release_and_read(&app, &pid, txn).await;
    assert_eq!(
        body["data"]["node"]["status"], "ACTIVE",
        "the cancelled change was applied"
    );
    // And the server still writes: the cancelled request left no lock or
    // transaction behind.
    accepted(
        &app,
        "mutation { createProject(input: {name: \"after\"}) { project { id } } }",
    )
    .await;
}

const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";

fn token(tenant: &str) -> String {
    support::token(SECRET, tenant, "s", &["viewer"], 600)
}

#[tokio::test]
async fn each_tenant_has_its_own_rate_and_a_refusal_says_when_to_retry() {
    let app = support::spawn_with(|c| {
        c.auth.jwt_secret = Some(SECRET.into());
        c.requests.rate_limit_per_second = 1;
        c.requests.rate_limit_burst = 3;
    })
    .await;
    let send = |tenant: &'static str| {
        app.http()
            .post(app.graphql_url())
            .bearer_auth(token(tenant))
            .json(&json!({ "query": "{ projects { totalCount } }" }))
            .send()
    };
    let a = "0190a3c4-0000-7000-8000-00000000000a";
    let b = "0190a3c4-0000-7000-8000-00000000000b";
    for _ in 0..3 {
        assert_eq!(send(a).await.expect("sent").status().as_u16(), 200);
    }
    let refused = send(a).await.expect("sent");
    assert_eq!(refused.status().as_u16(), 429);
    let retry: u64 = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!((1..=2).contains(&retry), "{retry}");
    let body: Value = refused.json().await.expect("json");
    assert_eq!(code(&body), "RATE_LIMITED");
    // Tenant B is not slowed by A being at its limit.
    for _ in 0..3 {
        assert_eq!(send(b).await.expect("sent").status().as_u16(), 200);
    }
    // A's bucket refills at its rate.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(send(a).await.expect("sent").status().as_u16(), 200);
}

#[tokio::test]
async fn without_authentication_the_rate_is_per_address() {
    let app = support::spawn_with(|c| {
        c.requests.rate_limit_per_second = 1;
        c.requests.rate_limit_burst = 1;
    })
    .await;
    let q = json!({ "query": "{ projects { totalCount } }" });
    assert_eq!(post_raw(&app, q.clone(), None).await.0, 200);
    let (status, _, body) = post_raw(&app, q, None).await;
    assert_eq!((status, code(&body)), (429, "RATE_LIMITED"));
}

#[tokio::test]
async fn websocket_operations_draw_from_the_same_rate() {
    let app = support::spawn_with(|c| {
        c.requests.rate_limit_per_second = 1;
        c.requests.rate_limit_burst = 2;
    })
    .await;
    let mut ws = support::RawWs::connect_and_init(&app.base).await;
    let sub = "subscription { events(after: \"HEAD\") { cursor } }";
    ws.subscribe("1", sub, json!({})).await;
    ws.subscribe("2", sub, json!({})).await;
    ws.subscribe("3", sub, json!({})).await;
    let refused = ws
        .next_for("3", Duration::from_secs(5))
        .await
        .expect("an answer for 3");
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["payload"][0]["extensions"]["code"], "RATE_LIMITED");
    // The socket and the admitted operations live on.
    ws.assert_alive().await;
    // The same address over HTTP is out of room too.
    let (status, _, _) = post_raw(&app, json!({ "query": "{ __typename }" }), None).await;
    assert_eq!(status, 429);
}

/// A query or mutation over WebSocket has the same time limit as over
/// HTTP (issue 13: only HTTP had one). The database's write lock (SQLite)
/// or the project's row lock (PostgreSQL) is held from outside, so the
/// mutation waits on it; it must end with `TIMEOUT` for its id and change
/// nothing, and the socket stays open.
#[tokio::test]
async fn an_operation_over_websocket_over_its_time_is_cancelled() {
    let (app, pid, _db, txn, _) = locked_project().await;
    let mut ws = support::RawWs::connect_and_init(&app.base).await;
    let started = std::time::Instant::now();
    ws.subscribe(
        "slow",
        &format!("mutation {{ completeProject(input: {{projectId: \"{pid}\"}}) {{ project {{ status }} }} }}"),
        json!({}),
    )
    .await;
    let msg = ws
        .next_for("slow", Duration::from_secs(10))
        .await
        .expect("an answer for the operation");
    assert!(
        msg.to_string().contains("\"TIMEOUT\""),
        "expected TIMEOUT, got {msg}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    ws.assert_alive().await;
    let body = release_and_read(&app, &pid, txn).await;
    assert_eq!(body["data"]["node"]["status"], "ACTIVE", "{body}");
}
