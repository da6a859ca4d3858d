//! Typed setup steps: the GraphQL mutations many tests run before what they
//! check, written once. Each runs over HTTP like any other request, panics
//! on errors (as [`Caller::ok`]) and returns the new object's global id as
//! a JSON string, ready for `json!` variables and for comparing with
//! answers. Ids are taken as anything serializable (a `Value` or a `&str`).
//!
//! A test that is about one of these mutations (its answer, its refusals)
//! keeps its own query; these are for the steps before it.

use serde::Serialize;
use serde_json::{Value, json};

use super::Caller;

impl Caller {
    /// Runs `mutation` and returns the id of the object it made, found at
    /// `data.{root}.{object}.id`.
    async fn new_id(&self, mutation: &str, variables: Value, [root, object]: [&str; 2]) -> Value {
        self.ok(mutation, variables).await[root][object]["id"].clone()
    }

    /// Creates a project named `name` (no workflow) and returns its id.
    pub async fn create_project(&self, name: &str) -> Value {
        self.new_id(
            "mutation($n: String!) { createProject(input: {name: $n}) { project { id } } }",
            json!({ "n": name }),
            ["createProject", "project"],
        )
        .await
    }

    /// Creates a project named `name` from `workflow` (its tasks created
    /// with it) and returns its id.
    pub async fn create_project_from(&self, name: &str, workflow: &str) -> Value {
        self.new_id(
            "mutation($n: String!, $w: ID!) { createProject(input: {name: $n, workflowId: $w}) { project { id } } }",
            json!({ "n": name, "w": workflow }),
            ["createProject", "project"],
        )
        .await
    }

    /// Creates a task titled `title` in `project` and returns its id.
    pub async fn create_task(&self, project: impl Serialize, title: &str) -> Value {
        self.new_id(
            "mutation($p: ID!, $n: String!) { createTask(input: {projectId: $p, title: $n}) { task { id } } }",
            json!({ "p": project, "n": title }),
            ["createTask", "task"],
        )
        .await
    }

    /// Creates a task titled `title` for `persona` in `project` and returns
    /// its id.
    pub async fn create_task_for(
        &self,
        project: impl Serialize,
        title: &str,
        persona: &str,
    ) -> Value {
        self.new_id(
            "mutation($p: ID!, $n: String!, $per: ID!) { createTask(input: {projectId: $p, title: $n, personaId: $per}) { task { id } } }",
            json!({ "p": project, "n": title, "per": persona }),
            ["createTask", "task"],
        )
        .await
    }

    /// Starts `task` (READY or QUEUED to WORKING).
    pub async fn start_task(&self, task: impl Serialize) {
        self.ok(
            "mutation($t: ID!) { startTask(input: {taskId: $t}) { task { id } } }",
            json!({ "t": task }),
        )
        .await;
    }

    /// A task titled "t" in `project`, started: its id, WORKING.
    pub async fn working_task(&self, project: impl Serialize) -> Value {
        let task = self.create_task(project, "t").await;
        self.start_task(&task).await;
        task
    }

    /// Completes `task` (without output).
    pub async fn complete_task(&self, task: impl Serialize) {
        self.ok(
            "mutation($t: ID!) { completeTask(input: {taskId: $t}) { task { id } } }",
            json!({ "t": task }),
        )
        .await;
    }

    /// Fails `task` with `error`.
    pub async fn fail_task(&self, task: impl Serialize, error: &str) {
        self.ok(
            "mutation($t: ID!, $e: String!) { failTask(input: {taskId: $t, error: $e}) { task { id } } }",
            json!({ "t": task, "e": error }),
        )
        .await;
    }

    /// Asks a person `question` about the WORKING `task` and returns the
    /// request's id.
    pub async fn request_hitl(&self, task: impl Serialize, question: &str) -> Value {
        self.new_id(
            "mutation($t: ID!, $q: String!) { requestHitl(input: {taskId: $t, question: $q}) { hitlRequest { id } } }",
            json!({ "t": task, "q": question }),
            ["requestHitl", "hitlRequest"],
        )
        .await
    }

    /// Answers `request` with APPROVE.
    pub async fn approve_hitl(&self, request: impl Serialize) {
        self.ok(
            "mutation($r: ID!) { resolveHitlRequest(input: {requestId: $r, decision: APPROVE}) { hitlRequest { id } } }",
            json!({ "r": request }),
        )
        .await;
    }

    /// Starts a session of the caller and returns its id.
    pub async fn start_session(&self) -> Value {
        self.new_id(
            "mutation { startSession { session { id } } }",
            json!({}),
            ["startSession", "session"],
        )
        .await
    }

    /// Switches `session` to `persona` and returns the new persona
    /// context's id.
    pub async fn switch_persona(&self, session: impl Serialize, persona: &str) -> Value {
        self.new_id(
            "mutation($s: ID!, $per: ID!) { switchPersona(input: {sessionId: $s, personaId: $per}) { context { id } } }",
            json!({ "s": session, "per": persona }),
            ["switchPersona", "context"],
        )
        .await
    }

    /// A tenant's world, a row in nearly every tenant table: a project
    /// named `name` from greenfield-service, its first task started and
    /// asked a question ("q"), an artifact ("brief") and a checkpoint of that
    /// task, the analyst's agent status, and a session with the pm's persona
    /// context. Returns the ids by name: `project`, `event` (its
    /// PROJECT_CREATED), `task`, `hitl`, `artifact`, `checkpoint`, `agent`,
    /// `session`, `context`.
    pub async fn seed(&self, name: &str) -> Value {
        let d = self
            .ok(
                "mutation($n: String!) { createProject(input: {name: $n, workflowId: \"greenfield-service\"}) { project { id tasks(first: 1) { nodes { id } } } event { id } } }",
                json!({ "n": name }),
            )
            .await;
        let (project, task) = (
            &d["createProject"]["project"]["id"],
            &d["createProject"]["project"]["tasks"]["nodes"][0]["id"],
        );
        self.start_task(task).await;
        let hitl = self.request_hitl(task, "q").await;
        let artifact = self
            .new_id(
                "mutation($p: ID!, $t: ID!) { createArtifact(input: {projectId: $p, taskId: $t, kind: SPEC, name: \"brief\", content: {}}) { artifact { id } } }",
                json!({ "p": project, "t": task }),
                ["createArtifact", "artifact"],
            )
            .await;
        let checkpoint = self
            .new_id(
                "mutation($t: ID!) { createCheckpoint(input: {taskId: $t, stepId: \"s\", state: {}}) { checkpoint { id } } }",
                json!({ "t": task }),
                ["createCheckpoint", "checkpoint"],
            )
            .await;
        let agent = self
            .new_id(
                "mutation($p: ID!) { updateAgentStatus(input: {personaId: \"analyst\", projectId: $p, status: WORKING}) { agentStatus { id } } }",
                json!({ "p": project }),
                ["updateAgentStatus", "agentStatus"],
            )
            .await;
        let session = self.start_session().await;
        let context = self.switch_persona(&session, "pm").await;
        json!({
            "project": project, "event": d["createProject"]["event"]["id"], "task": task,
            "hitl": hitl, "artifact": artifact, "checkpoint": checkpoint, "agent": agent,
            "session": session, "context": context,
        })
    }

    /// How many events of the log match `filter` (an `EventQueryFilter`:
    /// `projectId`, `taskId`, `types`, …).
    pub async fn event_count(&self, filter: Value) -> i64 {
        self.ok(
            "query($f: EventQueryFilter) { events(first: 0, filter: $f) { totalCount } }",
            json!({ "f": filter }),
        )
        .await["events"]["totalCount"]
            .as_i64()
            .expect("a count")
    }

    /// The `totalCount` of the one root field `query` selects.
    pub async fn total_count(&self, query: &str) -> i64 {
        let data = self.ok(query, json!({})).await;
        data.as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v["totalCount"].as_i64())
            .unwrap_or_else(|| panic!("no totalCount in {data}"))
    }
}
