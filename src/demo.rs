//! `cerebral demo`: plays an agent team running a workflow against a server,
//! over plain GraphQL over HTTP, the way real agents would.
//!
//! Each ready task (dependencies completed or skipped) is taken by its
//! persona's agent: status WORKING, task started, progress reported, one
//! artifact per file the step creates, a checkpoint, a HITL approval at
//! gated steps (answered by the demo playing the human), task completed,
//! status IDLE. Optional and conditional steps are skipped (cancelled).

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// What a demo run did.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSummary {
    /// Global id of the project.
    pub project_id: String,
    /// Completion at the end, in percent.
    pub percentage: f64,
    /// Tasks completed.
    pub completed: usize,
    /// Tasks skipped (cancelled).
    pub skipped: usize,
    /// Artifacts stored.
    pub artifacts: usize,
    /// Checkpoints written.
    pub checkpoints: usize,
    /// HITL requests approved.
    pub approvals: usize,
}

/// A minimal GraphQL over HTTP client.
pub struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    /// A client of the endpoint at `url`.
    pub fn new(url: &str) -> anyhow::Result<Self> {
        Ok(Client {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            url: url.to_string(),
        })
    }

    /// Runs one operation and returns `data`, failing on any GraphQL error.
    pub async fn run(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let resp: Value = self
            .http
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?
            .json()
            .await
            .context("the server did not answer with JSON")?;
        if let Some(errors) = resp
            .get("errors")
            .filter(|e| e.as_array().is_some_and(|a| !a.is_empty()))
        {
            bail!("GraphQL error: {errors}");
        }
        Ok(resp.get("data").cloned().unwrap_or(Value::Null))
    }
}

const CREATE_PROJECT: &str = "mutation($input: CreateProjectInput!) { createProject(input: $input) { project { id name } event { cursor } } }";
const TASKS: &str = "query($id: ID!) { project(id: $id) { tasks(first: 100) { nodes { id title status required position persona { key name } workflowStep { key action creates requiresApproval } dependencies { id status } } } } }";
const AGENT: &str = "mutation($input: UpdateAgentStatusInput!) { updateAgentStatus(input: $input) { agentStatus { status } } }";
const START: &str =
    "mutation($input: StartTaskInput!) { startTask(input: $input) { task { status } } }";
const PROGRESS: &str = "mutation($input: ReportTaskProgressInput!) { reportTaskProgress(input: $input) { task { progress } } }";
const ARTIFACT: &str = "mutation($input: CreateArtifactInput!) { createArtifact(input: $input) { artifact { id name version } } }";
const CHECKPOINT: &str = "mutation($input: CreateCheckpointInput!) { createCheckpoint(input: $input) { checkpoint { id version } } }";
const REQUEST_HITL: &str = "mutation($input: RequestHitlInput!) { requestHitl(input: $input) { hitlRequest { id } task { status } } }";
const RESOLVE_HITL: &str = "mutation($input: ResolveHitlRequestInput!) { resolveHitlRequest(input: $input) { hitlRequest { status } task { status } } }";
const COMPLETE: &str =
    "mutation($input: CompleteTaskInput!) { completeTask(input: $input) { task { status } } }";
const CANCEL: &str =
    "mutation($input: CancelTaskInput!) { cancelTask(input: $input) { task { status } } }";
const COMPLETE_PROJECT: &str = "mutation($input: ProjectTransitionInput!) { completeProject(input: $input) { project { status } } }";
const PROJECT: &str = "query($id: ID!) { project(id: $id) { status completion { totalTasks completedTasks cancelledTasks percentage } } }";

/// A demo whose project exists and whose team has not started yet, so a
/// watcher can subscribe from the project's first event before play.
pub struct Demo {
    client: Client,
    /// Global id of the project.
    pub project_id: String,
    /// Cursor of the `PROJECT_CREATED` event.
    pub created_cursor: String,
}

/// Runs the demo against the server at `url`, reporting each step to `out`.
pub async fn run(
    url: &str,
    workflow: &str,
    mut out: impl FnMut(String),
) -> anyhow::Result<DemoSummary> {
    Demo::start(url, workflow, &mut out)
        .await?
        .play(&mut out)
        .await
}

impl Demo {
    /// Creates the project from `workflow`.
    pub async fn start(
        url: &str,
        workflow: &str,
        out: &mut impl FnMut(String),
    ) -> anyhow::Result<Demo> {
        let client = Client::new(url)?;
        let data = client
            .run(
                CREATE_PROJECT,
                json!({ "input": {
                    "name": format!("Demo: {workflow}"),
                    "productIdea": "A small REST service that tracks book loans for a community library.",
                    "workflowId": workflow,
                }}),
            )
            .await?;
        let project_id = str_at(&data, "/createProject/project/id")?;
        let created_cursor = str_at(&data, "/createProject/event/cursor")?;
        out(format!(
            "📁 project {project_id} created from workflow '{workflow}'"
        ));
        Ok(Demo {
            client,
            project_id,
            created_cursor,
        })
    }

    /// Plays every task to the end and completes the project.
    pub async fn play(self, mut out: impl FnMut(String)) -> anyhow::Result<DemoSummary> {
        let c = self.client;
        let project_id = self.project_id;
        let mut s = DemoSummary {
            project_id: project_id.clone(),
            percentage: 0.0,
            completed: 0,
            skipped: 0,
            artifacts: 0,
            checkpoints: 0,
            approvals: 0,
        };
        loop {
            let data = c.run(TASKS, json!({ "id": project_id })).await?;
            let tasks = data
                .pointer("/project/tasks/nodes")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let ready = tasks.iter().find(|t| {
                t["status"] == "PENDING"
                    && t["dependencies"].as_array().is_some_and(|d| {
                        d.iter()
                            .all(|d| d["status"] == "COMPLETED" || d["status"] == "CANCELLED")
                    })
            });
            let Some(task) = ready else {
                if tasks.iter().any(|t| t["status"] == "PENDING") {
                    bail!("tasks are pending but none is ready: the dependency graph is stuck");
                }
                break;
            };
            let task_id = str_at(task, "/id")?;
            let title = task["title"].as_str().unwrap_or_default().to_string();
            if task["required"] != true {
                c.run(CANCEL, json!({ "input": { "taskId": task_id, "reason": "skipped: optional or conditional step not needed in this run" } }))
                .await?;
                out(format!("⏭  skipped  {title}"));
                s.skipped += 1;
                continue;
            }
            play_task(&c, &project_id, task, &mut s, &mut out).await?;
        }
        // A workflow project completes by itself when its last required
        // task does; complete it here only if it did not.
        let status = c.run(PROJECT, json!({ "id": project_id })).await?;
        if status.pointer("/project/status") == Some(&json!("ACTIVE")) {
            c.run(
                COMPLETE_PROJECT,
                json!({ "input": { "projectId": project_id } }),
            )
            .await?;
        } else {
            out("🎉 the last required task completed the project".to_string());
        }
        let data = c.run(PROJECT, json!({ "id": project_id })).await?;
        let completion = data
            .pointer("/project/completion")
            .cloned()
            .unwrap_or(Value::Null);
        s.percentage = completion["percentage"].as_f64().unwrap_or(0.0);
        out(format!(
            "🏁 project completed: {} of {} tasks done, {} skipped, {}%",
            completion["completedTasks"],
            completion["totalTasks"],
            completion["cancelledTasks"],
            s.percentage
        ));
        Ok(s)
    }
}

async fn play_task(
    c: &Client,
    project_id: &str,
    task: &Value,
    s: &mut DemoSummary,
    out: &mut impl FnMut(String),
) -> anyhow::Result<()> {
    let task_id = str_at(task, "/id")?;
    let title = task["title"].as_str().unwrap_or_default();
    let persona = task
        .pointer("/persona/key")
        .and_then(Value::as_str)
        .map(str::to_string);
    let who = task
        .pointer("/persona/name")
        .and_then(Value::as_str)
        .unwrap_or("the team")
        .to_string();
    let step_key = task
        .pointer("/workflowStep/key")
        .and_then(Value::as_str)
        .unwrap_or("step")
        .to_string();
    let creates: Vec<String> = task
        .pointer("/workflowStep/creates")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let gated = task.pointer("/workflowStep/requiresApproval") == Some(&Value::Bool(true));

    if let Some(p) = &persona {
        c.run(AGENT, json!({ "input": { "personaId": p, "projectId": project_id, "status": "WORKING", "currentTaskId": task_id, "message": title } }))
            .await?;
    }
    c.run(
        START,
        json!({ "input": { "taskId": task_id, "message": format!("{who} is on it") } }),
    )
    .await?;
    out(format!("▶  {who:<8} started  {title}"));
    c.run(PROGRESS, json!({ "input": { "taskId": task_id, "progress": 50, "stage": "drafting", "message": "first draft ready" } }))
        .await?;
    let mut names = vec![];
    for name in &creates {
        let data = c
            .run(
                ARTIFACT,
                json!({ "input": { "projectId": project_id, "taskId": task_id, "kind": artifact_kind(name), "name": name,
                    "content": { "title": name, "author": who, "body": format!("Demo content of {name}.") } } }),
            )
            .await?;
        names.push(str_at(&data, "/createArtifact/artifact/name")?);
        s.artifacts += 1;
        out(format!("📄 {who:<8} produced {name}"));
    }
    c.run(
        CHECKPOINT,
        json!({ "input": { "taskId": task_id, "stepId": step_key, "state": { "artifacts": names, "progress": 90 }, "expectedVersion": 0, "status": "COMPLETED" } }),
    )
    .await?;
    s.checkpoints += 1;
    if gated {
        if let Some(p) = &persona {
            c.run(AGENT, json!({ "input": { "personaId": p, "projectId": project_id, "status": "WAITING", "currentTaskId": task_id, "message": "waiting for approval" } }))
                .await?;
        }
        let data = c
            .run(
                REQUEST_HITL,
                json!({ "input": { "taskId": task_id, "question": format!("Approve the outcome of '{title}'?"), "options": ["approve", "amend", "reject"] } }),
            )
            .await?;
        let req = str_at(&data, "/requestHitl/hitlRequest/id")?;
        out(format!("✋ {who:<8} asks a human to approve {title}"));
        c.run(RESOLVE_HITL, json!({ "input": { "requestId": req, "decision": "APPROVE", "response": "Looks consistent; go ahead." } }))
            .await?;
        s.approvals += 1;
        out("✅ human   approved".to_string());
    }
    c.run(
        COMPLETE,
        json!({ "input": { "taskId": task_id, "output": { "artifacts": names } } }),
    )
    .await?;
    if let Some(p) = &persona {
        c.run(AGENT, json!({ "input": { "personaId": p, "projectId": project_id, "status": "IDLE", "message": "done" } }))
            .await?;
    }
    s.completed += 1;
    out(format!("✔  {who:<8} completed {title}"));
    Ok(())
}

/// The artifact kind a file name suggests.
pub fn artifact_kind(name: &str) -> &'static str {
    let n = name.to_lowercase();
    if n.contains("brief") || n.contains("spec") {
        "SPEC"
    } else if n.contains("prd") || n.contains("plan") {
        "PLAN"
    } else if n.contains("architecture") {
        "ARCHITECTURE"
    } else if n.contains("story") {
        "STORY"
    } else if n.contains("implementation") || n.contains("code") {
        "CODE"
    } else if n.contains("test") {
        "TEST"
    } else {
        "DOCUMENT"
    }
}

fn str_at(v: &Value, ptr: &str) -> anyhow::Result<String> {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("missing {ptr} in {v}"))
}
