//! Property tests: random command sequences driven through the real service
//! layer, with the invariants checked after every step:
//! - a refused command changes nothing (same row, no event);
//! - an accepted one moves the task along a transition the lifecycle table
//!   allows, bumps its version, and appends its events;
//! - event sequence numbers stay contiguous and increasing (a refused
//!   change leaves no hole);
//! - another tenant's rows are never touched.

use std::sync::OnceLock;

use cerebral::auth::{Principal, Role};
use cerebral::domain::{HitlDecision, HitlStatus, TaskStatus};
use cerebral::entity::{event, hitl_request, task};
use cerebral::service::Services;
use cerebral::service::hitl::NewHitlRequest;
use cerebral::service::project::NewProject;
use cerebral::service::task::{NewTask, TaskChange, TaskVerb};
use proptest::prelude::*;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::support;

struct World {
    rt: tokio::runtime::Runtime,
    services: Services,
    _dir: Option<tempfile::TempDir>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        // SQLite by default, PostgreSQL when TEST_DATABASE_URL is set.
        let (url, dir) = rt.block_on(support::fresh_database());
        let services = rt.block_on(async {
            let mut config = cerebral::config::Config::for_database(&url);
            config.events.event_poll_ms = 0;
            config.lifecycle.sweep_interval_seconds = 0;
            config.lifecycle.agent_stale_seconds = 0;
            cerebral::app::App::build(&config)
                .await
                .expect("app")
                .services()
                .clone()
        });
        World {
            rt,
            services,
            _dir: dir,
        }
    })
}

fn tenant(n: u128) -> Principal {
    Principal {
        tenant_id: Uuid::from_u128(n),
        user_id: format!("user-{n}"),
        roles: vec![Role::Viewer, Role::Agent, Role::Operator, Role::Admin],
    }
}

/// An ad-hoc project (no workflow) named `name` that does not complete
/// itself.
fn new_project(name: &str) -> NewProject {
    NewProject {
        name: name.into(),
        product_idea: None,
        workflow: None,
        auto_complete: Some(false),
    }
}

/// A task titled `title` in `project`, with nothing else set.
fn new_task(project: Uuid, title: &str, required: bool) -> NewTask {
    NewTask {
        project_id: project,
        persona_id: None,
        title: title.into(),
        instructions: None,
        priority: 0,
        depends_on: vec![],
        required,
    }
}

/// The question "?" about `task`, failing the task should it expire.
fn question(task: Uuid) -> NewHitlRequest {
    NewHitlRequest {
        task_id: task,
        question: "?".into(),
        options: vec![],
        expires_at: None,
        on_expiry: cerebral::domain::HitlExpiryPolicy::FailTask,
        response_schema: None,
    }
}

/// A task titled `title` in `project`, started and waiting for the answer
/// to [`question`]: the task's and the request's ids.
async fn waiting_task(s: &Services, a: &Principal, project: Uuid, title: &str) -> (Uuid, Uuid) {
    let (t, _) = s
        .create_task(a, new_task(project, title, false))
        .await
        .expect("task");
    s.task_verb(a, t.id, TaskVerb::Start, TaskChange::default())
        .await
        .expect("start");
    let (r, _, _) = s.request_hitl(a, question(t.id)).await.expect("ask");
    (t.id, r.id)
}

#[derive(Debug, Clone)]
enum Cmd {
    Verb(usize, TaskVerb),
    Ask(usize),
    Answer(usize, HitlDecision),
}

fn cmd() -> impl Strategy<Value = Cmd> {
    let verb = prop_oneof![
        Just(TaskVerb::Start),
        Just(TaskVerb::Progress),
        Just(TaskVerb::Complete),
        Just(TaskVerb::Fail),
        Just(TaskVerb::Cancel),
        Just(TaskVerb::Retry),
    ];
    let decision = prop_oneof![
        Just(HitlDecision::Approve),
        Just(HitlDecision::Reject),
        Just(HitlDecision::Amend)
    ];
    prop_oneof![
        4 => (0..3usize, verb).prop_map(|(i, v)| Cmd::Verb(i, v)),
        1 => (0..3usize).prop_map(Cmd::Ask),
        1 => (0..3usize, decision).prop_map(|(i, d)| Cmd::Answer(i, d)),
    ]
}

async fn row(s: &Services, id: Uuid) -> task::Model {
    task::Entity::find_by_id(id)
        .one(&s.all_tenants())
        .await
        .expect("query")
        .expect("task row")
}

/// Events of one tenant so far (the two properties run side by side, each
/// with its own tenant).
async fn tenant_events(s: &Services, tenant: Uuid) -> usize {
    event::Entity::find()
        .filter(event::Column::TenantId.eq(tenant))
        .count(&s.all_tenants())
        .await
        .expect("count") as usize
}

/// Event positions in log order: on SQLite a dense counter (contiguous, so
/// a refused change left no hole); on PostgreSQL transaction-id positions
/// (decision 0006), increasing with holes between transactions — that a
/// refused change appended nothing is checked on the tenant's events.
fn positions_in_order(seqs: &[i64]) -> bool {
    if support::backend() == "postgres" {
        seqs.windows(2).all(|w| w[1] > w[0])
    } else {
        seqs.windows(2).all(|w| w[1] == w[0] + 1)
    }
}

async fn all_seqs(s: &Services) -> Vec<i64> {
    event::Entity::find()
        .order_by_asc(event::Column::Seq)
        .all(&s.all_tenants())
        .await
        .expect("events")
        .into_iter()
        .map(|e| e.seq)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn random_command_sequences_keep_the_invariants(cmds in proptest::collection::vec(cmd(), 1..30)) {
        let w = world();
        w.rt.block_on(async {
            let s = &w.services;
            let a = tenant(0xA);
            let b = tenant(0xB);
            // Tenant B owns a task the sequence must never touch.
            let (bp, _) = s.create_project(&b, new_project("b")).await.expect("b project");
            let (bt, _) = s.create_task(&b, new_task(bp.id, "b", true)).await.expect("b task");
            let (p, _) = s.create_project(&a, new_project("a")).await.expect("project");
            let mut tasks = vec![];
            for i in 0..3 {
                let (t, _) = s.create_task(&a, new_task(p.id, &format!("t{i}"), true)).await.expect("task");
                tasks.push(t.id);
            }
            for c in cmds {
                let i = match &c { Cmd::Verb(i, _) | Cmd::Ask(i) | Cmd::Answer(i, _) => *i };
                let before = row(s, tasks[i]).await;
                let events_before = tenant_events(s, a.tenant_id).await;
                let head_before = all_seqs(s).await.last().copied().unwrap_or(0);
                let result = match c.clone() {
                    Cmd::Verb(_, v) => {
                        let change = TaskChange { progress: (v == TaskVerb::Progress).then_some(50), ..Default::default() };
                        s.task_verb(&a, tasks[i], v, change).await.map(|_| ())
                    }
                    Cmd::Ask(_) => s.request_hitl(&a, question(tasks[i])).await.map(|_| ()),
                    Cmd::Answer(_, d) => {
                        let pending = hitl_request::Entity::find()
                            .filter(hitl_request::Column::TaskId.eq(tasks[i]))
                            .filter(hitl_request::Column::Status.eq(HitlStatus::Pending))
                            .one(&s.all_tenants()).await.expect("query");
                        match pending {
                            Some(r) => s.resolve_hitl(&a, r.id, d, None).await.map(|_| ()),
                            None => continue,
                        }
                    }
                };
                let after = row(s, tasks[i]).await;
                let seqs = all_seqs(s).await;
                let events_after = tenant_events(s, a.tenant_id).await;
                prop_assert!(positions_in_order(&seqs), "seqs {:?}", seqs);
                match result {
                    Err(_) => {
                        prop_assert_eq!(&after, &before, "a refused {:?} changed the task", c);
                        prop_assert_eq!(events_after, events_before, "a refused {:?} appended events", c);
                    }
                    Ok(()) => {
                        prop_assert!(events_after > events_before, "{:?} appended no event", c);
                        if after.status != before.status {
                            prop_assert!(before.status.can_transition_to(after.status), "{:?}: {:?} -> {:?}", c, before.status, after.status);
                        }
                        if after != before {
                            prop_assert!(after.version > before.version, "version did not grow on {:?}", c);
                            let task_events = event::Entity::find()
                                .filter(event::Column::TaskId.eq(tasks[i]))
                                .filter(event::Column::SubjectType.eq("Task"))
                                .filter(event::Column::Seq.gt(head_before))
                                .count(&s.all_tenants()).await.expect("count");
                            prop_assert_eq!(task_events as i32, after.version - before.version, "one task event per task change on {:?}", c);
                        }
                    }
                }
                // A waiting task always has something pending, and only a waiting task has.
                let pending = hitl_request::Entity::find()
                    .filter(hitl_request::Column::TaskId.eq(tasks[i]))
                    .filter(hitl_request::Column::Status.eq(HitlStatus::Pending))
                    .count(&s.all_tenants()).await.expect("count");
                prop_assert_eq!(after.status == TaskStatus::WaitingForHitl, pending > 0, "task {:?} with {} pending", after.status, pending);
            }
            let b_after = row(s, bt.id).await;
            prop_assert_eq!(b_after, bt, "tenant B's task was touched");
            Ok(())
        })?;
    }
}

/// The session verb that moves a session to `to`.
fn session_verb(to: cerebral::domain::SessionStatus) -> cerebral::domain::session::SessionVerb {
    use cerebral::domain::SessionStatus::*;
    use cerebral::domain::session::SessionVerb::*;
    match to {
        Active => Resume,
        Suspended => Suspend,
        _ => Terminate,
    }
}

/// The project verb that moves a project to `to`.
fn project_verb(to: cerebral::domain::ProjectStatus) -> cerebral::domain::project::ProjectVerb {
    use cerebral::domain::ProjectStatus::*;
    use cerebral::domain::project::ProjectVerb::*;
    match to {
        Completed => Complete,
        Failed => Fail,
        _ => Cancel,
    }
}

#[derive(Debug, Clone)]
enum SessionCmd {
    To(cerebral::domain::SessionStatus),
    Switch(usize),
    Patch(i64),
}

fn session_cmd() -> impl Strategy<Value = SessionCmd> {
    use cerebral::domain::SessionStatus::*;
    prop_oneof![
        (prop_oneof![Just(Active), Just(Suspended), Just(Terminated)]).prop_map(SessionCmd::To),
        (0..2usize).prop_map(SessionCmd::Switch),
        any::<i64>().prop_map(SessionCmd::Patch),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 30, ..ProptestConfig::default() })]

    /// Sessions and contexts: only legal moves, refusals change nothing,
    /// context state survives suspension, terminal sessions stay terminal.
    #[test]
    fn random_session_sequences_keep_the_invariants(cmds in proptest::collection::vec(session_cmd(), 1..25)) {
        use cerebral::domain::SessionStatus;
        use cerebral::entity::{persona, persona_context, session};
        let w = world();
        w.rt.block_on(async {
            let s = &w.services;
            let a = tenant(0xC);
            let personas: Vec<Uuid> = {
                let mut v = vec![];
                for key in ["pm", "dev"] {
                    v.push(persona::Entity::find().filter(persona::Column::Key.eq(key)).one(&s.all_tenants()).await.expect("q").expect("persona").id);
                }
                v
            };
            let (sess, _) = s.start_session(&a, None).await.expect("session");
            let mut last_patch: Option<i64> = None;
            for c in cmds {
                let before = session::Entity::find_by_id(sess.id).one(&s.all_tenants()).await.expect("q").expect("row");
                let events_before = tenant_events(s, a.tenant_id).await;
                let result = match c.clone() {
                    SessionCmd::To(to) => s.transition_session(&a, sess.id, session_verb(to)).await.map(|_| ()),
                    SessionCmd::Switch(i) => s.switch_persona(&a, sess.id, personas[i], None, None).await.map(|_| ()),
                    SessionCmd::Patch(n) => match before.current_context_id {
                        Some(cid) => s.update_persona_context(&a, cid, serde_json::json!({ "n": n }), None).await.map(|_| ()),
                        None => continue,
                    },
                };
                let after = session::Entity::find_by_id(sess.id).one(&s.all_tenants()).await.expect("q").expect("row");
                let seqs = all_seqs(s).await;
                prop_assert!(positions_in_order(&seqs), "seqs {:?}", seqs);
                let events_after = tenant_events(s, a.tenant_id).await;
                match result {
                    Err(_) => {
                        prop_assert_eq!(&after, &before, "refused {:?} changed the session", c);
                        prop_assert_eq!(events_after, events_before);
                    }
                    Ok(()) => {
                        prop_assert_eq!(events_after, events_before + 1, "one event for {:?}", c);
                        if after.status != before.status {
                            prop_assert!(before.status.can_transition_to(after.status));
                        }
                        if let SessionCmd::Patch(n) = c {
                            last_patch = Some(n);
                        }
                        if matches!(c, SessionCmd::Switch(_)) {
                            last_patch = None;
                        }
                    }
                }
                prop_assert!(!(before.status == SessionStatus::Terminated && after.status != SessionStatus::Terminated));
                // The current context holds the last accepted patch, whatever
                // suspensions and resumptions happened since.
                if let (Some(cid), Some(n)) = (after.current_context_id, last_patch) {
                    let ctx = persona_context::Entity::find_by_id(cid).one(&s.all_tenants()).await.expect("q").expect("ctx");
                    prop_assert_eq!(&ctx.state["n"], &serde_json::json!(n));
                }
            }
            Ok(())
        })?;
    }
}

/// Every (state, command) pair of the task lifecycle, through the services:
/// accepted exactly when the lifecycle table (and the verb's own rule)
/// allows it.
#[test]
fn every_task_state_and_command_pair_follows_the_table() {
    let w = world();
    w.rt.block_on(async {
        let s = &w.services;
        let a = tenant(0xD);
        let (p, _) = s
            .create_project(&a, new_project("table"))
            .await
            .expect("project");
        // Paths from PENDING to each state.
        let paths: Vec<(TaskStatus, Vec<TaskVerb>, bool)> = vec![
            (TaskStatus::Pending, vec![], false),
            (TaskStatus::Working, vec![TaskVerb::Start], false),
            (TaskStatus::WaitingForHitl, vec![TaskVerb::Start], true),
            (
                TaskStatus::Completed,
                vec![TaskVerb::Start, TaskVerb::Complete],
                false,
            ),
            (
                TaskStatus::Failed,
                vec![TaskVerb::Start, TaskVerb::Fail],
                false,
            ),
            (TaskStatus::Cancelled, vec![TaskVerb::Cancel], false),
        ];
        let verbs = [
            (TaskVerb::Start, TaskStatus::Working),
            (TaskVerb::Progress, TaskStatus::Working),
            (TaskVerb::Complete, TaskStatus::Completed),
            (TaskVerb::Fail, TaskStatus::Failed),
            (TaskVerb::Cancel, TaskStatus::Cancelled),
            (TaskVerb::Retry, TaskStatus::Pending),
        ];
        for (state, path, ask) in &paths {
            for (verb, target) in verbs {
                let (t, _) = s
                    .create_task(&a, new_task(p.id, "t", false))
                    .await
                    .expect("task");
                for v in path {
                    s.task_verb(&a, t.id, *v, TaskChange::default())
                        .await
                        .expect("path");
                }
                if *ask {
                    s.request_hitl(&a, question(t.id)).await.expect("ask");
                }
                assert_eq!(row(s, t.id).await.status, *state);
                let expected = match verb {
                    TaskVerb::Start => *state == TaskStatus::Pending,
                    TaskVerb::Progress => *state == TaskStatus::Working,
                    _ => state.can_transition_to(target),
                };
                let change = TaskChange {
                    progress: (verb == TaskVerb::Progress).then_some(10),
                    ..Default::default()
                };
                let got = s.task_verb(&a, t.id, verb, change).await;
                assert_eq!(got.is_ok(), expected, "{state:?} + {verb:?}: {got:?}");
                if let Err(e) = got {
                    assert_eq!(e.code(), "INVALID_TRANSITION", "{state:?} + {verb:?}");
                }
            }
        }
    });
}

/// The other lifecycles' (state, command) pairs through the services:
/// projects, sessions, HITL requests and checkpoints.
#[test]
fn every_other_state_and_command_pair_follows_its_table() {
    use cerebral::domain::{CheckpointStatus, ProjectStatus, SessionStatus};
    let w = world();
    w.rt.block_on(async {
        let s = &w.services;
        let a = tenant(0xE);

        // Projects: reach each state, then try each verb.
        let ends = [
            ProjectStatus::Completed,
            ProjectStatus::Failed,
            ProjectStatus::Cancelled,
        ];
        for from in [
            ProjectStatus::Active,
            ProjectStatus::Completed,
            ProjectStatus::Failed,
            ProjectStatus::Cancelled,
        ] {
            for to in ends {
                let (p, _) = s
                    .create_project(&a, new_project("x"))
                    .await
                    .expect("project");
                if from != ProjectStatus::Active {
                    s.transition_project(&a, p.id, project_verb(from), None)
                        .await
                        .expect("reach");
                }
                let got = s.transition_project(&a, p.id, project_verb(to), None).await;
                assert_eq!(
                    got.is_ok(),
                    from.can_transition_to(to),
                    "project {from:?} -> {to:?}"
                );
            }
        }

        // Sessions: ACTIVE, SUSPENDED, TERMINATED × suspend, resume, terminate.
        for from in [
            SessionStatus::Active,
            SessionStatus::Suspended,
            SessionStatus::Terminated,
        ] {
            for to in [
                SessionStatus::Suspended,
                SessionStatus::Active,
                SessionStatus::Terminated,
            ] {
                let (sess, _) = s.start_session(&a, None).await.expect("session");
                if from != SessionStatus::Active {
                    s.transition_session(&a, sess.id, session_verb(from))
                        .await
                        .expect("reach");
                }
                let got = s.transition_session(&a, sess.id, session_verb(to)).await;
                assert_eq!(
                    got.is_ok(),
                    from.can_transition_to(to),
                    "session {from:?} -> {to:?}"
                );
            }
        }

        // EXPIRED sessions (reached through the per-user limit of 10) refuse
        // every move.
        let crowd = Principal {
            user_id: "crowd".into(),
            ..a.clone()
        };
        let (oldest, _) = s.start_session(&crowd, None).await.expect("session");
        for _ in 0..10 {
            s.start_session(&crowd, None).await.expect("session");
        }
        for to in [
            SessionStatus::Suspended,
            SessionStatus::Active,
            SessionStatus::Terminated,
        ] {
            let got = s
                .transition_session(&crowd, oldest.id, session_verb(to))
                .await;
            assert!(got.is_err(), "EXPIRED -> {to:?} must be refused");
        }

        // HITL: PENDING, APPROVED, REJECTED, AMENDED × each decision.
        let (p, _) = s
            .create_project(&a, new_project("x"))
            .await
            .expect("project");
        let decisions = [
            HitlDecision::Approve,
            HitlDecision::Reject,
            HitlDecision::Amend,
        ];
        for first in [
            None,
            Some(HitlDecision::Approve),
            Some(HitlDecision::Reject),
            Some(HitlDecision::Amend),
        ] {
            for second in decisions {
                let (_, r) = waiting_task(s, &a, p.id, "t").await;
                if let Some(d) = first {
                    s.resolve_hitl(&a, r, d, None).await.expect("first answer");
                }
                let got = s.resolve_hitl(&a, r, second, None).await;
                assert_eq!(
                    got.is_ok(),
                    first.is_none(),
                    "HITL {first:?} then {second:?}"
                );
            }
        }

        // EXPIRED requests (their task failed) refuse every decision.
        for d in decisions {
            let (t, r) = waiting_task(s, &a, p.id, "e").await;
            s.task_verb(
                &a,
                t,
                TaskVerb::Fail,
                TaskChange {
                    error: Some(Some("x".into())),
                    ..Default::default()
                },
            )
            .await
            .expect("fail");
            let got = s.resolve_hitl(&a, r, d, None).await;
            assert!(got.is_err(), "EXPIRED then {d:?} must be refused");
        }

        // Checkpoints: IN_PROGRESS, COMPLETED, FAILED, REVERTED × each status.
        let (t, _) = s
            .create_task(&a, new_task(p.id, "c", false))
            .await
            .expect("task");
        let all = [
            CheckpointStatus::InProgress,
            CheckpointStatus::Completed,
            CheckpointStatus::Failed,
            CheckpointStatus::Reverted,
        ];
        for (i, from) in all.into_iter().enumerate() {
            for (j, to) in all.into_iter().enumerate() {
                let step = format!("s{i}{j}");
                let (c, _) = s
                    .create_checkpoint(
                        &a,
                        t.id,
                        step,
                        serde_json::json!({}),
                        None,
                        CheckpointStatus::InProgress,
                    )
                    .await
                    .expect("checkpoint");
                if from != CheckpointStatus::InProgress {
                    s.update_checkpoint_status(&a, c.id, from)
                        .await
                        .expect("reach");
                }
                let got = s.update_checkpoint_status(&a, c.id, to).await;
                assert_eq!(
                    got.is_ok(),
                    from.can_transition_to(to),
                    "checkpoint {from:?} -> {to:?}"
                );
            }
        }
    });
}
