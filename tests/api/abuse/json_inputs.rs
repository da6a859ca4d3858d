//! JSON a caller sends: parsed size, stored size, and what its events
//! cost the live fan-out.

use std::time::Duration;

use serde_json::{Value, json};

use super::watch::{server, watch};
use crate::support::RawWs;

/// Counting values is one pass over at most 1 MiB of body.
const REFUSE_WITHIN: Duration = Duration::from_secs(3);
/// Eight refused 0.9 MB bodies in flight: eight bodies and buffers. Before
/// the fix one such body cost 110–184 MB at its peak.
const VALUES_MEMORY: u64 = 48 * 1024 * 1024;

async fn post(client: &reqwest::Client, base: &str, body: &Value) -> (u16, Value) {
    let resp = client
        .post(format!("{base}/graphql"))
        .json(body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("answered");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

fn code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A session and a persona context to write to.
async fn context(client: &reqwest::Client, base: &str) -> String {
    let (_, s) = post(
        client,
        base,
        &json!({ "query": "mutation { startSession(input: {name: \"a\"}) { session { id } } }" }),
    )
    .await;
    let sid = s["data"]["startSession"]["session"]["id"]
        .as_str()
        .expect("session")
        .to_string();
    let (_, c) = post(
        client,
        base,
        &json!({ "query": "mutation($s: ID!) { switchPersona(input: {sessionId: $s, personaId: \"dev\"}) { context { id } } }", "variables": { "s": sid } }),
    )
    .await;
    c["data"]["switchPersona"]["context"]["id"]
        .as_str()
        .expect("context")
        .to_string()
}

#[tokio::test]
async fn a_body_of_half_a_million_numbers_is_refused_before_it_is_parsed() {
    let target = server(&[]).await;
    let client = reqwest::Client::new();
    // 0.9 MB: under the body limit, 450,000 values once parsed.
    let numbers = vec![1; 450_000];
    let body = json!({ "query": "query($x: JSON) { __typename }", "variables": { "x": numbers } });
    let (answers, cost) = watch(&target, async {
        let all = (0..8).map(|_| post(&client, &target.base, &body));
        futures::future::join_all(all).await
    })
    .await;
    for (status, body) in answers {
        assert_eq!(status, 400, "{body}");
        assert_eq!(code(&body), "BAD_REQUEST", "{body}");
    }
    cost.assert_within(
        "eight 0.9 MB number arrays",
        REFUSE_WITHIN * 2,
        VALUES_MEMORY,
    );
}

#[tokio::test]
async fn json_inputs_over_their_byte_limit_are_refused_naming_the_field() {
    let target = server(&[]).await;
    let client = reqwest::Client::new();
    let ctx = context(&client, &target.base).await;
    // 0.9 MB of JSON text in a state patch (a single string, so the value
    // count is no obstacle): past the 64 KiB limit of small JSON.
    let patch = json!({ "blob": "x".repeat(900_000) });
    let (status, body) = post(
        &client,
        &target.base,
        &json!({
            "query": "mutation($c: ID!, $p: JSON!) { updatePersonaContext(input: {contextId: $c, statePatch: $p}) { context { id } } }",
            "variables": { "c": ctx, "p": patch }
        }),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(code(&body), "BAD_USER_INPUT", "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("statePatch") && message.contains("65536"),
        "{message}"
    );
    // Nothing was written: the state is still empty.
    let (_, state) = post(
        &client,
        &target.base,
        &json!({ "query": "query($c: ID!) { node(id: $c) { ... on PersonaContext { state } } }", "variables": { "c": ctx } }),
    )
    .await;
    assert_eq!(state["data"]["node"]["state"], json!({}), "{state}");
}

/// A subscriber that never reads while its own tenant writes large state
/// patches: before the fix 60 × 0.9 MB patches left 1.05 GB resident. Now
/// each patch is at most 64 KiB of text, and the ring keeps at most
/// `CEREBRAL_EVENT_BUFFER_BYTES` of payloads whole; the rest go as stubs
/// that the subscriber reads from the log, so it still gets every event.
#[tokio::test]
async fn a_stalled_subscriber_and_large_patches_keep_the_ring_within_its_bytes() {
    /// The ring's byte budget in this test.
    const RING: u64 = 4 * 1024 * 1024;
    /// Patches sent, four at a time.
    const PATCHES: usize = 120;
    /// What the process may grow by: the ring's budget, four requests in
    /// flight (each parses its 60 KB of numbers into a few MB) and what the
    /// allocator keeps. Measured on SQLite: 57 MB with the byte bound,
    /// 105 MB with the ring's bytes unbounded (all 120 events, about 0.4 MB
    /// each as parsed JSON, held whole), so the budget lies between them.
    const RING_MEMORY: u64 = 84 * 1024 * 1024;
    // (The ring's bookkeeping itself is checked exactly by the unit tests
    // of `RingBudget`; this is the process-level guard.)
    let target = server(&[
        ("CEREBRAL_EVENT_BUFFER_BYTES", &RING.to_string()),
        // The subscriber does not read on purpose; on a loaded machine the
        // attack can outlast two ping intervals (30 s), after which the
        // server rightly drops a peer that reads nothing.
        ("CEREBRAL_WS_PING_INTERVAL_SECONDS", "0"),
    ])
    .await;
    let client = reqwest::Client::new();
    let ctx = context(&client, &target.base).await;
    let mut ws = RawWs::connect_and_init(&target.base).await;
    ws.subscribe(
        "1",
        "subscription { events(after: \"HEAD\") { cursor payload } }",
        json!({}),
    )
    .await;
    let query = "mutation($c: ID!, $p: JSON!) { updatePersonaContext(input: {contextId: $c, statePatch: $p}) { context { id } } }";
    // The protocol does not confirm a subscription: one small patch, read
    // from the socket, shows it is live before the attack (a stream that
    // started at HEAD after the first patches would never see them).
    let mut is_live = false;
    for _ in 0..10 {
        let (_, marker) = post(
            &client,
            &target.base,
            &json!({ "query": query, "variables": { "c": ctx, "p": { "marker": 1 } } }),
        )
        .await;
        assert!(marker["errors"].is_null(), "{marker}");
        if ws.next_for("1", Duration::from_secs(3)).await.is_some() {
            is_live = true;
            break;
        }
    }
    assert!(is_live, "the HEAD subscription never saw a marker patch");
    // 60 KB of small numbers: the costliest shape for parsed JSON.
    let numbers: Vec<u8> = vec![7; 30_000];
    let (_, cost) = watch(&target, async {
        for round in 0..PATCHES / 4 {
            let sends = (0..4).map(|i| {
                let body = json!({ "query": query, "variables": { "c": ctx, "p": { format!("k{i}"): numbers, "round": round } } });
                let client = client.clone();
                let base = target.base.clone();
                async move { post(&client, &base, &body).await }
            });
            for (_, body) in futures::future::join_all(sends).await {
                assert!(body["errors"].is_null(), "{body}");
            }
        }
    })
    .await;
    cost.assert_within(
        "120 large patches, stalled subscriber",
        Duration::from_secs(120),
        RING_MEMORY,
    );
    // And the stalled subscriber still gets every event, in order, when it
    // reads at last (the stubs are read from the log).
    let mut last = 0i64;
    for _ in 0..PATCHES {
        let msg = ws
            .next_for("1", Duration::from_secs(30))
            .await
            .expect("an event");
        let item = &msg["payload"]["data"];
        let cursor: i64 = item["events"]["cursor"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no cursor in {msg}"));
        assert!(cursor > last, "{cursor} after {last}");
        assert!(
            item["events"]["payload"]["statePatch"].is_object(),
            "{item}"
        );
        last = cursor;
    }
}

/// After `connection_init` a message may be 256 KiB: as numbers that is
/// 130,000 values. Counted before the message is parsed, the socket is
/// closed at the first one.
#[tokio::test]
async fn a_websocket_message_of_too_many_values_closes_the_socket_unparsed() {
    let target = server(&[]).await;
    let numbers = vec!["1"; 120_000].join(",");
    let text = format!(
        r#"{{"id":"1","type":"subscribe","payload":{{"query":"subscription {{ events(after: \"HEAD\") {{ type }} }}","variables":{{"x":[{numbers}]}}}}}}"#
    );
    assert!(text.len() < 256 * 1024);
    let (code, cost) = watch(&target, async {
        let mut ws = RawWs::connect_and_init(&target.base).await;
        ws.send_text(&text).await;
        ws.close_code(Duration::from_secs(5)).await
    })
    .await;
    assert_eq!(code, Some(4400));
    cost.assert_within("a 240 KB message of numbers", REFUSE_WITHIN, VALUES_MEMORY);
}
