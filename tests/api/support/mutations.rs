//! The schema's mutations as tables of tests that run every one of them
//! (`roles`, `tenancy_matrix`): their names, how each is called, and the
//! plain input of those that act on one existing object. Each test checks
//! against introspection that it covered the schema, so a new mutation
//! fails them until it is added here.

use serde_json::{Value, json};

/// Every mutation of the schema, in the schema's order.
pub const MUTATIONS: &[&str] = &[
    "createProject",
    "completeProject",
    "forceCompleteProject",
    "failProject",
    "cancelProject",
    "createTask",
    "startTask",
    "reportTaskProgress",
    "completeTask",
    "failTask",
    "cancelTask",
    "retryTask",
    "requestHitl",
    "resolveHitlRequest",
    "resolveHitlRequests",
    "createCheckpoint",
    "forkFromCheckpoint",
    "updateCheckpointStatus",
    "completeCheckpoint",
    "failCheckpoint",
    "revertToCheckpoint",
    "pinCheckpoint",
    "createArtifact",
    "heartbeat",
    "resetAgentStatus",
    "updateAgentStatus",
    "startSession",
    "touchSession",
    "cleanupExpiredSessions",
    "exportPersonaContext",
    "importPersonaContext",
    "suspendSession",
    "resumeSession",
    "terminateSession",
    "switchPersona",
    "updatePersonaContext",
    "appendPersonaContextHistory",
    "importCatalog",
    "createEpic",
    "draftStory",
    "approveStory",
    "startStory",
    "submitStoryForReview",
    "reopenStory",
    "completeStory",
    "recordQaGate",
];

/// The input type of mutation `field`: `FieldInput` with the first letter
/// capitalised, but for the transitions that share one, `heartbeat`'s, and
/// none (`""`) for `cleanupExpiredSessions`, which takes no input.
pub fn input_type(field: &str) -> String {
    let shared = match field {
        "cleanupExpiredSessions" => "",
        "heartbeat" => "AgentInput",
        "completeProject" | "forceCompleteProject" | "failProject" | "cancelProject" => {
            "ProjectTransitionInput"
        }
        "completeCheckpoint" | "failCheckpoint" => "CheckpointTransitionInput",
        "suspendSession" | "resumeSession" | "terminateSession" => "SessionTransitionInput",
        "approveStory"
        | "startStory"
        | "submitStoryForReview"
        | "reopenStory"
        | "completeStory" => "StoryTransitionInput",
        _ => return field[..1].to_uppercase() + &field[1..] + "Input",
    };
    shared.to_string()
}

/// The document that runs mutation `field` on the variable `$input` and
/// selects `selection` (with its braces) from the answer.
pub fn document(field: &str, selection: &str) -> String {
    match input_type(field).as_str() {
        "" => format!("mutation {{ {field} {selection} }}"),
        t => format!("mutation($input: {t}!) {{ {field}(input: $input) {selection} }}"),
    }
}

/// The input of `field` when it acts on one existing object and needs
/// nothing else of the caller's choosing: that object's id (from `id`, by
/// the names [`super::Caller::seed`] uses: `project`, `task`, `hitl`,
/// `checkpoint`, `session`, `context`, `epic`, `story`) and the fewest other fields of the
/// right shape. `None` for the mutations whose input each test chooses.
pub fn plain_input(field: &str, id: impl Fn(&str) -> Value) -> Option<Value> {
    let (t, h, c, x) = (id("task"), id("hitl"), id("checkpoint"), id("context"));
    Some(match field {
        "completeProject" | "forceCompleteProject" | "failProject" | "cancelProject" => {
            json!({"projectId": id("project")})
        }
        "completeTask" | "cancelTask" => json!({"taskId": t}),
        "reportTaskProgress" => json!({"taskId": t, "progress": 5}),
        "failTask" => json!({"taskId": t, "error": "e"}),
        "requestHitl" => json!({"taskId": t, "question": "q"}),
        "resolveHitlRequest" => json!({"requestId": h, "decision": "APPROVE"}),
        "resolveHitlRequests" => json!({"items": [{"requestId": h, "decision": "APPROVE"}]}),
        "createCheckpoint" => json!({"taskId": t, "stepId": "s", "state": {}}),
        "forkFromCheckpoint" | "completeCheckpoint" | "failCheckpoint" | "revertToCheckpoint" => {
            json!({"checkpointId": c})
        }
        "updateCheckpointStatus" => json!({"checkpointId": c, "status": "COMPLETED"}),
        "pinCheckpoint" => json!({"checkpointId": c, "pinned": true}),
        "touchSession" | "suspendSession" | "resumeSession" | "terminateSession" => {
            json!({"sessionId": id("session")})
        }
        "exportPersonaContext" => json!({"contextId": x}),
        "updatePersonaContext" => json!({"contextId": x, "statePatch": {}}),
        "appendPersonaContextHistory" => json!({"contextId": x, "entry": {}}),
        "createEpic" => json!({"projectId": id("project"), "title": "e"}),
        "draftStory" => json!({
            "epicId": id("epic"), "title": "s", "role": "r", "action": "a", "benefit": "b",
            "acceptanceCriteria": ["c"],
        }),
        "approveStory"
        | "startStory"
        | "submitStoryForReview"
        | "reopenStory"
        | "completeStory" => json!({"storyId": id("story")}),
        "recordQaGate" => json!({
            "storyId": id("story"), "decision": "PASS", "statusReason": "ok", "reviewer": "qa",
        }),
        _ => return None,
    })
}
