//! The main job on real input: an agent team runs the `greenfield-service`
//! workflow through the real server while a graphql-transport-ws client
//! watches every event of the project live.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support;

const EVENTS_SUB: &str = "subscription($after: String, $projectId: ID) { events(after: $after, projectId: $projectId) { cursor type projectId subjectType } }";
const TASKS_SUB: &str = "subscription($p: ID!, $after: String) { taskUpdated(projectId: $p, after: $after) { cursor type task { id status progress } } }";
const PO_SUB: &str = "subscription($p: ID!) { agentStatusChanged(projectId: $p, personaId: \"po\") { cursor agentStatus { status persona { key } } } }";
const EVENTS_QUERY: &str = "query($after: String, $projectId: ID) { events(first: 100, after: $after, filter: {projectId: $projectId}) { totalCount pageInfo { hasNextPage } edges { cursor node { cursor type } } } }";

async fn log_of(app: &support::TestApp, project: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut after: Option<String> = None;
    loop {
        let data = app
            .ok(
                EVENTS_QUERY,
                json!({ "after": after, "projectId": project }),
            )
            .await;
        let edges = data["events"]["edges"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        for e in &edges {
            out.push((
                e["cursor"].as_str().unwrap_or_default().to_string(),
                e["node"]["type"].as_str().unwrap_or_default().to_string(),
            ));
        }
        if data["events"]["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = edges
            .last()
            .map(|e| e["cursor"].as_str().unwrap_or_default().to_string());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_team_runs_greenfield_service_while_a_subscriber_sees_every_event_once_in_order() {
    let app = support::spawn().await;
    // Subscribed before anything happens: the live path. The protocol does
    // not confirm a subscription, so a marker project's event, read from
    // it, shows it is live before the team starts (the comparison below
    // keeps the team's project only).
    let mut live = app.subscribe(EVENTS_SUB, json!({ "after": "HEAD" })).await;
    let mut is_live = false;
    for _ in 0..10 {
        support::create_project_cursor(app.http(), &app.base, "marker").await;
        if live.next(Duration::from_secs(3)).await.is_some() {
            is_live = true;
            break;
        }
    }
    assert!(is_live, "the HEAD subscription never saw a marker project");

    let mut lines = vec![];
    let demo = cerebral::demo::Demo::start(&app.graphql_url(), "greenfield-service", &mut |l| {
        lines.push(l)
    })
    .await
    .expect("the project is created");
    // A watcher of this project from its first event on, as a dashboard
    // would: the cursor before PROJECT_CREATED, then everything live.
    let before_created =
        (demo.created_cursor.parse::<i64>().expect("numeric cursor") - 1).to_string();
    let mut project_sub = app
        .subscribe(
            EVENTS_SUB,
            json!({ "after": before_created, "projectId": demo.project_id }),
        )
        .await;
    let mut task_sub = app
        .subscribe(
            TASKS_SUB,
            json!({ "p": demo.project_id, "after": before_created }),
        )
        .await;
    let mut po_sub = app.subscribe(PO_SUB, json!({ "p": demo.project_id })).await;
    let summary = demo
        .play(|l| lines.push(l))
        .await
        .expect("the demo runs to the end");
    assert_eq!(summary.percentage, 100.0, "{lines:#?}");
    assert_eq!(
        summary.approvals, 1,
        "one HITL gate: the po validation step"
    );
    assert!(
        summary.artifacts >= 5,
        "brief, prd, architecture, shards, story, code: {summary:?}"
    );
    assert_eq!(
        summary.checkpoints, summary.completed,
        "a checkpoint per step played"
    );

    let log = log_of(&app, &summary.project_id).await;
    let types: Vec<&str> = log.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(types.first(), Some(&"PROJECT_CREATED"));
    // The last required task completed the project by itself, once, after
    // every task completion.
    let completed_at: Vec<usize> = types
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == "PROJECT_COMPLETED")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(completed_at.len(), 1, "{types:?}");
    let last_task_done = types
        .iter()
        .rposition(|t| *t == "TASK_COMPLETED")
        .expect("tasks completed");
    assert!(completed_at[0] > last_task_done, "{types:?}");
    for t in [
        "TASK_STARTED",
        "TASK_PROGRESS",
        "ARTIFACT_CREATED",
        "CHECKPOINT_CREATED",
        "HITL_REQUESTED",
        "HITL_RESOLVED",
        "TASK_WAITING_FOR_HITL",
        "TASK_RESUMED",
        "AGENT_STATUS_CHANGED",
        "TASK_COMPLETED",
        "TASK_CANCELLED",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }

    // The live subscriber got exactly the project's log: nothing missing,
    // nothing twice, in order.
    let mut seen: Vec<(String, String)> = vec![];
    while seen.len() < log.len() {
        let Some(item) = live.next(Duration::from_secs(10)).await else {
            break;
        };
        let e = &item["events"];
        if e["projectId"] == Value::String(summary.project_id.clone()) {
            seen.push((
                e["cursor"].as_str().unwrap_or_default().to_string(),
                e["type"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    assert_eq!(seen, log, "live stream differs from the log");
    let unique: HashSet<_> = seen.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(unique.len(), seen.len(), "duplicate cursors");
    let cursors: Vec<i64> = seen
        .iter()
        .map(|(c, _)| c.parse().expect("numeric cursor"))
        .collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]),
        "cursors not increasing"
    );

    // The project's own subscription: exactly its log.
    let mut from_project = vec![];
    while from_project.len() < log.len() {
        let Some(item) = project_sub.next(Duration::from_secs(10)).await else {
            break;
        };
        from_project.push((
            item["events"]["cursor"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            item["events"]["type"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ));
    }
    assert_eq!(from_project, log, "events(projectId) differs from the log");
    assert!(
        project_sub.next(Duration::from_millis(300)).await.is_none(),
        "nothing beyond the log"
    );

    // taskUpdated: every task event, typed, with the task as it was then.
    let task_events: Vec<&(String, String)> =
        log.iter().filter(|(_, t)| t.starts_with("TASK_")).collect();
    for want in &task_events {
        let item = task_sub
            .next(Duration::from_secs(10))
            .await
            .expect("task update");
        assert_eq!(
            item["taskUpdated"]["cursor"].as_str(),
            Some(want.0.as_str())
        );
        assert_eq!(item["taskUpdated"]["type"].as_str(), Some(want.1.as_str()));
        let status = item["taskUpdated"]["task"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let expected_status = match want.1.as_str() {
            "TASK_CREATED" => "PENDING",
            "TASK_STARTED" | "TASK_PROGRESS" | "TASK_RESUMED" => "WORKING",
            "TASK_WAITING_FOR_HITL" => "WAITING_FOR_HITL",
            "TASK_COMPLETED" => "COMPLETED",
            "TASK_CANCELLED" => "CANCELLED",
            other => panic!("unexpected {other}"),
        };
        assert_eq!(status, expected_status, "snapshot of {want:?}");
    }

    // agentStatusChanged narrowed to one persona.
    let mut po_states = vec![];
    while let Some(item) = po_sub.next(Duration::from_secs(2)).await {
        assert_eq!(
            item["agentStatusChanged"]["agentStatus"]["persona"]["key"],
            "po"
        );
        po_states.push(
            item["agentStatusChanged"]["agentStatus"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(
        po_states.first().map(String::as_str),
        Some("WORKING"),
        "{po_states:?}"
    );
    assert!(
        po_states.contains(&"WAITING".to_string()),
        "po waited for the human: {po_states:?}"
    );
    assert_eq!(po_states.last().map(String::as_str), Some("IDLE"));

    // A subscriber that joins late with a cursor replays the same events,
    // then continues live.
    let mid = &log[log.len() / 2].0;
    let mut late = app
        .subscribe(
            EVENTS_SUB,
            json!({ "after": mid, "projectId": summary.project_id }),
        )
        .await;
    let expected: Vec<&(String, String)> = log
        .iter()
        .filter(|(c, _)| c.parse::<i64>().ok() > mid.parse::<i64>().ok())
        .collect();
    for want in expected {
        let item = late
            .next(Duration::from_secs(10))
            .await
            .expect("replayed event");
        assert_eq!(item["events"]["cursor"].as_str(), Some(want.0.as_str()));
    }
    // Nothing more until something happens.
    assert!(late.next(Duration::from_millis(300)).await.is_none());

    // The project's read model agrees.
    let data = app
        .ok(
            "query($id: ID!) { project(id: $id) { status completion { percentage totalTasks } artifacts(first: 50) { totalCount nodes { name kind version persona { key } } } } agentStatuses(projectId: $id) { nodes { status persona { key } } } }",
            json!({ "id": summary.project_id }),
        )
        .await;
    assert_eq!(data["project"]["status"], "COMPLETED");
    assert_eq!(data["project"]["completion"]["percentage"], 100.0);
    let names: Vec<&str> = data["project"]["artifacts"]["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    for n in ["project-brief.md", "prd.md", "architecture.md"] {
        assert!(names.contains(&n), "{n} not in {names:?}");
    }
    let agents = data["agentStatuses"]["nodes"]
        .as_array()
        .expect("agent statuses");
    assert!(
        agents.len() >= 5 && agents.iter().all(|a| a["status"] == "IDLE"),
        "{agents:?}"
    );
}
