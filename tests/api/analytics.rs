//! Analytics computed in SQL, checked against numbers the test controls.

use serde_json::{Value, json};

use crate::support;

async fn run_task(app: &support::TestApp, p: &Value, persona: &str, fail: bool, ms: u64) {
    let t = app.create_task_for(p, "t", persona).await;
    app.start_task(&t).await;
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    if fail {
        app.fail_task(&t, "x").await;
    } else {
        app.complete_task(&t).await;
    }
}

#[tokio::test]
async fn persona_workflow_and_waiting_figures_come_out_of_sql() {
    let app = support::spawn().await;
    let p = app.create_project("a").await;
    for ms in [100, 100, 100, 400] {
        run_task(&app, &p, "dev", false, ms).await;
    }
    run_task(&app, &p, "dev", true, 0).await;
    run_task(&app, &p, "qa", false, 50).await;

    let d = app
        .ok("query($p: ID!) { personaAnalytics(projectId: $p) { persona { key } tasksCompleted tasksFailed successRate meanDurationSeconds p95DurationSeconds } }", json!({ "p": p }))
        .await;
    let rows = d["personaAnalytics"].as_array().expect("rows");
    let dev = rows
        .iter()
        .find(|r| r["persona"]["key"] == "dev")
        .expect("dev");
    assert_eq!(dev["tasksCompleted"], 4);
    assert_eq!(dev["tasksFailed"], 1);
    assert_eq!(dev["successRate"], 0.8);
    let mean = dev["meanDurationSeconds"].as_f64().expect("mean");
    assert!(
        (0.15..2.0).contains(&mean),
        "mean of 0.1, 0.1, 0.1, 0.4 s ≈ 0.175 s, got {mean}"
    );
    let p95 = dev["p95DurationSeconds"].as_f64().expect("p95");
    assert!(
        (0.4..3.0).contains(&p95),
        "p95 of four is the largest, ≈ 0.4 s, got {p95}"
    );
    assert_eq!(
        rows.iter()
            .find(|r| r["persona"]["key"] == "qa")
            .expect("qa")["tasksCompleted"],
        1
    );

    // Waiting for humans: one request answered after ~300 ms.
    let t = app.create_task(&p, "w").await;
    app.start_task(&t).await;
    let r = app.request_hitl(&t, "?").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.approve_hitl(&r).await;
    let w = app
        .ok(
            "query($p: ID!) { project(id: $p) { humanWaitSeconds } }",
            json!({ "p": p }),
        )
        .await;
    let secs = w["project"]["humanWaitSeconds"].as_f64().expect("seconds");
    assert!((0.25..5.0).contains(&secs), "≈ 0.3 s, got {secs}");

    // Workflows: two started, one completed.
    app.create_project_from("w1", "greenfield-ui").await;
    let done = app.create_project_from("w2", "greenfield-ui").await;
    app.ok(
        "mutation($p: ID!) { forceCompleteProject(input: {projectId: $p}) { project { id } } }",
        json!({ "p": done }),
    )
    .await;
    let wf = app.ok("{ workflowAnalytics { workflow { key } projectsStarted projectsCompleted meanTimeToCompleteSeconds } }", json!({})).await;
    let ui = wf["workflowAnalytics"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["workflow"]["key"] == "greenfield-ui")
        .expect("row")
        .clone();
    assert_eq!(ui["projectsStarted"], 2);
    assert_eq!(ui["projectsCompleted"], 1);
    assert!(ui["meanTimeToCompleteSeconds"].as_f64().expect("mean") >= 0.0);
}
