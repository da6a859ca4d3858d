//! API behaviour over real HTTP: error codes, lifecycle refusals, GraphQL
//! over HTTP rules, catalog import and DataLoader batching.

use serde_json::json;

use crate::support;

const CREATE_PROJECT: &str = "mutation($input: CreateProjectInput!) { createProject(input: $input) { project { id status tasks(first: 100) { nodes { id status required dependencies { id } } } } event { type cursor } } }";
const START: &str = "mutation($id: ID!) { startTask(input: {taskId: $id}) { task { status startedAt } event { type } } }";
const COMPLETE: &str = "mutation($id: ID!) { completeTask(input: {taskId: $id, output: {ok: true}}) { task { status progress } } }";
const EVENT_COUNT: &str = "query { events(first: 0) { totalCount } }";

#[tokio::test]
async fn completing_a_pending_task_is_refused_and_changes_nothing() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    let t = app.create_task_for(&p, "T", "dev").await;
    let before = app.total_count(EVENT_COUNT).await;
    let snapshot = "query($id: ID!) { task(id: $id) { status version updatedAt progress } }";
    let task_before = app.ok(snapshot, json!({ "id": t })).await;
    let body = app.post(COMPLETE, json!({ "id": t })).await;
    let err = &body["errors"][0]["extensions"];
    assert_eq!(err["code"], "INVALID_TRANSITION", "{body}");
    assert_eq!(err["from"], "PENDING");
    assert_eq!(err["to"], "COMPLETED");
    assert_eq!(
        app.total_count(EVENT_COUNT).await,
        before,
        "no event for a refused change"
    );
    assert_eq!(
        app.ok(snapshot, json!({ "id": t })).await,
        task_before,
        "row untouched"
    );
    let data = app
        .ok(
            "query($id: ID!) { task(id: $id) { status allowedTransitions } }",
            json!({ "id": t }),
        )
        .await;
    assert_eq!(data["task"]["status"], "PENDING");
    assert_eq!(
        data["task"]["allowedTransitions"],
        json!(["WORKING", "CANCELLED"])
    );
}

#[tokio::test]
async fn a_task_lifecycle_runs_and_every_change_appends_one_event() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    let t = app.create_task_for(&p, "T", "dev").await;
    let before = app.total_count(EVENT_COUNT).await;
    let started = app.ok(START, json!({ "id": t })).await;
    assert_eq!(started["startTask"]["task"]["status"], "WORKING");
    assert_eq!(started["startTask"]["event"]["type"], "TASK_STARTED");
    let done = app.ok(COMPLETE, json!({ "id": t })).await;
    assert_eq!(done["completeTask"]["task"]["status"], "COMPLETED");
    assert_eq!(done["completeTask"]["task"]["progress"], 100);
    assert_eq!(app.total_count(EVENT_COUNT).await, before + 2);
    app.assert_code(START, json!({ "id": t }), "INVALID_TRANSITION")
        .await;
}

#[tokio::test]
async fn unknown_ids_are_not_found_and_malformed_input_is_bad_user_input() {
    let app = support::spawn().await;
    let missing = format!("Task:{}", uuid::Uuid::now_v7());
    app.assert_code(START, json!({ "id": missing }), "NOT_FOUND")
        .await;
    app.assert_code(START, json!({ "id": "Project:0" }), "BAD_USER_INPUT")
        .await;
    let p = app.create_project("P").await;
    assert_eq!(
        app.error_code(START, json!({ "id": p })).await,
        "BAD_USER_INPUT",
        "a Project id where a Task id belongs"
    );
    let t = app.create_task_for(&p, "T", "dev").await;
    app.start_task(&t).await;
    let code = app
        .error_code("mutation($id: ID!) { reportTaskProgress(input: {taskId: $id, progress: 101}) { task { id } } }", json!({ "id": t }))
        .await;
    assert_eq!(code, "BAD_USER_INPUT");
    app.assert_code(
        "query { projects(first: 101) { totalCount } }",
        json!({}),
        "BAD_USER_INPUT",
    )
    .await;
    assert_eq!(
        app.error_code(
            CREATE_PROJECT,
            json!({ "input": { "name": "x", "workflowId": "no-such-workflow" } })
        )
        .await,
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn a_workflow_project_blocks_tasks_until_their_dependencies_complete() {
    let app = support::spawn().await;
    let p = app
        .ok(
            CREATE_PROJECT,
            json!({ "input": { "name": "P", "workflowId": "greenfield-service" } }),
        )
        .await["createProject"]["project"]
        .clone();
    let tasks = p["tasks"]["nodes"].as_array().expect("tasks");
    assert!(
        tasks.len() >= 10,
        "greenfield-service has its work steps as tasks"
    );
    let second = &tasks[1];
    assert_eq!(second["dependencies"][0]["id"], tasks[0]["id"]);
    let body = app.post(START, json!({ "id": second["id"] })).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INVALID_TRANSITION",
        "{body}"
    );
    app.ok(START, json!({ "id": tasks[0]["id"] })).await;
    app.ok(COMPLETE, json!({ "id": tasks[0]["id"] })).await;
    app.ok(START, json!({ "id": second["id"] })).await;
}

#[tokio::test]
async fn hitl_approval_resumes_and_rejection_fails_the_task() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    for (decision, task_after) in [("APPROVE", "WORKING"), ("REJECT", "FAILED")] {
        let t = app.create_task_for(&p, "T", "dev").await;
        app.start_task(&t).await;
        let req = app
            .ok("mutation($id: ID!) { requestHitl(input: {taskId: $id, question: \"ok?\", options: [\"yes\", \"no\"]}) { hitlRequest { id status } task { status } } }", json!({ "id": t }))
            .await;
        assert_eq!(req["requestHitl"]["task"]["status"], "WAITING_FOR_HITL");
        let rid = req["requestHitl"]["hitlRequest"]["id"].clone();
        let q = "mutation($id: ID!, $d: HitlDecision!) { resolveHitlRequest(input: {requestId: $id, decision: $d, response: \"because\"}) { hitlRequest { status resolvedBy } task { status } } }";
        let res = app.ok(q, json!({ "id": rid, "d": decision })).await;
        assert_eq!(res["resolveHitlRequest"]["task"]["status"], task_after);
        assert_eq!(
            res["resolveHitlRequest"]["hitlRequest"]["resolvedBy"],
            "developer"
        );
        assert_eq!(
            app.error_code(q, json!({ "id": rid, "d": "APPROVE" }))
                .await,
            "INVALID_TRANSITION",
            "answered once only"
        );
    }
}

#[tokio::test]
async fn a_stale_checkpoint_version_is_a_conflict_not_an_overwrite() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    let t = app.create_task_for(&p, "T", "dev").await;
    let q = "mutation($id: ID!, $v: Int, $s: JSON!) { createCheckpoint(input: {taskId: $id, stepId: \"s1\", state: $s, expectedVersion: $v}) { checkpoint { version state } } }";
    let v1 = app.ok(q, json!({ "id": t, "v": 0, "s": { "n": 1 } })).await;
    assert_eq!(v1["createCheckpoint"]["checkpoint"]["version"], 1);
    let stale = app
        .post(q, json!({ "id": t, "v": 0, "s": { "n": 2 } }))
        .await;
    assert_eq!(stale["errors"][0]["extensions"]["code"], "CONFLICT");
    assert_eq!(stale["errors"][0]["extensions"]["expectedVersion"], 0);
    assert_eq!(stale["errors"][0]["extensions"]["latestVersion"], 1);
    let v2 = app.ok(q, json!({ "id": t, "v": 1, "s": { "n": 2 } })).await;
    assert_eq!(v2["createCheckpoint"]["checkpoint"]["version"], 2);
    let latest = app.ok("query($id: ID!) { task(id: $id) { latestCheckpoint { version state parentCheckpoint { version } } } }", json!({ "id": t })).await;
    assert_eq!(
        latest["task"]["latestCheckpoint"]["state"],
        json!({ "n": 2 })
    );
    assert_eq!(
        latest["task"]["latestCheckpoint"]["parentCheckpoint"]["version"],
        1
    );
}

#[tokio::test]
async fn sessions_switch_personas_and_keep_bounded_history() {
    let app = support::spawn_with(|c| c.lifecycle.max_context_history = 3).await;
    let s = app
        .ok(
            "mutation { startSession(input: {name: \"s\"}) { session { id status } } }",
            json!({}),
        )
        .await;
    let sid = s["startSession"]["session"]["id"].clone();
    let sw = app
        .ok("mutation($s: ID!) { switchPersona(input: {sessionId: $s, personaId: \"pm\", initialState: {a: 1}}) { context { id state persona { key } } session { currentContext { id } } } }", json!({ "s": sid }))
        .await;
    let cid = sw["switchPersona"]["context"]["id"].clone();
    assert_eq!(sw["switchPersona"]["session"]["currentContext"]["id"], cid);
    let up = app
        .ok("mutation($c: ID!) { updatePersonaContext(input: {contextId: $c, statePatch: {a: null, b: 2}}) { context { state } } }", json!({ "c": cid }))
        .await;
    assert_eq!(
        up["updatePersonaContext"]["context"]["state"],
        json!({ "b": 2 })
    );
    for i in 0..5 {
        app.ok("mutation($c: ID!, $e: JSON!) { appendPersonaContextHistory(input: {contextId: $c, entry: $e}) { context { id } } }", json!({ "c": cid, "e": { "i": i } }))
            .await;
    }
    let ctx = app.ok("query($id: ID!) { node(id: $id) { ... on PersonaContext { history historyCount historyTotal } } }", json!({ "id": cid })).await;
    assert_eq!(
        ctx["node"]["history"],
        json!([{ "i": 2 }, { "i": 3 }, { "i": 4 }])
    );
    assert_eq!(ctx["node"]["historyTotal"], 5);
    let q = "mutation($s: ID!) { suspendSession(input: {sessionId: $s}) { session { status } } }";
    app.ok(q, json!({ "s": sid })).await;
    app.assert_code(q, json!({ "s": sid }), "INVALID_TRANSITION")
        .await;
}

#[tokio::test]
async fn get_runs_queries_only_and_browsers_get_graphiql() {
    let app = support::spawn().await;
    let r = app.get("{ personas { nodes { key } } }").await;
    assert!(r.status().is_success());
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        body["data"]["personas"]["nodes"].as_array().map(Vec::len),
        Some(10)
    );

    let r = app
        .get("mutation { startSession { session { id } } }")
        .await;
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.headers().get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    let sessions = app.ok("query { sessions { totalCount } }", json!({})).await;
    assert_eq!(
        sessions["sessions"]["totalCount"], 0,
        "the GET mutation did not run"
    );

    let r = app
        .http()
        .get(app.graphql_url())
        .header("accept", "text/html")
        .send()
        .await
        .expect("get");
    assert!(r.text().await.expect("text").contains("graphiql"));
    let r = app
        .http()
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("get");
    assert!(r.status().is_success());
}

#[tokio::test]
async fn the_builtin_catalog_holds_the_ten_personas_four_teams_and_six_workflows() {
    let app = support::spawn().await;
    let d = app
        .ok("{ personas { totalCount nodes { key name title } } teams { nodes { key personas { key } workflows { key } } } workflows(first: 100) { nodes { key steps { key requiresApproval persona { key } } } } }", json!({}))
        .await;
    assert_eq!(d["personas"]["nodes"].as_array().map(Vec::len), Some(10));
    assert_eq!(d["personas"]["totalCount"], 10);
    assert_eq!(d["teams"]["nodes"].as_array().map(Vec::len), Some(4));
    assert_eq!(d["workflows"]["nodes"].as_array().map(Vec::len), Some(6));
    let all = d["teams"]["nodes"]
        .as_array()
        .expect("teams")
        .iter()
        .find(|t| t["key"] == "team-all")
        .expect("team-all");
    assert_eq!(all["personas"].as_array().map(Vec::len), Some(10));
    let gs = d["workflows"]["nodes"]
        .as_array()
        .expect("wf")
        .iter()
        .find(|w| w["key"] == "greenfield-service")
        .expect("greenfield-service");
    assert!(
        gs["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .any(|s| s["requiresApproval"] == true && s["persona"]["key"] == "po")
    );
}

#[tokio::test]
async fn import_catalog_takes_a_v4_pack_and_reports_bad_files_without_half_importing() {
    import_catalog_checks(&support::bmad::own_pack()).await;
}

#[tokio::test]
async fn import_catalog_takes_the_real_bmad_v4_files() {
    if let Some(dir) = support::bmad::real_files("import_catalog_takes_the_real_bmad_v4_files") {
        import_catalog_checks(&dir).await;
    }
}

/// Imports the pack in `root` (10 personas, 4 teams, 6 workflows, the keys
/// of the built-in catalog) plus two broken files through `importCatalog`.
async fn import_catalog_checks(root: &std::path::Path) {
    let app = support::spawn().await;
    let mut files = support::catalog_files(root, usize::MAX);
    files.push(json!({ "path": "agents/broken.md", "content": "# no yaml here" }));
    files.push(json!({ "path": "workflows/bad.yaml", "content": "workflow:\n  name: no id\n  sequence: []\n" }));
    let q = "mutation($f: [CatalogFileInput!]!) { importCatalog(input: {files: $f}) { personas { key name builtin } teams { key } workflows { key steps { key } } errors { path reason } } }";
    let d = app.ok(q, json!({ "f": files })).await["importCatalog"].clone();
    assert_eq!(d["personas"].as_array().map(Vec::len), Some(10));
    assert_eq!(d["teams"].as_array().map(Vec::len), Some(4));
    assert_eq!(d["workflows"].as_array().map(Vec::len), Some(6));
    assert!(
        d["personas"]
            .as_array()
            .expect("p")
            .iter()
            .all(|p| p["builtin"] == false),
        "imported into the tenant"
    );
    let errs: Vec<&str> = d["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert_eq!(errs, vec!["agents/broken.md", "workflows/bad.yaml"]);
    // The tenant's import now shadows the built-ins, one per key.
    let p = app
        .ok(
            "{ personas(first: 100) { totalCount nodes { key builtin } } }",
            json!({}),
        )
        .await;
    assert_eq!(p["personas"]["nodes"].as_array().map(Vec::len), Some(10));
    assert_eq!(p["personas"]["totalCount"], 10, "one per key");
    assert!(
        p["personas"]["nodes"]
            .as_array()
            .expect("p")
            .iter()
            .all(|p| p["builtin"] == false)
    );
}

#[tokio::test]
async fn nested_lists_cost_the_same_number_of_statements_for_one_and_fifty_projects() {
    // Over HTTP a loader queries when the operation waits, not after a
    // window (`graphql::batch`), so a busy machine cannot split a level's
    // batch: the count depends on the query's shape alone. The window is set
    // long to show it is not what batches here (a request would otherwise
    // take seconds).
    let app = support::spawn_with(|c| c.db.dataloader_delay_us = 1_000_000).await;
    let q = "{ projects(first: 100) { totalCount nodes { id completion { percentage } tasks(first: 20) { totalCount nodes { id persona { key name } dependencies { id } latestCheckpoint { version } } } } } }";
    let mut measured = vec![];
    let mut created = 0;
    for n in [1usize, 50] {
        while created < n {
            app.create_project_from("P", "greenfield-service").await;
            created += 1;
        }
        // Less the scope sets: whether the read session had to take the
        // tenant (after the fan-out used it) is not the query's shape.
        let shape = || app.statements.get() - app.statements.transactions();
        let before = shape();
        let d = app.ok(q, json!({})).await;
        let after = shape();
        assert_eq!(d["projects"]["nodes"].as_array().map(Vec::len), Some(n));
        assert!(d["projects"]["nodes"][0]["tasks"]["nodes"][0]["persona"]["key"].is_string());
        measured.push(after - before);
    }
    assert_eq!(
        measured[0], measured[1],
        "statements for 1 and 50 projects: {measured:?}"
    );
}

#[tokio::test]
async fn fields_answer_in_the_order_selected_and_as_the_full_schema_answers_them() {
    // The GraphQL specification's "Serialized Map Ordering": the answer
    // lists a selection's fields in the order they were asked for. A
    // plain query resolves objects without the library's per-field futures
    // (`graphql::fast`), which once put a field that waits on a DataLoader
    // (`persona`) after its siblings; two fields with one response key
    // merge into the first one's place. The same query inside a batch
    // takes the library's own path: the two must agree on every value.
    let app = support::spawn().await;
    app.create_project_from("P", "greenfield-service").await;
    let q = "{ projects(first: 1) { nodes { tasks(first: 3) { nodes { persona { name } id __typename t: title persona { key } status } } } } }";
    let text = app
        .http()
        .post(app.graphql_url())
        .json(&json!({ "query": q }))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("body");
    let plain: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let tasks = plain["data"]["projects"]["nodes"][0]["tasks"]["nodes"]
        .as_array()
        .expect("tasks")
        .clone();
    assert_eq!(tasks.len(), 3, "{text}");
    for t in &tasks {
        assert!(t["persona"]["name"].is_string(), "{text}");
        let in_order = format!(
            r#"{{"persona":{{"name":{},"key":{}}},"id":{},"__typename":"Task","t":{},"status":{}}}"#,
            t["persona"]["name"], t["persona"]["key"], t["id"], t["t"], t["status"]
        );
        assert!(
            text.contains(&in_order),
            "expected {in_order} in selection order within {text}"
        );
    }
    let batch = support::gql_batch(
        app.http(),
        &app.base,
        &[json!({ "query": q }), json!({ "query": q })],
    )
    .await;
    for full in batch {
        assert_eq!(full, plain, "the library's path answers the same");
    }
}

#[tokio::test]
async fn agent_status_history_pages_newest_first() {
    let app = support::spawn().await;
    let p = app.create_project("P").await;
    let q = "mutation($p: ID!, $s: AgentState!, $m: String) { updateAgentStatus(input: {personaId: \"dev\", projectId: $p, status: $s, message: $m}) { agentStatus { id status } } }";
    for (s, m) in [
        ("IDLE", "1"),
        ("WORKING", "2"),
        ("WAITING", "3"),
        ("IDLE", "4"),
    ] {
        app.ok(q, json!({ "p": p, "s": s, "m": m })).await;
    }
    let h = "query($p: ID!, $after: String) { agentStatuses(projectId: $p) { nodes { status history(first: 2, after: $after) { totalCount pageInfo { hasNextPage } edges { cursor node { message } } } } } }";
    let d = app.ok(h, json!({ "p": p })).await;
    let agents = d["agentStatuses"]["nodes"].as_array().expect("list");
    assert_eq!(agents.len(), 1, "one row per persona and project");
    let hist = &agents[0]["history"];
    assert_eq!(hist["totalCount"], 4);
    let msgs: Vec<&str> = hist["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["message"].as_str())
        .collect();
    assert_eq!(msgs, ["4", "3"]);
    assert_eq!(hist["pageInfo"]["hasNextPage"], true);
    let after = hist["edges"][1]["cursor"].clone();
    let d = app.ok(h, json!({ "p": p, "after": after })).await;
    let msgs: Vec<&str> = d["agentStatuses"]["nodes"][0]["history"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter_map(|e| e["node"]["message"].as_str())
        .collect();
    assert_eq!(msgs, ["2", "1"]);
    assert_eq!(
        d["agentStatuses"]["nodes"][0]["history"]["pageInfo"]["hasNextPage"],
        false
    );
}

/// Tasks and projects have a decoder of their own on PostgreSQL (by column
/// position, `entity::FromRows`); it must build the same models as
/// sea-orm's, from the same rows, nulls and JSON included.
#[tokio::test]
async fn tasks_and_projects_decode_by_position_as_sea_orm_decodes_them_by_name() {
    use cerebral::entity::{FromRows, project, task};
    use sea_orm::{ConnectionTrait, FromQueryResult, Statement};
    let app = support::spawn().await;
    let p = app.create_project_from("P", "greenfield-service").await;
    let t = app
        .ok(
            "query($p: ID!) { project(id: $p) { tasks(first: 1) { nodes { id } } } }",
            json!({ "p": p }),
        )
        .await;
    let task = t["project"]["tasks"]["nodes"][0]["id"].clone();
    app.start_task(&task).await;
    app.ok(
        "mutation($t: ID!) { completeTask(input: {taskId: $t, output: {done: [1, \"two\"]}}) { task { id } } }",
        json!({ "t": task }),
    )
    .await;
    // Every tenant's rows (the serving role sees none without a tenant).
    let db = app.services.all_tenants();
    // A column order of its own (and an extra column), as a window query's.
    let sql = "SELECT 1 AS rn__, t.* FROM tasks t ORDER BY t.id";
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("rows");
    assert!(rows.len() >= 13, "{} rows", rows.len());
    let by_name: Vec<task::Model> = rows
        .iter()
        .map(|r| task::Model::from_query_result(r, "").expect("by name"))
        .collect();
    let by_position = task::Model::from_rows(&rows).expect("by position");
    assert_eq!(by_position, by_name);
    assert!(
        by_name
            .iter()
            .any(|m| m.output.is_some() && m.started_at.is_some())
    );
    assert!(
        by_name
            .iter()
            .any(|m| m.output.is_none() && m.started_at.is_none())
    );

    // Projects too (the root page of most queries), one with its optional
    // columns set and one without, in a column order of their own.
    app.create_project("bare").await;
    let sql = "SELECT p.updated_at AS x__, p.* FROM projects p ORDER BY p.id";
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("rows");
    let by_name: Vec<project::Model> = rows
        .iter()
        .map(|r| project::Model::from_query_result(r, "").expect("by name"))
        .collect();
    assert_eq!(
        project::Model::from_rows(&rows).expect("by position"),
        by_name
    );
    assert!(by_name.iter().any(|m| m.workflow_id.is_some()));
    assert!(by_name.iter().any(|m| m.workflow_id.is_none()));
    // Projects are always read whole: a column missing is an error, never
    // a default (on SQLite both decoders are sea-orm's, which fails too).
    let partial = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT p.id, p.tenant_id, p.name FROM projects p",
        ))
        .await
        .expect("rows");
    assert!(project::Model::from_rows(&partial).is_err());
}

/// A plain query over HTTP runs on the schema without the extension
/// (`pipeline::run_lean`), a batch on the full one: the same document must
/// get the same answer either way — data, errors, codes, paths — whether
/// it succeeds, is refused by validation or after it, or skips everything.
#[tokio::test]
async fn a_plain_query_answers_as_the_same_query_in_a_batch_of_one() {
    let app = support::spawn().await;
    app.create_project_from("P", "greenfield-service").await;
    let client = reqwest::Client::new();
    let deep = "{ projects(first: 100) { nodes { tasks(first: 100) { nodes { checkpoints(first: 100) { nodes { id } } } } } } }";
    let cases = [
        json!({ "query": "{ projects(first: 2) { totalCount nodes { id name tasks(first: 3) { nodes { title persona { name } } } } } }" }),
        json!({ "query": "{ projects @skip(if: true) { totalCount } }" }),
        json!({ "query": "query A { projects { totalCount } } query B { projects { totalCount } }" }),
        json!({ "query": "query A { projects { totalCount } } query B { projects { totalCount } }", "operationName": "C" }),
        json!({ "query": "query A { projects { totalCount } }", "operationName": "A" }),
        json!({ "query": "{ projects { nope } }" }),
        json!({ "query": "{ task(id: \"Task:not-a-uuid\") { id } }" }),
        json!({ "query": "query($n: Int) { projects(first: $n) { totalCount } }", "variables": { "n": "x" } }),
        json!({ "query": deep }),
    ];
    for case in cases {
        let single = support::gql_body(&client, &app.base, &case).await;
        let batch = support::gql_batch(&client, &app.base, std::slice::from_ref(&case)).await;
        assert_eq!(single, batch[0], "{case}");
    }
}
