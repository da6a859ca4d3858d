//! Checkpoint trees (fork, diff, revert, status, pin) and artifact versions
//! with their digests.

use serde_json::{Value, json};

use crate::support;

const CREATE: &str = "mutation($t: ID!, $s: JSON!) { createCheckpoint(input: {taskId: $t, stepId: \"draft\", state: $s}) { checkpoint { id version } } }";

async fn task(app: &support::TestApp) -> (Value, Value) {
    let p = app.create_project("p").await;
    let t = app.create_task(&p, "t").await;
    (p, t)
}

#[tokio::test]
async fn checkpoints_fork_diff_and_revert_without_losing_history() {
    let app = support::spawn().await;
    let (_, t) = task(&app).await;
    let v1 =
        app.ok(CREATE, json!({ "t": t, "s": { "a": 1 } })).await["createCheckpoint"]["checkpoint"]
            ["id"]
            .clone();
    let v2 = app
        .new_id(CREATE, json!({ "t": t, "s": { "a": 2, "b": 1 } }))
        .await;

    let d = app
        .ok(
            "query($a: ID!, $b: ID!) { checkpointDiff(from: $a, to: $b) }",
            json!({ "a": v1, "b": v2 }),
        )
        .await;
    let mut ops: Vec<Value> = d["checkpointDiff"].as_array().expect("ops").clone();
    ops.sort_by_key(|o| o["path"].as_str().unwrap_or_default().to_string());
    assert_eq!(
        ops,
        vec![
            json!({ "op": "replace", "path": "/a", "value": 2 }),
            json!({ "op": "add", "path": "/b", "value": 1 })
        ]
    );

    let fork = app
        .ok("mutation($c: ID!) { forkFromCheckpoint(input: {checkpointId: $c, statePatch: {c: 3}}) { checkpoint { id version state parentCheckpoint { id } } event { payload } } }", json!({ "c": v1 }))
        .await["forkFromCheckpoint"]
        .clone();
    assert_eq!(fork["checkpoint"]["version"], 3);
    assert_eq!(fork["checkpoint"]["state"], json!({ "a": 1, "c": 3 }));
    assert_eq!(fork["checkpoint"]["parentCheckpoint"]["id"], v1);
    let v3 = fork["checkpoint"]["id"].clone();

    let r = app
        .ok("mutation($c: ID!) { revertToCheckpoint(input: {checkpointId: $c}) { checkpoint { version } reverted { id status } event { type } } }", json!({ "c": v1 }))
        .await["revertToCheckpoint"]
        .clone();
    let reverted: Vec<&Value> = r["reverted"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(reverted, vec![&v2, &v3]);
    assert_eq!(r["event"]["type"], "CHECKPOINT_REVERTED");
    let again = app
        .ok("mutation($c: ID!) { revertToCheckpoint(input: {checkpointId: $c}) { reverted { id } } }", json!({ "c": v1 }))
        .await;
    assert_eq!(again["revertToCheckpoint"]["reverted"], json!([]));

    let all = app.ok("query($t: ID!) { task(id: $t) { checkpoints { totalCount nodes { version status stateSize } } } }", json!({ "t": t })).await;
    assert_eq!(
        all["task"]["checkpoints"]["totalCount"], 3,
        "nothing deleted"
    );

    let st = "mutation($c: ID!, $s: CheckpointStatus!) { updateCheckpointStatus(input: {checkpointId: $c, status: $s}) { checkpoint { status } } }";
    assert_eq!(
        app.ok(st, json!({ "c": v1, "s": "COMPLETED" })).await["updateCheckpointStatus"]["checkpoint"]
            ["status"],
        "COMPLETED"
    );
    let back = app.post(st, json!({ "c": v1, "s": "IN_PROGRESS" })).await;
    assert_eq!(
        back["errors"][0]["extensions"]["code"],
        "INVALID_TRANSITION"
    );
    let pin = app.ok("mutation($c: ID!) { pinCheckpoint(input: {checkpointId: $c, pinned: true}) { checkpoint { pinned } } }", json!({ "c": v1 })).await;
    assert_eq!(pin["pinCheckpoint"]["checkpoint"]["pinned"], true);
}

#[tokio::test]
async fn artifact_versions_chain_and_carry_their_digest_and_size() {
    let app = support::spawn().await;
    let (p, t) = task(&app).await;
    let q = "mutation($p: ID!, $t: ID!, $c: JSON!) { createArtifact(input: {projectId: $p, taskId: $t, kind: PLAN, name: \"prd.md\", content: $c}) { artifact { id version sha256 size supersedes { id version } } } }";
    let first = app
        .ok(q, json!({ "p": p, "t": t, "c": { "title": "PRD" } }))
        .await["createArtifact"]["artifact"]
        .clone();
    let second = app
        .ok(q, json!({ "p": p, "t": t, "c": { "title": "PRD v2" } }))
        .await["createArtifact"]["artifact"]
        .clone();
    assert_eq!(second["version"], 2);
    assert_eq!(second["supersedes"]["id"], first["id"]);
    let bytes = serde_json::to_vec(&json!({ "title": "PRD" })).expect("json");
    use sha2::Digest;
    assert_eq!(
        first["sha256"],
        format!("{:x}", sha2::Sha256::digest(&bytes))
    );
    assert_eq!(first["size"], bytes.len());
    let got = app
        .ok(
            "query($id: ID!) { node(id: $id) { ... on Artifact { content } } }",
            json!({ "id": first["id"] }),
        )
        .await;
    assert_eq!(got["node"]["content"], json!({ "title": "PRD" }));
}

// The in-memory reader of async_zip is deprecated in favour of `read1`,
// whose API is still moving; reading a small archive back is all we need.
#[allow(deprecated)]
#[tokio::test]
async fn the_artifacts_zip_holds_the_latest_version_of_each_name() {
    let app = support::spawn().await;
    let (p, t) = task(&app).await;
    let q = "mutation($p: ID!, $t: ID!, $n: String!, $c: JSON!) { createArtifact(input: {projectId: $p, taskId: $t, kind: DOCUMENT, name: $n, content: $c}) { artifact { id } } }";
    app.ok(q, json!({ "p": p, "t": t, "n": "prd.md", "c": "# PRD v1" }))
        .await;
    app.ok(q, json!({ "p": p, "t": t, "n": "prd.md", "c": "# PRD v2" }))
        .await;
    app.ok(
        q,
        json!({ "p": p, "t": t, "n": "../escape/arch.json", "c": { "layers": 3 } }),
    )
    .await;

    let url = format!(
        "{}/projects/{}/artifacts.zip",
        app.base,
        p.as_str().expect("id")
    );
    let resp = app.http().get(&url).send().await.expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/zip")
    );
    let bytes = resp.bytes().await.expect("body").to_vec();
    let zip = async_zip::base::read::mem::ZipFileReader::new(bytes)
        .await
        .expect("a valid ZIP");
    let mut files = std::collections::BTreeMap::new();
    for i in 0..zip.file().entries().len() {
        let name = zip.file().entries()[i]
            .filename()
            .as_str()
            .expect("utf-8")
            .to_string();
        let mut text = String::new();
        zip.reader_with_entry(i)
            .await
            .expect("entry")
            .read_to_string_checked(&mut text)
            .await
            .expect("read");
        files.insert(name, text);
    }
    assert_eq!(files.len(), 2);
    assert_eq!(files["prd.md"], "# PRD v2");
    let arch: Value = serde_json::from_str(&files["escape/arch.json"]).expect("json");
    assert_eq!(arch, json!({ "layers": 3 }));

    let missing = format!(
        "{}/projects/Project:{}/artifacts.zip",
        app.base,
        uuid::Uuid::now_v7()
    );
    assert_eq!(
        app.http().get(&missing).send().await.expect("get").status(),
        404
    );
    let other = app
        .http()
        .get(format!(
            "{}/projects/{}/artifacts.zip",
            app.base,
            t.as_str().expect("id")
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(other.status(), 400, "a Task id is not a project");
}

#[tokio::test]
async fn retention_keeps_the_newest_the_pinned_and_the_recent() {
    let app = support::spawn().await;
    let (_, t) = task(&app).await;
    let mut ids = vec![];
    for i in 1..=4 {
        ids.push(app.new_id(CREATE, json!({ "t": t, "s": { "v": i } })).await);
    }
    app.ok("mutation($c: ID!) { pinCheckpoint(input: {checkpointId: $c, pinned: true}) { checkpoint { id } } }", json!({ "c": ids[0] }))
        .await;
    let versions = |d: Value| -> Vec<i64> {
        d["task"]["checkpoints"]["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter_map(|c| c["version"].as_i64())
            .collect()
    };
    let list = "query($t: ID!) { task(id: $t) { checkpoints { nodes { version } } latestCheckpoint { version } } }";
    let prune = |keep: u64, age: chrono::Duration| {
        let services = app.services.clone();
        async move {
            services
                .prune_checkpoints(keep, age, 1000)
                .await
                .expect("prune")
        }
    };

    // All four are recent: whatever the count, none is old enough to go.
    let n = prune(2, chrono::Duration::days(30)).await;
    assert_eq!(n, 0, "recent checkpoints beyond the kept count stay");
    assert_eq!(
        versions(app.ok(list, json!({ "t": t })).await),
        [1, 2, 3, 4]
    );

    // Everything is older than a zero age, and the newest 100 are kept
    // whatever their age: nothing goes.
    let n = prune(100, chrono::Duration::zero()).await;
    assert_eq!(n, 0, "the newest N stay whatever their age");
    assert_eq!(
        versions(app.ok(list, json!({ "t": t })).await),
        [1, 2, 3, 4]
    );

    // Old, and beyond the newest two: v2 goes; v1 is pinned.
    let n = prune(2, chrono::Duration::zero()).await;
    assert_eq!(n, 1);
    assert_eq!(versions(app.ok(list, json!({ "t": t })).await), [1, 3, 4]);

    // Keeping none: the newest of the task still stays.
    let n = prune(0, chrono::Duration::zero()).await;
    assert_eq!(n, 1);
    let d = app.ok(list, json!({ "t": t })).await;
    assert_eq!(d["task"]["latestCheckpoint"]["version"], 4);
    assert_eq!(versions(d), [1, 4]);
    assert_eq!(
        app.event_count(json!({ "types": ["CHECKPOINTS_PRUNED"] }))
            .await,
        2
    );
}

#[tokio::test]
async fn a_checkpoint_in_progress_is_completed_or_failed_by_its_verbs_once() {
    let app = support::spawn().await;
    let p = app
        .new_id(
            "mutation { createProject(input: {name: \"P\"}) { project { id } } }",
            json!({}),
        )
        .await;
    let t = app.new_id("mutation($p: ID!) { createTask(input: {projectId: $p, title: \"t\"}) { task { id } } }", json!({ "p": p })).await;
    let cp = "mutation($t: ID!, $s: String!) { createCheckpoint(input: {taskId: $t, stepId: $s, state: {}}) { checkpoint { id } } }";
    let a = app.new_id(cp, json!({ "t": t, "s": "a" })).await;
    let b = app.new_id(cp, json!({ "t": t, "s": "b" })).await;
    let verb = |v: &str| {
        format!(
            "mutation($c: ID!) {{ {v}(input: {{checkpointId: $c}}) {{ checkpoint {{ id status }} event {{ type subjectId }} }} }}"
        )
    };
    let done = app.ok(&verb("completeCheckpoint"), json!({ "c": a })).await;
    assert_eq!(
        done["completeCheckpoint"]["checkpoint"]["status"],
        "COMPLETED"
    );
    assert_eq!(
        done["completeCheckpoint"]["event"]["type"],
        "CHECKPOINT_STATUS_CHANGED"
    );
    let failed = app.ok(&verb("failCheckpoint"), json!({ "c": b })).await;
    assert_eq!(failed["failCheckpoint"]["checkpoint"]["status"], "FAILED");
    for (v, c) in [
        ("completeCheckpoint", &a),
        ("failCheckpoint", &a),
        ("completeCheckpoint", &b),
    ] {
        let again = app.post(&verb(v), json!({ "c": c })).await;
        assert_eq!(
            again["errors"][0]["extensions"]["code"], "INVALID_TRANSITION",
            "{v}: {again}"
        );
    }
    let n = app
        .ok(
            "{ events(first: 0, filter: {types: [CHECKPOINT_STATUS_CHANGED]}) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(n["events"]["totalCount"], 2, "refusals write nothing");
}
