//! Shared plumbing of the Cerebral benchmarks (`ws-memory`, `chaos`).
//!
//! The benchmarks measure the real `cerebral` binary, not an in-process
//! app: only a separate process shows the true resident memory, survives a
//! `SIGKILL` the way a crashed replica does, and keeps the load generator's
//! CPU and memory out of the server's figures. This module starts and stops
//! those child processes, talks GraphQL over HTTP and `graphql-transport-ws`
//! to them, and reads what `/proc` and `/metrics` say about them.
#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The WebSocket subprotocol the server speaks (enisdenjo/graphql-ws); the
/// server refuses sockets that do not ask for it.
pub const WS_PROTOCOL: &str = "graphql-transport-ws";

/// A client WebSocket to the server, as `connect_async` returns it.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A port that was free a moment ago: bind port 0, read the port the kernel
/// chose, release it. The server binds it next; the tiny race is acceptable
/// for a benchmark and avoids parsing the server's log for its address.
pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
    Ok(l.local_addr()?.port())
}

/// How to start one server process; kept so a killed replica can be
/// restarted with exactly the same settings (port, database, environment).
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The `cerebral` binary.
    pub bin: PathBuf,
    /// `DATABASE_URL` of the server.
    pub database_url: String,
    /// Port on 127.0.0.1 the server listens on.
    pub port: u16,
    /// Folder for the server's stdout/stderr files.
    pub log_dir: PathBuf,
    /// Short name used in log file names and messages (e.g. `replica-a`).
    pub name: String,
    /// Extra environment variables (e.g. `CEREBRAL_WS_INIT_TIMEOUT_MS`).
    pub extra_env: Vec<(String, String)>,
}

/// A running server child process. Dropping it kills the process, so an
/// error or a panic anywhere in a benchmark never leaves servers behind.
pub struct Server {
    spec: ServerSpec,
    child: Child,
    generation: u32,
    http: reqwest::Client,
}

impl Server {
    /// Starts the server and waits until `GET /healthz` answers 200, so the
    /// caller can measure from a ready server (migrations applied).
    pub async fn start(spec: ServerSpec) -> Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let child = spawn(&spec, 0)?;
        let mut s = Server {
            spec,
            child,
            generation: 0,
            http,
        };
        s.wait_healthy(Duration::from_secs(60)).await?;
        Ok(s)
    }

    /// The process id, for `/proc/<pid>/status`.
    pub fn pid(&self) -> Result<u32> {
        self.child
            .id()
            .ok_or_else(|| anyhow!("{} has exited", self.spec.name))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.spec.port)
    }

    /// The HTTP GraphQL endpoint.
    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.base_url())
    }

    /// The WebSocket GraphQL endpoint.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/graphql", self.spec.port)
    }

    /// The settings the server was started with.
    pub fn spec(&self) -> &ServerSpec {
        &self.spec
    }

    /// Kills the process with `SIGKILL` and reaps it: the crash of a replica,
    /// with no graceful shutdown of its sockets.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.kill().await.context("killing the server")?;
        Ok(())
    }

    /// Starts the process again with the same settings (same port and
    /// database) and waits until it is healthy.
    pub async fn restart(&mut self) -> Result<()> {
        self.generation += 1;
        self.child = spawn(&self.spec, self.generation)?;
        self.wait_healthy(Duration::from_secs(60)).await
    }

    async fn wait_healthy(&mut self, limit: Duration) -> Result<()> {
        let url = format!("{}/healthz", self.base_url());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited during start-up ({status}); log: {}",
                    self.spec.name,
                    self.log_path().display()
                );
            }
            if let Ok(r) = self.http.get(&url).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not become healthy in {limit:?}", self.spec.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The log file of the current process generation.
    pub fn log_path(&self) -> PathBuf {
        log_path(&self.spec, self.generation)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGKILL; `kill_on_drop` would do the same, this makes it explicit.
        let _ = self.child.start_kill();
    }
}

fn log_path(spec: &ServerSpec, generation: u32) -> PathBuf {
    spec.log_dir.join(format!("{}.{generation}.log", spec.name))
}

fn spawn(spec: &ServerSpec, generation: u32) -> Result<Child> {
    let log = File::create(log_path(spec, generation)).context("creating the server log")?;
    let log2 = log.try_clone()?;
    let mut cmd = Command::new(&spec.bin);
    cmd.env("DATABASE_URL", &spec.database_url)
        .env("CEREBRAL_LISTEN", format!("127.0.0.1:{}", spec.port))
        .env("CEREBRAL_LOG_FORMAT", "text")
        // The benchmark's clients all come from one address on purpose.
        .env("CEREBRAL_RATE_LIMIT_PER_SECOND", "0")
        .env("CEREBRAL_WS_MAX_CONNECTIONS", "0")
        .env("CEREBRAL_WS_MAX_CONNECTIONS_PER_ADDRESS", "0")
        .env("CEREBRAL_WS_UPGRADES_PER_SECOND", "0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .kill_on_drop(true);
    for (k, v) in &spec.extra_env {
        cmd.env(k, v);
    }
    cmd.spawn()
        .with_context(|| format!("starting {}", spec.bin.display()))
}

/// WARN/ERROR lines of the server logs in `dir`, so a run reports server
/// trouble (errors, dropped sockets) next to its figures.
pub fn log_summary(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    entries.sort();
    for path in entries {
        let (mut warn, mut error, mut samples) = (0usize, 0usize, Vec::new());
        for line in BufReader::new(File::open(&path)?).lines() {
            let line = line?;
            // The single-tenant start-up warning is expected on every start.
            if line.contains("authentication is not configured") {
                continue;
            }
            let is_error = line.contains("ERROR");
            if is_error {
                error += 1;
            } else if line.contains("WARN") {
                warn += 1;
            } else {
                continue;
            }
            if samples.len() < 3 {
                samples.push(line.chars().take(300).collect::<String>());
            }
        }
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        out.push(format!(
            "{}: {warn} WARN, {error} ERROR lines",
            name.unwrap_or_default()
        ));
        out.extend(samples.into_iter().map(|s| format!("    {s}")));
    }
    Ok(out)
}

/// Resident memory of a process, from `/proc/<pid>/status` (Linux only).
#[derive(Debug, Clone, Copy)]
pub struct Mem {
    /// `VmRSS`: resident set size now, in bytes.
    pub rss: u64,
    /// `VmHWM`: peak resident set size, in bytes.
    pub hwm: u64,
}

/// Reads [`Mem`] of `pid`; RSS is what the operating system charges the
/// server for, which is what capacity planning needs.
pub fn read_mem(pid: u32) -> Result<Mem> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> Result<u64> {
        let line = s
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| anyhow!("{name} missing in /proc/{pid}/status"))?;
        let kb: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("parsing {line:?}"))?;
        Ok(kb * 1024)
    };
    Ok(Mem {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

/// Formats bytes as MiB with one decimal, for tables.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Runs one GraphQL operation over HTTP and returns its `data`; GraphQL
/// errors become an `Err`, so callers can retry or fail on them alike.
pub async fn graphql(
    client: &reqwest::Client,
    url: &str,
    query: &str,
    variables: Value,
) -> Result<Value> {
    let resp = client
        .post(url)
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    if let Some(errors) = body.get("errors").filter(|e| !e.is_null()) {
        bail!("GraphQL errors (HTTP {status}): {errors}");
    }
    if !status.is_success() {
        bail!("HTTP {status}: {body}");
    }
    body.get("data")
        .cloned()
        .ok_or_else(|| anyhow!("no data in {body}"))
}

/// The value of one unlabelled Prometheus metric of the server, or `None`
/// when the server does not report it (older builds lack the WebSocket
/// gauges; that must not fail a run).
pub async fn metric(client: &reqwest::Client, base_url: &str, name: &str) -> Result<Option<f64>> {
    let text = client
        .get(format!("{base_url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let value = rest.strip_prefix(' ')?;
        value.trim().parse().ok()
    }))
}

/// Opens a WebSocket asking for [`WS_PROTOCOL`], without any GraphQL
/// message yet (the `ws-memory` raw sockets stop there).
pub async fn ws_connect(url: &str) -> Result<Ws> {
    let mut req = url.into_client_request()?;
    req.headers_mut().insert(
        SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(WS_PROTOCOL),
    );
    let (ws, _resp) = tokio_tungstenite::connect_async(req).await?;
    Ok(ws)
}

/// Sends `connection_init` and waits for `connection_ack`, answering
/// protocol pings meanwhile; the server accepts `subscribe` only after it.
pub async fn ws_init(ws: &mut Ws) -> Result<()> {
    ws.send(text(json!({ "type": "connection_init", "payload": {} })))
        .await?;
    loop {
        let msg = ws
            .next()
            .await
            .ok_or_else(|| anyhow!("socket closed before connection_ack"))??;
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str())?;
                match v.get("type").and_then(Value::as_str) {
                    Some("connection_ack") => return Ok(()),
                    Some("ping") => ws.send(pong()).await?,
                    _ => bail!("unexpected message before connection_ack: {t}"),
                }
            }
            Message::Close(frame) => bail!("closed before connection_ack: {frame:?}"),
            _ => {}
        }
    }
}

/// Opens a `graphql-transport-ws` socket, waits for `connection_ack` and
/// subscribes `query` (no variables) as operation `"1"`; the connect and
/// the acknowledgement each within `limit`.
pub async fn open_subscribed(url: &str, query: &str, limit: Duration) -> Result<Ws> {
    let mut ws = tokio::time::timeout(limit, ws_connect(url))
        .await
        .context("connect timed out")??;
    tokio::time::timeout(limit, ws_init(&mut ws))
        .await
        .context("connection_ack timed out")??;
    ws.send(subscribe("1", query, json!({}))).await?;
    Ok(ws)
}

/// A `subscribe` message with operation id `id`.
pub fn subscribe(id: &str, query: &str, variables: Value) -> Message {
    text(json!({
        "id": id,
        "type": "subscribe",
        "payload": { "query": query, "variables": variables }
    }))
}

/// The answer to a protocol-level `{"type":"ping"}`.
pub fn pong() -> Message {
    text(json!({ "type": "pong" }))
}

/// A JSON value as a text frame.
pub fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

/// A fresh PostgreSQL database for one run, dropped again when this value
/// is dropped, so runs never see each other's events. Uses `psql`, which
/// is installed wherever PostgreSQL is, instead of another client crate.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl PgDatabase {
    /// Creates `cerebral_bench_<uuid>` through `admin_url` (a URL of an
    /// existing database, e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
    pub fn create(admin_url: &str) -> Result<Self> {
        let name = format!("cerebral_bench_{}", uuid::Uuid::now_v7().simple());
        psql(admin_url, &format!("CREATE DATABASE {name}"))?;
        let base = admin_url.split('?').next().unwrap_or(admin_url);
        let (prefix, _) = base
            .rsplit_once('/')
            .ok_or_else(|| anyhow!("admin URL without a database: {admin_url}"))?;
        Ok(PgDatabase {
            admin_url: admin_url.to_string(),
            url: format!("{prefix}/{name}"),
            name,
        })
    }

    /// The `DATABASE_URL` of the new database.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // WITH (FORCE) ends the sessions of just-killed servers that the
        // database has not noticed yet.
        if let Err(e) = psql(
            &self.admin_url,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ) {
            eprintln!("warning: could not drop database {}: {e:#}", self.name);
        }
    }
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let out = StdCommand::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!(
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A small deterministic pseudo-random generator (SplitMix64): enough for
/// spreading disconnects and replicas, reproducible from a seed, and no
/// extra dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for one seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The `p`-quantile (0..=1) of an ascending slice by nearest rank; 0 when
/// empty.
pub fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
