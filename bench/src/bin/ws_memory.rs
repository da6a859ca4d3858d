//! `ws-memory`: how much server memory one idle, subscribed WebSocket costs,
//! and whether sockets that never send `connection_init` are closed.
//!
//! Why: every dashboard or agent keeps a subscription open for hours, so the
//! memory per idle connection decides how many clients one replica can hold;
//! and a socket that never initialises must not hold memory forever (the
//! server should close it with 4408 after `CEREBRAL_WS_INIT_TIMEOUT_MS`).
//!
//! The server runs as a child process so its RSS is measured alone, from
//! `/proc/<pid>/status`; all client sockets live in this process.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use cerebral_bench::{
    Server, ServerSpec, free_port, graphql, log_summary, metric, mib, open_subscribed, pong,
    read_mem, ws_connect,
};
use clap::Parser;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

/// Command line of `ws-memory`.
#[derive(Debug, Parser)]
#[command(about = "Server RSS per idle subscribed WebSocket, and the init timeout")]
struct Args {
    /// The server binary to start.
    #[arg(long, default_value = "target/release/cerebral")]
    server_bin: PathBuf,
    /// Idle subscribed WebSockets to open.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Handshakes in flight at once (keeps the accept queue sane).
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    /// WebSockets opened without `connection_init`.
    #[arg(long, default_value_t = 1000)]
    raw: usize,
    /// The server's init timeout (also passed to it as
    /// `CEREBRAL_WS_INIT_TIMEOUT_MS`); raw sockets are checked after this
    /// plus 2000 ms.
    #[arg(long, default_value_t = 3000)]
    init_timeout_ms: u64,
    /// Wait after the last subscription before reading RSS, in seconds.
    #[arg(long, default_value_t = 3)]
    settle_secs: u64,
    /// Use this database instead of a fresh SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// Keep the temporary folder (SQLite file, server log).
    #[arg(long)]
    keep_logs: bool,
}

const SUBSCRIPTION: &str = "subscription { events(after: \"HEAD\") { cursor type } }";

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // On Ctrl-C the run future is dropped, which kills the server.
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

/// How an idle connection ended.
#[derive(Debug)]
enum End {
    /// We closed it (end of the run).
    ByUs,
    /// The server sent a close frame with this code.
    Closed(Option<u16>),
    /// The connection broke without a close frame.
    Dropped(String),
}

async fn run(args: Args) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("cerebral-ws-memory-")
        .tempdir()?;
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| format!("sqlite://{}/bench.db?mode=rwc", dir.path().display()));
    let server = Server::start(ServerSpec {
        bin: args.server_bin.clone(),
        database_url,
        port: free_port()?,
        log_dir: dir.path().to_path_buf(),
        name: "server".into(),
        extra_env: vec![(
            "CEREBRAL_WS_INIT_TIMEOUT_MS".into(),
            args.init_timeout_ms.to_string(),
        )],
    })
    .await?;
    let pid = server.pid()?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let url = server.ws_url();
    eprintln!("server pid {pid} on {}", server.base_url());

    // Warm-up: the first requests and sockets allocate lazily built state
    // (schema caches, connection pool, allocator arenas) that is not per
    // connection and must not be charged to it.
    for i in 0..5 {
        graphql(
            &http,
            &server.graphql_url(),
            "query($n: Int) { __typename events(first: $n) { edges { cursor } } }",
            json!({ "n": i }),
        )
        .await
        .context("warm-up query")?;
    }
    let (warm, warm_ready) = open_idle(&url, 100, args.concurrency).await?;
    ensure_all_ready(warm_ready, 100).await?;
    close_all(warm).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let baseline = read_mem(pid)?;

    // Idle subscribed connections.
    let t0 = Instant::now();
    let (idle, ready) = open_idle(&url, args.connections, args.concurrency).await?;
    ensure_all_ready(ready, args.connections).await?;
    let open_secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "{} connections subscribed in {open_secs:.1} s",
        args.connections
    );
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let loaded = read_mem(pid)?;
    let gauges_loaded = gauges(&http, &server.base_url()).await;
    let idle_dropped = idle.iter().filter(|c| c.handle.is_finished()).count();

    // Raw sockets that never initialise.
    let raw_t0 = Instant::now();
    let (raw_tx, mut raw_rx) = mpsc::unbounded_channel();
    let (raw_stop_tx, raw_stop) = watch::channel(false);
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let mut raw_tasks = Vec::with_capacity(args.raw);
    let (raw_open_tx, mut raw_open_rx) = mpsc::unbounded_channel();
    for _ in 0..args.raw {
        let (url, sem, tx, open_tx, stop) = (
            url.clone(),
            sem.clone(),
            raw_tx.clone(),
            raw_open_tx.clone(),
            raw_stop.clone(),
        );
        raw_tasks.push(tokio::spawn(async move {
            raw_socket(url, sem, tx, open_tx, stop).await
        }));
    }
    drop(raw_open_tx);
    let mut raw_open_failed = 0usize;
    while let Some(ok) = raw_open_rx.recv().await {
        if !ok {
            raw_open_failed += 1;
        }
    }
    let raw_opened_secs = raw_t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(args.init_timeout_ms + 2000)).await;
    let raw_mem = read_mem(pid)?;
    let gauges_raw = gauges(&http, &server.base_url()).await;
    let mut raw_codes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut raw_closed, mut first_ms, mut last_ms) = (0usize, u64::MAX, 0u64);
    while let Ok((end, after_ms)) = raw_rx.try_recv() {
        raw_closed += 1;
        first_ms = first_ms.min(after_ms);
        last_ms = last_ms.max(after_ms);
        *raw_codes.entry(describe(&end)).or_default() += 1;
    }
    let _ = raw_stop_tx.send(true);
    for t in raw_tasks {
        let _ = t.await;
    }

    // Close everything and see what memory is given back.
    let idle_ends = close_all(idle).await;
    tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    let after_close = read_mem(pid)?;
    let gauges_closed = gauges(&http, &server.base_url()).await;
    let mut idle_end_kinds: BTreeMap<String, usize> = BTreeMap::new();
    for e in &idle_ends {
        *idle_end_kinds.entry(describe(e)).or_default() += 1;
    }

    let n = args.connections.max(1) as u64;
    let delta = loaded.rss.saturating_sub(baseline.rss);
    let per_conn = delta / n;
    let show = |g: Option<f64>| g.map_or("not reported".to_string(), |v| format!("{v}"));
    println!();
    println!("ws-memory: {} idle subscribed WebSockets", args.connections);
    println!("  {:<44} {}", "connections", args.connections);
    println!("  {:<44} {:.1} s", "time to open and subscribe", open_secs);
    println!(
        "  {:<44} {}",
        "baseline RSS (after warm-up)",
        mib(baseline.rss)
    );
    println!("  {:<44} {}", "RSS with connections", mib(loaded.rss));
    println!("  {:<44} {} B", "RSS delta per connection", per_conn);
    println!("  {:<44} {}", "peak RSS (VmHWM)", mib(loaded.hwm));
    println!(
        "  {:<44} {}",
        "cerebral_ws_connections_active",
        show(gauges_loaded.0)
    );
    println!(
        "  {:<44} {}",
        "cerebral_ws_subscriptions_active",
        show(gauges_loaded.1)
    );
    println!(
        "  {:<44} {}",
        "idle sockets ended before close", idle_dropped
    );
    println!();
    println!(
        "un-initialised sockets: {} opened in {raw_opened_secs:.1} s ({raw_open_failed} failed to open), checked {} ms later",
        args.raw,
        args.init_timeout_ms + 2000
    );
    println!("  {:<44} {}", "closed by the server", raw_closed);
    for (k, v) in &raw_codes {
        println!("  {:<44} {v}", format!("  {k}"));
    }
    if raw_closed > 0 {
        println!(
            "  {:<44} {first_ms}..{last_ms} ms",
            "closed after (first..last, from open)"
        );
    }
    println!("  {:<44} {}", "RSS then", mib(raw_mem.rss));
    println!(
        "  {:<44} {}",
        "cerebral_ws_connections_active",
        show(gauges_raw.0)
    );
    println!();
    println!("after closing everything ({} s later)", args.settle_secs);
    println!("  {:<44} {}", "RSS", mib(after_close.rss));
    println!("  {:<44} {}", "peak RSS (VmHWM)", mib(after_close.hwm));
    println!(
        "  {:<44} {}",
        "cerebral_ws_connections_active",
        show(gauges_closed.0)
    );
    println!(
        "  {:<44} {}",
        "cerebral_ws_subscriptions_active",
        show(gauges_closed.1)
    );
    for (k, v) in &idle_end_kinds {
        println!("  {:<44} {v}", format!("idle sockets: {k}"));
    }
    println!();
    println!("server log ({}):", server.log_path().display());
    for l in log_summary(dir.path())? {
        println!("  {l}");
    }
    let line = json!({
        "bench": "ws-memory",
        "connections": args.connections,
        "open_secs": round1(open_secs),
        "baseline_rss_bytes": baseline.rss,
        "loaded_rss_bytes": loaded.rss,
        "bytes_per_connection": per_conn,
        "peak_rss_bytes": after_close.hwm,
        "ws_connections_active": gauges_loaded.0,
        "ws_subscriptions_active": gauges_loaded.1,
        "idle_ended_early": idle_dropped,
        "raw": args.raw,
        "raw_open_failed": raw_open_failed,
        "raw_closed_by_server": raw_closed,
        "raw_close_codes": raw_codes,
        "raw_closed_after_ms": if raw_closed > 0 { json!([first_ms, last_ms]) } else { Value::Null },
        "raw_rss_bytes": raw_mem.rss,
        "raw_ws_connections_active": gauges_raw.0,
        "after_close_rss_bytes": after_close.rss,
        "after_close_ws_connections_active": gauges_closed.0,
        "after_close_ws_subscriptions_active": gauges_closed.1,
    });
    println!("{line}");
    drop(server);
    if args.keep_logs {
        let kept = dir.keep();
        eprintln!("kept {}", kept.display());
    }
    Ok(())
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn describe(e: &End) -> String {
    match e {
        End::ByUs => "closed by the client".into(),
        End::Closed(Some(c)) => format!("close code {c}"),
        End::Closed(None) => "close frame without code".into(),
        End::Dropped(why) => format!("dropped without close frame ({why})"),
    }
}

/// The two WebSocket gauges (connections, subscriptions), `None` each when
/// not reported or `/metrics` failed.
async fn gauges(http: &reqwest::Client, base: &str) -> (Option<f64>, Option<f64>) {
    let c = metric(http, base, "cerebral_ws_connections_active")
        .await
        .ok()
        .flatten();
    let s = metric(http, base, "cerebral_ws_subscriptions_active")
        .await
        .ok()
        .flatten();
    (c, s)
}

/// One idle connection: its task and the switch that tells it to close.
struct Idle {
    handle: JoinHandle<End>,
    stop: watch::Sender<bool>,
}

/// Spawns `n` idle subscribers, at most `concurrency` handshaking at once;
/// the receiver yields one result per finished handshake.
async fn open_idle(
    url: &str,
    n: usize,
    concurrency: usize,
) -> Result<(Vec<Idle>, mpsc::UnboundedReceiver<Result<()>>)> {
    let sem = Arc::new(Semaphore::new(concurrency.max(1)));
    let (tx, rx) = mpsc::unbounded_channel();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (stop, stop_rx) = watch::channel(false);
        let (url, sem, tx) = (url.to_string(), sem.clone(), tx.clone());
        let handle = tokio::spawn(async move { idle_subscriber(url, sem, tx, stop_rx).await });
        out.push(Idle { handle, stop });
    }
    Ok((out, rx))
}

/// Waits for `n` handshake results; any failure fails the run, since the
/// per-connection figure would be wrong otherwise.
async fn ensure_all_ready(mut rx: mpsc::UnboundedReceiver<Result<()>>, n: usize) -> Result<()> {
    let mut failed = Vec::new();
    for _ in 0..n {
        match rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(e)) => failed.push(format!("{e:#}")),
            None => return Err(anyhow!("a connection task vanished")),
        }
    }
    if let Some(first) = failed.first() {
        return Err(anyhow!(
            "{} of {n} connections failed; first: {first}",
            failed.len()
        ));
    }
    Ok(())
}

/// Tells every idle connection to close and collects how each ended.
async fn close_all(conns: Vec<Idle>) -> Vec<End> {
    for c in &conns {
        let _ = c.stop.send(true);
    }
    let mut ends = Vec::with_capacity(conns.len());
    for c in conns {
        ends.push(
            c.handle
                .await
                .unwrap_or_else(|e| End::Dropped(format!("task failed: {e}"))),
        );
    }
    ends
}

/// Connects, initialises, subscribes to new events, reports readiness, then
/// keeps reading (so pings are answered) until told to stop or the server
/// ends the connection.
async fn idle_subscriber(
    url: String,
    sem: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Result<()>>,
    mut stop: watch::Receiver<bool>,
) -> End {
    let permit = sem.acquire_owned().await;
    let r = open_subscribed(&url, SUBSCRIPTION, Duration::from_secs(30)).await;
    drop(permit);
    let mut ws = match r {
        Ok(ws) => {
            let _ = ready.send(Ok(()));
            ws
        }
        Err(e) => {
            let why = format!("{e:#}");
            let _ = ready.send(Err(e));
            return End::Dropped(why);
        }
    };
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(None)).await;
                return End::ByUs;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if t.as_str().contains("\"ping\"") {
                        let _ = ws.send(pong()).await;
                    }
                }
                Some(Ok(Message::Close(f))) => return End::Closed(f.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                Some(Err(e)) => return End::Dropped(e.to_string()),
                None => return End::Dropped("end of stream".into()),
            }
        }
    }
}

/// A socket that never sends `connection_init`: reports its opening, then
/// how and when (ms after opening) the server closed it.
async fn raw_socket(
    url: String,
    sem: Arc<Semaphore>,
    closed: mpsc::UnboundedSender<(End, u64)>,
    opened: mpsc::UnboundedSender<bool>,
    mut stop: watch::Receiver<bool>,
) {
    let permit = sem.acquire_owned().await;
    let r = tokio::time::timeout(Duration::from_secs(30), ws_connect(&url)).await;
    drop(permit);
    let mut ws = match r {
        Ok(Ok(ws)) => ws,
        _ => {
            let _ = opened.send(false);
            return;
        }
    };
    let _ = opened.send(true);
    drop(opened);
    let t0 = Instant::now();
    let end = loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(None)).await;
                return;
            }
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(f))) => break End::Closed(f.map(|f| u16::from(f.code))),
                Some(Ok(_)) => {}
                Some(Err(e)) => break End::Dropped(e.to_string()),
                None => break End::Dropped("end of stream".into()),
            }
        }
    };
    let _ = closed.send((end, t0.elapsed().as_millis() as u64));
}
