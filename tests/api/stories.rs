//! Epics and stories over HTTP: a story's development cycle, its epic
//! carried along, the refusals (out of order, past the bounds) that change
//! nothing, and idempotent repeats.

use serde_json::{Value, json};

use crate::support;

const STORY: &str = "query($s: ID!) { story(id: $s) { number title role action benefit status allowedTransitions version acceptanceCriteria { number text } tasks { description done acceptanceCriteria subtasks { description done } } changeLog { version description author } epic { number status } } }";

async fn story(app: &support::TestApp, s: &Value) -> Value {
    app.ok(STORY, json!({ "s": s })).await["story"].clone()
}

fn verb(v: &str) -> String {
    format!(
        "mutation($s: ID!, $n: String) {{ {v}(input: {{storyId: $s, note: $n}}) {{ story {{ status version }} event {{ type }} }} }}"
    )
}

#[tokio::test]
async fn a_story_moves_through_its_cycle_and_carries_its_epic() {
    let app = support::spawn().await;
    let p = app.create_project("cycle").await;
    let e = app
        .ok(
            "mutation($p: ID!) { createEpic(input: {projectId: $p, title: \" Accounts \", goal: \"sign in\"}) { epic { id number title goal status } event { type } } }",
            json!({ "p": p }),
        )
        .await["createEpic"]
        .clone();
    assert_eq!(e["epic"]["number"], 1);
    assert_eq!(e["epic"]["title"], "Accounts", "trimmed");
    assert_eq!(e["epic"]["status"], "PLANNED");
    assert_eq!(e["event"]["type"], "EPIC_CREATED");
    let epic = e["epic"]["id"].clone();
    let second = app.draft_story(&epic, "first").await;
    assert_eq!(story(&app, &second).await["number"], "1.1");
    let drafted = app
        .ok(
            "mutation($e: ID!) { draftStory(input: {epicId: $e, title: \"Sign in\", role: \"returning user\", action: \"to sign in\", benefit: \"my work is kept\", acceptanceCriteria: [\"a form\", \"an error on a bad password\"], tasks: [{description: \"form\", acceptanceCriteria: [1], subtasks: [\"fields\", \"button\"]}, {description: \"errors\", acceptanceCriteria: [2]}], points: 3}) { story { id number status } event { type } } }",
            json!({ "e": epic }),
        )
        .await["draftStory"]
        .clone();
    assert_eq!(drafted["story"]["number"], "1.2");
    assert_eq!(drafted["story"]["status"], "DRAFT");
    assert_eq!(drafted["event"]["type"], "STORY_DRAFTED");
    let s = drafted["story"]["id"].clone();
    let read = story(&app, &s).await;
    assert_eq!(
        read["acceptanceCriteria"][1],
        json!({"number": 2, "text": "an error on a bad password"})
    );
    assert_eq!(read["tasks"][0]["acceptanceCriteria"], json!([1]));
    assert_eq!(
        read["tasks"][0]["subtasks"][1],
        json!({"description": "button", "done": false})
    );
    assert_eq!(read["allowedTransitions"], json!(["APPROVED"]));
    assert_eq!(read["epic"]["status"], "PLANNED");

    let steps = [
        ("approveStory", "APPROVED", "STORY_APPROVED", "PLANNED"),
        ("startStory", "IN_PROGRESS", "STORY_STARTED", "IN_PROGRESS"),
        (
            "submitStoryForReview",
            "REVIEW",
            "STORY_SUBMITTED_FOR_REVIEW",
            "IN_PROGRESS",
        ),
        (
            "reopenStory",
            "IN_PROGRESS",
            "STORY_REOPENED",
            "IN_PROGRESS",
        ),
        (
            "submitStoryForReview",
            "REVIEW",
            "STORY_SUBMITTED_FOR_REVIEW",
            "IN_PROGRESS",
        ),
    ];
    for (i, (v, status, event, epic_status)) in steps.into_iter().enumerate() {
        let note = (v == "reopenStory").then_some("the error message leaks the user name");
        let r = app.ok(&verb(v), json!({ "s": s, "n": note })).await[v].clone();
        assert_eq!(r["story"]["status"], status, "{v}");
        assert_eq!(r["story"]["version"], i + 2, "{v}");
        assert_eq!(r["event"]["type"], event, "{v}");
        assert_eq!(
            story(&app, &s).await["epic"]["status"],
            epic_status,
            "after {v}"
        );
    }
    let log = story(&app, &s).await["changeLog"].clone();
    let lines: Vec<&str> = log
        .as_array()
        .expect("a log")
        .iter()
        .map(|l| l["description"].as_str().expect("text"))
        .collect();
    assert_eq!(
        lines,
        [
            "Drafted",
            "APPROVED",
            "IN_PROGRESS",
            "REVIEW",
            "IN_PROGRESS: the error message leaks the user name",
            "REVIEW"
        ]
    );
    // The epic's event came after the story's, in the same change.
    assert_eq!(logged_at_least(&app, 10).await, 10);
    let types = logged_types(&app).await;
    let started = types
        .iter()
        .position(|t| t == "STORY_STARTED")
        .expect("started");
    assert_eq!(types[started + 1], "EPIC_STATUS_CHANGED");
    assert_eq!(
        types.iter().filter(|t| *t == "EPIC_STATUS_CHANGED").count(),
        1
    );

    // Lists and relations agree.
    let d = app
        .ok(
            "query($p: ID!, $e: ID!) { project(id: $p) { epics(first: 5) { totalCount nodes { id stories(first: 5) { totalCount nodes { number } } } } } stories(filter: {epicId: $e, status: [REVIEW]}) { totalCount nodes { id } } epics(filter: {projectId: $p, status: [IN_PROGRESS]}) { totalCount } }",
            json!({ "p": p, "e": epic }),
        )
        .await;
    let epics = &d["project"]["epics"];
    assert_eq!(epics["totalCount"], 1);
    assert_eq!(epics["nodes"][0]["stories"]["totalCount"], 2);
    assert_eq!(epics["nodes"][0]["stories"]["nodes"][1]["number"], "1.2");
    assert_eq!(d["stories"]["nodes"], json!([{ "id": s }]));
    assert_eq!(d["epics"]["totalCount"], 1);
    let node = app
        .ok(
            "query($s: ID!, $e: ID!) { s: node(id: $s) { __typename id } e: node(id: $e) { __typename id } }",
            json!({ "s": s, "e": epic }),
        )
        .await;
    assert_eq!(node["s"], json!({"__typename": "Story", "id": s}));
    assert_eq!(node["e"], json!({"__typename": "Epic", "id": epic}));
}

/// How many events the log lists once it lists at least `want` (waiting up
/// to 10 s): on PostgreSQL a committed event is listed once every older
/// transaction of the cluster has ended, which under load takes a moment.
async fn logged_at_least(app: &support::TestApp, want: usize) -> usize {
    for _ in 0..100 {
        let n = app.events_after(Value::Null, "cursor").await.len();
        if n >= want {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.events_after(Value::Null, "cursor").await.len()
}

/// The types of the events in the log, in order.
async fn logged_types(app: &support::TestApp) -> Vec<Value> {
    app.events_after(Value::Null, "type")
        .await
        .into_iter()
        .map(|e| e["type"].clone())
        .collect()
}

#[tokio::test]
async fn story_verbs_out_of_order_are_refused_and_change_nothing() {
    let app = support::spawn().await;
    let p = app.create_project("order").await;
    let s = app.draft_story(app.create_epic(&p, "e").await, "s").await;
    // The project's, the epic's and the story's.
    assert_eq!(logged_at_least(&app, 3).await, 3);
    for v in ["startStory", "submitStoryForReview", "reopenStory"] {
        app.assert_code(&verb(v), json!({ "s": s }), "INVALID_TRANSITION")
            .await;
    }
    app.ok(&verb("approveStory"), json!({ "s": s })).await;
    app.ok(&verb("startStory"), json!({ "s": s })).await;
    // IN_PROGRESS is where both start and reopen lead; reopening a story
    // that is not in review is still refused.
    for v in ["approveStory", "startStory", "reopenStory"] {
        app.assert_code(&verb(v), json!({ "s": s }), "INVALID_TRANSITION")
            .await;
    }
    let read = story(&app, &s).await;
    assert_eq!(read["status"], "IN_PROGRESS");
    assert_eq!(read["version"], 3);
    // Two verbs and the epic's move, nothing for the refusals.
    assert_eq!(logged_at_least(&app, 6).await, 6);
    app.assert_code(
        &verb("approveStory"),
        json!({ "s": "Story:0190a3c4-0000-7000-8000-000000000001" }),
        "NOT_FOUND",
    )
    .await;
    app.assert_code(&verb("approveStory"), json!({ "s": p }), "BAD_USER_INPUT")
        .await;
}

#[tokio::test]
async fn drafts_and_epics_past_their_bounds_are_refused_and_leave_nothing() {
    let app = support::spawn().await;
    let p = app.create_project("bounds").await;
    let e = app.create_epic(&p, "e").await;
    let draft = "mutation($i: DraftStoryInput!) { draftStory(input: $i) { story { id } } }";
    let base = json!({
        "epicId": e, "title": "t", "role": "r", "action": "a", "benefit": "b",
        "acceptanceCriteria": ["c"],
    });
    let with = |k: &str, v: Value| {
        let mut i = base.clone();
        i[k] = v;
        i
    };
    let long = "x".repeat(2_001);
    let bad = [
        with("acceptanceCriteria", json!([])),
        with("acceptanceCriteria", json!(vec!["c"; 51])),
        with("acceptanceCriteria", json!(["  "])),
        with("title", json!("t".repeat(201))),
        with("role", json!(long)),
        with(
            "tasks",
            json!([{"description": "d", "acceptanceCriteria": [2]}]),
        ),
        with(
            "tasks",
            json!([{"description": "d", "acceptanceCriteria": [0]}]),
        ),
        with("tasks", json!(vec![json!({"description": "d"}); 101])),
        with(
            "tasks",
            json!([{"description": "d", "subtasks": vec!["s"; 101]}]),
        ),
        with("devNotes", json!("n".repeat(64 * 1024 + 1))),
        with("points", json!(101)),
        with("number", json!(0)),
        with("number", json!(1_001)),
        with("title", json!("a\u{0}b")),
        with("devNotes", json!("notes\u{0}")),
        with("acceptanceCriteria", json!(["bell\u{7}"])),
    ];
    for input in bad {
        app.assert_code(draft, json!({ "i": input }), "BAD_USER_INPUT")
            .await;
    }
    app.ok(draft, json!({ "i": with("number", json!(7)) }))
        .await;
    app.assert_code(
        draft,
        json!({ "i": with("number", json!(7)) }),
        "BAD_USER_INPUT",
    )
    .await;
    let next = app.ok(draft, json!({ "i": base })).await;
    let id = next["draftStory"]["story"]["id"].clone();
    assert_eq!(story(&app, &id).await["number"], "1.8", "after the highest");
    let count =
        app.ok("{ stories { totalCount } }", json!({})).await["stories"]["totalCount"].clone();
    assert_eq!(count, 2, "refusals wrote nothing");

    let epic = "mutation($i: CreateEpicInput!) { createEpic(input: $i) { epic { number } } }";
    for input in [
        json!({"projectId": p, "title": ""}),
        json!({"projectId": p, "title": "t", "goal": long}),
        json!({"projectId": p, "title": "t", "number": 1}),
        json!({"projectId": p, "title": "t", "number": 1_001}),
    ] {
        app.assert_code(epic, json!({ "i": input }), "BAD_USER_INPUT")
            .await;
    }
    let n = app
        .ok(
            epic,
            json!({ "i": {"projectId": p, "title": "t", "number": 5} }),
        )
        .await["createEpic"]["epic"]["number"]
        .clone();
    assert_eq!(n, 5);
    // Only in an ACTIVE project.
    app.ok(
        "mutation($p: ID!) { cancelProject(input: {projectId: $p}) { project { id } } }",
        json!({ "p": p }),
    )
    .await;
    app.assert_code(
        epic,
        json!({ "i": {"projectId": p, "title": "t"} }),
        "BAD_USER_INPUT",
    )
    .await;
    app.assert_code(draft, json!({ "i": base }), "BAD_USER_INPUT")
        .await;
}

#[tokio::test]
async fn a_repeated_key_returns_the_first_answer_and_changes_nothing() {
    let app = support::spawn().await;
    let p = app.create_project("keys").await;
    let e = app.create_epic(&p, "e").await;
    let draft = "mutation($e: ID!) { draftStory(input: {epicId: $e, title: \"t\", role: \"r\", action: \"a\", benefit: \"b\", acceptanceCriteria: [\"c\"], idempotencyKey: \"draft-1\"}) { story { id number version } event { id } } }";
    let first = app.ok(draft, json!({ "e": e })).await;
    let again = app.ok(draft, json!({ "e": e })).await;
    assert_eq!(first, again);
    let s = first["draftStory"]["story"]["id"].clone();
    let approve = "mutation($s: ID!) { approveStory(input: {storyId: $s, idempotencyKey: \"approve-1\"}) { story { status version } event { id type } } }";
    let first = app.ok(approve, json!({ "s": s })).await;
    let again = app.ok(approve, json!({ "s": s })).await;
    assert_eq!(first, again);
    assert_eq!(first["approveStory"]["story"]["status"], "APPROVED");
    let count =
        app.ok("{ stories { totalCount } }", json!({})).await["stories"]["totalCount"].clone();
    assert_eq!(count, 1);
    assert_eq!(story(&app, &s).await["version"], 2);

    // A FAIL gate repeated: the same gate and the story as the gate left it.
    for v in ["startStory", "submitStoryForReview"] {
        app.ok(&verb(v), json!({ "s": s })).await;
    }
    let mut fail = gate(&s, "FAIL");
    fail["idempotencyKey"] = json!("gate-1");
    let first = app.ok(GATE, json!({ "i": fail })).await;
    let again = app.ok(GATE, json!({ "i": fail })).await;
    assert_eq!(first, again);
    assert_eq!(first["recordQaGate"]["story"]["status"], "IN_PROGRESS");
    let gates = app
        .ok(
            "query($s: ID!) { story(id: $s) { gates { totalCount } } }",
            json!({ "s": s }),
        )
        .await;
    assert_eq!(gates["story"]["gates"]["totalCount"], 1);
}

/// A story of one new epic of a new project, approved, started and in
/// review: (project, epic, story).
async fn in_review(app: &support::Caller) -> (Value, Value, Value) {
    let p = app.create_project("gates").await;
    let e = app.create_epic(&p, "e").await;
    let s = app
        .new_id(
            "mutation($e: ID!) { draftStory(input: {epicId: $e, title: \"t\", role: \"r\", action: \"a\", benefit: \"b\", acceptanceCriteria: [\"one\", \"two\"]}) { story { id } } }",
            json!({ "e": e }),
        )
        .await;
    for v in ["approveStory", "startStory", "submitStoryForReview"] {
        app.ok(&verb(v), json!({ "s": s })).await;
    }
    (p, e, s)
}

/// A story's status, the gate of its review round and how many gates it has.
async fn review_round(app: &support::TestApp, s: &Value) -> Value {
    app.ok(
        "query($s: ID!) { story(id: $s) { status currentGate { id } gates { totalCount } } }",
        json!({ "s": s }),
    )
    .await["story"]
        .clone()
}

const GATE: &str = "mutation($i: RecordQaGateInput!) { recordQaGate(input: $i) { gate { id decision statusReason reviewer topIssues { id severity finding suggestedAction } waiver { reason approvedBy } qualityScore nfr { area status notes } acCovered acGaps } story { status version } event { type } } }";

fn gate(s: &Value, decision: &str) -> Value {
    json!({ "storyId": s, "decision": decision, "statusReason": "why", "reviewer": "Quinn" })
}

#[tokio::test]
async fn a_fail_gate_loops_back_and_only_a_pass_or_waived_gate_lets_the_story_finish() {
    let app = support::spawn().await;
    let (_, epic, s) = in_review(&app).await;
    let complete = verb("completeStory");
    let refused = app.post(&complete, json!({ "s": s })).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"],
        "INVALID_TRANSITION"
    );
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no QA gate")),
        "{refused}"
    );

    let mut fail = gate(&s, "FAIL");
    fail["topIssues"] = json!([{"id": "SEC-001", "severity": "HIGH", "finding": "no rate limit", "suggestedAction": "add one"}]);
    let r = app.ok(GATE, json!({ "i": fail })).await["recordQaGate"].clone();
    assert_eq!(r["gate"]["decision"], "FAIL");
    assert_eq!(r["gate"]["topIssues"][0]["severity"], "HIGH");
    assert_eq!(r["story"]["status"], "IN_PROGRESS", "FAIL sends it back");
    assert_eq!(r["event"]["type"], "QA_GATE_RECORDED");
    assert_eq!(logged_at_least(&app, 9).await, 9);
    let types = logged_types(&app).await;
    let at = types
        .iter()
        .rposition(|t| t == "QA_GATE_RECORDED")
        .expect("gate");
    assert_eq!(types[at + 1], "STORY_REOPENED");
    let log = story(&app, &s).await["changeLog"].clone();
    let last = log.as_array().and_then(|l| l.last()).expect("a line")["description"].clone();
    assert_eq!(last, "IN_PROGRESS: QA gate FAIL: why");

    app.ok(&verb("submitStoryForReview"), json!({ "s": s }))
        .await;
    let r = app.ok(GATE, json!({ "i": gate(&s, "CONCERNS") })).await;
    assert_eq!(r["recordQaGate"]["story"]["status"], "REVIEW");
    let refused = app.post(&complete, json!({ "s": s })).await;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("CONCERNS")),
        "{refused}"
    );
    // A person waives the concerns (development mode holds every role).
    let mut waived = gate(&s, "WAIVED");
    app.assert_code(GATE, json!({ "i": waived }), "BAD_USER_INPUT")
        .await;
    waived["waiver"] = json!({"reason": "accepted for the MVP", "approvedBy": "Product Owner"});
    waived["nfr"] = json!([{"area": "security", "status": "CONCERNS", "notes": "rate limit"}]);
    waived["acCovered"] = json!([1]);
    waived["acGaps"] = json!([2]);
    waived["qualityScore"] = json!(70);
    let w = app.ok(GATE, json!({ "i": waived })).await["recordQaGate"]["gate"].clone();
    assert_eq!(w["waiver"]["approvedBy"], "Product Owner");
    assert_eq!(w["nfr"][0]["status"], "CONCERNS");
    assert_eq!(
        (w["acCovered"].clone(), w["acGaps"].clone()),
        (json!([1]), json!([2]))
    );
    let done = app.ok(&complete, json!({ "s": s })).await["completeStory"].clone();
    assert_eq!(done["story"]["status"], "DONE");
    assert_eq!(done["event"]["type"], "STORY_COMPLETED");

    let d = app
        .ok(
            "query($s: ID!, $e: ID!) { story(id: $s) { currentGate { id decision } gates(first: 10) { totalCount nodes { decision story { id } } } } epic(id: $e) { status } }",
            json!({ "s": s, "e": epic }),
        )
        .await;
    assert_eq!(d["epic"]["status"], "DONE", "its only story is done");
    let gates = &d["story"]["gates"];
    assert_eq!(gates["totalCount"], 3);
    let decisions: Vec<&Value> = gates["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| &n["decision"])
        .collect();
    assert_eq!(
        decisions,
        [&json!("FAIL"), &json!("CONCERNS"), &json!("WAIVED")]
    );
    assert_eq!(d["story"]["currentGate"]["decision"], "WAIVED");
    let node = app
        .ok(
            "query($g: ID!) { node(id: $g) { __typename ... on QaGate { decision } } }",
            json!({ "g": d["story"]["currentGate"]["id"] }),
        )
        .await;
    assert_eq!(
        node["node"],
        json!({"__typename": "QaGate", "decision": "WAIVED"})
    );
    // A gate on a story that is not in review is refused.
    app.assert_code(GATE, json!({ "i": gate(&s, "PASS") }), "INVALID_TRANSITION")
        .await;
}

#[tokio::test]
async fn a_person_waives_and_decides_over_concerns_and_an_expired_gate_does_not_count() {
    const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";
    const TENANT: &str = "0190a3c4-0000-7000-8000-00000000005a";
    let app = support::spawn_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    let as_roles =
        |roles: &[&str]| app.bearer(&support::token(SECRET, TENANT, "someone", roles, 600));
    let (agent, operator) = (as_roles(&["agent"]), as_roles(&["operator"]));
    let (_, _, s) = in_review(&as_roles(&["admin"])).await;
    let mut waived = gate(&s, "WAIVED");
    waived["waiver"] = json!({"reason": "r", "approvedBy": "PO"});
    agent
        .assert_code(GATE, json!({ "i": waived }), "FORBIDDEN")
        .await;
    // A PASS gate that expired an hour ago does not let the story finish.
    let mut stale = gate(&s, "PASS");
    stale["expiresAt"] = json!((chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339());
    agent.ok(GATE, json!({ "i": stale })).await;
    let refused = agent.post(&verb("completeStory"), json!({ "s": s })).await;
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{refused}"
    );
    // After CONCERNS in the round, the agent cannot pass over them.
    agent.ok(GATE, json!({ "i": gate(&s, "CONCERNS") })).await;
    agent
        .assert_code(GATE, json!({ "i": gate(&s, "PASS") }), "FORBIDDEN")
        .await;
    operator.ok(GATE, json!({ "i": waived })).await;
    let done = agent.ok(&verb("completeStory"), json!({ "s": s })).await;
    assert_eq!(done["completeStory"]["story"]["status"], "DONE");
}

#[tokio::test]
async fn a_gate_from_an_earlier_review_round_does_not_count() {
    let app = support::spawn().await;
    let (_, _, s) = in_review(&app).await;
    let allowed = "query($s: ID!) { story(id: $s) { allowedTransitions } }";
    let next =
        async || app.ok(allowed, json!({ "s": s })).await["story"]["allowedTransitions"].clone();
    assert_eq!(next().await, json!(["IN_PROGRESS"]), "no gate yet");
    let passed = app.ok(GATE, json!({ "i": gate(&s, "PASS") })).await;
    assert_eq!(next().await, json!(["IN_PROGRESS", "DONE"]));
    assert_eq!(
        passed["recordQaGate"]["story"]["version"], 5,
        "the gate moves the version"
    );
    for v in ["reopenStory", "submitStoryForReview"] {
        app.ok(&verb(v), json!({ "s": s })).await;
    }
    assert_eq!(next().await, json!(["IN_PROGRESS"]), "a new round");
    let refused = app.post(&verb("completeStory"), json!({ "s": s })).await;
    assert_eq!(
        refused["errors"][0]["extensions"]["code"],
        "INVALID_TRANSITION"
    );
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no QA gate")),
        "{refused}"
    );
    assert_eq!(
        review_round(&app, &s).await,
        json!({"status": "REVIEW", "currentGate": null, "gates": {"totalCount": 1}})
    );
}

#[tokio::test]
async fn gates_past_their_bounds_are_refused_and_leave_nothing() {
    let app = support::spawn().await;
    let (_, _, s) = in_review(&app).await;
    let with = |k: &str, v: Value| {
        let mut g = gate(&s, "PASS");
        g[k] = v;
        g
    };
    let issue = json!({"id": "T-1", "severity": "LOW", "finding": "f", "suggestedAction": "a"});
    let bad = [
        with("statusReason", json!(" ")),
        with("reviewer", json!("r".repeat(201))),
        with("qualityScore", json!(101)),
        with("acCovered", json!([3])),
        with("acGaps", json!([0])),
        with("acCovered", json!([1, 1, 1])),
        with("topIssues", json!(vec![issue.clone(); 51])),
        with(
            "topIssues",
            json!([{"id": "x".repeat(33), "severity": "LOW", "finding": "f", "suggestedAction": "a"}]),
        ),
        with("waiver", json!({"reason": "r", "approvedBy": "PO"})),
        with("nfr", json!([{"area": "", "status": "PASS"}])),
    ];
    for input in bad {
        app.assert_code(GATE, json!({ "i": input }), "BAD_USER_INPUT")
            .await;
    }
    assert_eq!(
        review_round(&app, &s).await,
        json!({"status": "REVIEW", "currentGate": null, "gates": {"totalCount": 0}})
    );
}

/// Each verb adds a change-log line and rewrites the story's content, so a
/// story sent round the cycle again and again keeps only its last 100
/// lines (the event log keeps every change).
#[tokio::test]
async fn a_story_sent_round_again_and_again_keeps_its_last_hundred_changes() {
    let app = support::spawn().await;
    let (_, _, s) = in_review(&app).await;
    for _ in 0..52 {
        app.ok(&verb("reopenStory"), json!({ "s": s })).await;
        app.ok(&verb("submitStoryForReview"), json!({ "s": s }))
            .await;
    }
    let read = story(&app, &s).await;
    let log = read["changeLog"].as_array().expect("a log").clone();
    assert_eq!(log.len(), 100);
    // Versions 1–108 were written; the last hundred are kept, in order.
    assert_eq!(read["version"], 108);
    assert_eq!(log[0]["version"], 9);
    assert_eq!(log[99]["version"], 108);
    assert_eq!(log[99]["description"], "REVIEW");
}
