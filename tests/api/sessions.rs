//! Session expiry, heartbeats and the per-user limit.

use serde_json::json;

use crate::support;

const START: &str = "mutation { startSession { session { id status expiresAt } } }";
const SESSIONS: &str = "{ sessions(first: 100) { nodes { id status } } }";

async fn start(app: &support::TestApp) -> String {
    app.ok(START, json!({})).await["startSession"]["session"]["id"]
        .as_str()
        .expect("id")
        .to_string()
}

#[tokio::test]
async fn overdue_sessions_expire_on_cleanup_with_one_event_each_and_refuse_work() {
    // A zero timeout makes every session overdue at once.
    let app = support::spawn_with(|c| c.lifecycle.session_timeout_minutes = 0).await;
    let a = start(&app).await;
    let _b = start(&app).await;
    let body = app
        .post(
            "mutation($s: ID!) { touchSession(input: {sessionId: $s}) { session { id } } }",
            json!({ "s": a }),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );
    let body = app.post("mutation($s: ID!) { switchPersona(input: {sessionId: $s, personaId: \"pm\"}) { context { id } } }", json!({ "s": a })).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{body}"
    );

    let d = app
        .ok(
            "mutation { cleanupExpiredSessions { expiredCount sessions { status endedAt } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["cleanupExpiredSessions"]["expiredCount"], 2);
    assert!(
        d["cleanupExpiredSessions"]["sessions"]
            .as_array()
            .expect("list")
            .iter()
            .all(|s| s["status"] == "EXPIRED" && s["endedAt"].is_string())
    );
    let again = app
        .ok(
            "mutation { cleanupExpiredSessions { expiredCount } }",
            json!({}),
        )
        .await;
    assert_eq!(
        again["cleanupExpiredSessions"]["expiredCount"], 0,
        "expired once only"
    );
    assert_eq!(
        app.event_count(json!({ "types": ["SESSION_EXPIRED"] }))
            .await,
        2
    );
}

#[tokio::test]
async fn touching_an_active_session_moves_its_deadline() {
    let app = support::spawn().await;
    let d = app.ok(START, json!({})).await;
    let s = d["startSession"]["session"]["id"].clone();
    let before = d["startSession"]["session"]["expiresAt"]
        .as_str()
        .expect("t")
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let t = app.ok("mutation($s: ID!) { touchSession(input: {sessionId: $s}) { session { expiresAt lastActivityAt } } }", json!({ "s": s })).await;
    let after = t["touchSession"]["session"]["expiresAt"]
        .as_str()
        .expect("t")
        .to_string();
    let parse = |x: &str| chrono::DateTime::parse_from_rfc3339(x).expect("rfc3339");
    assert!(parse(&after) > parse(&before), "{before} -> {after}");
}

#[tokio::test]
async fn the_least_recently_active_session_expires_when_a_user_goes_over_the_limit() {
    let app = support::spawn_with(|c| c.lifecycle.max_sessions_per_user = 2).await;
    let first = start(&app).await;
    let second = start(&app).await;
    let third = start(&app).await;
    let d = app.ok(SESSIONS, json!({})).await;
    let status = |id: &str| {
        d["sessions"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .find(|s| s["id"] == id)
            .expect("listed")["status"]
            .clone()
    };
    assert_eq!(status(&first), "EXPIRED");
    assert_eq!(status(&second), "ACTIVE");
    assert_eq!(status(&third), "ACTIVE");
}

#[tokio::test]
async fn a_context_travels_between_sessions_and_a_tampered_snapshot_is_refused() {
    let app = support::spawn().await;
    let s1 = start(&app).await;
    let c = app
        .new_id("mutation($s: ID!) { switchPersona(input: {sessionId: $s, personaId: \"architect\", initialState: {stack: \"rust\"}}) { context { id } } }", json!({ "s": s1 })).await;
    app.ok("mutation($c: ID!) { appendPersonaContextHistory(input: {contextId: $c, entry: {role: \"user\", content: \"hi\"}}) { context { id } } }", json!({ "c": c }))
        .await;
    for compress in [false, true] {
        let snap = app
            .ok("mutation($c: ID!, $z: Boolean!) { exportPersonaContext(input: {contextId: $c, compress: $z}) { snapshot { data compressed checksum size } } }", json!({ "c": c, "z": compress }))
            .await["exportPersonaContext"]["snapshot"]
            .clone();
        assert!(
            snap["checksum"]
                .as_str()
                .expect("checksum")
                .starts_with("sha256:")
        );
        let s2 = start(&app).await;
        let imported = app
            .ok("mutation($s: ID!, $snap: PersonaContextSnapshotInput!) { importPersonaContext(input: {sessionId: $s, snapshot: $snap}) { context { state history historyTotal persona { key } } event { type } } }", json!({ "s": s2, "snap": snap }))
            .await["importPersonaContext"]
            .clone();
        assert_eq!(imported["context"]["state"], json!({ "stack": "rust" }));
        assert_eq!(
            imported["context"]["history"],
            json!([{ "role": "user", "content": "hi" }])
        );
        assert_eq!(imported["context"]["persona"]["key"], "architect");

        // One flipped character in the data, or a checksum from elsewhere: refused.
        let mut bad = snap.clone();
        let data = bad["data"].as_str().expect("data").to_string();
        // In the middle: a gzip header byte (mtime) could change without
        // changing the content, which is not tampering with the context.
        let mid = data.len() / 2;
        let flipped: String = data
            .chars()
            .enumerate()
            .map(|(i, ch)| {
                if i == mid {
                    if ch == 'A' { 'B' } else { 'A' }
                } else {
                    ch
                }
            })
            .collect();
        bad["data"] = json!(flipped);
        let body = app
            .post("mutation($s: ID!, $snap: PersonaContextSnapshotInput!) { importPersonaContext(input: {sessionId: $s, snapshot: $snap}) { context { id } } }", json!({ "s": s2, "snap": bad }))
            .await;
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "compress={compress}: {body}"
        );
        let mut wrong = snap.clone();
        wrong["checksum"] = json!(format!("sha256:{}", "0".repeat(64)));
        let body = app
            .post("mutation($s: ID!, $snap: PersonaContextSnapshotInput!) { importPersonaContext(input: {sessionId: $s, snapshot: $snap}) { context { id } } }", json!({ "s": s2, "snap": wrong }))
            .await;
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("checksum"),
            "{body}"
        );
    }
}

/// A snapshot as a client could write it by hand: plain JSON, base64.
fn hand_made_snapshot(doc: &serde_json::Value, declared: Option<usize>) -> serde_json::Value {
    use base64::Engine;
    use sha2::Digest;
    let text = serde_json::to_vec(doc).expect("json");
    json!({
        "data": base64::engine::general_purpose::STANDARD.encode(&text),
        "compressed": false,
        "checksum": format!("sha256:{:x}", sha2::Sha256::digest(&text)),
        "size": declared.unwrap_or(text.len()),
    })
}

#[tokio::test]
async fn an_imported_history_keeps_its_newest_entries_and_sizes_are_checked_before_inflating() {
    let app = support::spawn_with(|c| {
        c.lifecycle.max_context_history = 3;
        c.catalog.max_snapshot_bytes = 4096;
    })
    .await;
    let s = start(&app).await;
    let import = "mutation($s: ID!, $snap: PersonaContextSnapshotInput!) { importPersonaContext(input: {sessionId: $s, snapshot: $snap}) { context { state history historyTotal } } }";
    let doc = |entries: usize| {
        json!({
            "format": "cerebral.persona-context/1", "persona": "analyst",
            "state": { "k": 1 }, "history": (0..entries).map(|i| json!({ "n": i })).collect::<Vec<_>>(),
            "historyTotal": entries, "activeTool": null, "activeWorkflow": null,
            "exportedAt": "2026-01-01T00:00:00Z", "someFutureField": [1, 2],
        })
    };
    let ctx = app
        .ok(
            import,
            json!({ "s": s, "snap": hand_made_snapshot(&doc(10), None) }),
        )
        .await["importPersonaContext"]["context"]
        .clone();
    assert_eq!(ctx["history"], json!([{ "n": 7 }, { "n": 8 }, { "n": 9 }]));
    assert_eq!(ctx["historyTotal"], 10);
    assert_eq!(ctx["state"], json!({ "k": 1 }));

    let refused = |body: serde_json::Value, needle: &str| {
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{body}"
        );
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{needle}: {message}");
    };
    // Declared over the limit: refused before it is even decoded.
    let mut snap = hand_made_snapshot(&doc(1), Some(4097));
    snap["data"] = json!("not base64 at all!");
    refused(
        app.post(import, json!({ "s": s, "snap": snap })).await,
        "declares 4097 bytes of JSON; at most 4096",
    );
    // Declared small, holds more than the limit.
    refused(
        app.post(
            import,
            json!({ "s": s, "snap": hand_made_snapshot(&doc(500), Some(10)) }),
        )
        .await,
        "larger than 4096 bytes",
    );
    // Declared size and content disagree.
    refused(
        app.post(
            import,
            json!({ "s": s, "snap": hand_made_snapshot(&doc(1), Some(10)) }),
        )
        .await,
        "declares 10 bytes of JSON but holds",
    );
    // The refusals changed nothing: the first import is still there.
    assert_eq!(
        app.event_count(json!({ "types": ["PERSONA_CONTEXT_UPDATED"] }))
            .await,
        1
    );
}
