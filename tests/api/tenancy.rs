//! No tenant sees or touches another tenant's rows, whatever id it guesses.
//! Tenant A works over HTTP (the development tenant); tenant B runs the same
//! schema in-process with its own principal.

use std::time::Duration;

use cerebral::auth::{Principal, Role};
use serde_json::{Value, json};

use crate::support;

fn tenant_b() -> Principal {
    Principal {
        tenant_id: uuid::Uuid::from_u128(0xB),
        user_id: "intruder".into(),
        roles: vec![Role::Viewer, Role::Agent, Role::Operator, Role::Admin],
    }
}

#[tokio::test]
async fn another_tenant_sees_nothing_and_changes_nothing() {
    let app = support::spawn().await;
    // Tenant A's world: a workflow project with a waiting task, a question,
    // an artifact, a checkpoint, an agent status and a session with a context.
    let world = app.seed("secret").await;
    let id = |k: &str| world[k].as_str().expect(k).to_string();
    let (pid, tid, eid, hid, aid) = (
        id("project"),
        id("task"),
        id("event"),
        id("hitl"),
        id("artifact"),
    );
    let (cid, agent, session, ctx) = (id("checkpoint"), id("agent"), id("session"), id("context"));

    let dump = "query($p: ID!, $t: ID!) { project(id: $p) { status name } task(id: $t) { status version } projects { totalCount } tasks { totalCount } events(first: 0) { totalCount } hitlRequests { totalCount } artifacts { totalCount } sessions { totalCount } }";
    let a_before = app.ok(dump, json!({ "p": pid, "t": tid })).await;

    let b = tenant_b();
    // Reads: every id of A is null for B, every list is empty.
    for id in [&pid, &tid, &hid, &aid, &cid, &agent, &session, &ctx, &eid] {
        let r = app
            .as_principal(
                b.clone(),
                "query($id: ID!) { node(id: $id) { id } }",
                json!({ "id": id }),
            )
            .await;
        assert_eq!(r["data"]["node"], Value::Null, "{id} leaked: {r}");
    }
    let r = app
        .as_principal(b.clone(), dump, json!({ "p": pid, "t": tid }))
        .await;
    assert_eq!(r["data"]["project"], Value::Null);
    assert_eq!(r["data"]["task"], Value::Null);
    for list in [
        "projects",
        "tasks",
        "events",
        "hitlRequests",
        "artifacts",
        "sessions",
    ] {
        assert_eq!(r["data"][list]["totalCount"], 0, "{list} leaked: {r}");
    }
    let r = app
        .as_principal(
            b.clone(),
            "query($p: ID!) { agentStatuses(projectId: $p) { totalCount } }",
            json!({ "p": pid }),
        )
        .await;
    assert_eq!(r["data"]["agentStatuses"]["totalCount"], 0);

    // Writes: refused as NOT_FOUND, exactly like ids that do not exist.
    let writes = [
        (
            "mutation($id: ID!) { completeTask(input: {taskId: $id}) { task { id } } }",
            &tid,
        ),
        (
            "mutation($id: ID!) { cancelTask(input: {taskId: $id}) { task { id } } }",
            &tid,
        ),
        (
            "mutation($id: ID!) { cancelProject(input: {projectId: $id}) { project { id } } }",
            &pid,
        ),
        (
            "mutation($id: ID!) { createTask(input: {projectId: $id, title: \"x\"}) { task { id } } }",
            &pid,
        ),
        (
            "mutation($id: ID!) { createArtifact(input: {projectId: $id, kind: LOG, name: \"x\", content: {}}) { artifact { id } } }",
            &pid,
        ),
        (
            "mutation($id: ID!) { resolveHitlRequest(input: {requestId: $id, decision: REJECT}) { hitlRequest { id } } }",
            &hid,
        ),
        (
            "mutation($id: ID!) { createCheckpoint(input: {taskId: $id, stepId: \"s\", state: {}}) { checkpoint { id } } }",
            &tid,
        ),
        (
            "mutation($id: ID!) { updateAgentStatus(input: {personaId: \"analyst\", projectId: $id, status: ERROR}) { agentStatus { id } } }",
            &pid,
        ),
        (
            "mutation($id: ID!) { terminateSession(input: {sessionId: $id}) { session { id } } }",
            &session,
        ),
        (
            "mutation($id: ID!) { switchPersona(input: {sessionId: $id, personaId: \"dev\"}) { context { id } } }",
            &session,
        ),
        (
            "mutation($id: ID!) { updatePersonaContext(input: {contextId: $id, statePatch: {x: 1}}) { context { id } } }",
            &ctx,
        ),
    ];
    for (q, id) in writes {
        let r = app.as_principal(b.clone(), q, json!({ "id": id })).await;
        assert_eq!(
            r["errors"][0]["extensions"]["code"], "NOT_FOUND",
            "{q}: {r}"
        );
    }

    // Streams: B replaying the whole log sees nothing of A.
    let schema = cerebral::graphql::build_schema(app.services.clone());
    let req = cerebral::graphql::request_data(
        async_graphql::Request::new("subscription { events(after: \"0\") { cursor } }"),
        &app.services,
        b.clone(),
        Duration::from_micros(200),
    );
    let mut stream = schema.execute_stream(req);
    use futures::StreamExt;
    let got = tokio::time::timeout(Duration::from_millis(500), stream.next()).await;
    assert!(got.is_err(), "tenant B received {got:?}");

    // And A's data is exactly as it was.
    assert_eq!(app.ok(dump, json!({ "p": pid, "t": tid })).await, a_before);
}
