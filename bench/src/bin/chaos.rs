//! `chaos`: exactly-once, in-order event delivery across two replicas while
//! subscribers drop and resume and one replica is killed.
//!
//! Why: the event stream promises that a client resuming with the cursor of
//! the last event it saw gets every later event once and in order, whichever
//! replica it lands on and even when a replica crashes. Unit tests cover the
//! pieces; only real processes on one PostgreSQL database, real sockets
//! dropped mid-stream and a real `SIGKILL` show the promise holds end to end.
//!
//! What it does: two `cerebral` processes share a fresh database. A marker
//! event fixes the start cursor. Subscribers (spread over both replicas)
//! stream `PROJECT_CREATED` events after it, each dropping its socket at
//! random moments and resuming with its last cursor on a random replica.
//! Publishers create the projects (with idempotency keys, so a retry after
//! an unknown outcome never adds an event). Halfway, one replica is killed
//! and restarted. At the end each subscriber's cursors are compared with the
//! set of cursors the mutations returned.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cerebral_bench::{
    PgDatabase, Rng, Server, ServerSpec, Ws, free_port, graphql, log_summary, metric, percentile,
    pong, subscribe, ws_connect, ws_init,
};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::Message;

/// Command line of `chaos`.
#[derive(Debug, Parser)]
#[command(about = "Delivery guarantees of the event stream under reconnects and a replica crash")]
struct Args {
    /// The server binary to start (twice).
    #[arg(long, default_value = "target/release/cerebral")]
    server_bin: PathBuf,
    /// Concurrent subscribers, spread over both replicas.
    #[arg(long, default_value_t = 1000)]
    subscribers: usize,
    /// Events (createProject mutations) to publish.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Concurrent publishing tasks.
    #[arg(long, default_value_t = 8)]
    publishers: usize,
    /// Mean voluntary disconnects per subscriber during publishing.
    #[arg(long, default_value_t = 2.5)]
    reconnects: f64,
    /// Share of events published before one replica is killed (>= 1 turns
    /// the kill off).
    #[arg(long, default_value_t = 0.5)]
    kill_at: f64,
    /// Pause between the kill and the restart, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    downtime_ms: u64,
    /// Time the subscribers get after the last publish to see every event.
    #[arg(long, default_value_t = 60)]
    drain_timeout_secs: u64,
    /// Use this PostgreSQL database (must be empty of other projects being
    /// created) instead of creating a fresh one.
    #[arg(long)]
    database_url: Option<String>,
    /// Database through which the fresh database is created and dropped.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_admin_url: String,
    /// Seed of the random choices (disconnect moments, replicas, victim).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Keep the folder with the server logs.
    #[arg(long)]
    keep_logs: bool,
}

const MUTATION: &str = "mutation($n: String!, $k: String) { createProject(input: {name: $n, idempotencyKey: $k}) { project { id } event { cursor } } }";
const SUBSCRIPTION: &str =
    "subscription($a: String!) { events(after: $a, types: [PROJECT_CREATED]) { cursor payload } }";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // On Ctrl-C the run future is dropped: servers are killed, the database
    // dropped.
    let r = tokio::select! {
        r = run(args) => r,
        _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Microseconds since the start of the run; one clock for publish and
/// receive times.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn us(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

/// What publishers and subscribers share.
struct Shared {
    clock: Clock,
    ws_urls: [String; 2],
    gql_urls: [String; 2],
    /// Mutations answered so far (drives the disconnects and the kill).
    published: AtomicUsize,
    /// Next publish index to take.
    next: AtomicUsize,
    /// Subscribers that have subscribed at least once.
    connected: AtomicUsize,
    events: usize,
}

/// One created event, as the publisher saw it.
#[derive(Debug, Clone, Copy)]
struct Published {
    cursor: i64,
    /// Just before the request that succeeded was sent.
    send_us: u64,
    /// When its response arrived.
    resp_us: u64,
}

/// What one publisher task did.
#[derive(Default)]
struct PubResult {
    events: Vec<Published>,
    failed_attempts: usize,
    errors: Vec<String>,
}

/// What one subscriber saw.
#[derive(Default)]
struct SubResult {
    cursors: Vec<i64>,
    recv_us: Vec<u64>,
    /// When each connection sent its `subscribe` (ascending).
    conn_start_us: Vec<u64>,
    voluntary: u32,
    involuntary: u32,
    connect_failures: u32,
    stream_errors: u32,
    done: bool,
    first_error: Option<String>,
    /// Why connections ended other than by our choice, with counts.
    drop_reasons: BTreeMap<String, u32>,
}

async fn run(args: Args) -> Result<bool> {
    let wall = Instant::now();
    // Declared before the servers, so it is dropped after they are killed.
    let fresh_db = match &args.database_url {
        Some(_) => None,
        None => Some(PgDatabase::create(&args.pg_admin_url)?),
    };
    let database_url = match (&args.database_url, &fresh_db) {
        (Some(u), _) => u.clone(),
        (None, Some(db)) => db.url().to_string(),
        (None, None) => bail!("no database"),
    };
    let logs = tempfile::Builder::new()
        .prefix("cerebral-chaos-")
        .tempdir()?;
    let mut servers = Vec::new();
    // One after the other: the first applies the migrations.
    for name in ["replica-a", "replica-b"] {
        servers.push(
            Server::start(ServerSpec {
                bin: args.server_bin.clone(),
                database_url: database_url.clone(),
                port: free_port()?,
                log_dir: logs.path().to_path_buf(),
                name: name.into(),
                extra_env: vec![],
            })
            .await?,
        );
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let shared = Arc::new(Shared {
        clock: Clock(Instant::now()),
        ws_urls: [servers[0].ws_url(), servers[1].ws_url()],
        gql_urls: [servers[0].graphql_url(), servers[1].graphql_url()],
        published: AtomicUsize::new(0),
        next: AtomicUsize::new(0),
        connected: AtomicUsize::new(0),
        events: args.events,
    });
    let run_id = uuid::Uuid::now_v7().simple().to_string();

    // The marker: every subscriber starts right after it.
    let data = graphql(
        &http,
        &shared.gql_urls[0],
        MUTATION,
        json!({ "n": "chaos-marker", "k": format!("chaos-{run_id}-marker") }),
    )
    .await
    .context("creating the marker event")?;
    let start_cursor = event_cursor(&data)?;
    eprintln!(
        "replicas up ({}, {}), start cursor {start_cursor}, logs in {}",
        servers[0].base_url(),
        servers[1].base_url(),
        logs.path().display()
    );

    // Subscribers.
    let (final_tx, final_rx) = watch::channel::<Option<i64>>(None);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut master = Rng::new(args.seed);
    let mut subs = Vec::with_capacity(args.subscribers);
    for i in 0..args.subscribers {
        let rng = Rng::new(master.next_u64());
        let (shared, final_rx, stop_rx) = (shared.clone(), final_rx.clone(), stop_rx.clone());
        let reconnects = args.reconnects;
        subs.push(tokio::spawn(async move {
            subscriber(i, rng, reconnects, start_cursor, shared, final_rx, stop_rx).await
        }));
    }
    // Let them connect before publishing, so the first events are live for
    // most of them (connect time is not delivery latency).
    wait_connected(&shared, args.subscribers).await;
    eprintln!("{} subscribers started", args.subscribers);

    // Chaos monkey: kill one replica halfway and restart it.
    let victim = master.below(2) as usize;
    let kill_after = if args.kill_at < 1.0 {
        Some(((args.events as f64) * args.kill_at.max(0.0)) as usize)
    } else {
        None
    };
    let monkey = {
        let shared = shared.clone();
        let downtime = Duration::from_millis(args.downtime_ms);
        tokio::spawn(async move {
            let mut servers = servers;
            let mut report = None;
            if let Some(k) = kill_after {
                while shared.published.load(Ordering::Relaxed) < k {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let t0 = Instant::now();
                let at = shared.published.load(Ordering::Relaxed);
                servers[victim].kill().await?;
                tokio::time::sleep(downtime).await;
                servers[victim].restart().await?;
                report = Some((at, t0.elapsed()));
            }
            Ok::<_, anyhow::Error>((servers, report))
        })
    };

    // Publishers.
    let pub_t0 = Instant::now();
    let mut pubs = Vec::new();
    for _ in 0..args.publishers.max(1) {
        let (shared, http, run_id) = (shared.clone(), http.clone(), run_id.clone());
        pubs.push(tokio::spawn(async move {
            publisher(shared, http, run_id).await
        }));
    }
    let mut published = Vec::with_capacity(args.events);
    let (mut failed_attempts, mut pub_errors) = (0usize, Vec::new());
    for p in pubs {
        let r = p.await??;
        published.extend(r.events);
        failed_attempts += r.failed_attempts;
        pub_errors.extend(r.errors);
    }
    let publish_secs = pub_t0.elapsed().as_secs_f64();
    published.sort_by_key(|p| p.cursor);
    let distinct = {
        let mut c: Vec<i64> = published.iter().map(|p| p.cursor).collect();
        c.dedup();
        c.len()
    };
    if distinct != published.len() {
        eprintln!(
            "warning: {} mutations returned an already returned cursor",
            published.len() - distinct
        );
        published.dedup_by_key(|p| p.cursor);
    }
    let last_cursor = published.last().map_or(start_cursor, |p| p.cursor);
    let _ = final_tx.send(Some(last_cursor));
    eprintln!(
        "{} events published in {publish_secs:.1} s ({failed_attempts} failed attempts retried); draining",
        published.len()
    );
    let (servers, kill_report) = monkey.await??;

    // Drain.
    let drain_t0 = Instant::now();
    let all = futures::future::join_all(subs);
    tokio::pin!(all);
    let drain = Duration::from_secs(args.drain_timeout_secs);
    let results = tokio::select! {
        r = &mut all => r,
        _ = tokio::time::sleep(drain) => {
            let _ = stop_tx.send(true);
            all.await
        }
    };
    let drain_secs = drain_t0.elapsed().as_secs_f64();
    let mut subs_out = Vec::with_capacity(results.len());
    for r in results {
        subs_out.push(r?);
    }
    drop(final_tx);
    drop(stop_tx);

    let heads = [
        metric(&http, &servers[0].base_url(), "cerebral_event_head")
            .await
            .ok()
            .flatten(),
        metric(&http, &servers[1].base_url(), "cerebral_event_head")
            .await
            .ok()
            .flatten(),
    ];
    let report = analyse(&published, &subs_out);
    let wall_secs = wall.elapsed().as_secs_f64();
    drop(servers);

    let p = &report;
    println!();
    println!("chaos: two replicas on PostgreSQL");
    let row = |k: &str, v: String| println!("  {k:<48} {v}");
    row("events expected", published.len().to_string());
    row("subscribers", args.subscribers.to_string());
    row(
        "deliveries expected (events x subscribers)",
        p.expected.to_string(),
    );
    row("deliveries received (all messages)", p.received.to_string());
    row("  of which distinct expected cursors", p.unique.to_string());
    row("lost", p.lost.to_string());
    row("duplicated", p.duplicated.to_string());
    row("out of order", p.out_of_order.to_string());
    row(
        "unexpected cursors (not published by us)",
        p.unexpected.to_string(),
    );
    row(
        "subscribers that saw the last event",
        format!("{} / {}", p.done, subs_out.len()),
    );
    row(
        "reconnects (voluntary + server-side drops)",
        format!(
            "{} ({} + {})",
            p.voluntary + p.involuntary,
            p.voluntary,
            p.involuntary
        ),
    );
    row(
        "failed connect attempts (retried)",
        p.connect_failures.to_string(),
    );
    row(
        "error/complete messages on streams",
        p.stream_errors.to_string(),
    );
    row(
        "failed publish attempts (retried)",
        failed_attempts.to_string(),
    );
    match kill_report {
        Some((at, d)) => row(
            "replica killed",
            format!(
                "{} after {at} events, back after {:.2} s",
                ["replica-a", "replica-b"][victim],
                d.as_secs_f64()
            ),
        ),
        None => row("replica killed", "no".into()),
    }
    row(
        "publish duration / rate",
        format!(
            "{publish_secs:.1} s / {:.0} events/s",
            published.len() as f64 / publish_secs.max(1e-9)
        ),
    );
    row("drain duration", format!("{drain_secs:.1} s"));
    row(
        "latency from response, all deliveries p50/p99/max",
        ms3(&p.lat_resp),
    );
    row(
        "latency from send, all deliveries p50/p99/max",
        ms3(&p.lat_send),
    );
    row(
        "latency from response, live deliveries p50/p99/max",
        ms3(&p.lat_live),
    );
    row(
        "deliveries before the mutation response",
        p.before_response.to_string(),
    );
    row("event head per replica (/metrics)", format!("{heads:?}"));
    row("wall time", format!("{wall_secs:.1} s"));
    if let Some(e) = subs_out.iter().find_map(|s| s.first_error.clone()) {
        row("first subscriber error", e);
    }
    if let Some(e) = pub_errors.first() {
        row("first publish error", e.clone());
    }
    println!();
    println!("server logs ({}):", logs.path().display());
    for l in log_summary(logs.path())? {
        println!("  {l}");
    }
    let pct = |v: &[u32]| {
        json!({
            "p50_ms": percentile(v, 0.5) as f64 / 1000.0,
            "p99_ms": percentile(v, 0.99) as f64 / 1000.0,
            "max_ms": v.last().copied().unwrap_or(0) as f64 / 1000.0,
            "n": v.len(),
        })
    };
    let line = json!({
        "bench": "chaos",
        "events": published.len(),
        "subscribers": args.subscribers,
        "publishers": args.publishers,
        "expected": p.expected,
        "received": p.received,
        "unique": p.unique,
        "lost": p.lost,
        "duplicated": p.duplicated,
        "out_of_order": p.out_of_order,
        "unexpected": p.unexpected,
        "subscribers_done": p.done,
        "reconnects_voluntary": p.voluntary,
        "reconnects_involuntary": p.involuntary,
        "connect_failures": p.connect_failures,
        "stream_errors": p.stream_errors,
        "drop_reasons": p.drop_reasons,
        "publish_failed_attempts": failed_attempts,
        "killed_after_events": kill_report.map(|(at, _)| at),
        "kill_to_healthy_secs": kill_report.map(|(_, d)| d.as_secs_f64()),
        "publish_secs": publish_secs,
        "drain_secs": drain_secs,
        "latency_from_response_all": pct(&p.lat_resp),
        "latency_from_send_all": pct(&p.lat_send),
        "latency_from_response_live": pct(&p.lat_live),
        "delivered_before_response": p.before_response,
        "wall_secs": wall_secs,
    });
    println!("{line}");
    if args.keep_logs {
        eprintln!("kept {}", logs.keep().display());
    }
    drop(fresh_db);
    Ok(p.lost == 0 && p.duplicated == 0 && p.out_of_order == 0)
}

fn ms3(v: &[u32]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    format!(
        "{:.1} / {:.1} / {:.1} ms (n={})",
        percentile(v, 0.5) as f64 / 1000.0,
        percentile(v, 0.99) as f64 / 1000.0,
        v.last().copied().unwrap_or(0) as f64 / 1000.0,
        v.len()
    )
}

fn event_cursor(data: &Value) -> Result<i64> {
    let c = data
        .pointer("/createProject/event/cursor")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no event cursor in {data}"))?;
    c.parse().with_context(|| format!("cursor {c:?}"))
}

/// Waits until every subscriber has sent its first `subscribe` (or 30 s).
async fn wait_connected(shared: &Shared, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.connected.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Takes publish indexes until all events are created; each mutation is
/// retried (same idempotency key, other replica) until it gets an answer.
async fn publisher(
    shared: Arc<Shared>,
    http: reqwest::Client,
    run_id: String,
) -> Result<PubResult> {
    let mut out = PubResult::default();
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= shared.events {
            return Ok(out);
        }
        let vars = json!({ "n": format!("chaos-{i}"), "k": format!("chaos-{run_id}-{i}") });
        let mut replica = i % 2;
        let mut attempt = 0u32;
        loop {
            let send_us = shared.clock.us();
            let r = graphql(&http, &shared.gql_urls[replica], MUTATION, vars.clone())
                .await
                .and_then(|d| event_cursor(&d));
            match r {
                Ok(cursor) => {
                    out.events.push(Published {
                        cursor,
                        send_us,
                        resp_us: shared.clock.us(),
                    });
                    break;
                }
                Err(e) => {
                    attempt += 1;
                    out.failed_attempts += 1;
                    if out.errors.len() < 3 {
                        out.errors.push(format!("{e:#}"));
                    }
                    if attempt >= 50 {
                        bail!("mutation {i} failed {attempt} times; last: {e:#}");
                    }
                    replica = 1 - replica;
                    tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt.min(20))))
                        .await;
                }
            }
        }
        shared.published.fetch_add(1, Ordering::Relaxed);
    }
}

/// The part of a server message the subscriber needs; anything else is
/// parsed generically (rare: pings, errors).
#[derive(Deserialize)]
struct NextMsg {
    #[serde(rename = "type")]
    ty: String,
    payload: Option<NextPayload>,
}

#[derive(Deserialize)]
struct NextPayload {
    data: Option<NextData>,
}

#[derive(Deserialize)]
struct NextData {
    events: Option<NextEvent>,
}

#[derive(Deserialize)]
struct NextEvent {
    cursor: String,
}

/// Why a connection of a subscriber ended.
enum Why {
    Done,
    Stop,
    Voluntary,
    Involuntary(String),
}

/// One subscriber: streams from its last cursor, drops the socket when the
/// publish count crosses one of its random thresholds, resumes on a random
/// replica, and ends once it has seen the last published cursor (or on
/// stop).
async fn subscriber(
    idx: usize,
    mut rng: Rng,
    mean_reconnects: f64,
    start_cursor: i64,
    shared: Arc<Shared>,
    mut final_rx: watch::Receiver<Option<i64>>,
    mut stop: watch::Receiver<bool>,
) -> SubResult {
    let mut out = SubResult::default();
    // Disconnect moments, as publish counts: floor(mean) or one more.
    let k = mean_reconnects.floor() as usize + usize::from(rng.unit() < mean_reconnects.fract());
    let mut thresholds: Vec<usize> = (0..k)
        .map(|_| 1 + rng.below(shared.events.max(1) as u64) as usize)
        .collect();
    thresholds.sort_unstable_by(|a, b| b.cmp(a)); // pop() yields the smallest
    let mut replica = idx % 2;
    let mut last = start_cursor;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut final_cursor: Option<i64> = None;
    loop {
        if *stop.borrow() {
            return out;
        }
        if final_cursor.is_some_and(|f| last >= f) {
            out.done = true;
            return out;
        }
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            connect(&shared.ws_urls[replica], last),
        )
        .await;
        let mut ws = match conn {
            Ok(Ok(ws)) => ws,
            other => {
                out.connect_failures += 1;
                if out.first_error.is_none() {
                    out.first_error = Some(match other {
                        Ok(Err(e)) => format!("connect: {e:#}"),
                        _ => "connect timed out".into(),
                    });
                }
                replica = 1 - replica;
                let pause = 100 + rng.below(200);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(pause)) => {}
                    _ = stop.changed() => return out,
                }
                continue;
            }
        };
        if out.conn_start_us.is_empty() {
            shared.connected.fetch_add(1, Ordering::Relaxed);
        }
        out.conn_start_us.push(shared.clock.us());
        let why = loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break Why::Stop,
                r = final_rx.changed(), if final_cursor.is_none() => {
                    if r.is_ok() {
                        final_cursor = *final_rx.borrow_and_update();
                    }
                    if final_cursor.is_some_and(|f| last >= f) {
                        break Why::Done;
                    }
                }
                msg = ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        if let Ok(m) = serde_json::from_str::<NextMsg>(t.as_str())
                            && m.ty == "next"
                            && let Some(ev) = m.payload.and_then(|p| p.data).and_then(|d| d.events)
                        {
                            let Ok(c) = ev.cursor.parse::<i64>() else {
                                out.stream_errors += 1;
                                continue;
                            };
                            out.cursors.push(c);
                            out.recv_us.push(shared.clock.us());
                            last = last.max(c);
                            if final_cursor.is_some_and(|f| last >= f) {
                                break Why::Done;
                            }
                            continue;
                        }
                        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        match v.get("type").and_then(Value::as_str) {
                            Some("ping") => { let _ = ws.send(pong()).await; }
                            Some("pong") => {}
                            _ => {
                                out.stream_errors += 1;
                                if out.first_error.is_none() {
                                    out.first_error = Some(format!("stream: {}", t.as_str().chars().take(300).collect::<String>()));
                                }
                                break Why::Involuntary("error or complete".into());
                            }
                        }
                    }
                    Some(Ok(Message::Close(f))) => break Why::Involuntary(f.map_or("close frame without code".into(), |f| format!("close code {} {}", u16::from(f.code), f.reason))),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break Why::Involuntary(e.to_string()),
                    None => break Why::Involuntary("end of stream".into()),
                },
                _ = tick.tick() => {
                    if thresholds.last().is_some_and(|&t| shared.published.load(Ordering::Relaxed) >= t) {
                        thresholds.pop();
                        break Why::Voluntary;
                    }
                }
            }
        };
        match why {
            Why::Done | Why::Stop => {
                out.done = matches!(why, Why::Done);
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                return out;
            }
            Why::Voluntary => {
                // Abrupt: no `complete`, no close frame; the TCP socket just goes.
                drop(ws);
                out.voluntary += 1;
                replica = rng.below(2) as usize;
            }
            Why::Involuntary(reason) => {
                drop(ws);
                *out.drop_reasons.entry(reason).or_default() += 1;
                out.involuntary += 1;
                replica = rng.below(2) as usize;
                tokio::time::sleep(Duration::from_millis(20 + rng.below(100))).await;
            }
        }
    }
}

/// Opens a socket, initialises it and subscribes after `after`.
async fn connect(url: &str, after: i64) -> Result<Ws> {
    let mut ws = ws_connect(url).await?;
    ws_init(&mut ws).await?;
    ws.send(subscribe(
        "1",
        SUBSCRIPTION,
        json!({ "a": after.to_string() }),
    ))
    .await?;
    Ok(ws)
}

/// The figures of a run.
#[derive(Default)]
struct Report {
    expected: u64,
    received: u64,
    unique: u64,
    lost: u64,
    duplicated: u64,
    out_of_order: u64,
    unexpected: u64,
    done: usize,
    voluntary: u64,
    involuntary: u64,
    connect_failures: u64,
    stream_errors: u64,
    before_response: u64,
    drop_reasons: BTreeMap<String, u64>,
    /// Receive minus response time, µs, every first delivery (ascending).
    lat_resp: Vec<u32>,
    /// Receive minus send time, µs, every first delivery (ascending).
    lat_send: Vec<u32>,
    /// Receive minus response time, µs, first deliveries on a connection
    /// that was subscribed before the mutation was sent (ascending).
    lat_live: Vec<u32>,
}

/// Compares what each subscriber received with the published cursors.
fn analyse(published: &[Published], subs: &[SubResult]) -> Report {
    let n = published.len();
    let cursors: Vec<i64> = published.iter().map(|p| p.cursor).collect();
    let mut r = Report {
        expected: (n * subs.len()) as u64,
        ..Report::default()
    };
    let mut seen = vec![false; n];
    let mut unexpected_seen = std::collections::HashSet::new();
    for s in subs {
        seen.iter_mut().for_each(|b| *b = false);
        unexpected_seen.clear();
        r.received += s.cursors.len() as u64;
        r.done += usize::from(s.done);
        r.voluntary += u64::from(s.voluntary);
        r.involuntary += u64::from(s.involuntary);
        r.connect_failures += u64::from(s.connect_failures);
        r.stream_errors += u64::from(s.stream_errors);
        for (k, v) in &s.drop_reasons {
            *r.drop_reasons.entry(k.clone()).or_default() += u64::from(*v);
        }
        let mut prev: Option<i64> = None;
        let mut unique = 0u64;
        for (&c, &recv) in s.cursors.iter().zip(&s.recv_us) {
            if prev.is_some_and(|p| c < p) {
                r.out_of_order += 1;
            }
            prev = Some(c);
            match cursors.binary_search(&c) {
                Ok(j) if seen[j] => r.duplicated += 1,
                Ok(j) => {
                    seen[j] = true;
                    unique += 1;
                    let p = published[j];
                    let clamp = |d: i64| d.clamp(0, i64::from(u32::MAX)) as u32;
                    let from_resp = recv as i64 - p.resp_us as i64;
                    if from_resp < 0 {
                        r.before_response += 1;
                    }
                    r.lat_resp.push(clamp(from_resp));
                    r.lat_send.push(clamp(recv as i64 - p.send_us as i64));
                    // The connection this arrived on: the last one started
                    // before it.
                    let k = s.conn_start_us.partition_point(|&t| t <= recv);
                    if k > 0 && s.conn_start_us[k - 1] <= p.send_us {
                        r.lat_live.push(clamp(from_resp));
                    }
                }
                Err(_) => {
                    if unexpected_seen.insert(c) {
                        r.unexpected += 1;
                    } else {
                        r.duplicated += 1;
                    }
                }
            }
        }
        r.unique += unique;
        r.lost += n as u64 - unique;
    }
    r.lat_resp.sort_unstable();
    r.lat_send.sort_unstable();
    r.lat_live.sort_unstable();
    r
}
