//! The GraphQL front door: documents whose expansion, introspection or
//! answer would cost far more than their size, and the persisted-query
//! store.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::Digest;

use super::watch::{server, watch};

/// A refusal at the front door is a linear pass over at most 32 KiB of
/// text: milliseconds; the budget is for a loaded CI machine.
const REFUSE_WITHIN: Duration = Duration::from_secs(3);
/// A refused document costs the server its text and parse tree, a few
/// hundred KiB per request; 32 MiB leaves room for allocator noise. Before
/// the fix the introspection bomb alone peaked at 520 MB.
const FRONT_DOOR_MEMORY: u64 = 32 * 1024 * 1024;

/// The standard introspection query of graphql-js 16 (every option on).
const INTROSPECTION: &str = include_str!("../../fixtures/introspection-query.graphql");

async fn post(client: &reqwest::Client, base: &str, body: Value) -> Value {
    client
        .post(format!("{base}/graphql"))
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json")
}

fn code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `query { ...F0 }` where each `Fi` spreads `F(i+1)` ten times, 25 levels
/// deep: 2.4 KB that expands to 10²⁵ selections. Before the fix two of
/// them pinned both cores for good and `/healthz` stopped answering.
const FRAGMENT_BOMB: &str = include_str!("../../fixtures/front-door-attacks/fragment-bomb.graphql");

#[tokio::test]
async fn fragments_spread_ten_times_a_level_are_refused_at_once() {
    let target = server(&[]).await;
    let client = reqwest::Client::new();
    let q = FRAGMENT_BOMB;
    assert!(q.len() < 2_500, "{}", q.len());
    let (bodies, cost) = watch(&target, async {
        let a = post(&client, &target.base, json!({ "query": q }));
        let b = post(&client, &target.base, json!({ "query": q }));
        futures::join!(a, b)
    })
    .await;
    for body in [bodies.0, bodies.1] {
        assert_eq!(code(&body), "MAX_FIELDS_EXCEEDED", "{body}");
        assert!(body.get("data").is_none(), "{body}");
    }
    cost.assert_within("two fragment bombs", REFUSE_WITHIN, FRONT_DOOR_MEMORY);
}

#[tokio::test]
async fn a_fragment_cycle_with_branches_is_refused_before_it_expands() {
    let target = server(&[]).await;
    let client = reqwest::Client::new();
    let q = "query { ...F } fragment F on Query { ...F ...F ...F __typename }";
    let (body, cost) = watch(&target, post(&client, &target.base, json!({ "query": q }))).await;
    assert_eq!(code(&body), "GRAPHQL_VALIDATION_FAILED", "{body}");
    cost.assert_within("fragment cycle", REFUSE_WITHIN, FRONT_DOOR_MEMORY);
}

#[tokio::test]
async fn brackets_nested_thousands_deep_never_reach_the_parser() {
    let target = server(&[]).await;
    let client = reqwest::Client::new();
    // 4,000 levels within the token limit, by POST and by GET (a GET is
    // parsed to see whether it is a mutation).
    let deep = format!("{}{}", "{a".repeat(4_000), "}".repeat(4_000));
    let (body, cost) = watch(&target, async {
        let posted = post(&client, &target.base, json!({ "query": deep })).await;
        let got = client
            .get(format!("{}/graphql", target.base))
            .query(&[("query", &deep)])
            .send()
            .await
            .expect("answered")
            .json::<Value>()
            .await
            .expect("json");
        (posted, got)
    })
    .await;
    assert_eq!(code(&body.0), "MAX_DEPTH_EXCEEDED", "{}", body.0);
    assert_eq!(code(&body.1), "MAX_DEPTH_EXCEEDED", "{}", body.1);
    cost.assert_within("deep brackets", REFUSE_WITHIN, FRONT_DOOR_MEMORY);
}

/// A 730-byte document whose fragment walks from fields back to their
/// types' fields: before the fix it answered 9 MB and peaked at 520 MB.
#[tokio::test]
async fn introspection_that_walks_back_into_types_is_refused_by_its_cost() {
    let target = server(&[]).await;
    let client = reqwest::Client::new();
    let q = "{ __schema { types { ...T } } }
        fragment T on __Type { name fields { name type { name fields { name type { name fields { name type { name } } } } } } }";
    let (body, cost) = watch(&target, post(&client, &target.base, json!({ "query": q }))).await;
    assert_eq!(code(&body), "MAX_COMPLEXITY_EXCEEDED", "{body}");
    cost.assert_within("introspection bomb", REFUSE_WITHIN, FRONT_DOOR_MEMORY);
}

/// Ten introspection queries in one batch: before the fix a 7 KB batch of
/// ten nested ones aborted the process. Each is within the limits alone,
/// but a batch shares one complexity budget.
#[tokio::test]
async fn a_batch_of_introspection_queries_shares_one_budget() {
    let target = server(&[]).await;
    let client = reqwest::Client::new();
    let one = json!({ "query": INTROSPECTION });
    let alone = post(&client, &target.base, one.clone()).await;
    assert!(
        alone["data"]["__schema"]["types"].is_array(),
        "the standard introspection query is served: {alone}"
    );
    let batch = Value::Array(vec![one; 10]);
    let (body, cost) = watch(&target, post(&client, &target.base, batch)).await;
    let answers = body.as_array().expect("a batch answer");
    assert_eq!(answers.len(), 10);
    assert!(answers[0]["data"]["__schema"].is_object(), "{}", answers[0]);
    for later in &answers[2..] {
        assert_eq!(code(later), "MAX_COMPLEXITY_EXCEEDED", "{later}");
    }
    // Budget: one introspection answer (well under 1 MB) and its JSON.
    cost.assert_within(
        "batch of introspection",
        REFUSE_WITHIN * 3,
        FRONT_DOOR_MEMORY * 2,
    );
}

#[tokio::test]
async fn an_answer_past_the_response_limit_stops_and_carries_no_data() {
    let target = server(&[("CEREBRAL_MAX_RESPONSE_BYTES", "20000")]).await;
    let client = reqwest::Client::new();
    let body = post(&client, &target.base, json!({ "query": INTROSPECTION })).await;
    assert_eq!(code(&body), "RESPONSE_TOO_LARGE", "{body}");
    assert!(body["data"].is_null(), "{body}");
    assert_eq!(body["errors"].as_array().map(Vec::len), Some(1), "{body}");
    // A small answer is served as usual.
    let small = post(&client, &target.base, json!({ "query": "{ __typename }" })).await;
    assert_eq!(small["data"]["__typename"], "Query", "{small}");
}

/// A plain query runs without the per-field hook (`pipeline::run_lean`):
/// its string fields count the answer themselves, aliases included, and
/// the same query just under the limit is served.
#[tokio::test]
async fn a_plain_query_past_the_response_limit_stops_and_carries_no_data() {
    let target = server(&[("CEREBRAL_MAX_RESPONSE_BYTES", "20000")]).await;
    let client = reqwest::Client::new();
    let idea = "x".repeat(3000);
    for _ in 0..4 {
        let created = post(
            &client,
            &target.base,
            json!({
                "query": "mutation($i: String) { createProject(input: {name: \"P\", productIdea: $i}) { project { id } } }",
                "variables": { "i": idea },
            }),
        )
        .await;
        assert!(
            created["data"]["createProject"]["project"]["id"].is_string(),
            "{created}"
        );
    }
    // 4 projects x 3,000 bytes: 12 KB, served.
    let one = post(
        &client,
        &target.base,
        json!({ "query": "{ projects(first: 10) { nodes { productIdea } } }" }),
    )
    .await;
    assert_eq!(
        one["data"]["projects"]["nodes"].as_array().map(Vec::len),
        Some(4),
        "{one}"
    );
    // Twice over through an alias: 24 KB, refused.
    let two = post(
        &client,
        &target.base,
        json!({ "query": "{ projects(first: 10) { nodes { productIdea again: productIdea } } }" }),
    )
    .await;
    assert_eq!(code(&two), "RESPONSE_TOO_LARGE", "{two}");
    assert!(two["data"].is_null(), "{two}");
    assert_eq!(two["errors"].as_array().map(Vec::len), Some(1), "{two}");
}

/// Before the fix the store kept every document before the limits refused
/// it: 300 refused 1 MB documents pinned 300 MB, shared by all tenants.
#[tokio::test]
async fn refused_persisted_documents_are_not_kept() {
    let target = server(&[]).await;
    let client = reqwest::Client::new();
    let mut hashes = Vec::new();
    let (_, cost) = watch(&target, async {
        for i in 0..60 {
            let q = format!("{{ __typename }} # {i} {}", "x".repeat(900_000));
            let hash = format!("{:x}", sha2::Sha256::digest(q.as_bytes()));
            let body = post(
                &client,
                &target.base,
                json!({ "query": q, "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hash } } }),
            )
            .await;
            assert_eq!(code(&body), "DOCUMENT_TOO_LARGE", "{body}");
            hashes.push(hash);
        }
    })
    .await;
    let by_hash = post(
        &client,
        &target.base,
        json!({ "extensions": { "persistedQuery": { "version": 1, "sha256Hash": hashes[0] } } }),
    )
    .await;
    assert_eq!(code(&by_hash), "PERSISTED_QUERY_NOT_FOUND", "{by_hash}");
    // 60 × 0.9 MB sent one after another; what is kept must not grow with
    // them (each body is freed after its answer).
    cost.assert_within(
        "refused APQ documents",
        Duration::from_secs(30),
        FRONT_DOOR_MEMORY,
    );
}
