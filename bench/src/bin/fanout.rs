//! `fanout`: what delivering one event to many `graphql-transport-ws`
//! subscribers costs, and whether requests still get through meanwhile.
//!
//! Why: a dashboard or agent fleet keeps thousands of sockets subscribed to
//! the same stream; each commit must reach all of them quickly, the server
//! must not spend its CPU re-running the same selection per subscriber, and
//! the mutations that produce the events must keep committing while the
//! fan-out runs.
//!
//! The run: start the release server (fresh SQLite file, or a fresh
//! PostgreSQL database with `--pg`), open `--subscribers` sockets on
//! `events(after: "HEAD") { cursor }` (unfiltered, or with
//! `types: [PROJECT_CREATED]` under `--filtered`), then send `--mutations`
//! `createProject` from a workflow (a dozen events each) `--interval-ms`
//! apart without waiting for each other. It prints publish → receive
//! latency (publish = the mutation request was sent), lost and duplicated
//! frames against the event log, mutation outcomes and latency, the
//! server's CPU per delivered frame (`/proc/<pid>/stat`, over the whole
//! delivery window: mutations and pings included) and its RSS per idle
//! subscribed socket.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cerebral_bench::{
    PgDatabase, Server, ServerSpec, free_port, graphql, log_summary, metric, mib, open_subscribed,
    percentile, pong, read_mem,
};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

/// Command line of `fanout`.
#[derive(Debug, Parser)]
#[command(about = "Fan-out of events to many WebSocket subscribers: latency, CPU, memory")]
struct Args {
    /// The server binary to start.
    #[arg(long, default_value = "target/release/cerebral")]
    server_bin: PathBuf,
    /// Subscribed WebSockets to open.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Subscribe with `types: [PROJECT_CREATED]` instead of every event.
    #[arg(long)]
    filtered: bool,
    /// `createProject` mutations to send.
    #[arg(long, default_value_t = 20)]
    mutations: usize,
    /// Time between two mutations, in milliseconds.
    #[arg(long, default_value_t = 500)]
    interval_ms: u64,
    /// The workflow each project is created from (its steps become tasks,
    /// each with its own event); `none` for a project without one: one
    /// event per mutation.
    #[arg(long, default_value = "greenfield-service")]
    workflow: String,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// Longest wait for the last frames after the last mutation answered,
    /// in seconds.
    #[arg(long, default_value_t = 60)]
    drain_secs: u64,
    /// Run on a fresh database created through this PostgreSQL admin URL
    /// (e.g. postgres://postgres@127.0.0.1:5432/postgres) instead of SQLite.
    #[arg(long)]
    pg: Option<String>,
    /// Extra server environment, `NAME=value`, repeatable.
    #[arg(long = "env")]
    env: Vec<String>,
    /// Keep the temporary folder (SQLite file, server log).
    #[arg(long)]
    keep_logs: bool,
    /// Record the server with `perf record -g` from the first mutation
    /// until the frames are delivered, into this file (for a flamegraph).
    #[arg(long)]
    perf_out: Option<PathBuf>,
}

const MUTATION: &str = "mutation($n: String!, $w: ID) { createProject(input: {name: $n, workflowId: $w}) { project { id } event { cursor } } }";
const UNFILTERED: &str = "subscription { events(after: \"HEAD\") { cursor } }";
const FILTERED: &str =
    "subscription { events(after: \"HEAD\", types: [PROJECT_CREATED]) { cursor } }";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let r = tokio::select! {
        r = run(args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What one subscriber saw: the cursor of each `next` and when it came.
#[derive(Default)]
struct Seen {
    frames: Vec<(i64, Instant)>,
    /// Frames other than `next`, `ping` and `pong` (errors, completes).
    other: usize,
    /// How the socket ended, when it ended before we closed it.
    ended: Option<String>,
}

/// How one mutation went.
#[derive(Debug, Clone)]
enum Outcome {
    Ok { project: String, took: Duration },
    Failed { why: String, took: Duration },
}

/// User CPU plus system CPU of `pid` so far, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Result<Duration> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces: fields count from after its ')'.
    let rest = s
        .rsplit_once(')')
        .ok_or_else(|| anyhow!("odd /proc/{pid}/stat"))?
        .1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of stat, so utime (14) and stime (15)
    // are at 11 and 12 here.
    let ticks: u64 =
        f.get(11).context("utime")?.parse::<u64>()? + f.get(12).context("stime")?.parse::<u64>()?;
    // USER_HZ is 100 on every Linux this runs on.
    Ok(Duration::from_millis(ticks * 10))
}

async fn run(args: Args) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("cerebral-fanout-")
        .tempdir()?;
    let pg = match &args.pg {
        Some(admin) => Some(PgDatabase::create(admin)?),
        None => None,
    };
    let database_url = match &pg {
        Some(db) => db.url().to_string(),
        None => format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()),
    };
    let mut extra_env = Vec::new();
    for e in &args.env {
        let (k, v) = e
            .split_once('=')
            .ok_or_else(|| anyhow!("--env needs NAME=value, got {e:?}"))?;
        extra_env.push((k.to_string(), v.to_string()));
    }
    let server = Server::start(ServerSpec {
        bin: args.server_bin.clone(),
        database_url,
        port: free_port()?,
        log_dir: dir.path().to_path_buf(),
        name: "server".into(),
        extra_env,
    })
    .await?;
    let pid = server.pid()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(64)
        .build()?;
    let gql = server.graphql_url();
    eprintln!("server pid {pid} on {}", server.base_url());

    // Warm-up: one project (schema caches, pool, the workflow) and a few
    // sockets, so lazily built shared state is not charged to sockets.
    let warm = create_project(&http, &gql, "warm-up", &args.workflow).await?;
    let warm_cursor = warm.1;
    {
        let (stop, _) = watch::channel(false);
        let seen = Arc::new(AtomicUsize::new(0));
        let sem = Arc::new(Semaphore::new(args.concurrency));
        let mut h = Vec::new();
        for _ in 0..50 {
            h.push(tokio::spawn(subscriber(
                server.ws_url(),
                UNFILTERED,
                sem.clone(),
                seen.clone(),
                stop.subscribe(),
            )));
        }
        wait_count(&seen, 50, Duration::from_secs(30)).await?;
        let _ = stop.send(true);
        for t in h {
            let _ = t.await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = read_mem(pid)?;

    // Subscribers.
    let query = if args.filtered { FILTERED } else { UNFILTERED };
    let (stop, _) = watch::channel(false);
    let ready = Arc::new(AtomicUsize::new(0));
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let t0 = Instant::now();
    let mut subs = Vec::with_capacity(args.subscribers);
    for _ in 0..args.subscribers {
        subs.push(tokio::spawn(subscriber(
            server.ws_url(),
            query,
            sem.clone(),
            ready.clone(),
            stop.subscribe(),
        )));
    }
    wait_count(&ready, args.subscribers, Duration::from_secs(300)).await?;
    // The server registers a stream when it runs the `subscribe`: wait
    // until the gauge counts all of them.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let active = metric(
            &http,
            &server.base_url(),
            "cerebral_ws_subscriptions_active",
        )
        .await
        .ok()
        .flatten()
        .unwrap_or(0.0);
        if active as usize >= args.subscribers {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {active} of {} subscriptions active", args.subscribers);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let open_secs = t0.elapsed().as_secs_f64();
    eprintln!("{} subscribers in {open_secs:.1} s", args.subscribers);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = read_mem(pid)?;
    // The log's head before publishing: every later event is expected.
    let head = last_cursor(&http, &gql, warm_cursor).await?;

    // Publish.
    let perf = match &args.perf_out {
        Some(out) => Some(
            std::process::Command::new("perf")
                .args(["record", "-F", "499", "-g", "-p", &pid.to_string(), "-o"])
                .arg(out)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .context("starting perf")?,
        ),
        None => None,
    };
    let cpu0 = cpu_time(pid)?;
    let wall0 = Instant::now();
    let mut sent = Vec::with_capacity(args.mutations);
    let mut tasks = Vec::with_capacity(args.mutations);
    for i in 0..args.mutations {
        let at = Instant::now();
        sent.push(at);
        let (http, gql, wf) = (http.clone(), gql.clone(), args.workflow.clone());
        tasks.push(tokio::spawn(async move {
            let r = create_project(&http, &gql, &format!("fan-out {i}"), &wf).await;
            let took = at.elapsed();
            match r {
                Ok((project, _)) => Outcome::Ok { project, took },
                Err(e) => Outcome::Failed {
                    why: format!("{e:#}"),
                    took,
                },
            }
        }));
        tokio::time::sleep(Duration::from_millis(args.interval_ms)).await;
    }
    let mut outcomes = Vec::with_capacity(args.mutations);
    for t in tasks {
        outcomes.push(t.await?);
    }
    // The log now: what every subscriber should get, exactly once.
    let log = events_after(&http, &gql, head).await?;
    let expected: Vec<(i64, String)> = log
        .iter()
        .filter(|(_, ty, _)| !args.filtered || ty == "PROJECT_CREATED")
        .map(|(c, _, p)| (*c, p.clone()))
        .collect();
    let expected_frames = expected.len() * args.subscribers;
    // Drain: wait until the frames stop coming or all arrived.
    let drain_deadline = Instant::now() + Duration::from_secs(args.drain_secs);
    let mut last = (usize::MAX, Instant::now());
    loop {
        let n = RECEIVED.load(Ordering::Relaxed);
        if n >= expected_frames || Instant::now() > drain_deadline {
            break;
        }
        if n != last.0 {
            last = (n, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(10) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let wall = wall0.elapsed();
    let cpu = cpu_time(pid)?.saturating_sub(cpu0);
    if let Some(mut perf) = perf {
        // perf writes its file on SIGINT.
        let _ = std::process::Command::new("kill")
            .args(["-INT", &perf.id().to_string()])
            .status();
        let _ = perf.wait();
    }
    let shared = metric(
        &http,
        &server.base_url(),
        "cerebral_subscription_frames_shared_total",
    )
    .await
    .ok()
    .flatten();
    let _ = stop.send(true);
    let mut seen = Vec::with_capacity(subs.len());
    for s in subs {
        seen.push(s.await?);
    }

    // Figures.
    let project_of: HashMap<i64, &str> = expected.iter().map(|(c, p)| (*c, p.as_str())).collect();
    let sent_of: HashMap<&str, Instant> = outcomes
        .iter()
        .zip(&sent)
        .filter_map(|(o, at)| match o {
            Outcome::Ok { project, .. } => Some((project.as_str(), *at)),
            Outcome::Failed { .. } => None,
        })
        .collect();
    let mut latencies = Vec::with_capacity(expected_frames);
    let (mut lost, mut duplicated, mut unexpected, mut out_of_order, mut other, mut ended) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    let mut delivered = 0usize;
    for s in &seen {
        other += s.other;
        if s.ended.is_some() {
            ended += 1;
        }
        let mut count: HashMap<i64, usize> = HashMap::new();
        let mut prev = i64::MIN;
        for (c, at) in &s.frames {
            delivered += 1;
            if *c <= prev {
                out_of_order += 1;
            }
            prev = *c;
            *count.entry(*c).or_default() += 1;
            match project_of.get(c).and_then(|p| sent_of.get(p)) {
                Some(t) => latencies.push(at.saturating_duration_since(*t)),
                None if !project_of.contains_key(c) => unexpected += 1,
                None => {}
            }
        }
        for (c, _) in &expected {
            match count.get(c) {
                None => lost += 1,
                Some(n) if *n > 1 => duplicated += n - 1,
                Some(_) => {}
            }
        }
    }
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut took: Vec<Duration> = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Ok { took, .. } | Outcome::Failed { took, .. } => *took,
        })
        .collect();
    took.sort();
    let committed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Ok { .. }))
        .count();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    for o in &outcomes {
        if let Outcome::Failed { why, .. } = o {
            let short: String = why.chars().take(80).collect();
            *failures.entry(short).or_default() += 1;
        }
    }
    let cpu_per_frame_us = if delivered > 0 {
        cpu.as_secs_f64() * 1e6 / delivered as f64
    } else {
        0.0
    };
    let n = args.subscribers.max(1) as u64;
    let per_socket = idle.rss.saturating_sub(baseline.rss) / n;
    let db = if args.pg.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    let filter = if args.filtered {
        "types: [PROJECT_CREATED]"
    } else {
        "unfiltered"
    };
    println!();
    println!("fanout: {} subscribers, {filter}, {db}", args.subscribers);
    println!("  {:<40} {open_secs:.1} s", "time to open and subscribe");
    println!(
        "  {:<40} {} B",
        "RSS per idle subscribed socket", per_socket
    );
    println!(
        "  {:<40} {} → {}",
        "RSS baseline → idle",
        mib(baseline.rss),
        mib(idle.rss)
    );
    println!(
        "  {:<40} {} ({} per subscriber)",
        "events expected",
        expected_frames,
        expected.len()
    );
    println!("  {:<40} {delivered}", "frames delivered");
    println!(
        "  {:<40} {lost} / {duplicated} / {out_of_order}",
        "lost / duplicated / out of order"
    );
    println!(
        "  {:<40} {unexpected} / {other} / {ended}",
        "unexpected / other frames / ended early"
    );
    println!(
        "  {:<40} p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        "publish → receive",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or_default()),
    );
    println!(
        "  {:<40} {committed} of {} committed; p50 {:.0} ms, p99 {:.0} ms",
        "mutations",
        outcomes.len(),
        ms(percentile(&took, 0.5)),
        ms(percentile(&took, 0.99)),
    );
    for (why, k) in &failures {
        println!("  {:<40} {k}× {why}", "  failed");
    }
    println!(
        "  {:<40} {:.2} s CPU over {:.1} s → {cpu_per_frame_us:.1} µs per frame",
        "server CPU",
        cpu.as_secs_f64(),
        wall.as_secs_f64()
    );
    if let Some(s) = shared {
        println!("  {:<40} {s}", "cerebral_subscription_frames_shared_total");
    }
    println!("server log ({}):", server.log_path().display());
    for l in log_summary(dir.path())? {
        println!("  {l}");
    }
    let line = json!({
        "bench": "fanout",
        "database": db,
        "subscribers": args.subscribers,
        "filtered": args.filtered,
        "bytes_per_idle_socket": per_socket,
        "expected_frames": expected_frames,
        "delivered": delivered,
        "lost": lost,
        "duplicated": duplicated,
        "out_of_order": out_of_order,
        "latency_p50_ms": ms(percentile(&latencies, 0.5)).round(),
        "latency_p99_ms": ms(percentile(&latencies, 0.99)).round(),
        "mutations_committed": committed,
        "mutations": outcomes.len(),
        "mutation_p99_ms": ms(percentile(&took, 0.99)).round(),
        "cpu_secs": cpu.as_secs_f64(),
        "cpu_per_frame_us": (cpu_per_frame_us * 10.0).round() / 10.0,
        "frames_shared": shared,
    });
    println!("{line}");
    drop(server);
    drop(pg);
    if args.keep_logs {
        let kept = dir.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(())
}

/// Frames received by all subscribers so far (for the drain wait).
static RECEIVED: AtomicUsize = AtomicUsize::new(0);

async fn wait_count(n: &AtomicUsize, want: usize, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    while n.load(Ordering::Relaxed) < want {
        if Instant::now() > deadline {
            bail!("only {} of {want} ready", n.load(Ordering::Relaxed));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Creates a project from `workflow`; its global id and event cursor.
async fn create_project(
    http: &reqwest::Client,
    gql: &str,
    name: &str,
    workflow: &str,
) -> Result<(String, i64)> {
    let w = (workflow != "none").then_some(workflow);
    let d = graphql(http, gql, MUTATION, json!({ "n": name, "w": w })).await?;
    let project = d
        .pointer("/createProject/project/id")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no project id in {d}"))?
        .to_string();
    let cursor = d
        .pointer("/createProject/event/cursor")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no cursor in {d}"))?
        .parse()?;
    Ok((project, cursor))
}

/// Every event after `after`: cursor, type and project id.
async fn events_after(
    http: &reqwest::Client,
    gql: &str,
    after: i64,
) -> Result<Vec<(i64, String, String)>> {
    let mut out = Vec::new();
    let mut at = after;
    loop {
        let d = graphql(
            http,
            gql,
            "query($a: String) { events(first: 100, after: $a) { edges { node { cursor type projectId } } } }",
            json!({ "a": at.to_string() }),
        )
        .await?;
        let edges = d
            .pointer("/events/edges")
            .and_then(Value::as_array)
            .ok_or_else(|| anyhow!("no edges in {d}"))?;
        if edges.is_empty() {
            return Ok(out);
        }
        for e in edges {
            let node = &e["node"];
            let c: i64 = node["cursor"].as_str().unwrap_or("0").parse()?;
            out.push((
                c,
                node["type"].as_str().unwrap_or_default().to_string(),
                node["projectId"].as_str().unwrap_or_default().to_string(),
            ));
            at = at.max(c);
        }
    }
}

/// The cursor of the last event in the log (at least `from`).
async fn last_cursor(http: &reqwest::Client, gql: &str, from: i64) -> Result<i64> {
    Ok(events_after(http, gql, from)
        .await?
        .last()
        .map_or(from, |e| e.0))
}

/// The cursor in a `next` frame, found without parsing the whole frame
/// (the client shares the machine with the server).
fn cursor_of(frame: &str) -> Option<i64> {
    let at = frame.find("\"cursor\":\"")? + "\"cursor\":\"".len();
    let rest = &frame[at..];
    let end = rest.find('"')?;
    rest[..end].parse().ok()
}

/// One subscriber: connect, init, subscribe, count itself ready, then
/// record every `next` until told to stop.
async fn subscriber(
    url: String,
    query: &'static str,
    sem: Arc<Semaphore>,
    ready: Arc<AtomicUsize>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    let permit = sem.acquire_owned().await;
    let r = open_subscribed(&url, query, Duration::from_secs(60)).await;
    drop(permit);
    let mut ws = match r {
        Ok(ws) => ws,
        Err(e) => {
            seen.ended = Some(format!("{e:#}"));
            return seen;
        }
    };
    ready.fetch_add(1, Ordering::Relaxed);
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(None)).await;
                return seen;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let t = t.as_str();
                    if t.contains("\"type\":\"next\"") {
                        match cursor_of(t) {
                            Some(c) => {
                                seen.frames.push((c, Instant::now()));
                                RECEIVED.fetch_add(1, Ordering::Relaxed);
                            }
                            None => seen.other += 1,
                        }
                    } else if t.contains("\"ping\"") {
                        let _ = ws.send(pong()).await;
                    } else if !t.contains("\"pong\"") {
                        seen.other += 1;
                    }
                }
                Some(Ok(Message::Close(f))) => {
                    seen.ended = Some(format!("closed: {f:?}"));
                    return seen;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    seen.ended = Some(e.to_string());
                    return seen;
                }
                None => {
                    seen.ended = Some("end of stream".into());
                    return seen;
                }
            }
        }
    }
}
