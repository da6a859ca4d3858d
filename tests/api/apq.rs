//! Automatic persisted queries (Apollo APQ): hash-only requests run the
//! remembered document, under the same limits and the same GET rule as a
//! full one.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support;

fn hash(q: &str) -> String {
    format!("{:x}", Sha256::digest(q.as_bytes()))
}

fn ext(h: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": h } })
}

async fn post(app: &support::TestApp, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(app.graphql_url())
        .json(&body)
        .send()
        .await
        .expect("post");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

async fn get(app: &support::TestApp, params: &[(&str, String)]) -> (u16, Option<String>, Value) {
    let resp = reqwest::Client::new()
        .get(app.graphql_url())
        .query(params)
        .header("accept", "application/json")
        .send()
        .await
        .expect("get");
    let status = resp.status().as_u16();
    let allow = resp
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    (status, allow, resp.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or("")
}

const COUNT: &str = "query Count { projects { totalCount } }";

#[tokio::test]
async fn a_hash_runs_the_document_sent_with_it_before() {
    let app = support::spawn().await;
    let h = hash(COUNT);

    // Unknown hash: the code Apollo clients answer with the full document.
    let (status, body) = post(&app, json!({ "extensions": ext(&h) })).await;
    assert_eq!(status, 200);
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}");
    assert_eq!(body["errors"][0]["message"], "PersistedQueryNotFound");
    assert!(body.get("data").is_none(), "nothing ran: {body}");

    let (_, full) = post(&app, json!({ "query": COUNT, "extensions": ext(&h) })).await;
    assert_eq!(full["data"]["projects"]["totalCount"], 0, "{full}");
    app.create_project("p").await;
    let (_, by_hash) = post(&app, json!({ "extensions": ext(&h) })).await;
    assert_eq!(by_hash["data"]["projects"]["totalCount"], 1, "{by_hash}");
    // Upper-case hex is the same hash.
    let (_, upper) = post(&app, json!({ "extensions": ext(&h.to_uppercase()) })).await;
    assert_eq!(upper["data"]["projects"]["totalCount"], 1, "{upper}");

    // A cacheable GET, as `useGETForHashedQueries` sends it.
    let (status, _, got) = get(
        &app,
        &[
            ("operationName", "Count".into()),
            ("extensions", ext(&h).to_string()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["data"]["projects"]["totalCount"], 1, "{got}");
}

#[tokio::test]
async fn a_document_that_does_not_match_its_hash_is_refused_and_not_remembered() {
    let app = support::spawn().await;
    let other = hash("{ __typename }");
    let (_, body) = post(&app, json!({ "query": COUNT, "extensions": ext(&other) })).await;
    assert_eq!(code(&body), "PERSISTED_QUERY_INVALID", "{body}");
    assert!(body.get("data").is_none(), "{body}");
    let (_, again) = post(&app, json!({ "extensions": ext(&other) })).await;
    assert_eq!(code(&again), "PERSISTED_QUERY_NOT_FOUND", "{again}");

    for bad in [
        json!({ "persistedQuery": { "version": 2, "sha256Hash": hash(COUNT) } }),
        json!({ "persistedQuery": { "version": 1, "sha256Hash": "abc" } }),
        json!({ "persistedQuery": "yes" }),
    ] {
        let (_, body) = post(&app, json!({ "query": COUNT, "extensions": bad })).await;
        assert_eq!(code(&body), "PERSISTED_QUERY_INVALID", "{body}");
    }
}

#[tokio::test]
async fn a_remembered_mutation_cannot_run_by_get() {
    let app = support::spawn().await;
    let m = "mutation Make { createProject(input: {name: \"by hash\"}) { project { id } } }";
    let h = hash(m);
    let (_, made) = post(&app, json!({ "query": m, "extensions": ext(&h) })).await;
    assert!(
        made["data"]["createProject"]["project"]["id"].is_string(),
        "{made}"
    );

    let (status, allow, body) = get(&app, &[("extensions", ext(&h).to_string())]).await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(allow.as_deref(), Some("POST"));
    let count = app.ok("{ projects { totalCount } }", json!({})).await;
    assert_eq!(
        count["projects"]["totalCount"], 1,
        "the GET created nothing"
    );

    // By POST the hash runs it again, as it should.
    let (_, again) = post(&app, json!({ "extensions": ext(&h) })).await;
    assert!(
        again["data"]["createProject"]["project"]["id"].is_string(),
        "{again}"
    );
}

/// A document the limits refuse is never remembered (issue 13, item 9: the
/// store once kept refused megabyte documents), so a hash can only ever
/// name a document that passed the limits.
#[tokio::test]
async fn a_document_the_limits_refuse_is_not_remembered() {
    let app = support::spawn().await;
    let aliases: Vec<String> = (0..40).map(|i| format!("a{i}: totalCount")).collect();
    let q = format!("{{ projects {{ {} }} }}", aliases.join(" "));
    let h = hash(&q);
    let (_, full) = post(&app, json!({ "query": q, "extensions": ext(&h) })).await;
    assert_eq!(code(&full), "MAX_ALIASES_EXCEEDED", "{full}");
    let (_, by_hash) = post(&app, json!({ "extensions": ext(&h) })).await;
    assert_eq!(code(&by_hash), "PERSISTED_QUERY_NOT_FOUND", "{by_hash}");
    assert!(by_hash.get("data").is_none(), "{by_hash}");
}

#[tokio::test]
async fn apq_can_be_turned_off() {
    let app = support::spawn_with(|c| c.query.apq_cache_size = 0).await;
    let (_, full) = post(
        &app,
        json!({ "query": COUNT, "extensions": ext(&hash(COUNT)) }),
    )
    .await;
    assert_eq!(
        full["data"]["projects"]["totalCount"], 0,
        "a full document still runs"
    );
    let (_, by_hash) = post(&app, json!({ "extensions": ext(&hash(COUNT)) })).await;
    assert!(by_hash["errors"].is_array(), "{by_hash}");
    assert_ne!(code(&by_hash), "", "{by_hash}");
    assert!(by_hash.get("data").is_none() || by_hash["data"].is_null());
}

/// A subscription sent by hash over a WebSocket keeps running the document
/// it was admitted with: its items are run later, one event at a time,
/// and by then the hash may have left the store.
#[tokio::test]
async fn a_subscription_sent_by_hash_outlives_its_entry_in_the_store() {
    let app = support::spawn_with(|c| c.query.apq_cache_size = 1).await;
    let marker = support::create_project_cursor(app.http(), &app.base, "marker").await;
    let sub = "subscription Persisted($a: String) { events(after: $a) { cursor type } }";
    let h = hash(sub);
    let vars = json!({ "a": marker });
    // The first socket sends the text with its hash (and so registers
    // it), the second the hash alone once the store has it.
    let mut ws = support::RawWs::connect_and_init(&app.base).await;
    ws.send_json(json!({
        "id": "1",
        "type": "subscribe",
        "payload": { "query": sub, "variables": vars, "extensions": ext(&h) }
    }))
    .await;
    let mut known = false;
    for _ in 0..100 {
        let (_, body) = post(&app, json!({ "extensions": ext(&h) })).await;
        if code(&body) != "PERSISTED_QUERY_NOT_FOUND" {
            known = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(known, "the socket's document was never remembered");
    let mut by_hash = support::RawWs::connect_and_init(&app.base).await;
    by_hash
        .send_json(json!({
            "id": "1",
            "type": "subscribe",
            "payload": { "query": "", "variables": vars, "extensions": ext(&h) }
        }))
        .await;
    // Both run an item before the entry goes, and one after.
    app.create_project("before eviction").await;
    for socket in [&mut ws, &mut by_hash] {
        next_project_created(socket).await;
    }
    // Another document pushes the subscription's out of a store of one.
    let (status, body) = post(
        &app,
        json!({ "query": COUNT, "extensions": ext(&hash(COUNT)) }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = post(&app, json!({ "extensions": ext(&h) })).await;
    assert_eq!(code(&body), "PERSISTED_QUERY_NOT_FOUND", "{body}");
    app.create_project("after eviction").await;
    for socket in [&mut ws, &mut by_hash] {
        next_project_created(socket).await;
    }
}

/// Reads operation `1`'s frames up to a clean `PROJECT_CREATED` item.
async fn next_project_created(socket: &mut support::RawWs) {
    for _ in 0..20 {
        let msg = socket
            .next_for("1", std::time::Duration::from_secs(10))
            .await
            .expect("an item");
        assert_eq!(msg["type"], "next", "{msg}");
        assert!(msg["payload"].get("errors").is_none(), "{msg}");
        if msg["payload"]["data"]["events"]["type"] == "PROJECT_CREATED" {
            return;
        }
    }
    panic!("no PROJECT_CREATED item");
}
