//! The event log is a public contract: dashboards and agents read event
//! payloads as JSON. This drives one change of every event type and
//! compares each type's payload keys with the committed list in
//! `tests/fixtures/event-payload-keys.json`, so a refactor that renames,
//! drops or adds a payload key fails here; a deliberate change updates the
//! list (run with `CEREBRAL_BLESS=1` to rewrite it) in the same commit.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

const LIST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/event-payload-keys.json"
);

/// One of every change a client or the server makes.
async fn every_change(app: &support::TestApp) {
    let p = app
        .new_id(
            "mutation { createProject(input: {name: \"P\"}) { project { id } } }",
            json!({}),
        )
        .await;
    let task = "mutation($p: ID!) { createTask(input: {projectId: $p, title: \"t\", personaId: \"dev\"}) { task { id } } }";
    let t = app.new_id(task, json!({ "p": p })).await;
    let verb = |v: &'static str, extra: &'static str| {
        format!("mutation($t: ID!) {{ {v}(input: {{taskId: $t{extra}}}) {{ task {{ id }} }} }}")
    };
    let progress = verb(
        "reportTaskProgress",
        ", progress: 40, stage: \"s\", message: \"m\"",
    );
    app.ok_each(&[&verb("startTask", ""), &progress], json!({ "t": t }))
        .await;
    let ask = "mutation($t: ID!) { requestHitl(input: {taskId: $t, question: \"ok?\", options: [\"yes\"]}) { hitlRequest { id } } }";
    let h = app.new_id(ask, json!({ "t": t })).await;
    app.ok(
        "mutation($h: ID!) { resolveHitlRequest(input: {requestId: $h, decision: APPROVE, response: {ok: true}}) { task { id } } }",
        json!({ "h": h }),
    )
    .await;
    let cp = "mutation($t: ID!, $n: Int!) { createCheckpoint(input: {taskId: $t, stepId: \"s\", state: {n: $n}}) { checkpoint { id } } }";
    let c1 = app.new_id(cp, json!({ "t": t, "n": 1 })).await;
    app.ok(cp, json!({ "t": t, "n": 2 })).await;
    let c1_changes = [
        "mutation($c: ID!) { updateCheckpointStatus(input: {checkpointId: $c, status: COMPLETED}) { checkpoint { id } } }",
        "mutation($c: ID!) { revertToCheckpoint(input: {checkpointId: $c}) { checkpoint { id } } }",
    ];
    app.ok_each(&c1_changes, json!({ "c": c1 })).await;
    app.services
        .prune_checkpoints(0, chrono::Duration::zero(), 1000)
        .await
        .expect("prune");
    let about_t = [
        "mutation($p: ID!, $t: ID!) { createArtifact(input: {projectId: $p, taskId: $t, kind: DOCUMENT, name: \"prd.md\", content: {text: \"x\"}}) { artifact { id } } }",
        "mutation($p: ID!, $t: ID!) { updateAgentStatus(input: {projectId: $p, personaId: \"dev\", status: WORKING, currentTaskId: $t, message: \"m\"}) { agentStatus { id } } }",
        &verb("completeTask", ", output: {ok: true}"),
    ];
    app.ok_each(&about_t, json!({ "p": p, "t": t })).await;

    let t2 = app.new_id(task, json!({ "p": p })).await;
    let t2_changes = [
        &verb("startTask", ""),
        &verb("failTask", ", error: \"boom\""),
        &verb("retryTask", ""),
        &verb("startTask", ""),
        ask,
        // Cancelling a task expires its open questions.
        &verb("cancelTask", ", reason: \"r\""),
    ];
    app.ok_each(&t2_changes, json!({ "t": t2 })).await;
    // A forced start past an open dependency, a fork and a pin.
    let t4 = app.new_id(task, json!({ "p": p })).await;
    let t3 = app
        .new_id(
            "mutation($p: ID!, $d: ID!) { createTask(input: {projectId: $p, title: \"t3\", dependsOn: [$d]}) { task { id } } }",
            json!({ "p": p, "d": t4 }),
        )
        .await;
    app.ok(&verb("startTask", ", force: true"), json!({ "t": t3 }))
        .await;
    let c3 = app.new_id(cp, json!({ "t": t3, "n": 3 })).await;
    let c3_changes = [
        "mutation($c: ID!) { forkFromCheckpoint(input: {checkpointId: $c, statePatch: {m: 1}}) { checkpoint { id } } }",
        "mutation($c: ID!) { pinCheckpoint(input: {checkpointId: $c, pinned: true}) { checkpoint { id } } }",
    ];
    app.ok_each(&c3_changes, json!({ "c": c3 })).await;
    // Questions that expire unanswered, failing or resuming their task.
    let soon = (chrono::Utc::now() + chrono::Duration::milliseconds(800)).to_rfc3339();
    for policy in ["FAIL_TASK", "RESUME_TASK"] {
        let t = app.new_id(task, json!({ "p": p })).await;
        app.ok(&verb("startTask", ""), json!({ "t": t })).await;
        app.ok(
            &format!("mutation($t: ID!, $e: DateTime!) {{ requestHitl(input: {{taskId: $t, question: \"q\", expiresAt: $e, onExpiry: {policy}}}) {{ hitlRequest {{ id }} }} }}"),
            json!({ "t": t, "e": soon }),
        )
        .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    app.services.expire_overdue_hitl(100).await.expect("expire");
    // An unknown agent's first heartbeat, and a reset.
    for verb in ["heartbeat", "resetAgentStatus"] {
        app.ok(
            &format!("mutation($p: ID!) {{ {verb}(input: {{projectId: $p, personaId: \"pm\"}}) {{ agentStatus {{ id }} }} }}"),
            json!({ "p": p }),
        )
        .await;
    }
    app.ok(
        "mutation($p: ID!) { forceCompleteProject(input: {projectId: $p, reason: \"done\"}) { project { id } } }",
        json!({ "p": p }),
    )
    .await;
    for verb in ["completeProject", "failProject", "cancelProject"] {
        let q = app
            .new_id(
                "mutation { createProject(input: {name: \"Q\"}) { project { id } } }",
                json!({}),
            )
            .await;
        app.ok(
            &format!("mutation($p: ID!) {{ {verb}(input: {{projectId: $p, reason: \"r\"}}) {{ project {{ id }} }} }}"),
            json!({ "p": q }),
        )
        .await;
    }

    let s = app
        .new_id(
            "mutation { startSession(input: {name: \"S\"}) { session { id } } }",
            json!({}),
        )
        .await;
    let c = app
        .new_id(
            "mutation($s: ID!) { switchPersona(input: {sessionId: $s, personaId: \"dev\"}) { context { id } } }",
            json!({ "s": s }),
        )
        .await;
    let c_changes = [
        "mutation($c: ID!) { updatePersonaContext(input: {contextId: $c, statePatch: {a: 1}}) { context { id } } }",
        "mutation($c: ID!) { appendPersonaContextHistory(input: {contextId: $c, entry: {role: \"user\"}}) { context { id } } }",
    ];
    app.ok_each(&c_changes, json!({ "c": c })).await;
    let snap = app
        .ok(
            "mutation($c: ID!) { exportPersonaContext(input: {contextId: $c}) { snapshot { data compressed checksum size } } }",
            json!({ "c": c }),
        )
        .await["exportPersonaContext"]["snapshot"]
        .clone();
    app.ok(
        "mutation($s: ID!, $snap: PersonaContextSnapshotInput!) { importPersonaContext(input: {sessionId: $s, snapshot: $snap}) { context { id } } }",
        json!({ "s": s, "snap": snap }),
    )
    .await;
    let verb = |v: &str| {
        format!("mutation($s: ID!) {{ {v}(input: {{sessionId: $s}}) {{ session {{ id }} }} }}")
    };
    let s_changes = [
        "mutation($s: ID!) { switchPersona(input: {sessionId: $s, personaId: \"pm\"}) { context { id } } }",
        &verb("suspendSession"),
        &verb("resumeSession"),
        &verb("terminateSession"),
    ];
    app.ok_each(&s_changes, json!({ "s": s })).await;

    // An epic and a story through its cycle so far; starting the story
    // carries the epic to IN_PROGRESS.
    let e = app.create_project("E").await;
    let story = app.draft_story(app.create_epic(&e, "e").await, "s").await;
    let story_verb = |v: &str| {
        format!(
            "mutation($s: ID!) {{ {v}(input: {{storyId: $s, note: \"n\"}}) {{ story {{ id }} }} }}"
        )
    };
    let gate = "mutation($s: ID!) { recordQaGate(input: {storyId: $s, decision: PASS, statusReason: \"ok\", reviewer: \"qa\"}) { gate { id } } }";
    let verbs = [
        "approveStory",
        "startStory",
        "submitStoryForReview",
        "reopenStory",
    ];
    for v in verbs.into_iter().chain(["submitStoryForReview"]) {
        app.ok(&story_verb(v), json!({ "s": story })).await;
    }
    app.ok(gate, json!({ "s": story })).await;
    app.ok(&story_verb("completeStory"), json!({ "s": story }))
        .await;

    // A project from a workflow: its tasks come with dependencies.
    app.ok(
        "mutation { createProject(input: {name: \"W\", workflowId: \"greenfield-service\"}) { project { id } } }",
        json!({}),
    )
    .await;

    let root = support::bmad::own_pack();
    let files = support::catalog_files(&root, 1);
    app.ok(
        "mutation($f: [CatalogFileInput!]!) { importCatalog(input: {files: $f}) { personas { key } } }",
        json!({ "f": files }),
    )
    .await;
}

/// The project and task an event belongs to (what subscriptions filter on)
/// follow from its subject, as `service::EventSubject` says per entity.
fn check_scope(e: &Value) {
    let (project, task, subject) = (&e["projectId"], &e["taskId"], &e["subjectId"]);
    let held = match e["subjectType"].as_str() {
        Some("Project") => project == subject && task.is_null(),
        Some("Task") => project.is_string() && task == subject,
        Some("HitlRequest" | "TaskCheckpoint") => project.is_string() && task.is_string(),
        Some("Artifact" | "AgentStatus") => project.is_string(),
        Some("Epic" | "Story" | "QaGate") => project.is_string() && task.is_null(),
        Some("Session" | "PersonaContext" | "Catalog") => project.is_null() && task.is_null(),
        _ => false,
    };
    assert!(
        held,
        "an event's project and task do not follow its subject: {e}"
    );
}

#[tokio::test]
async fn every_event_type_keeps_its_payload_keys() {
    let app = support::spawn().await;
    every_change(&app).await;
    // Sessions expire on a server whose timeout has already passed.
    let expiring = support::spawn_with(|c| c.lifecycle.session_timeout_minutes = 0).await;
    expiring
        .ok("mutation { startSession { session { id } } }", json!({}))
        .await;
    expiring
        .ok(
            "mutation { cleanupExpiredSessions { expiredCount } }",
            json!({}),
        )
        .await;

    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let fields = "type payload subjectType subjectId projectId taskId";
    let mut events = app.events_after(Value::Null, fields).await;
    events.extend(expiring.events_after(Value::Null, fields).await);
    for e in events {
        check_scope(&e);
        let keys = seen
            .entry(e["type"].as_str().expect("type").to_string())
            .or_default();
        keys.extend(
            e["payload"]
                .as_object()
                .expect("a payload is an object")
                .keys()
                .cloned(),
        );
    }
    let types = app
        .ok(
            "{ __type(name: \"EventType\") { enumValues { name } } }",
            json!({}),
        )
        .await["__type"]["enumValues"]
        .as_array()
        .expect("enum")
        .iter()
        .map(|v| v["name"].as_str().expect("name").to_string())
        .collect::<BTreeSet<_>>();
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        types,
        "the scenario makes one event of every type (a new type needs a change here)"
    );
    let found = serde_json::to_string_pretty(&seen).expect("json") + "\n";
    if std::env::var_os("CEREBRAL_BLESS").is_some() {
        std::fs::write(LIST, &found).expect("write the list");
    }
    let committed = std::fs::read_to_string(LIST).expect("the committed list");
    assert_eq!(
        serde_json::from_str::<BTreeMap<String, BTreeSet<String>>>(&committed).expect("list json"),
        seen,
        "event payload keys changed; if on purpose, rewrite {LIST} (CEREBRAL_BLESS=1) and announce it.\nNow:\n{found}"
    );
}
