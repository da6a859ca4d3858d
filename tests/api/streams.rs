//! Event streams end to end: resume from a cursor with no gap and no
//! duplicate, a slow subscriber that neither holds up the others nor makes
//! the server buffer without bound, and a subscriber that follows its
//! replica going down and comes back on another one.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::support;
use crate::support::{RawWs, ServerProcess};

/// Generous wait for anything the server should do "at once".
const T: Duration = Duration::from_secs(30);

const PROJECTS_AFTER: &str = "subscription($after: String) { events(after: $after, types: [PROJECT_CREATED]) { cursor type payload } }";

const CREATE: &str = "mutation($input: CreateProjectInput!) { createProject(input: $input) { project { name } event { cursor } } }";

/// One received or created event: its cursor as a number, and the name of
/// the project it created.
type Item = (i64, String);

fn item_of(data: &Value) -> Item {
    let e = &data["events"];
    assert_eq!(e["type"], "PROJECT_CREATED", "{data}");
    let cursor = e["cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("every item has a cursor: {data}"))
        .parse()
        .expect("numeric cursor");
    let name = e["payload"]["name"]
        .as_str()
        .unwrap_or_else(|| panic!("the payload names the project: {data}"))
        .to_string();
    (cursor, name)
}

async fn create(http: &reqwest::Client, base: &str, name: &str) -> Item {
    let c = support::create_project_cursor(http, base, name).await;
    (c.parse().expect("numeric cursor"), name.to_string())
}

/// Creates `n` projects named `name(i)` on `base` in the background, a
/// `pause` after each: their items, in order.
fn publish_in_background(
    base: String,
    n: usize,
    name: fn(usize) -> String,
    pause: Duration,
) -> tokio::task::JoinHandle<Vec<Item>> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut made = Vec::new();
        for i in 0..n {
            made.push(create(&http, &base, &name(i)).await);
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
        made
    })
}

/// Reads `n` items of subscription `id`, each within `per_item`.
async fn read_items(ws: &mut RawWs, id: &str, n: usize, per_item: Duration) -> Vec<Item> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let data = ws.next_data(id, per_item).await.unwrap_or_else(|| {
            panic!(
                "{id}: item {} of {n} did not come (connection state {:?})",
                got.len() + 1,
                ws.closed
            )
        });
        got.push(item_of(&data));
    }
    got
}

/// Compares two event lists and reports the first difference legibly.
fn assert_same_events(got: &[Item], want: &[Item], what: &str) {
    if got == want {
        return;
    }
    let first = got
        .iter()
        .zip(want)
        .position(|(g, w)| g != w)
        .unwrap_or(got.len().min(want.len()));
    let seen: HashSet<i64> = got.iter().map(|(c, _)| *c).collect();
    let missing = want.iter().filter(|(c, _)| !seen.contains(c)).count();
    let duplicates = got.len() - seen.len();
    panic!(
        "{what}: got {} events, want {}; first difference at {first}: got {:?}, want {:?}; {missing} missing, {duplicates} duplicated",
        got.len(),
        want.len(),
        got.get(first),
        want.get(first)
    );
}

// ---------- resume semantics ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_after_a_cursor_replay_then_follow_live_with_no_gap_and_no_duplicate() {
    let app = support::spawn().await;
    let http = app.http().clone();
    let marker = support::create_project_cursor(&http, &app.base, "marker").await;
    let mut want = Vec::new();
    for i in 0..25 {
        want.push(create(&http, &app.base, &format!("old-{i}")).await);
    }
    let mut ws = RawWs::connect_and_init(&app.base).await;
    ws.subscribe("r", PROJECTS_AFTER, json!({ "after": marker }))
        .await;
    // New commits race the replay.
    let publisher =
        publish_in_background(app.base.clone(), 25, |i| format!("new-{i}"), Duration::ZERO);
    let got = read_items(&mut ws, "r", 50, T).await;
    want.extend(publisher.await.expect("publisher"));
    assert_same_events(&got, &want, "replay then live");
    // Nothing more is pending: the next item is the next commit.
    let sentinel = create(&http, &app.base, "sentinel").await;
    let next = ws.next_data("r", T).await.expect("the sentinel");
    assert_eq!(item_of(&next), sentinel, "no duplicate after the live part");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_after_head_get_only_new_events() {
    let app = support::spawn().await;
    let http = app.http().clone();
    for i in 0..3 {
        create(&http, &app.base, &format!("old-{i}")).await;
    }
    let mut ws = RawWs::connect_and_init(&app.base).await;
    ws.subscribe("h", PROJECTS_AFTER, json!({ "after": "HEAD" }))
        .await;
    // The subscription may take a moment to start; commit until it hears
    // one. Whatever it hears first must be new, and from then on it hears
    // every commit in order.
    let mut made = Vec::new();
    let first = loop {
        assert!(made.len() < 30, "no item after {} commits", made.len());
        made.push(create(&http, &app.base, &format!("new-{}", made.len())).await);
        if let Some(d) = ws.next_data("h", Duration::from_secs(2)).await {
            break item_of(&d);
        }
    };
    assert!(first.1.starts_with("new-"), "only new events: {first:?}");
    let at = made.iter().position(|m| *m == first).expect("one of ours");
    let mut got = vec![first];
    // Any others already committed, then three more.
    let rest = made.len() - at - 1;
    got.extend(read_items(&mut ws, "h", rest, T).await);
    for i in 0..3 {
        let m = create(&http, &app.base, &format!("more-{i}")).await;
        made.push(m);
        got.extend(read_items(&mut ws, "h", 1, T).await);
    }
    assert_same_events(&got, &made[at..], "after HEAD");
}

/// A HEAD subscription waits for the fan-out to pass what was committed
/// before it (at most a second); a commit made while it waits is the
/// subscriber's, even though the fan-out passes it too before the wait
/// ends. On PostgreSQL an older open transaction holds the fan-out back,
/// so the order of events is forced: A commits, the subscription starts
/// (and waits for A), B commits, the older transaction ends, the fan-out
/// passes A and B at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_made_while_a_head_subscription_starts_is_delivered() {
    if support::backend() != "postgres" {
        // SQLite: positions are final at commit, so the fan-out never waits.
        return;
    }
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let admin = std::env::var("TEST_DATABASE_URL").expect("TEST_DATABASE_URL");
    let (owner, _) = cerebral::db::connect(&admin, 1).await.expect("connect");
    let app = support::spawn().await;
    let http = app.http().clone();
    let older = owner.begin().await.expect("begin");
    older
        .execute_unprepared("SELECT pg_current_xact_id()")
        .await
        .expect("take a transaction id");
    let a = create(&http, &app.base, "a").await;
    let mut ws = RawWs::connect_and_init(&app.base).await;
    ws.subscribe("h", PROJECTS_AFTER, json!({ "after": "HEAD" }))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = create(&http, &app.base, "b").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    older.commit().await.expect("commit");
    let got = read_items(&mut ws, "h", 1, T).await;
    assert_eq!(got, vec![b.clone()], "B, and not A ({a:?})");
}

#[tokio::test]
async fn every_subscription_item_carries_its_cursor() {
    let app = support::spawn().await;
    let http = app.http().clone();
    let data = support::gql_ok(
        &http,
        &app.base,
        "mutation { createProject(input: {name: \"P\"}) { project { id } event { cursor } } }",
        json!({}),
    )
    .await;
    let project = data["createProject"]["project"]["id"].clone();
    let task = support::gql_ok(
        &http,
        &app.base,
        "mutation($p: ID!) { createTask(input: {projectId: $p, title: \"T\", personaId: \"dev\"}) { task { id } event { cursor } } }",
        json!({ "p": project }),
    )
    .await;
    let task_cursor = task["createTask"]["event"]["cursor"].clone();
    let mut ws = RawWs::connect_and_init(&app.base).await;
    ws.subscribe(
        "events",
        "subscription { events(after: \"0\") { cursor type } }",
        json!({}),
    )
    .await;
    ws.subscribe(
        "tasks",
        "subscription($p: ID!) { taskUpdated(projectId: $p, after: \"0\") { cursor type } }",
        json!({ "p": project }),
    )
    .await;
    let t = ws.next_data("tasks", T).await.expect("a task update");
    assert_eq!(t["taskUpdated"]["cursor"], task_cursor, "{t}");
    let mut last = 0i64;
    loop {
        let e = ws.next_data("events", T).await.expect("an event");
        let c: i64 = e["events"]["cursor"]
            .as_str()
            .unwrap_or_else(|| panic!("a cursor: {e}"))
            .parse()
            .expect("numeric");
        assert!(c > last, "in order: {c} after {last}");
        last = c;
        if e["events"]["cursor"] == task_cursor {
            break;
        }
    }
}

// ---------- a slow subscriber ----------

const LOAD: usize = 10_000;
const WARM_UP: usize = 1_500;
const BATCH: usize = 10;
const CONCURRENT_REQUESTS: usize = 4;
const IDEA_BYTES: usize = 8 * 1024;
/// Growth of the server's peak RSS allowed while one subscriber stalls:
/// far below the 10,000 × 8 KB an unbounded buffer would hold.
const MAX_GROWTH_KB: u64 = 64 * 1024;

/// Creates `n` projects named `{prefix}-{i}` with an 8 KB product idea, in
/// batches of `BATCH` with `CONCURRENT_REQUESTS` requests in flight, and
/// returns what the mutations returned, in cursor order.
async fn publish(base: &str, prefix: &str, n: usize) -> Vec<Item> {
    let http = reqwest::Client::new();
    let filler = "x".repeat(IDEA_BYTES);
    let ops: Vec<Value> = (0..n)
        .map(|i| {
            let name = format!("{prefix}-{i:05}");
            let mut idea = format!("{name} ");
            idea.push_str(&filler[..IDEA_BYTES - idea.len()]);
            json!({ "query": CREATE, "variables": { "input": { "name": name, "productIdea": idea } } })
        })
        .collect();
    let batches: Vec<Vec<Value>> = ops.chunks(BATCH).map(<[Value]>::to_vec).collect();
    let responses: Vec<Vec<Value>> = futures::stream::iter(batches)
        .map(|batch| {
            let http = http.clone();
            async move { support::gql_batch(&http, base, &batch).await }
        })
        .buffer_unordered(CONCURRENT_REQUESTS)
        .collect()
        .await;
    let mut made: Vec<Item> = responses
        .into_iter()
        .flatten()
        .map(|r| {
            assert!(r.get("errors").is_none(), "unexpected errors: {r}");
            let p = &r["data"]["createProject"];
            (
                p["event"]["cursor"]
                    .as_str()
                    .expect("cursor")
                    .parse()
                    .expect("numeric cursor"),
                p["project"]["name"].as_str().expect("name").to_string(),
            )
        })
        .collect();
    made.sort();
    assert_eq!(made.len(), n);
    made
}

/// Reads `n` items while checking each carries the whole product idea.
async fn read_big_items(mut ws: RawWs, id: &'static str, n: usize) -> (RawWs, Vec<Item>) {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let data = ws
            .next_data(id, Duration::from_secs(120))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "{id}: item {} of {n} did not come (connection state {:?})",
                    got.len() + 1,
                    ws.closed
                )
            });
        let idea = data["events"]["payload"]["productIdea"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: the payload carries productIdea"));
        assert_eq!(idea.len(), IDEA_BYTES, "{id}");
        got.push(item_of(&data));
    }
    (ws, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_neither_holds_up_others_nor_grows_server_memory_and_then_catches_up()
{
    let (url, _dir) = support::fresh_database().await;
    // Pinging off in effect (a peer that does not read for two intervals may
    // be dropped by design); a small pool keeps SQLite's per-connection page
    // caches from blurring the memory figure; two malloc arenas likewise.
    let server = ServerProcess::start(
        &url,
        &[
            ("CEREBRAL_WS_PING_INTERVAL_SECONDS", "3600"),
            // Every event is replayed however far behind (the default).
            ("CEREBRAL_MAX_REPLAY_EVENTS", "0"),
            ("CEREBRAL_DB_MAX_CONNECTIONS", "8"),
            ("MALLOC_ARENA_MAX", "2"),
        ],
    )
    .await;
    let base = server.base.clone();
    let http = reqwest::Client::new();

    // Warm-up: the same paths (batches, a subscriber reading big items), so
    // the baseline includes what serving them costs anyway.
    let warm_marker = support::create_project_cursor(&http, &base, "warm-marker").await;
    let mut warm = RawWs::connect_and_init(&base).await;
    warm.subscribe("warm", PROJECTS_AFTER, json!({ "after": warm_marker }))
        .await;
    let warm_reader = tokio::spawn(read_big_items(warm, "warm", WARM_UP));
    let warm_made = publish(&base, "warm", WARM_UP).await;
    let (mut warm, warm_got) = warm_reader.await.expect("warm-up reader");
    assert_same_events(&warm_got, &warm_made, "warm-up");
    let _ = warm.inner().close(None).await;
    drop(warm);

    let marker = warm_made.last().expect("warm-up events").0.to_string();
    let mut fast = RawWs::connect_and_init(&base).await;
    fast.subscribe("fast", PROJECTS_AFTER, json!({ "after": marker }))
        .await;
    let mut slow = RawWs::connect_and_init(&base).await;
    slow.subscribe("slow", PROJECTS_AFTER, json!({ "after": marker }))
        .await;
    // From here on `slow` is not polled until it resumes below.
    let fast_reader = tokio::spawn(read_big_items(fast, "fast", LOAD));
    let hwm_before = server.status_kb("VmHWM").expect("VmHWM");
    let rss_before = server.status_kb("VmRSS").expect("VmRSS");

    let made = publish(&base, "load", LOAD).await;
    let (_fast, fast_got) = tokio::time::timeout(Duration::from_secs(300), fast_reader)
        .await
        .expect("the fast subscriber is not held up by the slow one")
        .expect("fast reader");
    let hwm_after = server.status_kb("VmHWM").expect("VmHWM");
    let rss_after = server.status_kb("VmRSS").expect("VmRSS");
    assert_same_events(&fast_got, &made, "fast subscriber");
    let growth = hwm_after.saturating_sub(hwm_before);
    eprintln!(
        "server memory during the stall: VmHWM {hwm_before} kB -> {hwm_after} kB (+{growth} kB), VmRSS {rss_before} kB -> {rss_after} kB"
    );
    assert!(
        growth < MAX_GROWTH_KB,
        "the server buffered for the stalled subscriber: peak RSS grew by {growth} kB (bound {MAX_GROWTH_KB} kB)"
    );

    // The slow subscriber resumes and gets everything, in order, once.
    let (mut slow, slow_got) =
        tokio::time::timeout(Duration::from_secs(300), read_big_items(slow, "slow", LOAD))
            .await
            .expect("the slow subscriber catches up");
    assert_same_events(&slow_got, &made, "slow subscriber");
    let sentinel = create(&http, &base, "sentinel").await;
    let next = slow.next_data("slow", T).await.expect("the sentinel");
    assert_eq!(
        item_of(&next),
        sentinel,
        "nothing repeated after catching up"
    );
}

// ---------- replicas as processes ----------

/// Follows PROJECT_CREATED events from `marker` on `first`; when the
/// connection ends, reconnects to `fallback` from the last cursor received.
/// Stops at the project named `sentinel`. Returns the items and how many
/// times it reconnected.
async fn follow(
    first: String,
    fallback: String,
    marker: String,
    received: Arc<Mutex<Vec<Item>>>,
) -> usize {
    let mut target = first;
    let mut last = marker;
    let mut reconnects = 0;
    loop {
        let mut ws = RawWs::connect_and_init(&target).await;
        ws.subscribe("s", PROJECTS_AFTER, json!({ "after": last }))
            .await;
        loop {
            let Some(msg) = ws.next_for("s", Duration::from_secs(60)).await else {
                assert!(
                    ws.closed.is_some(),
                    "no event for 60 s on {target} while the connection stayed open"
                );
                break;
            };
            assert_eq!(msg["type"], "next", "{msg}");
            let item = item_of(&msg["payload"]["data"]);
            last = item.0.to_string();
            let done = item.1 == "sentinel";
            received.lock().expect("lock").push(item);
            if done {
                return reconnects;
            }
        }
        reconnects += 1;
        assert!(reconnects < 10, "too many reconnects");
        target = fallback.clone();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_follows_its_replica_going_down_with_nothing_lost_or_repeated() {
    let (url, _dir) = support::fresh_database().await;
    // SQLite replicas see each other's commits by polling; on PostgreSQL
    // LISTEN/NOTIFY does it (polling is a harmless safety net).
    let envs = [("CEREBRAL_EVENT_POLL_MS", "100")];
    let a = ServerProcess::start(&url, &envs).await;
    let mut b = ServerProcess::start(&url, &envs).await;
    let http = reqwest::Client::new();
    let marker = support::create_project_cursor(&http, &a.base, "marker").await;

    let received = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tokio::spawn(follow(
        b.base.clone(),
        a.base.clone(),
        marker.clone(),
        received.clone(),
    ));
    let publisher = publish_in_background(
        a.base.clone(),
        300,
        |i| format!("p-{i:03}"),
        Duration::from_millis(15),
    );

    // Once the subscriber on B has some, B dies and comes back on its port
    // while events keep coming.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while received.lock().expect("lock").len() < 30 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscriber on B received {} events in 60 s",
            received.lock().expect("lock").len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.kill().await;
    b.restart().await;

    eprintln!(
        "B restarted after the subscriber had {} events",
        received.lock().expect("lock").len()
    );
    let mut want = publisher.await.expect("publisher");
    want.push(create(&http, &a.base, "sentinel").await);
    let reconnects = tokio::time::timeout(Duration::from_secs(120), subscriber)
        .await
        .expect("the subscriber reaches the sentinel")
        .expect("subscriber");
    assert!(reconnects >= 1, "the subscriber lost B and reconnected");
    let got = received.lock().expect("lock").clone();
    assert_same_events(&got, &want, "across the failover");

    // The restarted B replays the whole list from the marker.
    let mut fresh = RawWs::connect_and_init(&b.base).await;
    fresh
        .subscribe("s", PROJECTS_AFTER, json!({ "after": marker }))
        .await;
    let replayed = read_items(&mut fresh, "s", want.len(), T).await;
    assert_same_events(&replayed, &want, "replay on the restarted replica");
}
