//! The two-tenant isolation matrix (issue 5, point 3).
//!
//! One server with JWT authentication; tenants A and B seeded with identical
//! data through the API (B's names carry a marker). Tenant A, as an admin so
//! no role ever hides a leak, then runs every root query, list, relation,
//! mutation and subscription with B's ids in every id position, and with
//! `tenant_id`s smuggled in headers, `connection_init` and free-form JSON.
//! Every answer about one of B's ids must be exactly the answer about an id
//! that never existed (same data, same `extensions.code`, same message once
//! the id is blanked out), in the same timing class; no answer may carry
//! B's marker or any of B's ids; and B's rows, read straight from the
//! database, must be byte for byte what they were before the matrix ran.
//! An introspection check fails when a root field has no matrix coverage.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support;
use crate::support::Caller;

const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";
const TENANT_A: &str = "0190a3c4-0000-7000-8000-0000000000aa";
const TENANT_B: &str = "0190a3c4-0000-7000-8000-0000000000bb";
/// Put in tenant A's names, so reads can be shown to return A's data.
const MARK_A: &str = "alphamark";
/// Put in tenant B's names; must never reach tenant A.
const MARK_B: &str = "bravomark";
/// Put in A's objects created while A's subscriptions listen.
const LIVE_A: &str = "alphalive";

/// Tables without a `tenant_id` column, each global on purpose. A new table
/// must either have `tenant_id` (and is then dumped and compared
/// automatically) or be added here with the reason it holds no tenant data.
const GLOBAL_TABLES: &[&str] = &[
    // sea-orm-migration's record of applied migrations.
    "seaql_migrations",
    // The one global event counter: a number, no tenant data.
    "event_sequence",
];

/// The same user name in both tenants: only the tenant tells them apart.
fn token(tenant: &str) -> String {
    support::token(SECRET, tenant, "matrix-user", &["admin"], 3600)
}

fn id_at(v: &Value, path: &[&str]) -> String {
    let mut cur = v;
    for p in path {
        cur = match p.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[*p],
        };
    }
    cur.as_str()
        .unwrap_or_else(|| panic!("no id at {path:?} in {v}"))
        .to_string()
}

/// A small catalog pack: one persona, one team, one two-step workflow.
fn catalog(mark: &str) -> Value {
    json!([
        { "path": "agents/matrix-agent.md", "content": format!(
            "# matrix-agent\n\n```yaml\nagent:\n  name: {mark} Agent\n  id: matrix-agent\n  title: {mark} Tester\n  icon: x\n  whenToUse: {mark}\npersona:\n  role: {mark}\n```\n") },
        { "path": "agent-teams/matrix-team.yaml", "content": format!(
            "bundle:\n  name: {mark} Team\n  icon: x\n  description: {mark}\nagents:\n  - matrix-agent\nworkflows:\n  - matrix-flow.yaml\n") },
        { "path": "workflows/matrix-flow.yaml", "content": format!(
            "workflow:\n  id: matrix-flow\n  name: {mark} Flow\n  description: {mark}\n  type: greenfield\n  project_types:\n    - test\n  sequence:\n    - agent: matrix-agent\n      creates: brief.md\n      notes: {mark}\n    - agent: matrix-agent\n      creates: plan.md\n      requires: brief.md\n      notes: {mark}\n") },
    ])
}

const IMPORT: &str = "mutation($f: [CatalogFileInput!]!) { importCatalog(input: {files: $f}) { personas { id name } teams { id name } workflows { id name steps { id } } errors { path reason } } }";

/// Seeds one tenant with the matrix's data and returns its ids by role.
async fn seed(c: &Caller, mark: &str) -> BTreeMap<&'static str, String> {
    let mut ids = BTreeMap::new();
    let cat = c.ok(IMPORT, json!({ "f": catalog(mark) })).await["importCatalog"].clone();
    assert_eq!(cat["errors"], json!([]), "{cat}");
    ids.insert("persona", id_at(&cat, &["personas", "0", "id"]));
    ids.insert("team", id_at(&cat, &["teams", "0", "id"]));
    ids.insert("workflow", id_at(&cat, &["workflows", "0", "id"]));
    ids.insert(
        "workflow_step",
        id_at(&cat, &["workflows", "0", "steps", "0", "id"]),
    );

    let p = c
        .ok(
            "mutation($n: String!) { createProject(input: {name: $n, productIdea: $n, workflowId: \"matrix-flow\", idempotencyKey: \"seed-project\"}) { project { id tasks(first: 10) { nodes { id } } } event { id } } }",
            json!({ "n": format!("{mark} project") }),
        )
        .await["createProject"]
        .clone();
    let project = id_at(&p, &["project", "id"]);
    let task = id_at(&p, &["project", "tasks", "nodes", "0", "id"]);
    ids.insert("project", project.clone());
    ids.insert("task", task.clone());
    ids.insert(
        "task_next",
        id_at(&p, &["project", "tasks", "nodes", "1", "id"]),
    );
    ids.insert("event", id_at(&p, &["event", "id"]));

    // The id of the object a mutation makes, as text.
    let new = async |doc: &str, vars: Value| {
        let id = c.new_id(doc, vars).await;
        id.as_str().expect("an id").to_string()
    };
    let persona = ids["persona"].clone();
    let dep = json!({ "p": project, "x": persona, "t": task, "n": format!("{mark} extra") });
    ids.insert(
        "task_dep",
        new(
            "mutation($p: ID!, $x: ID!, $t: ID!, $n: String!) { createTask(input: {projectId: $p, personaId: $x, title: $n, instructions: $n, dependsOn: [$t]}) { task { id } } }",
            dep,
        )
        .await,
    );

    let work = [
        "mutation($t: ID!, $m: String!) { startTask(input: {taskId: $t, message: $m}) { task { id } } }",
        "mutation($t: ID!, $m: String!) { reportTaskProgress(input: {taskId: $t, progress: 40, stage: $m, message: $m}) { task { id } } }",
    ];
    c.ok_each(&work, json!({ "t": task, "m": mark })).await;
    let cp = "mutation($t: ID!, $s: JSON!) { createCheckpoint(input: {taskId: $t, stepId: \"s1\", state: $s}) { checkpoint { id } } }";
    let state = |n: u8| json!({ "t": task, "s": { "mark": mark, "n": n } });
    ids.insert("checkpoint", new(cp, state(1)).await);
    ids.insert("checkpoint2", new(cp, state(2)).await);
    let art = "mutation($p: ID!, $t: ID!, $x: ID!, $n: String!, $c: JSON!) { createArtifact(input: {projectId: $p, taskId: $t, personaId: $x, kind: SPEC, name: $n, content: $c}) { artifact { id } } }";
    let av = json!({ "p": project, "t": task, "x": persona, "n": format!("{mark} brief"), "c": { "mark": mark } });
    ids.insert("artifact", new(art, av.clone()).await);
    ids.insert("artifact2", new(art, av).await);
    let status = json!({ "x": persona, "p": project, "t": task, "m": mark });
    ids.insert(
        "agent_status",
        new(
            "mutation($x: ID!, $p: ID!, $t: ID!, $m: String!) { updateAgentStatus(input: {personaId: $x, projectId: $p, status: WORKING, currentTaskId: $t, message: $m}) { agentStatus { id } } }",
            status,
        )
        .await,
    );
    let ask = json!({ "t": task, "m": mark });
    ids.insert(
        "hitl",
        new(
            "mutation($t: ID!, $m: String!) { requestHitl(input: {taskId: $t, question: $m, options: [$m], responseSchema: {mark: $m}}) { hitlRequest { id } } }",
            ask,
        )
        .await,
    );

    // A task that failed once and was retried (attempt history).
    let retry = new(
        "mutation($p: ID!, $n: String!) { createTask(input: {projectId: $p, title: $n}) { task { id } } }",
        json!({ "p": project, "n": format!("{mark} retry") }),
    )
    .await;
    c.start_task(&retry).await;
    c.fail_task(&retry, mark).await;
    c.ok(
        "mutation($t: ID!) { retryTask(input: {taskId: $t}) { task { id } } }",
        json!({ "t": retry }),
    )
    .await;
    ids.insert("task_retry", retry);

    let session = new(
        "mutation($m: String!) { startSession(input: {name: $m}) { session { id } } }",
        json!({ "m": mark }),
    )
    .await;
    let context = new(
        "mutation($s: ID!, $x: ID!, $m: String!) { switchPersona(input: {sessionId: $s, personaId: $x, initialState: {mark: $m}}) { context { id } } }",
        json!({ "s": session, "x": persona, "m": mark }),
    )
    .await;
    let edits = [
        "mutation($c: ID!, $m: String!) { updatePersonaContext(input: {contextId: $c, statePatch: {patched: $m}, activeTool: $m}) { context { id } } }",
        "mutation($c: ID!, $m: String!) { appendPersonaContextHistory(input: {contextId: $c, entry: {said: $m}}) { context { id } } }",
    ];
    c.ok_each(&edits, json!({ "c": context, "m": mark })).await;
    let child = json!({ "s": session, "c": context, "m": mark });
    ids.insert(
        "context_child",
        new(
            "mutation($s: ID!, $c: ID!, $m: String!) { switchPersona(input: {sessionId: $s, personaId: \"analyst\", parentContextId: $c, initialState: {mark: $m}}) { context { id } } }",
            child,
        )
        .await,
    );
    ids.insert("session", session);
    ids.insert("context", context);

    let epic = new(
        "mutation($p: ID!, $m: String!) { createEpic(input: {projectId: $p, title: $m, goal: $m}) { epic { id } } }",
        json!({ "p": project, "m": mark }),
    )
    .await;
    let story = new(
        "mutation($e: ID!, $m: String!) { draftStory(input: {epicId: $e, title: $m, role: $m, action: $m, benefit: $m, acceptanceCriteria: [$m], tasks: [{description: $m, acceptanceCriteria: [1], subtasks: [$m]}], devNotes: $m}) { story { id } } }",
        json!({ "e": epic, "m": mark }),
    )
    .await;
    // A second story through review to its QA gate.
    let reviewed = new(
        "mutation($e: ID!, $m: String!) { draftStory(input: {epicId: $e, title: $m, role: $m, action: $m, benefit: $m, acceptanceCriteria: [$m]}) { story { id } } }",
        json!({ "e": epic, "m": mark }),
    )
    .await;
    let verbs = [
        "mutation($s: ID!) { approveStory(input: {storyId: $s}) { story { id } } }",
        "mutation($s: ID!) { startStory(input: {storyId: $s}) { story { id } } }",
        "mutation($s: ID!) { submitStoryForReview(input: {storyId: $s}) { story { id } } }",
    ];
    c.ok_each(&verbs, json!({ "s": reviewed })).await;
    let gate = new(
        "mutation($s: ID!, $m: String!) { recordQaGate(input: {storyId: $s, decision: CONCERNS, statusReason: $m, reviewer: $m, topIssues: [{id: \"T-001\", severity: LOW, finding: $m, suggestedAction: $m}], nfr: [{area: \"security\", status: CONCERNS, notes: $m}], acCovered: [1]}) { gate { id } } }",
        json!({ "s": reviewed, "m": mark }),
    )
    .await;
    ids.insert("epic", epic);
    ids.insert("story", story);
    ids.insert("qa_gate", gate);
    ids
}

/// The UUID part of a global id.
fn uuid_of(id: &str) -> &str {
    id.split_once(':').map_or(id, |(_, u)| u)
}

/// A never-existing id of the same type as `id`.
fn missing_like(id: &str) -> String {
    let prefix = id.split_once(':').map_or("", |(p, _)| p);
    format!("{prefix}:{}", Uuid::now_v7())
}

/// The response as text with `id` (and its bare UUID) blanked out.
fn blank(body: &Value, id: &str) -> String {
    body.to_string()
        .replace(id, "<ID>")
        .replace(uuid_of(id), "<UUID>")
}

/// Replaces every string equal to `from` in `v` by `to`.
fn substitute(v: &Value, from: &str, to: &str) -> Value {
    match v {
        Value::String(s) if s == from => Value::String(to.to_string()),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, from, to)).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), substitute(x, from, to)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Every string in `v`.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

/// What A must never see, and which root fields the matrix ran.
struct Matrix {
    a: Caller,
    a_ids: BTreeMap<&'static str, String>,
    b_ids: BTreeMap<&'static str, String>,
    /// MARK_B and the UUID of every id of B's.
    secrets: Vec<String>,
    /// `Query.x`, `Mutation.y`, `Subscription.z` exercised so far.
    covered: BTreeSet<String>,
    /// Comparisons of B's id against a missing one.
    compared: usize,
}

impl Matrix {
    fn assert_clean(&self, label: &str, text: &str) {
        for s in &self.secrets {
            assert!(
                !text.contains(s.as_str()),
                "{label}: tenant A saw `{s}` of tenant B: {text}"
            );
        }
    }

    fn cover(&mut self, root: &str, field: &str) {
        self.covered.insert(format!("{root}.{field}"));
    }

    /// Runs `query` as A with every `"@B"` in `vars` replaced by B's id of
    /// `key`, then by a never-existing id of the same type, and asserts
    /// the two answers are the same once the id is blanked out, and clean.
    async fn same_as_missing(
        &mut self,
        root: &str,
        field: &str,
        query: &str,
        vars: &Value,
        key: &str,
    ) -> Value {
        let b = self.b_ids[key].clone();
        let m = missing_like(&b);
        let (rb, rm) = tokio::join!(
            self.a.post(query, substitute(vars, "@B", &b)),
            self.a.post(query, substitute(vars, "@B", &m)),
        );
        let (tb, tm) = (blank(&rb, &b), blank(&rm, &m));
        let label = format!("{root}.{field} with B's {key} {b}");
        assert_eq!(
            tb, tm,
            "{label}: answers differently from a never-existing id"
        );
        self.assert_clean(&label, &tb);
        self.cover(root, field);
        self.compared += 1;
        rb
    }

    /// Runs `query` as A and asserts the answer is clean and, when
    /// `must_show_a`, that it shows A's own data (so the check is not
    /// vacuous).
    async fn clean_read(&mut self, field: &str, query: &str, vars: Value, must_show_a: bool) {
        let r = self.a.post(query, vars).await;
        assert!(r.get("errors").is_none(), "{field}: {r}");
        let text = r.to_string();
        self.assert_clean(field, &text);
        if must_show_a {
            assert!(text.contains(MARK_A), "{field} shows none of A's data: {r}");
        }
        self.cover("Query", field);
    }
}

/// Queries with B's ids in their id arguments: (field, document, variables
/// with `"@B"` where B's id goes, which id of B's).
fn id_queries(
    a: &BTreeMap<&'static str, String>,
) -> Vec<(&'static str, &'static str, Value, &'static str)> {
    const PROJECT: &str = "query($id: ID!) { project(id: $id) { id name tasks { totalCount } } }";
    const TASK: &str = "query($id: ID!) { task(id: $id) { id title } }";
    const HITL: &str = "query($id: ID!) { hitlRequest(id: $id) { id question } }";
    const SESSION: &str = "query($id: ID!) { session(id: $id) { id name } }";
    const PERSONA: &str = "query($id: ID!) { persona(id: $id) { id name } }";
    const WORKFLOW: &str = "query($id: ID!) { workflow(id: $id) { id name } }";
    const DIFF: &str = "query($from: ID!, $to: ID!) { checkpointDiff(from: $from, to: $to) }";
    const TASKS: &str =
        "query($f: TaskFilter) { tasks(filter: $f) { totalCount nodes { id title } } }";
    const HITLS: &str = "query($f: HitlRequestFilter) { hitlRequests(filter: $f) { totalCount nodes { id question } } }";
    const ARTIFACTS: &str = "query($f: ArtifactFilter) { artifacts(filter: $f) { totalCount nodes { id name content } } }";
    const EVENTS: &str =
        "query($f: EventQueryFilter) { events(filter: $f) { totalCount nodes { id payload } } }";
    const AGENTS: &str =
        "query($id: ID!) { agentStatuses(projectId: $id) { totalCount nodes { id message } } }";
    const TASK_UPDATES: &str = "query($id: ID!) { taskUpdates(projectId: $id, after: \"0\") { totalCount nodes { cursor task { id title } event { id payload } } } }";
    const ARTIFACT_UPDATES: &str = "query($id: ID!) { artifactUpdates(projectId: $id, after: \"0\") { totalCount nodes { cursor artifact { id name } event { id payload } } } }";
    const AGENT_UPDATES: &str = "query($id: ID!, $x: ID) { agentStatusUpdates(projectId: $id, personaId: $x, after: \"0\") { totalCount nodes { cursor agentStatus { id message } event { id payload } } } }";
    const HITL_UPDATES: &str = "query($id: ID!) { hitlRequestUpdates(projectId: $id, after: \"0\") { totalCount nodes { cursor hitlRequest { id question } event { id payload } } } }";
    const ANALYTICS: &str = "query($id: ID) { personaAnalytics(projectId: $id) { persona { id name } tasksCompleted tasksFailed } }";
    const EPIC: &str = "query($id: ID!) { epic(id: $id) { id title goal } }";
    const STORY: &str = "query($id: ID!) { story(id: $id) { id title role devNotes } }";
    const EPICS: &str =
        "query($f: EpicFilter) { epics(filter: $f) { totalCount nodes { id title } } }";
    const STORIES: &str =
        "query($f: StoryFilter) { stories(filter: $f) { totalCount nodes { id title } } }";
    const STORY_UPDATES: &str = "query($id: ID!) { storyUpdates(projectId: $id, after: \"0\") { totalCount nodes { cursor story { id title } event { id payload } } } }";
    let id = || json!({ "id": "@B" });
    let filter = |key: &str| json!({ "f": { key: "@B" } });
    let diff = |from: &Value, to: &Value| json!({ "from": from, "to": to });
    let (b, a_checkpoint, a_checkpoint2) =
        (json!("@B"), json!(a["checkpoint"]), json!(a["checkpoint2"]));
    let b_task_of_a = json!({ "f": { "projectId": a["project"], "taskId": "@B" } });
    let b_persona = json!({ "id": a["project"], "x": "@B" });
    let mut q = vec![
        ("project", PROJECT, id(), "project"),
        ("task", TASK, id(), "task"),
        ("task", TASK, id(), "task_dep"),
        ("hitlRequest", HITL, id(), "hitl"),
        ("session", SESSION, id(), "session"),
        ("persona", PERSONA, id(), "persona"),
        ("workflow", WORKFLOW, id(), "workflow"),
        (
            "checkpointDiff",
            DIFF,
            diff(&b, &a_checkpoint2),
            "checkpoint",
        ),
        (
            "checkpointDiff",
            DIFF,
            diff(&a_checkpoint, &b),
            "checkpoint2",
        ),
        ("checkpointDiff", DIFF, diff(&b, &b), "checkpoint"),
        ("tasks", TASKS, filter("projectId"), "project"),
        ("tasks", TASKS, filter("personaId"), "persona"),
        ("hitlRequests", HITLS, filter("projectId"), "project"),
        ("artifacts", ARTIFACTS, filter("projectId"), "project"),
        ("artifacts", ARTIFACTS, filter("taskId"), "task"),
        ("artifacts", ARTIFACTS, b_task_of_a, "task"),
        ("events", EVENTS, filter("projectId"), "project"),
        ("events", EVENTS, filter("taskId"), "task"),
        ("agentStatuses", AGENTS, id(), "project"),
        ("taskUpdates", TASK_UPDATES, id(), "project"),
        ("artifactUpdates", ARTIFACT_UPDATES, id(), "project"),
        ("agentStatusUpdates", AGENT_UPDATES, id(), "project"),
        ("agentStatusUpdates", AGENT_UPDATES, b_persona, "persona"),
        ("hitlRequestUpdates", HITL_UPDATES, id(), "project"),
        ("personaAnalytics", ANALYTICS, id(), "project"),
        ("epic", EPIC, id(), "epic"),
        ("story", STORY, id(), "story"),
        ("epics", EPICS, filter("projectId"), "project"),
        ("stories", STORIES, filter("projectId"), "project"),
        ("stories", STORIES, filter("epicId"), "epic"),
        ("storyUpdates", STORY_UPDATES, id(), "project"),
    ];
    // `node` on every id of B's.
    for key in a.keys() {
        q.push((
            "node",
            "query($id: ID!) { node(id: $id) { id __typename } }",
            json!({ "id": "@B" }),
            key,
        ));
    }
    q
}

const PROJECT_BY_ID: &str = "query($id: ID!) { project(id: $id) { id name } }";

/// Root lists and everything reachable from A's own objects.
const RELATIONS: &str = r#"
fragment T on Task {
  id title instructions stage statusMessage output error
  project { id name } persona { id name } workflowStep { id key persona { id name } }
  retryOf { attempt error event { id payload } }
  failedAttempts { attempt error event { id payload } }
  dependencies { id title }
  checkpoints(first: 10) { nodes { id state task { id title } parentCheckpoint { id state } } }
  latestCheckpoint { id state }
  pendingHitl(first: 10) { nodes { id question } }
  hitlRequests(first: 10) { nodes { id question responseSchema } }
  artifacts(first: 10) { nodes { id name } }
}
query {
  projects(first: 5) { totalCount nodes {
    id name productIdea createdBy pendingHitlCount completion { totalTasks }
    workflow { id name steps { id key persona { id name } } }
    tasks(first: 10) { nodes { ...T } }
    artifacts(first: 10) { nodes { id name content project { id name } task { id title } persona { id name } supersedes { id name content } } }
    hitlRequests(first: 10) { nodes { id question options project { id name } task { id title } } }
    events(first: 60) { nodes { id type projectId taskId subjectId payload project { id name } task { id title } } }
    agentStatuses(first: 10) { nodes { id message project { id name } persona { id name } currentTask { id title }
      history(first: 10) { nodes { status message currentTask { id title } } } } }
    epics(first: 10) { nodes { id title goal project { id name }
      stories(first: 10) { nodes { id number title role action benefit devNotes acceptanceCriteria { text }
        tasks { description subtasks { description } } changeLog { description author } epic { id title } project { id name } } } } }
  } }
  epics(first: 10) { totalCount nodes { id title } }
  stories(first: 10) { totalCount nodes { id title } }
  sessions(first: 5) { totalCount nodes { id userId name
    currentContext { id state history activeTool persona { id name } parent { id state } }
    pendingHitl(first: 10) { nodes { id question } }
    contexts(first: 10) { nodes { id state history parent { id state } persona { id name } } } } }
  teams(first: 10) { nodes { id key name description personas { id name } workflows { id name steps { id } } } }
  personas(first: 10) { nodes { id key name title whenToUse } }
  workflows(first: 10) { nodes { id key name description steps { id notes persona { id name } } } }
  tasks(first: 10) { totalCount nodes { ...T } }
  hitlRequests(first: 10) { totalCount nodes { id question } }
  artifacts(first: 10) { totalCount nodes { id name content } }
  events(first: 60) { totalCount nodes { id type payload } }
  personaAnalytics { persona { id name } tasksCompleted tasksFailed }
  workflowAnalytics { workflow { id name } projectsStarted }
}
"#;

/// The mutations that take no id; the matrix runs them as A and checks
/// their answers are clean.
const WITHOUT_IDS: &[&str] = &["startSession", "cleanupExpiredSessions", "importCatalog"];

/// Every mutation that takes an id, with an input whose ids are A's own:
/// (field, input).
fn mutations(a: &BTreeMap<&'static str, String>, snapshot: &Value) -> Vec<(&'static str, Value)> {
    let (p, t, y) = (&a["project"], &a["task"], &a["persona"]);
    let input = |field: &str| match field {
        "createProject" => json!({"name": "n", "workflowId": a["workflow"]}),
        "createTask" => {
            json!({"projectId": p, "personaId": y, "title": "t", "dependsOn": [t, a["task_dep"]]})
        }
        "startTask" => json!({"taskId": a["task_next"], "force": true}),
        "retryTask" => json!({"taskId": a["task_retry"]}),
        "createArtifact" => {
            json!({"projectId": p, "taskId": t, "personaId": y, "kind": "SPEC", "name": "a", "content": {}})
        }
        "heartbeat" | "resetAgentStatus" => json!({"personaId": y, "projectId": p}),
        "updateAgentStatus" => {
            json!({"personaId": y, "projectId": p, "status": "WORKING", "currentTaskId": t})
        }
        "importPersonaContext" => json!({"sessionId": a["session"], "snapshot": snapshot}),
        "switchPersona" => {
            json!({"sessionId": a["session"], "personaId": y, "parentContextId": a["context"]})
        }
        m => support::mutations::plain_input(m, |k| json!(a[k]))
            .unwrap_or_else(|| panic!("no input for {m}")),
    };
    support::mutations::MUTATIONS
        .iter()
        .filter(|m| !WITHOUT_IDS.contains(m))
        .map(|m| (*m, input(m)))
        .collect()
}

/// Every row of every tenant-scoped table that belongs to `tenant`, as
/// exact text (SQLite: `quote()` of every column; PostgreSQL: the row's
/// text form), sorted, by table. Fails on a table that has no
/// `tenant_id` and is not in GLOBAL_TABLES.
async fn dump_tenant(url: &str, tenant: &str) -> BTreeMap<String, Vec<String>> {
    let (db, _) = cerebral::db::connect(url, 1)
        .await
        .expect("connect to the test database");
    let backend = db.get_database_backend();
    let names = |rows: Vec<sea_orm::QueryResult>| -> Vec<String> {
        rows.iter()
            .map(|r| r.try_get::<String>("", "n").expect("name"))
            .collect()
    };
    let tables_sql = match backend {
        DatabaseBackend::Sqlite => {
            "SELECT name AS n FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        }
        _ => {
            "SELECT table_name::text AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        }
    };
    let tables = names(
        db.query_all_raw(Statement::from_string(backend, tables_sql))
            .await
            .expect("list tables"),
    );
    assert!(tables.len() > GLOBAL_TABLES.len(), "{tables:?}");
    let tenant = Uuid::parse_str(tenant).expect("tenant uuid");
    let mut dump = BTreeMap::new();
    for t in tables {
        assert!(
            t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "odd table name {t}"
        );
        let cols_sql = match backend {
            DatabaseBackend::Sqlite => format!("SELECT name AS n FROM pragma_table_info('{t}')"),
            _ => format!(
                "SELECT column_name::text AS n FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{t}' ORDER BY ordinal_position"
            ),
        };
        let cols = names(
            db.query_all_raw(Statement::from_string(backend, cols_sql))
                .await
                .expect("list columns"),
        );
        if !cols.iter().any(|c| c == "tenant_id") {
            assert!(
                GLOBAL_TABLES.contains(&t.as_str()),
                "table `{t}` has no tenant_id column and is not listed in GLOBAL_TABLES \
                 (tests/api/tenancy_matrix.rs): scope it to a tenant or list it with the reason it is global"
            );
            continue;
        }
        let sql = match backend {
            DatabaseBackend::Sqlite => format!(
                "SELECT {} AS d FROM \"{t}\" WHERE tenant_id = ?",
                cols.iter()
                    .map(|c| format!("quote(\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ")
            ),
            _ => format!("SELECT x::text AS d FROM \"{t}\" x WHERE tenant_id = $1"),
        };
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [tenant.into()],
            ))
            .await
            .unwrap_or_else(|e| panic!("dump {t}: {e}"));
        let mut rows: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String>("", "d").expect("row text"))
            .collect();
        rows.sort();
        dump.insert(t, rows);
    }
    dump
}

#[tokio::test]
async fn tenant_a_sees_and_changes_nothing_of_tenant_b_whatever_it_sends() {
    let app = support::spawn_with(|c| {
        c.auth.jwt_secret = Some(SECRET.into());
        // The relations query is deep on purpose; limits are tested in
        // tests/api/limits.rs.
        c.query.max_depth = 64;
        c.query.max_complexity = 1_000_000_000;
    })
    .await;
    let caller = |tenant: &str| app.bearer(&token(tenant));
    let (a, b) = (caller(TENANT_A), caller(TENANT_B));
    let (a_ids, b_ids) = tokio::join!(seed(&a, MARK_A), seed(&b, MARK_B));
    assert_eq!(
        a_ids.keys().collect::<Vec<_>>(),
        b_ids.keys().collect::<Vec<_>>()
    );
    let mut secrets = vec![MARK_B.to_string()];
    secrets.extend(b_ids.values().map(|id| uuid_of(id).to_string()));
    let mut m = Matrix {
        a,
        a_ids,
        b_ids,
        secrets,
        covered: BTreeSet::new(),
        compared: 0,
    };

    // Subscriptions first: they need B's data to change while A listens.
    subscriptions(&mut m, &b, &app.base).await;

    let before = dump_tenant(&app.database_url, TENANT_B).await;
    let a_before = dump_tenant(&app.database_url, TENANT_A).await;
    for table in [
        "projects",
        "tasks",
        "task_dependencies",
        "events",
        "sessions",
        "persona_contexts",
        "artifacts",
        "personas",
    ] {
        assert!(
            !before.get(table).is_none_or(Vec::is_empty),
            "the dump of B's {table} is empty: the tenant filter of the dump is wrong"
        );
    }

    // Reads with B's ids.
    for (field, query, vars, key) in id_queries(&m.a_ids) {
        m.same_as_missing("Query", field, query, &vars, key).await;
    }
    // Lookups by catalog key resolve to A's own entry.
    let r = m
        .a
        .ok(
            "{ persona(id: \"matrix-agent\") { id name } workflow(id: \"matrix-flow\") { id name } }",
            json!({}),
        )
        .await;
    assert_eq!(r["persona"]["id"], m.a_ids["persona"].as_str(), "{r}");
    assert_eq!(r["workflow"]["id"], m.a_ids["workflow"].as_str(), "{r}");
    // Lists and relations from A's own objects.
    m.clean_read("projects", RELATIONS, json!({}), true).await;
    walk_relations(&m).await;
    for f in [
        "sessions",
        "teams",
        "personas",
        "workflows",
        "tasks",
        "hitlRequests",
        "artifacts",
        "events",
        "personaAnalytics",
        "workflowAnalytics",
        "epics",
        "stories",
    ] {
        m.cover("Query", f);
    }
    let own = json!({ "p": m.a_ids["project"] });
    for (field, q) in [
        (
            "agentStatuses",
            "query($p: ID!) { agentStatuses(projectId: $p) { nodes { id message persona { name } } } }",
        ),
        (
            "taskUpdates",
            "query($p: ID!) { taskUpdates(projectId: $p, after: \"0\") { nodes { task { title } event { payload } } } }",
        ),
        (
            "artifactUpdates",
            "query($p: ID!) { artifactUpdates(projectId: $p, after: \"0\") { nodes { artifact { name } event { payload } } } }",
        ),
        (
            "agentStatusUpdates",
            "query($p: ID!) { agentStatusUpdates(projectId: $p, after: \"0\") { nodes { agentStatus { message } event { payload } } } }",
        ),
        (
            "hitlRequestUpdates",
            "query($p: ID!) { hitlRequestUpdates(projectId: $p, after: \"0\") { nodes { hitlRequest { question } event { payload } } } }",
        ),
        (
            "storyUpdates",
            "query($p: ID!) { storyUpdates(projectId: $p, after: \"0\") { nodes { story { title } event { payload } } } }",
        ),
        (
            "personaAnalytics",
            "query($p: ID!) { personaAnalytics(projectId: $p) { persona { name } tasksFailed } }",
        ),
        (
            "sessions",
            "{ sessions(filter: {userId: \"matrix-user\"}) { totalCount nodes { name } } }",
        ),
        (
            "projects",
            "{ projects(filter: {nameContains: \"project\"}) { totalCount nodes { name } } }",
        ),
    ] {
        m.clean_read(field, q, own.clone(), true).await;
    }
    m.clean_read(
        "projects",
        "query($n: String!) { projects(filter: {nameContains: $n}) { totalCount nodes { id } } }",
        json!({ "n": MARK_B }),
        false,
    )
    .await;

    // Mutations with B's id in each id field in turn.
    let mut refused = 0;
    let mut codes = BTreeMap::new();
    // A valid snapshot of A's, so importPersonaContext gets as far as the
    // session lookup.
    let snapshot = m
        .a
        .ok(
            "mutation($c: ID!) { exportPersonaContext(input: {contextId: $c}) { snapshot { data compressed checksum size } } }",
            json!({ "c": m.a_ids["context"] }),
        )
        .await["exportPersonaContext"]["snapshot"]
        .clone();
    for (field, input) in mutations(&m.a_ids, &snapshot) {
        let mut found = Vec::new();
        strings(&input, &mut found);
        let keys: Vec<&'static str> = m
            .a_ids
            .iter()
            .filter(|(_, id)| found.contains(id))
            .map(|(k, _)| *k)
            .collect();
        assert!(!keys.is_empty(), "{field} has no id to substitute");
        let selection = if field == "resolveHitlRequests" {
            "{ resolvedCount failedCount results { requestId error { code message } } }"
        } else {
            "{ __typename }"
        };
        let doc = support::mutations::document(field, selection);
        for key in keys {
            let vars = json!({ "input": substitute(&input, &m.a_ids[key], "@B") });
            let r = m.same_as_missing("Mutation", field, &doc, &vars, key).await;
            let is_refusal =
                r.get("errors").is_some() || r["data"][field]["failedCount"].as_u64() == Some(1);
            assert!(is_refusal, "{field} with B's {key} was not refused: {r}");
            let code = r["errors"][0]["extensions"]["code"]
                .as_str()
                .or(r["data"][field]["results"][0]["error"]["code"].as_str())
                .unwrap_or("?")
                .to_string();
            *codes.entry(code).or_insert(0) += 1;
            refused += 1;
        }
    }
    // The mutations that take no id: run as A, their answers are clean.
    for (field, q) in [
        (
            "startSession",
            "mutation { startSession(input: {name: \"x\"}) { session { id name } } }",
        ),
        (
            "cleanupExpiredSessions",
            "mutation { cleanupExpiredSessions { expiredCount sessions { id name } } }",
        ),
    ] {
        let r = m.a.ok(q, json!({})).await;
        m.assert_clean(field, &r.to_string());
        m.cover("Mutation", field);
    }
    let r = m.a.ok(IMPORT, json!({ "f": catalog(MARK_A) })).await;
    m.assert_clean("importCatalog", &r.to_string());
    m.cover("Mutation", "importCatalog");

    smuggling(&mut m).await;
    timing(&m).await;

    let after = dump_tenant(&app.database_url, TENANT_B).await;
    for (table, rows) in &before {
        assert_eq!(
            Some(rows),
            after.get(table),
            "tenant B's rows in `{table}` changed"
        );
    }
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    // Controls: the dump does see changes (A wrote during the matrix)…
    let a_after = dump_tenant(&app.database_url, TENANT_A).await;
    assert_ne!(a_before, a_after, "the dump missed A's own writes");
    // …no row of A's refers to any of B's ids (UUIDs are text on
    // PostgreSQL, blobs that `quote()` shows as hex on SQLite)…
    for id in m.b_ids.values() {
        let u = Uuid::parse_str(uuid_of(id)).expect("uuid");
        let forms = [
            u.hyphenated().to_string(),
            u.simple().to_string().to_uppercase(),
        ];
        for (table, rows) in &a_after {
            for row in rows {
                assert!(
                    !forms.iter().any(|f| row.contains(f.as_str())),
                    "A's row in `{table}` refers to B's {id}: {row}"
                );
            }
        }
    }
    // …and the comparison does tell an existing id from a missing one: B
    // looking up its own project answers differently.
    let own = b
        .post(PROJECT_BY_ID, json!({ "id": m.b_ids["project"] }))
        .await;
    let missing_project = missing_like(&m.b_ids["project"]);
    let none = b
        .post(PROJECT_BY_ID, json!({ "id": missing_project }))
        .await;
    assert_ne!(
        blank(&own, &m.b_ids["project"]),
        blank(&none, &missing_project)
    );

    // Every root field of the schema has been run by the matrix.
    let schema = m
        .a
        .ok(
            "{ q: __type(name: \"Query\") { fields { name } } m: __type(name: \"Mutation\") { fields(includeDeprecated: true) { name } } s: __type(name: \"Subscription\") { fields { name } } }",
            json!({}),
        )
        .await;
    let mut missing = Vec::new();
    for (root, key) in [("Query", "q"), ("Mutation", "m"), ("Subscription", "s")] {
        for f in schema[key]["fields"].as_array().expect("fields") {
            let name = format!("{root}.{}", f["name"].as_str().expect("name"));
            if !m.covered.contains(&name) {
                missing.push(name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "root fields without tenant-isolation coverage in tests/api/tenancy_matrix.rs: {}; \
         add each to the matrix (B's ids in every id argument, compared with a missing id)",
        missing.join(", ")
    );
    eprintln!(
        "matrix ({}): {} comparisons, {} mutation refusals {codes:?}, {} root fields covered",
        support::backend(),
        m.compared,
        refused,
        m.covered.len()
    );
}

/// The subscriptions, as (field, document): `$p` is the project filter,
/// `$x` the persona filter where there is one.
const SUBSCRIPTIONS: &[(&str, &str)] = &[
    (
        "events",
        "subscription($p: ID, $after: String) { events(projectId: $p, after: $after) { id type projectId taskId subjectId payload project { name } task { title } } }",
    ),
    (
        "taskUpdated",
        "subscription($p: ID!, $after: String) { taskUpdated(projectId: $p, after: $after) { cursor type task { id title project { name } } event { id payload } } }",
    ),
    (
        "artifactCreated",
        "subscription($p: ID!, $after: String) { artifactCreated(projectId: $p, after: $after) { cursor artifact { id name content } event { id payload } } }",
    ),
    (
        "agentStatusChanged",
        "subscription($p: ID!, $x: ID, $after: String) { agentStatusChanged(projectId: $p, personaId: $x, after: $after) { cursor agentStatus { id message persona { name } } event { id payload } } }",
    ),
    (
        "hitlRequested",
        "subscription($p: ID!, $after: String) { hitlRequested(projectId: $p, after: $after) { cursor hitlRequest { id question } event { id payload } } }",
    ),
    (
        "storyUpdated",
        "subscription($p: ID!, $after: String) { storyUpdated(projectId: $p, after: $after) { cursor story { id title devNotes } event { id payload } } }",
    ),
];

/// A subscribes to every subscription, over a socket whose
/// `connection_init` also names tenant B, on its own project (and
/// unfiltered) and on B's project, persona and never-existing ones; B's data
/// changes, then A's. A's streams carry A's changes and nothing of B's; the
/// streams on B's ids behave exactly like those on missing ids.
async fn subscriptions(m: &mut Matrix, b: &Caller, base: &str) {
    // Replay from A's newest event, so no change is missed while the
    // subscriptions are being set up.
    let cursor = m
        .a
        .ok(
            "mutation($c: ID!) { updatePersonaContext(input: {contextId: $c, statePatch: {}}) { event { cursor } } }",
            json!({ "c": m.a_ids["context"] }),
        )
        .await["updatePersonaContext"]["event"]["cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    let mut ws = support::RawWs::connect(base).await;
    ws.send_json(json!({ "type": "connection_init", "payload": {
        "authToken": token(TENANT_A),
        "tenantId": TENANT_B,
        "tenant_id": TENANT_B,
        "x-tenant-id": TENANT_B,
        "headers": { "x-tenant-id": TENANT_B },
    } }))
    .await;
    loop {
        let msg = ws
            .next_json(Duration::from_secs(20))
            .await
            .expect("connection_ack");
        if msg["type"] == "connection_ack" {
            break;
        }
    }
    let (a_project, b_project) = (m.a_ids["project"].clone(), m.b_ids["project"].clone());
    let missing_project = missing_like(&b_project);
    let (b_persona, missing_persona) = (
        m.b_ids["persona"].clone(),
        missing_like(&m.b_ids["persona"]),
    );
    // (subscription id, field, variables)
    let mut own = Vec::new();
    // (B's subscription id, the missing one's, B's id, the missing id)
    let mut pairs = Vec::new();
    for (field, doc) in SUBSCRIPTIONS {
        let sub = |p: &str, x: Option<&str>| json!({ "p": p, "x": x, "after": cursor });
        ws.subscribe(&format!("{field}-a"), doc, sub(&a_project, None))
            .await;
        own.push(format!("{field}-a"));
        ws.subscribe(&format!("{field}-b"), doc, sub(&b_project, None))
            .await;
        ws.subscribe(&format!("{field}-m"), doc, sub(&missing_project, None))
            .await;
        pairs.push((
            format!("{field}-b"),
            format!("{field}-m"),
            b_project.clone(),
            missing_project.clone(),
        ));
        m.cover("Subscription", field);
    }
    let events = SUBSCRIPTIONS[0].1;
    ws.subscribe("events-all", events, json!({ "after": cursor }))
        .await;
    own.push("events-all".into());
    let agents = SUBSCRIPTIONS[3].1;
    ws.subscribe(
        "agents-xb",
        agents,
        json!({ "p": a_project, "x": b_persona, "after": cursor }),
    )
    .await;
    ws.subscribe(
        "agents-xm",
        agents,
        json!({ "p": a_project, "x": missing_persona, "after": cursor }),
    )
    .await;
    pairs.push((
        "agents-xb".into(),
        "agents-xm".into(),
        b_persona.clone(),
        missing_persona.clone(),
    ));
    ws.assert_alive().await;

    // B's data changes…
    let live_b = format!("{MARK_B} live");
    for (who, ids, mark) in [(b, &m.b_ids, live_b.as_str()), (&m.a, &m.a_ids, LIVE_A)] {
        let t = who
            .create_task_for(&ids["project"], mark, &ids["persona"])
            .await;
        who.start_task(&t).await;
        who.request_hitl(&t, mark).await;
        who.ok(
            "mutation($p: ID!, $t: ID!, $n: String!) { createArtifact(input: {projectId: $p, taskId: $t, kind: LOG, name: $n, content: {mark: $n}}) { artifact { id } } }",
            json!({ "p": ids["project"], "t": t, "n": mark }),
        )
        .await;
        who.ok(
            "mutation($s: ID!, $n: String!) { touchSession(input: {sessionId: $s}) { session { id } } switchPersona(input: {sessionId: $s, personaId: \"pm\", initialState: {mark: $n}}) { context { id } } }",
            json!({ "s": ids["session"], "n": mark }),
        )
        .await;
        who.draft_story(&ids["epic"], mark).await;
        // …and last, the agent status: every stream of A's ends on it.
        who.ok(
            "mutation($p: ID!, $x: ID!, $t: ID!, $n: String!) { updateAgentStatus(input: {personaId: $x, projectId: $p, status: WAITING, currentTaskId: $t, message: $n}) { agentStatus { id } } }",
            json!({ "p": ids["project"], "x": ids["persona"], "t": t, "n": mark }),
        )
        .await;
    }

    // A's streams carry A's changes, and nothing of B's.
    for id in &own {
        let mut seen_live = false;
        loop {
            let data = ws
                .next_data(id, Duration::from_secs(20))
                .await
                .unwrap_or_else(|| panic!("{id}: A's own change never arrived"));
            let text = data.to_string();
            m.assert_clean(id, &text);
            seen_live |= text.contains(LIVE_A);
            let last = match id.split('-').next() {
                Some("events") => seen_live && text.contains("AGENT_STATUS_CHANGED"),
                _ => seen_live,
            };
            if last {
                break;
            }
        }
    }
    // Streams on B's ids behave like streams on missing ids (by now every
    // change has been delivered to A's streams on the same socket).
    for (i, (sb, sm, idb, idm)) in pairs.iter().enumerate() {
        let wait = Duration::from_millis(if i == 0 { 500 } else { 100 });
        let rb = ws.next_for(sb, wait).await.unwrap_or(Value::Null);
        let rm = ws.next_for(sm, wait).await.unwrap_or(Value::Null);
        let text = blank(&rb, idb).replace(sb.as_str(), "<SUB>");
        assert_eq!(
            text,
            blank(&rm, idm).replace(sm.as_str(), "<SUB>"),
            "{sb}: a subscription on B's id behaves differently from one on a missing id"
        );
        m.assert_clean(sb, &text);
        m.compared += 1;
    }
}

/// `tenant_id` smuggled in headers, the request's `extensions` and free-form
/// JSON inputs changes nothing: A reads its own data and writes its own rows
/// (B's rows are compared afterwards).
async fn smuggling(m: &mut Matrix) {
    const READ: &str = "{ projects { totalCount nodes { id name } } sessions { totalCount nodes { id name } } artifacts { totalCount } }";
    let plain = m.a.post(READ, json!({})).await;
    assert!(plain.to_string().contains(MARK_A), "{plain}");
    let headers = [
        ("x-tenant-id", TENANT_B),
        ("tenant-id", TENANT_B),
        ("x-cerebral-tenant", TENANT_B),
    ];
    let smuggled = m.a.post_with(READ, json!({}), &headers).await;
    assert_eq!(plain, smuggled, "a tenant header changed what A reads");
    let body = m
        .a
        .post_body(
            &json!({ "query": READ, "extensions": { "tenantId": TENANT_B, "tenant_id": TENANT_B } }),
            &[],
        )
        .await;
    assert_eq!(plain, body, "a tenant in `extensions` changed what A reads");

    let smuggle = json!({ "tenant_id": TENANT_B, "tenantId": TENANT_B, "mark": "smuggled" });
    let a = m.a_ids.clone();
    let r = m
        .a
        .post_with(
            "mutation($p: ID!, $t: ID!, $c: ID!, $j: JSON!) {
              createArtifact(input: {projectId: $p, kind: LOG, name: \"smuggled\", content: $j}) { artifact { id project { id } } }
              createCheckpoint(input: {taskId: $t, stepId: \"smuggled\", state: $j}) { checkpoint { id task { id } } }
              updatePersonaContext(input: {contextId: $c, statePatch: $j}) { context { id } }
              requestHitl(input: {taskId: $t, question: \"smuggled\", responseSchema: $j}) { hitlRequest { id project { id } } }
            }",
            json!({ "p": a["project"], "t": a["task_next"], "c": a["context"], "j": smuggle }),
            &headers,
        )
        .await;
    // requestHitl may refuse A's pending task; what matters is where the
    // others wrote.
    let d = &r["data"];
    assert_eq!(
        d["createArtifact"]["artifact"]["project"]["id"],
        a["project"].as_str(),
        "{r}"
    );
    assert_eq!(
        d["createCheckpoint"]["checkpoint"]["task"]["id"],
        a["task_next"].as_str(),
        "{r}"
    );
    assert_eq!(
        d["updatePersonaContext"]["context"]["id"],
        a["context"].as_str(),
        "{r}"
    );
    m.assert_clean("smuggled writes", &r.to_string());
    let after = m.a.post(READ, json!({})).await;
    assert_eq!(
        after["data"]["artifacts"]["totalCount"].as_u64(),
        plain["data"]["artifacts"]["totalCount"]
            .as_u64()
            .map(|n| n + 1),
        "the smuggled artifact belongs to A: {after}"
    );
}

async fn timed(c: &Caller, q: &str, v: &Value) -> Duration {
    let t = Instant::now();
    c.post(q, v.clone()).await;
    t.elapsed()
}

/// The median time of `n` runs of each of two requests, interleaved.
async fn medians(
    c: &Caller,
    n: usize,
    first: (&str, Value),
    second: (&str, Value),
) -> (Duration, Duration) {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..n + 2 {
        let (a, b) = if i % 2 == 0 {
            let a = timed(c, first.0, &first.1).await;
            (a, timed(c, second.0, &second.1).await)
        } else {
            let b = timed(c, second.0, &second.1).await;
            (timed(c, first.0, &first.1).await, b)
        };
        // The first two rounds warm caches and connections.
        if i >= 2 {
            x.push(a);
            y.push(b);
        }
    }
    x.sort();
    y.sort();
    (x[n / 2], y[n / 2])
}

/// A lookup of B's id takes as long as one of a missing id: medians of 15
/// within 2× + 25 ms of each other.
async fn timing(m: &Matrix) {
    for (label, q, key) in [
        (
            "project",
            "query($id: ID!) { project(id: $id) { id name } }",
            "project",
        ),
        (
            "node",
            "query($id: ID!) { node(id: $id) { id } }",
            "session",
        ),
        (
            "completeTask",
            "mutation($id: ID!) { completeTask(input: {taskId: $id}) { task { id } } }",
            "task",
        ),
    ] {
        let b = m.b_ids[key].clone();
        let (tb, tm) = medians(
            &m.a,
            15,
            (q, json!({ "id": b })),
            (q, json!({ "id": missing_like(&b) })),
        )
        .await;
        let slack = Duration::from_millis(25);
        eprintln!("timing {label}: B's id {tb:?}, missing id {tm:?}");
        assert!(
            tb <= tm * 2 + slack && tm <= tb * 2 + slack,
            "{label}: B's id answers in {tb:?}, a missing id in {tm:?}: not the same timing class"
        );
    }
}

const INTROSPECT_TYPES: &str = "{ __schema { types { name kind fields { name args { name type { kind } } type { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";

/// The kind and name at the bottom of a (list, non-null) type reference.
fn base_type(t: &Value) -> (&str, &str) {
    let mut t = t;
    while matches!(t["kind"].as_str(), Some("NON_NULL" | "LIST")) {
        t = &t["ofType"];
    }
    (
        t["kind"].as_str().unwrap_or_default(),
        t["name"].as_str().unwrap_or_default(),
    )
}

/// Builds selection sets from introspection: every field of a type, every
/// relation followed until `budget` object levels are used up (connections
/// and edges are free, so `tasks { nodes { … } }` is one level).
struct Walker {
    fields: BTreeMap<String, Vec<Value>>,
}

impl Walker {
    fn selection(&self, ty: &str, budget: usize) -> String {
        let mut out = Vec::new();
        for f in self.fields.get(ty).map(Vec::as_slice).unwrap_or_default() {
            let name = f["name"].as_str().expect("field name");
            let required = f["args"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x["type"]["kind"] == "NON_NULL"));
            if required || name == "edges" {
                // No relation below the root takes a required argument;
                // `edges` repeats `nodes`.
                continue;
            }
            match base_type(&f["type"]) {
                ("SCALAR" | "ENUM", _) => out.push(name.to_string()),
                ("INTERFACE", _) => out.push(format!("{name} {{ id __typename }}")),
                ("OBJECT", inner) => {
                    let free = inner.ends_with("Connection") || inner.ends_with("Edge");
                    let cost = usize::from(!free);
                    if budget < cost {
                        continue;
                    }
                    let sel = self.selection(inner, budget - cost);
                    // Short pages: every type is also walked from `node`.
                    let page = f["args"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x["name"] == "first"));
                    let args = if page { "(first: 5)" } else { "" };
                    if !sel.is_empty() {
                        out.push(format!("{name}{args} {{ {sel} }}"));
                    }
                }
                _ => {}
            }
        }
        out.join(" ")
    }
}

/// Every relation of every object reachable from A's own, one hop,
/// generated from the schema so a new relation is walked without editing
/// this test: every root read with A's own ids, and `node` on each of A's
/// ids. Nothing of B's may appear.
async fn walk_relations(m: &Matrix) {
    let started = Instant::now();
    let mut bytes = 0;
    let schema = m.a.ok(INTROSPECT_TYPES, json!({})).await;
    let mut walker = Walker {
        fields: BTreeMap::new(),
    };
    for t in schema["__schema"]["types"].as_array().expect("types") {
        if let (Some(name), Some(fields)) = (t["name"].as_str(), t["fields"].as_array()) {
            walker.fields.insert(name.to_string(), fields.clone());
        }
    }
    let a = &m.a_ids;
    // Root arguments: A's own ids.
    let arg = |field: &str, arg: &str| -> Option<Value> {
        let key = match (field, arg) {
            (_, "projectId") | ("project", "id") => "project",
            ("task", "id") => "task",
            ("hitlRequest", "id") => "hitl",
            ("session", "id") => "session",
            ("persona", "id") => "persona",
            ("workflow", "id") => "workflow",
            ("epic", "id") => "epic",
            ("story", "id") => "story",
            ("checkpointDiff", "from") => "checkpoint",
            ("checkpointDiff", "to") => "checkpoint2",
            _ => return None,
        };
        Some(json!(a[key]))
    };
    let mut shown_a = 0;
    let mut walked = 0;
    // (label, document, variables, the id `node` must return)
    let mut reads = Vec::new();
    for f in walker.fields["Query"].clone() {
        let field = f["name"].as_str().expect("name");
        if field == "node" {
            continue;
        }
        let mut args = Vec::new();
        let mut skip = false;
        for x in f["args"].as_array().expect("args") {
            let name = x["name"].as_str().expect("arg");
            match arg(field, name) {
                Some(v) => args.push(format!("{name}: {v}")),
                None if x["type"]["kind"] == "NON_NULL" => skip = true,
                None => {}
            }
        }
        assert!(
            !skip,
            "Query.{field}: no id of A's for its required arguments"
        );
        let args = if args.is_empty() {
            String::new()
        } else {
            format!("({})", args.join(", "))
        };
        let (kind, ty) = base_type(&f["type"]);
        let sel = match kind {
            "OBJECT" => format!("{{ {} }}", walker.selection(ty, 2)),
            "INTERFACE" => "{ id }".to_string(),
            _ => String::new(),
        };
        reads.push((
            format!("Query.{field}"),
            format!("{{ {field}{args} {sel} }}"),
            json!({}),
            None,
        ));
    }
    for id in a.values() {
        let ty = id.split_once(':').expect("global id").0;
        let q = format!(
            "query($id: ID!) {{ node(id: $id) {{ ... on {ty} {{ {} }} }} }}",
            // The object itself is the first level here.
            walker.selection(ty, 1)
        );
        reads.push((format!("node({id})"), q, json!({ "id": id }), Some(id)));
    }
    // A few at a time: each read waits mostly on its loaders' round trips.
    use futures::StreamExt;
    let answers: Vec<Value> = futures::stream::iter(reads.iter())
        .map(|(_, q, v, _)| m.a.post(q, v.clone()))
        .buffered(4)
        .collect()
        .await;
    for ((label, _, _, id), r) in reads.iter().zip(&answers) {
        assert!(r.get("errors").is_none(), "{label} over A's own data: {r}");
        if let Some(id) = id {
            assert_eq!(r["data"]["node"]["id"], id.as_str(), "{r}");
        }
        let text = r.to_string();
        bytes += text.len();
        m.assert_clean(&format!("relations from {label}"), &text);
        shown_a += usize::from(text.contains(MARK_A));
        walked += 1;
    }
    assert!(
        shown_a >= 10,
        "the walk saw too little of A's data ({shown_a})"
    );
    eprintln!(
        "relation walk: {walked} reads, {shown_a} with A's data, {bytes} bytes, {:?}",
        started.elapsed()
    );
}
