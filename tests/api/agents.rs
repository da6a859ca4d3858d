//! Agent heartbeats, STALE detection and reset.

use serde_json::json;

use crate::support;

const HEARTBEAT: &str = "mutation($p: ID!) { heartbeat(input: {personaId: \"dev\", projectId: $p}) { agentStatus { status lastActivityAt } } }";
const STATUS: &str =
    "query($p: ID!) { agentStatuses(projectId: $p) { nodes { status message persona { key } } } }";

#[tokio::test]
async fn a_silent_agent_is_reported_stale_once_and_a_heartbeat_brings_it_back() {
    let app = support::spawn_with(|c| c.lifecycle.agent_stale_seconds = 0).await;
    let p = app.create_project("p").await;
    let first = app.ok(HEARTBEAT, json!({ "p": p })).await;
    assert_eq!(
        first["heartbeat"]["agentStatus"]["status"], "IDLE",
        "first heartbeat introduces the agent"
    );
    app.ok(
        "mutation($p: ID!) { updateAgentStatus(input: {personaId: \"dev\", projectId: $p, status: WORKING}) { agentStatus { status } } }",
        json!({ "p": p }),
    )
    .await;
    let body = app
        .post("mutation($p: ID!) { updateAgentStatus(input: {personaId: \"dev\", projectId: $p, status: STALE}) { agentStatus { status } } }", json!({ "p": p }))
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "STALE is the server's verdict"
    );

    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let n = app
        .services
        .mark_stale_agents(chrono::Duration::milliseconds(20), 100)
        .await
        .expect("check");
    assert_eq!(n, 1);
    assert_eq!(
        app.services
            .mark_stale_agents(chrono::Duration::milliseconds(20), 100)
            .await
            .expect("check"),
        0,
        "reported once"
    );
    let d = app.ok(STATUS, json!({ "p": p })).await;
    assert_eq!(d["agentStatuses"]["nodes"][0]["status"], "STALE");

    let back = app.ok(HEARTBEAT, json!({ "p": p })).await;
    assert_eq!(back["heartbeat"]["agentStatus"]["status"], "IDLE");
    let events = app.ok("query($p: ID!) { events(first: 50, filter: {projectId: $p, types: [AGENT_STATUS_CHANGED]}) { nodes { payload } } }", json!({ "p": p })).await;
    let states: Vec<String> = events["events"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|e| {
            e["payload"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(states, ["IDLE", "WORKING", "STALE", "IDLE"]);

    // A plain heartbeat of a healthy agent adds no event.
    app.ok(HEARTBEAT, json!({ "p": p })).await;
    let again = app
        .event_count(json!({ "projectId": p, "types": ["AGENT_STATUS_CHANGED"] }))
        .await;
    assert_eq!(again, 4);
}

#[tokio::test]
async fn reset_puts_an_agent_back_to_idle_without_a_task() {
    let app = support::spawn().await;
    let p = app.create_project("p").await;
    let t = app.create_task(&p, "t").await;
    app.ok(
        "mutation($p: ID!, $t: ID!) { updateAgentStatus(input: {personaId: \"dev\", projectId: $p, status: ERROR, currentTaskId: $t}) { agentStatus { status } } }",
        json!({ "p": p, "t": t }),
    )
    .await;
    let r = app
        .ok("mutation($p: ID!) { resetAgentStatus(input: {personaId: \"dev\", projectId: $p}) { agentStatus { status currentTask { id } message } event { type } } }", json!({ "p": p }))
        .await;
    assert_eq!(r["resetAgentStatus"]["agentStatus"]["status"], "IDLE");
    assert!(r["resetAgentStatus"]["agentStatus"]["currentTask"].is_null());
    assert_eq!(
        r["resetAgentStatus"]["event"]["type"],
        "AGENT_STATUS_CHANGED"
    );
}
