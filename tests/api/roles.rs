//! Roles decide what a principal may do: every mutation is refused with
//! `FORBIDDEN` for the roles README's table does not list, before anything
//! is read or written, and the table covers every mutation of the schema.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support;

const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";
const TENANT: &str = "0190a3c4-0000-7000-8000-00000000000a";

fn token(roles: &[&str]) -> String {
    support::token(SECRET, TENANT, "someone", roles, 600)
}

async fn post(app: &support::TestApp, roles: &[&str], query: &str, variables: Value) -> Value {
    app.post_as(&token(roles), query, variables).await
}

const AGENT: &[&str] = &["agent"];
const OPERATOR: &[&str] = &["operator"];
const BOTH: &[&str] = &["agent", "operator"];
const ADMIN: &[&str] = &[];

/// The roles besides admin that may run `mutation`: the README's table.
fn allowed(mutation: &str) -> &'static [&'static str] {
    match mutation {
        "startTask"
        | "reportTaskProgress"
        | "completeTask"
        | "failTask"
        | "requestHitl"
        | "createCheckpoint"
        | "completeCheckpoint"
        | "failCheckpoint"
        | "updateCheckpointStatus"
        | "createArtifact"
        | "heartbeat"
        | "updateAgentStatus"
        | "startStory"
        | "submitStoryForReview" => AGENT,
        "createProject"
        | "completeProject"
        | "failProject"
        | "cancelProject"
        | "cancelTask"
        | "retryTask"
        | "resolveHitlRequest"
        | "resolveHitlRequests"
        | "forkFromCheckpoint"
        | "revertToCheckpoint"
        | "pinCheckpoint"
        | "resetAgentStatus"
        | "cleanupExpiredSessions"
        | "approveStory" => OPERATOR,
        "createTask"
        | "startSession"
        | "touchSession"
        | "suspendSession"
        | "resumeSession"
        | "terminateSession"
        | "switchPersona"
        | "updatePersonaContext"
        | "appendPersonaContextHistory"
        | "exportPersonaContext"
        | "importPersonaContext"
        | "createEpic"
        | "draftStory"
        | "reopenStory"
        | "completeStory"
        | "recordQaGate" => BOTH,
        "forceCompleteProject" | "importCatalog" => ADMIN,
        m => panic!("{m} is not in the roles table"),
    }
}

/// An input of the right shape for `mutation` (ids need not exist: the
/// guard runs before the resolver looks anything up).
fn input(mutation: &str, ids: &Value) -> Value {
    let p = &ids["project"];
    match mutation {
        "createProject" => json!({"name": "n"}),
        "createTask" => json!({"projectId": p, "title": "t"}),
        "startTask" | "retryTask" => json!({"taskId": ids["task"]}),
        "createArtifact" => json!({"projectId": p, "kind": "SPEC", "name": "a", "content": {}}),
        "heartbeat" | "resetAgentStatus" => json!({"personaId": "dev", "projectId": p}),
        "updateAgentStatus" => json!({"personaId": "dev", "projectId": p, "status": "WORKING"}),
        "startSession" => json!({}),
        "cleanupExpiredSessions" => Value::Null,
        "importPersonaContext" => {
            let snapshot = json!({"data": "", "compressed": false, "checksum": "", "size": 0});
            json!({"sessionId": ids["session"], "snapshot": snapshot})
        }
        "switchPersona" => json!({"sessionId": ids["session"], "personaId": "pm"}),
        "importCatalog" => json!({"files": []}),
        m => support::mutations::plain_input(m, |k| ids[k].clone())
            .unwrap_or_else(|| panic!("no input for {m}")),
    }
}

/// Every mutation with its input and the roles besides admin that may run
/// it.
fn mutations(ids: &Value) -> Vec<(&'static str, Value, &'static [&'static str])> {
    support::mutations::MUTATIONS
        .iter()
        .map(|m| (*m, input(m, ids), allowed(m)))
        .collect()
}

async fn event_count(app: &support::TestApp) -> u64 {
    post(
        app,
        &["viewer"],
        "{ events(first: 1) { totalCount } }",
        json!({}),
    )
    .await["data"]["events"]["totalCount"]
        .as_u64()
        .expect("count")
}

#[tokio::test]
async fn every_mutation_is_refused_for_the_roles_it_does_not_list_and_changes_nothing() {
    let app = support::spawn_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    // Real objects of the caller's own tenant, made by an admin, so a
    // refusal cannot be a NOT_FOUND in disguise.
    let ids = app.bearer(&token(&["admin"])).seed("p").await;
    for (k, v) in ids.as_object().expect("ids") {
        assert!(v.is_string(), "seeding {k} failed: {ids}");
    }
    let table = mutations(&ids);

    // The table covers the schema's mutations exactly.
    let schema = post(
        &app,
        &["viewer"],
        "{ __type(name: \"Mutation\") { fields(includeDeprecated: true) { name description } } }",
        json!({}),
    )
    .await;
    let in_schema: BTreeSet<String> = schema["data"]["__type"]["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str().map(str::to_string))
        .collect();
    let in_table: BTreeSet<String> = table.iter().map(|m| m.0.to_string()).collect();
    assert_eq!(
        in_schema, in_table,
        "a mutation is missing from the roles table"
    );
    // Each mutation's description names its roles, as the guard enforces
    // them.
    for f in schema["data"]["__type"]["fields"]
        .as_array()
        .expect("fields")
    {
        let name = f["name"].as_str().expect("name");
        let allowed = table.iter().find(|m| m.0 == name).expect("in table").2;
        let mut roles: Vec<&str> = allowed.to_vec();
        roles.push("admin");
        let line = format!("Roles: {}.", roles.join(", "));
        assert!(
            f["description"].as_str().is_some_and(|d| d.contains(&line)),
            "{name}: description lacks `{line}`"
        );
    }

    let before = event_count(&app).await;
    let mut refused = 0;
    for role in ["viewer", "agent", "operator"] {
        for (name, input, allowed) in &table {
            if allowed.contains(&role) {
                continue;
            }
            let document = support::mutations::document(name, "{ __typename }");
            let body = post(&app, &[role], &document, json!({ "input": input })).await;
            assert_eq!(
                body["errors"][0]["extensions"]["code"], "FORBIDDEN",
                "{role} running {name}: {body}"
            );
            assert!(
                body["errors"][0]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(name) && m.contains("role")),
                "{body}"
            );
            assert!(body["data"].is_null(), "{body}");
            refused += 1;
        }
    }
    // Viewers may run no mutation at all; each other role is refused the
    // rest.
    assert!(refused > table.len(), "{refused}");
    assert_eq!(
        event_count(&app).await,
        before,
        "a refused mutation wrote an event"
    );
    let projects = post(&app, &["viewer"], "{ projects { totalCount } }", json!({})).await;
    assert_eq!(projects["data"]["projects"]["totalCount"], 1, "{projects}");
}

#[tokio::test]
async fn each_role_may_run_what_the_table_lists_and_every_role_reads() {
    let app = support::spawn_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    // Operators start projects, agents do the work, operators answer.
    let p = post(&app, &["operator"], "mutation { createProject(input: {name: \"p\", workflowId: \"greenfield-service\"}) { project { id tasks(first: 1) { nodes { id } } } } }", json!({})).await;
    let tid = p["data"]["createProject"]["project"]["tasks"]["nodes"][0]["id"].clone();
    assert!(tid.is_string(), "{p}");
    let started = post(
        &app,
        &["agent"],
        "mutation($t: ID!) { startTask(input: {taskId: $t}) { task { status } } }",
        json!({"t": tid}),
    )
    .await;
    assert_eq!(
        started["data"]["startTask"]["task"]["status"], "WORKING",
        "{started}"
    );
    let h = post(&app, &["agent"], "mutation($t: ID!) { requestHitl(input: {taskId: $t, question: \"ship?\"}) { hitlRequest { id } } }", json!({"t": tid})).await;
    let hid = h["data"]["requestHitl"]["hitlRequest"]["id"].clone();
    assert!(hid.is_string(), "{h}");
    let r = post(&app, &["operator"], "mutation($h: ID!) { resolveHitlRequest(input: {requestId: $h, decision: APPROVE}) { hitlRequest { status } } }", json!({"h": hid})).await;
    assert!(r["errors"].is_null(), "{r}");
    // A principal with several roles has the union of their rights.
    let both = post(&app, &["viewer", "agent"], "mutation($t: ID!) { reportTaskProgress(input: {taskId: $t, progress: 50}) { task { progress } } }", json!({"t": tid})).await;
    assert_eq!(
        both["data"]["reportTaskProgress"]["task"]["progress"], 50,
        "{both}"
    );
    // Every role reads.
    for role in ["viewer", "agent", "operator", "admin"] {
        let body = post(&app, &[role], "{ projects { totalCount } }", json!({})).await;
        assert_eq!(body["data"]["projects"]["totalCount"], 1, "{role}: {body}");
    }
}

#[tokio::test]
async fn a_token_without_a_cerebral_role_is_forbidden_everything() {
    let app = support::spawn_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    for roles in [&[][..], &["superuser", "root"][..]] {
        let resp = app
            .http()
            .post(app.graphql_url())
            .bearer_auth(token(roles))
            .json(&json!({ "query": "{ projects { totalCount } }" }))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 403);
        let body: Value = resp.json().await.expect("json");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{body}"
        );
        assert!(body.get("data").is_none(), "{body}");
        let mut ws = support::RawWs::connect(&app.base).await;
        ws.send_json(
            json!({ "type": "connection_init", "payload": { "authToken": token(roles) } }),
        )
        .await;
        assert_eq!(
            ws.close_code(std::time::Duration::from_secs(10)).await,
            Some(4403)
        );
    }
}
