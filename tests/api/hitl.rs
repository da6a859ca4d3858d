//! HITL at scale: batches of answers, counts for dashboards, expiry.

use serde_json::{Value, json};

use crate::support;

async fn ask(app: &support::TestApp, t: &Value, extra: Value) -> Value {
    let mut input = json!({ "taskId": t, "question": "ok?" });
    if let (Some(i), Some(e)) = (input.as_object_mut(), extra.as_object()) {
        i.extend(e.clone());
    }
    app.new_id(
        "mutation($i: RequestHitlInput!) { requestHitl(input: $i) { hitlRequest { id } } }",
        json!({ "i": input }),
    )
    .await
}

#[tokio::test]
async fn many_answers_in_one_call_each_with_its_own_result() {
    let app = support::spawn().await;
    let p = app.create_project("p").await;
    let t1 = app.working_task(&p).await;
    let t2 = app.working_task(&p).await;
    let r1 = ask(&app, &t1, json!({})).await;
    let r2 = ask(&app, &t2, json!({})).await;
    let r3 = ask(&app, &t2, json!({})).await;
    let counts = "query($p: ID!, $t: ID!) { project(id: $p) { pendingHitlCount } task(id: $t) { pendingHitl { totalCount nodes { id } } } }";
    let c = app.ok(counts, json!({ "p": p, "t": t2 })).await;
    assert_eq!(c["project"]["pendingHitlCount"], 3);
    assert_eq!(c["task"]["pendingHitl"]["totalCount"], 2);

    app.approve_hitl(&r1).await;
    let q = "mutation($items: [ResolveHitlRequestInput!]!) { resolveHitlRequests(input: {items: $items}) { resolvedCount failedCount results { requestId hitlRequest { status } task { status } error { code } } } }";
    let items = json!([
        { "requestId": r1, "decision": "APPROVE" },
        { "requestId": r2, "decision": "APPROVE" },
        { "requestId": r3, "decision": "AMEND", "response": { "scope": "smaller" } },
        { "requestId": format!("HitlRequest:{}", uuid::Uuid::now_v7()), "decision": "APPROVE" },
    ]);
    let d = app.ok(q, json!({ "items": items })).await["resolveHitlRequests"].clone();
    assert_eq!(d["resolvedCount"], 2);
    assert_eq!(d["failedCount"], 2);
    let results = d["results"].as_array().expect("results");
    assert_eq!(
        results[0]["error"]["code"], "INVALID_TRANSITION",
        "already answered"
    );
    assert_eq!(results[1]["hitlRequest"]["status"], "APPROVED");
    assert_eq!(
        results[1]["task"]["status"], "WAITING_FOR_HITL",
        "r3 still pending at that point"
    );
    assert_eq!(results[2]["hitlRequest"]["status"], "AMENDED");
    assert_eq!(
        results[2]["task"]["status"], "WORKING",
        "the last answer resumes the task"
    );
    assert_eq!(results[3]["error"]["code"], "NOT_FOUND");
    let c = app.ok(counts, json!({ "p": p, "t": t2 })).await;
    assert_eq!(c["project"]["pendingHitlCount"], 0);
}

#[tokio::test]
async fn unanswered_requests_expire_and_their_task_fails_or_resumes_as_asked() {
    let app = support::spawn().await;
    let p = app.create_project("p").await;
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(2000)).to_rfc3339();
    let failing = app.working_task(&p).await;
    let resuming = app.working_task(&p).await;
    let r_fail = ask(&app, &failing, json!({ "expiresAt": soon })).await;
    ask(
        &app,
        &resuming,
        json!({ "expiresAt": soon, "onExpiry": "RESUME_TASK" }),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;

    // Past its deadline a request can no longer be answered, even before a sweep.
    let late = app
        .post("mutation($r: ID!) { resolveHitlRequest(input: {requestId: $r, decision: APPROVE}) { hitlRequest { id } } }", json!({ "r": r_fail }))
        .await;
    assert_eq!(
        late["errors"][0]["extensions"]["code"], "INVALID_TRANSITION",
        "{late}"
    );

    let n = app.services.expire_overdue_hitl(100).await.expect("sweep");
    assert_eq!(n, 2);
    assert_eq!(
        app.services.expire_overdue_hitl(100).await.expect("sweep"),
        0,
        "once only"
    );
    let q = "query($t: ID!) { task(id: $t) { status error hitlRequests { nodes { status onExpiry } } } }";
    let f = app.ok(q, json!({ "t": failing })).await;
    assert_eq!(f["task"]["status"], "FAILED");
    assert_eq!(f["task"]["hitlRequests"]["nodes"][0]["status"], "EXPIRED");
    let r = app.ok(q, json!({ "t": resuming })).await;
    assert_eq!(r["task"]["status"], "WORKING");
    assert_eq!(
        app.event_count(json!({ "types": ["HITL_EXPIRED"] })).await,
        2
    );
}

#[tokio::test]
async fn answers_must_match_the_requests_schema() {
    let app = support::spawn().await;
    let p = app.create_project("p").await;
    let t = app.working_task(&p).await;
    let bad_schema = app
        .post("mutation($t: ID!) { requestHitl(input: {taskId: $t, question: \"?\", responseSchema: {type: 12}}) { hitlRequest { id } } }", json!({ "t": t }))
        .await;
    assert_eq!(
        bad_schema["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{bad_schema}"
    );
    let schema = json!({ "type": "object", "required": ["budget"], "properties": { "budget": { "type": "integer", "minimum": 0 } } });
    let r = ask(&app, &t, json!({ "responseSchema": schema })).await;
    let answer = "mutation($r: ID!, $d: HitlDecision!, $x: JSON) { resolveHitlRequest(input: {requestId: $r, decision: $d, response: $x}) { hitlRequest { status response } } }";
    let wrong = app
        .post(
            answer,
            json!({ "r": r, "d": "AMEND", "x": { "budget": "lots" } }),
        )
        .await;
    assert_eq!(wrong["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    assert!(
        wrong["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("/budget"),
        "{wrong}"
    );
    let missing = app.post(answer, json!({ "r": r, "d": "APPROVE" })).await;
    assert_eq!(missing["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let ok = app
        .ok(
            answer,
            json!({ "r": r, "d": "AMEND", "x": { "budget": 10 } }),
        )
        .await;
    assert_eq!(ok["resolveHitlRequest"]["hitlRequest"]["status"], "AMENDED");
}

#[tokio::test]
async fn a_session_shows_the_questions_waiting_for_its_user() {
    let app = support::spawn().await;
    let p = app.create_project("p").await;
    let t = app.working_task(&p).await;
    ask(&app, &t, json!({})).await;
    ask(&app, &t, json!({})).await;
    let s = app.start_session().await;
    let d = app.ok("query($s: ID!) { session(id: $s) { pendingHitl(first: 1) { totalCount pageInfo { hasNextPage } nodes { question } } } }", json!({ "s": s })).await;
    assert_eq!(d["session"]["pendingHitl"]["totalCount"], 2);
    assert_eq!(d["session"]["pendingHitl"]["pageInfo"]["hasNextPage"], true);
}
