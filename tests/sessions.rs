//! Session expiry, heartbeats and the per-user limit.

mod support;

use serde_json::json;

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
    let app = support::spawn_with(|c| c.session_timeout_minutes = 0).await;
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
    let n = app
        .ok(
            "{ events(first: 0, filter: {types: [SESSION_EXPIRED]}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(n["events"]["totalCount"], 2);
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
    let app = support::spawn_with(|c| c.max_sessions_per_user = 2).await;
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
