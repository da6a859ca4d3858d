//! `write-path`: throughput and latency of the write path on PostgreSQL.
//!
//! Why: issue 14 asks that `reportTaskProgress` on 16 connections, each on
//! its own WORKING task, reach at least half of what PostgreSQL itself does
//! for a transaction of the same shape (update the task row, insert one
//! event row: see `bench/write_path.pgbench` for that floor). Writes of
//! different tasks share no row, so anything that makes them queue is the
//! server's own doing (a global lock, a serialised notify).
//!
//! What it does: starts the `cerebral` binary on a fresh database (or the
//! one given), creates one project with `--connections` tasks and starts
//! them all, then runs one client per task, each on its own HTTP
//! connection, reporting progress on its task in a loop for `--seconds`
//! after a warm-up. Prints requests per second, p50/p99 latency and the
//! number of failed requests.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cerebral_bench::{PgDatabase, Server, ServerSpec, free_port, graphql, percentile};
use clap::Parser;
use serde_json::json;

/// Command line of `write-path`.
#[derive(Debug, Parser)]
#[command(about = "reportTaskProgress throughput on N connections, each on its own task")]
struct Args {
    /// The server binary to start.
    #[arg(long, default_value = "target/release/cerebral")]
    server_bin: PathBuf,
    /// Concurrent clients, each on its own connection and its own task.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds, not measured.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Measured rounds; the median round's figures are printed last.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Use this PostgreSQL database instead of a fresh one.
    #[arg(long)]
    database_url: Option<String>,
    /// Database through which the fresh database is created and dropped.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    pg_admin_url: String,
}

const PROGRESS: &str = "mutation($t: ID!, $p: Int!) { reportTaskProgress(input: {taskId: $t, progress: $p}) { task { id } } }";

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("write-path: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let fresh = match &args.database_url {
        Some(_) => None,
        None => Some(PgDatabase::create(&args.pg_admin_url)?),
    };
    let database_url = match (&args.database_url, &fresh) {
        (Some(u), _) => u.clone(),
        (_, Some(db)) => db.url().to_string(),
        (None, None) => bail!("no database"),
    };
    let logs = tempfile::Builder::new()
        .prefix("cerebral-write-")
        .tempdir()?;
    let server = Server::start(ServerSpec {
        bin: args.server_bin.clone(),
        database_url,
        port: free_port()?,
        log_dir: logs.path().to_path_buf(),
        name: "server".into(),
        extra_env: vec![],
    })
    .await?;
    let url = server.graphql_url();
    let http = reqwest::Client::new();
    let p = graphql(
        &http,
        &url,
        "mutation { createProject(input: {name: \"write-path\"}) { project { id } } }",
        json!({}),
    )
    .await?;
    let pid = p["createProject"]["project"]["id"]
        .as_str()
        .context("project id")?
        .to_string();
    let mut tasks = Vec::new();
    for i in 0..args.connections {
        let t = graphql(
            &http,
            &url,
            "mutation($p: ID!, $n: String!) { createTask(input: {projectId: $p, title: $n}) { task { id } } }",
            json!({ "p": pid, "n": format!("t{i}") }),
        )
        .await?;
        let tid = t["createTask"]["task"]["id"]
            .as_str()
            .context("task id")?
            .to_string();
        graphql(
            &http,
            &url,
            "mutation($t: ID!) { startTask(input: {taskId: $t}) { task { status } } }",
            json!({ "t": tid }),
        )
        .await?;
        tasks.push(tid);
    }
    load(&url, &tasks, Duration::from_secs(args.warmup)).await?;
    let mut rounds = Vec::new();
    for r in 0..args.rounds {
        let (n, errors, mut lat, secs) =
            load(&url, &tasks, Duration::from_secs(args.seconds)).await?;
        lat.sort_unstable();
        let rps = n as f64 / secs;
        println!(
            "round {}: {rps:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {errors} failed",
            r + 1,
            percentile(&lat, 0.5) as f64 / 1000.0,
            percentile(&lat, 0.99) as f64 / 1000.0,
        );
        rounds.push((rps, percentile(&lat, 0.99)));
    }
    rounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((rps, p99)) = rounds.get(rounds.len() / 2) {
        println!(
            "median: {rps:.0} req/s, p99 {:.2} ms ({} connections)",
            *p99 as f64 / 1000.0,
            args.connections
        );
    }
    drop(server);
    Ok(())
}

/// Runs one client per task for `length`; returns the successful requests,
/// the failed ones, the latencies in microseconds and the elapsed seconds.
async fn load(
    url: &str,
    tasks: &[String],
    length: Duration,
) -> Result<(usize, usize, Vec<u64>, f64)> {
    let start = Instant::now();
    let end = start + length;
    let mut handles = Vec::new();
    for t in tasks {
        let (url, t) = (url.to_string(), t.clone());
        handles.push(tokio::spawn(async move {
            // One connection per client: the pool keeps at most one.
            let http = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(10))
                .build()?;
            let (mut ok, mut failed, mut lat) = (0usize, 0usize, Vec::new());
            let mut p = 0;
            while Instant::now() < end {
                p = (p + 1) % 100;
                let t0 = Instant::now();
                match graphql(&http, &url, PROGRESS, json!({ "t": t, "p": p })).await {
                    Ok(_) => {
                        ok += 1;
                        lat.push(t0.elapsed().as_micros() as u64);
                    }
                    Err(_) => failed += 1,
                }
            }
            anyhow::Ok((ok, failed, lat))
        }));
    }
    let (mut n, mut errors, mut lat) = (0, 0, Vec::new());
    for h in handles {
        let (ok, failed, l) = h.await??;
        n += ok;
        errors += failed;
        lat.extend(l);
    }
    Ok((n, errors, lat, start.elapsed().as_secs_f64()))
}
