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
    /// Runs mutation `field` with `input` (a JSON object of its input type)
    /// and returns the id of `object` in its answer.
    async fn made(&self, field: &str, object: &str, input: Value) -> Value {
        let mutation = super::mutations::document(field, &format!("{{ {object} {{ id }} }}"));
        self.ok(&mutation, json!({ "input": input })).await[field][object]["id"].clone()
    }

    /// Creates a project named `name` (no workflow) and returns its id.
    pub async fn create_project(&self, name: &str) -> Value {
        self.made("createProject", "project", json!({ "name": name }))
            .await
    }

    /// Creates a project named `name` from `workflow` (its tasks created
    /// with it) and returns its id.
    pub async fn create_project_from(&self, name: &str, workflow: &str) -> Value {
        let input = json!({ "name": name, "workflowId": workflow });
        self.made("createProject", "project", input).await
    }

    /// Creates a task titled `title` in `project` and returns its id.
    pub async fn create_task(&self, project: impl Serialize, title: &str) -> Value {
        let input = json!({ "projectId": project, "title": title });
        self.made("createTask", "task", input).await
    }

    /// Creates a task titled `title` for `persona` in `project` and returns
    /// its id.
    pub async fn create_task_for(
        &self,
        project: impl Serialize,
        title: &str,
        persona: impl Serialize,
    ) -> Value {
        let input = json!({ "projectId": project, "title": title, "personaId": persona });
        self.made("createTask", "task", input).await
    }

    /// Creates an epic titled `title` in `project` and returns its id.
    pub async fn create_epic(&self, project: impl Serialize, title: &str) -> Value {
        let input = json!({ "projectId": project, "title": title });
        self.made("createEpic", "epic", input).await
    }

    /// Drafts a story titled `title` with one acceptance criterion in
    /// `epic` and returns its id (DRAFT).
    pub async fn draft_story(&self, epic: impl Serialize, title: &str) -> Value {
        let input = json!({
            "epicId": epic, "title": title, "role": "user", "action": "to act",
            "benefit": "it helps", "acceptanceCriteria": ["it works"],
        });
        self.made("draftStory", "story", input).await
    }

    /// Starts `task` (PENDING to WORKING).
    pub async fn start_task(&self, task: impl Serialize) {
        self.made("startTask", "task", json!({ "taskId": task }))
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
        self.made("completeTask", "task", json!({ "taskId": task }))
            .await;
    }

    /// Fails `task` with `error`.
    pub async fn fail_task(&self, task: impl Serialize, error: &str) {
        let input = json!({ "taskId": task, "error": error });
        self.made("failTask", "task", input).await;
    }

    /// Asks a person `question` about the WORKING `task` and returns the
    /// request's id.
    pub async fn request_hitl(&self, task: impl Serialize, question: &str) -> Value {
        let input = json!({ "taskId": task, "question": question });
        self.made("requestHitl", "hitlRequest", input).await
    }

    /// Answers `request` with APPROVE.
    pub async fn approve_hitl(&self, request: impl Serialize) {
        let input = json!({ "requestId": request, "decision": "APPROVE" });
        self.made("resolveHitlRequest", "hitlRequest", input).await;
    }

    /// Starts a session of the caller and returns its id.
    pub async fn start_session(&self) -> Value {
        self.made("startSession", "session", json!({})).await
    }

    /// Switches `session` to `persona` and returns the new persona
    /// context's id.
    pub async fn switch_persona(&self, session: impl Serialize, persona: &str) -> Value {
        let input = json!({ "sessionId": session, "personaId": persona });
        self.made("switchPersona", "context", input).await
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
        let artifact = json!({ "projectId": project, "taskId": task, "kind": "SPEC", "name": "brief", "content": {} });
        let artifact = self.made("createArtifact", "artifact", artifact).await;
        let checkpoint = json!({ "taskId": task, "stepId": "s", "state": {} });
        let checkpoint = self
            .made("createCheckpoint", "checkpoint", checkpoint)
            .await;
        let agent = json!({ "personaId": "analyst", "projectId": project, "status": "WORKING" });
        let agent = self.made("updateAgentStatus", "agentStatus", agent).await;
        let session = self.start_session().await;
        let context = self.switch_persona(&session, "pm").await;
        let epic = self.create_epic(project, "epic").await;
        let story = self.draft_story(&epic, "story").await;
        json!({
            "project": project, "event": d["createProject"]["event"]["id"], "task": task,
            "hitl": hitl, "artifact": artifact, "checkpoint": checkpoint, "agent": agent,
            "session": session, "context": context, "epic": epic, "story": story,
        })
    }

    /// Runs each of `documents` with the same `variables`, in order,
    /// panicking on errors (as [`Caller::ok`]).
    pub async fn ok_each(&self, documents: &[&str], variables: Value) {
        for d in documents {
            self.ok(d, variables.clone()).await;
        }
    }

    /// Runs `document` (a mutation with one root field that answers with
    /// one object, e.g. `createTask { task { id } }`) and returns that
    /// object's id.
    pub async fn new_id(&self, document: &str, variables: Value) -> Value {
        let data = self.ok(document, variables).await;
        let first = |v: &Value| v.as_object().and_then(|o| o.values().next()).cloned();
        first(&data)
            .and_then(|answer| first(&answer))
            .map(|object| object["id"].clone())
            .filter(Value::is_string)
            .unwrap_or_else(|| panic!("no new id in {data}"))
    }

    /// Every event of the log after cursor `after` (from the first when
    /// null), oldest first, read 100 a page: each node with `selection`.
    pub async fn events_after(&self, after: Value, selection: &str) -> Vec<Value> {
        let page = format!(
            "query($a: String) {{ events(first: 100, after: $a) {{ pageInfo {{ hasNextPage endCursor }} nodes {{ {selection} }} }} }}"
        );
        let (mut out, mut after) = (vec![], after);
        loop {
            let d = self.ok(&page, json!({ "a": after })).await;
            out.extend(d["events"]["nodes"].as_array().cloned().expect("nodes"));
            if d["events"]["pageInfo"]["hasNextPage"] != true {
                return out;
            }
            after = d["events"]["pageInfo"]["endCursor"].clone();
        }
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
