//! Test harness: the real server on port 0 over a fresh database (a SQLite
//! file, or a uniquely named PostgreSQL database when `TEST_DATABASE_URL` is
//! set), a GraphQL over HTTP client and a graphql-transport-ws client.
#![allow(dead_code)]

// Kept at tests/support/bmad.rs: the library's unit tests include the same
// file by path (`src/catalog/mod.rs`).
#[path = "../../support/bmad.rs"]
pub mod bmad;
pub mod mutations;
mod steps;

use std::sync::Arc;
use std::time::Duration;

use cerebral::app::App;
use cerebral::config::Config;
use cerebral::db::StatementCounter;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// SQL statements executed by the server.
    pub statements: Arc<StatementCounter>,
    /// The database URL the server migrated with (on PostgreSQL the owner
    /// of the tables; see [`APP_ROLE`]).
    pub database_url: String,
    /// The database URL the server serves with.
    pub serving_url: String,
    /// The server's service layer, for driving the schema as another
    /// principal in-process.
    pub services: cerebral::service::Services,
    /// Requests without a token (see [`Caller`]; `app.ok(…)` is this).
    caller: Caller,
    _dir: Option<tempfile::TempDir>,
}

impl std::ops::Deref for TestApp {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        &self.caller
    }
}

/// One caller of a test server over HTTP: GraphQL requests with its bearer
/// token, or with none. The setup steps of `steps.rs` are its methods too,
/// so a test seeds a tenant as that tenant's caller.
#[derive(Clone)]
pub struct Caller {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
}

/// Which back-end this run tests: `postgres` when TEST_DATABASE_URL is set.
pub fn backend() -> &'static str {
    if std::env::var("TEST_DATABASE_URL").is_ok() {
        "postgres"
    } else {
        "sqlite"
    }
}

/// A fresh, empty database URL.
pub async fn fresh_database() -> (String, Option<tempfile::TempDir>) {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(admin) => {
            let name = format!("cerebral_test_{}", uuid::Uuid::now_v7().simple());
            let (db, _) = cerebral::db::connect(&admin, 1)
                .await
                .expect("connect to TEST_DATABASE_URL");
            use sea_orm::ConnectionTrait;
            db.execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            let base = admin
                .rsplit_once('/')
                .map(|(b, _)| b.to_string())
                .expect("TEST_DATABASE_URL has a database part");
            (format!("{base}/{name}"), None)
        }
        Err(_) => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
            (url, Some(dir))
        }
    }
}

/// Starts the server with `tweak` applied to the default test config.
pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let (url, dir) = fresh_database().await;
    spawn_on(url, dir, tweak).await
}

/// Starts another server on an existing database (a second replica).
pub async fn spawn_on(
    url: String,
    dir: Option<tempfile::TempDir>,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    let mut config = Config::for_database(&url);
    if backend() == "postgres" {
        // Migrate as the owner, serve as a role row-level security binds:
        // every PostgreSQL test then runs behind the second wall too.
        config.db.migration_database_url = Some(url.clone());
        config.db.database_url = serving_url(&url).await;
    }
    config.events.event_poll_ms = 0;
    // Background sweepers would race the tests that call them by hand.
    config.lifecycle.sweep_interval_seconds = 0;
    config.lifecycle.agent_stale_seconds = 0;
    // Every test client comes from 127.0.0.1; tests/api/limits.rs turns it on.
    config.requests.rate_limit_per_second = 0;
    tweak(&mut config);
    let serving_url = config.db.database_url.clone();
    let app = App::build(&config).await.expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let statements = app.statements();
    let services = app.services().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        statements,
        database_url: url,
        serving_url,
        services,
        caller: Caller {
            http: reqwest::Client::new(),
            url: format!("{base}/graphql"),
            token: None,
        },
        base,
        _dir: dir,
    }
}

/// The login role in-process test servers use on PostgreSQL: not a
/// superuser, no `BYPASSRLS`, owns nothing (the tables belong to the
/// `TEST_DATABASE_URL` role, which migrates).
pub const APP_ROLE: &str = "cerebral_test_app";

/// `owner_url` with [`APP_ROLE`] as its user, creating the role (once per
/// cluster; parallel test binaries may race on it) when missing.
pub async fn serving_url(owner_url: &str) -> String {
    static ROLE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    ROLE.get_or_init(|| async {
        let (db, _) = cerebral::db::connect(owner_url, 1)
            .await
            .expect("connect as the owner");
        use sea_orm::ConnectionTrait;
        db.execute_unprepared(&format!(
            "DO $$ BEGIN CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        ))
        .await
        .expect("create the serving role");
        let _ = db.close().await;
    })
    .await;
    let mut u = reqwest::Url::parse(owner_url).expect("database URL");
    u.set_username(APP_ROLE).expect("URL takes a user");
    u.set_password(None).expect("URL takes no password");
    u.to_string()
}

/// Starts the server with the default test config.
pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

impl TestApp {
    /// The same server as the caller with `Authorization: Bearer {token}`.
    pub fn bearer(&self, token: &str) -> Caller {
        Caller {
            token: Some(token.to_string()),
            ..self.caller.clone()
        }
    }

    /// Posts one operation with `Authorization: Bearer {token}` and
    /// returns the whole response body.
    pub async fn post_as(&self, token: &str, query: &str, variables: Value) -> Value {
        self.bearer(token).post(query, variables).await
    }

    /// Runs an operation in-process as `principal` (authentication is not
    /// configured yet, so HTTP callers are always the default tenant).
    pub async fn as_principal(
        &self,
        principal: cerebral::auth::Principal,
        query: &str,
        variables: Value,
    ) -> Value {
        let schema = cerebral::graphql::build_schema(self.services.clone());
        let req = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables));
        let req = cerebral::graphql::request_data(
            req,
            &self.services,
            principal,
            Duration::from_micros(200),
        );
        serde_json::to_value(schema.execute(req).await).expect("response is JSON")
    }

    /// Opens a graphql-transport-ws connection and subscribes.
    pub async fn subscribe(&self, query: &str, variables: Value) -> Subscription {
        let url = format!("{}/graphql", self.base.replace("http://", "ws://"));
        let mut req = url.into_client_request().expect("ws request");
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().expect("header"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req)
            .await
            .expect("ws connects");
        ws.send(Message::text(
            json!({ "type": "connection_init", "payload": {} }).to_string(),
        ))
        .await
        .expect("init sent");
        loop {
            let msg = next_json(&mut ws).await.expect("ack");
            if msg["type"] == "connection_ack" {
                break;
            }
        }
        ws.send(Message::text(
            json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } }).to_string(),
        ))
        .await
        .expect("subscribe sent");
        Subscription { ws }
    }
}

impl Caller {
    /// The GraphQL endpoint.
    pub fn graphql_url(&self) -> String {
        self.url.clone()
    }

    /// A raw HTTP client for protocol-level checks.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Posts one operation with extra request headers and returns the
    /// whole response body.
    pub async fn post_with(
        &self,
        query: &str,
        variables: Value,
        headers: &[(&str, &str)],
    ) -> Value {
        let body = json!({ "query": query, "variables": variables });
        self.post_body(&body, headers).await
    }

    /// Posts one request body as it is (`query`, `extensions`, …) with
    /// extra request headers and returns the answer.
    pub async fn post_body(&self, body: &Value, headers: &[(&str, &str)]) -> Value {
        post_json(&self.http, &self.url, self.token.as_deref(), headers, body).await
    }

    /// Sends `query` by GET, as `?query=…`, with no other header.
    pub async fn get(&self, query: &str) -> reqwest::Response {
        let mut req = self.http.get(&self.url).query(&[("query", query)]);
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("GET sent")
    }

    /// Posts one operation and returns the whole response body.
    pub async fn post(&self, query: &str, variables: Value) -> Value {
        self.post_with(query, variables, &[]).await
    }

    /// Posts one operation and returns `data`, panicking on errors.
    pub async fn ok(&self, query: &str, variables: Value) -> Value {
        let body = self.post(query, variables).await;
        assert!(body.get("errors").is_none(), "unexpected errors: {body}");
        body["data"].clone()
    }

    /// Posts one operation that must fail and returns its first error code.
    pub async fn error_code(&self, query: &str, variables: Value) -> String {
        let body = self.post(query, variables).await;
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("expected an error with a code, got {body}"))
            .to_string()
    }

    /// Posts one operation that must fail with first error code `code`.
    pub async fn assert_code(&self, query: &str, variables: Value, code: &str) {
        let got = self.error_code(query, variables).await;
        assert_eq!(got, code, "{query}");
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Option<Value> {
    while let Some(msg) = ws.next().await {
        match msg.ok()? {
            Message::Text(t) => return serde_json::from_str(t.as_str()).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
    None
}

/// One active subscription.
pub struct Subscription {
    ws: Ws,
}

impl Subscription {
    /// The next `next` payload's `data`, or None on timeout or end.
    pub async fn next(&mut self, timeout: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(timeout, next_json(&mut self.ws))
                .await
                .ok()??;
            match msg["type"].as_str() {
                Some("next") => return Some(msg["payload"]["data"].clone()),
                Some("ping") => {
                    let _ = self
                        .ws
                        .send(Message::text(json!({ "type": "pong" }).to_string()))
                        .await;
                }
                Some("error") => panic!("subscription error: {msg}"),
                Some("complete") => return None,
                _ => {}
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Protocol-level WebSocket client, metrics, and the server as a child process.
// ---------------------------------------------------------------------------

/// The WebSocket stream type used by the raw client.
pub type WsStream = Ws;

/// The `ws://…/graphql` endpoint of a server at `base` (`http://HOST:PORT`).
pub fn ws_url(base: &str) -> String {
    format!("{}/graphql", base.replace("http://", "ws://"))
}

/// A raw graphql-transport-ws client: sends and reads JSON messages as they
/// are, and remembers how the server closed the connection.
pub struct RawWs {
    ws: Ws,
    /// The subprotocol the server chose (`Sec-WebSocket-Protocol`).
    pub protocol: Option<String>,
    /// Every text message received so far, in order (parsed; a text that is
    /// not JSON is kept as `{"unparsed": text}`).
    pub received: Vec<Value>,
    /// WebSocket Ping frames received so far (tokio-tungstenite answers them
    /// by itself while the socket is polled).
    pub pings: usize,
    /// Set once the connection has ended: `Some(Some((code, reason)))` for a
    /// Close frame, `Some(None)` for an end without one (EOF, reset, error).
    pub closed: Option<Option<(u16, String)>>,
    /// Messages read while looking for another id, not yet handed out.
    pending: std::collections::VecDeque<Value>,
}

impl RawWs {
    /// Connects with the `graphql-transport-ws` subprotocol.
    pub async fn connect(base: &str) -> RawWs {
        Self::connect_protocol(base, "graphql-transport-ws").await
    }

    /// Connects with the given subprotocol.
    pub async fn connect_protocol(base: &str, protocol: &str) -> RawWs {
        let mut req = ws_url(base).into_client_request().expect("ws request");
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
        let (ws, resp) = tokio::time::timeout(
            Duration::from_secs(20),
            tokio_tungstenite::connect_async(req),
        )
        .await
        .expect("ws connects in time")
        .expect("ws connects");
        let protocol = resp
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        RawWs {
            ws,
            protocol,
            received: Vec::new(),
            pings: 0,
            closed: None,
            pending: std::collections::VecDeque::new(),
        }
    }

    /// Connects, sends `connection_init` and waits for `connection_ack`.
    pub async fn connect_and_init(base: &str) -> RawWs {
        let mut ws = Self::connect(base).await;
        ws.init().await;
        ws
    }

    /// Sends one frame; false when the connection is gone.
    pub async fn try_send(&mut self, msg: Message) -> bool {
        self.ws.send(msg).await.is_ok()
    }

    /// Sends one JSON text message.
    pub async fn send_json(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("ws message sent");
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_string()))
            .await
            .expect("ws text sent");
    }

    /// Sends `connection_init` and waits (up to 20 s) for `connection_ack`.
    pub async fn init(&mut self) {
        self.send_json(json!({ "type": "connection_init", "payload": {} }))
            .await;
        loop {
            let msg = self.next_json(Duration::from_secs(20)).await;
            match msg {
                Some(m) if m["type"] == "connection_ack" => return,
                Some(m) if m["type"] == "ping" => {
                    self.send_json(json!({ "type": "pong" })).await;
                }
                Some(_) => {}
                None => panic!(
                    "no connection_ack (closed: {:?}, received: {:?})",
                    self.closed, self.received
                ),
            }
        }
    }

    /// Sends `subscribe` for `id`.
    pub async fn subscribe(&mut self, id: &str, query: &str, variables: Value) {
        self.send_json(json!({
            "id": id,
            "type": "subscribe",
            "payload": { "query": query, "variables": variables }
        }))
        .await;
    }

    /// Sends `complete` for `id`.
    pub async fn complete(&mut self, id: &str) {
        self.send_json(json!({ "id": id, "type": "complete" }))
            .await;
    }

    async fn read(&mut self) -> Option<Value> {
        if self.closed.is_some() {
            return None;
        }
        loop {
            match self.ws.next().await {
                None | Some(Err(_)) => {
                    self.closed = Some(None);
                    return None;
                }
                Some(Ok(Message::Text(t))) => {
                    let v = serde_json::from_str(t.as_str())
                        .unwrap_or_else(|_| json!({ "unparsed": t.as_str() }));
                    self.received.push(v.clone());
                    return Some(v);
                }
                Some(Ok(Message::Close(frame))) => {
                    self.closed = Some(frame.map(|f| (u16::from(f.code), f.reason.to_string())));
                    return None;
                }
                Some(Ok(Message::Ping(_))) => self.pings += 1,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next text message (first those set aside by `next_for`), or
    /// None on timeout or when the connection ended. WebSocket Ping frames
    /// are counted and answered meanwhile.
    pub async fn next_json(&mut self, timeout: Duration) -> Option<Value> {
        if let Some(v) = self.pending.pop_front() {
            return Some(v);
        }
        tokio::time::timeout(timeout, self.read()).await.ok()?
    }

    /// The next message with this `id`, or None on timeout or end of
    /// connection. Messages for other ids are set aside for later calls;
    /// JSON `ping`s are answered.
    pub async fn next_for(&mut self, id: &str, timeout: Duration) -> Option<Value> {
        if let Some(i) = self.pending.iter().position(|m| m["id"] == id) {
            return self.pending.remove(i);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = tokio::time::timeout(left, self.read()).await.ok()??;
            if msg["type"] == "ping" {
                self.send_json(json!({ "type": "pong" })).await;
                continue;
            }
            if msg["id"] == id {
                return Some(msg);
            }
            self.pending.push_back(msg);
        }
    }

    /// The `data` of the next `next` message for `id`; None on timeout, end
    /// of connection or `complete`; panics on `error`.
    pub async fn next_data(&mut self, id: &str, timeout: Duration) -> Option<Value> {
        let msg = self.next_for(id, timeout).await?;
        match msg["type"].as_str() {
            Some("next") => Some(msg["payload"]["data"].clone()),
            Some("complete") => None,
            _ => panic!("unexpected message for {id}: {msg}"),
        }
    }

    /// Reads until the connection ends (within `timeout`) and returns the
    /// Close frame's code and reason, if the server sent one.
    pub async fn close_frame(&mut self, timeout: Duration) -> Option<(u16, String)> {
        let _ = tokio::time::timeout(timeout, async { while self.read().await.is_some() {} }).await;
        self.closed.clone().flatten()
    }

    /// Reads until the Close frame (within `timeout`) and returns its code.
    pub async fn close_code(&mut self, timeout: Duration) -> Option<u16> {
        self.close_frame(timeout).await.map(|(c, _)| c)
    }

    /// True when the connection ended (any way) within `timeout`.
    pub async fn ended_within(&mut self, timeout: Duration) -> bool {
        let _ = self.close_frame(timeout).await;
        self.closed.is_some()
    }

    /// Sends a JSON `ping` and waits for the `pong`: proves the socket is
    /// open and served. Other messages read meanwhile are set aside for
    /// `next_json`/`next_for`.
    pub async fn assert_alive(&mut self) {
        self.send_json(json!({ "type": "ping" })).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.read()).await.ok().flatten() {
                Some(m) if m["type"] == "pong" => return,
                Some(m) => self.pending.push_back(m),
                None => panic!(
                    "socket not alive (closed: {:?}, received: {:?})",
                    self.closed, self.received
                ),
            }
        }
    }

    /// The underlying stream.
    pub fn inner(&mut self) -> &mut WsStream {
        &mut self.ws
    }
}

/// A value of a Prometheus metric from `GET {base}/metrics` (the line
/// `name value`), or None when the metric or the endpoint is missing.
pub async fn metric(base: &str, name: &str) -> Option<f64> {
    let body = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    parse_metric(&body, name)
}

/// The value of `name` in a Prometheus text body.
pub fn parse_metric(body: &str, name: &str) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next()? == name).then_some(())?;
        parts.next()?.parse().ok()
    })
}

/// Polls a metric until `pred` holds (Ok with its value) or `timeout`
/// passes (Err with the last value seen).
pub async fn wait_metric(
    base: &str,
    name: &str,
    timeout: Duration,
    pred: impl Fn(f64) -> bool,
) -> Result<f64, Option<f64>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    loop {
        last = metric(base, name).await.or(last);
        if let Some(v) = last
            && pred(v)
        {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(last);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Posts one GraphQL operation to `{base}/graphql` and returns the body.
pub async fn gql(client: &reqwest::Client, base: &str, query: &str, variables: Value) -> Value {
    gql_body(
        client,
        base,
        &json!({ "query": query, "variables": variables }),
    )
    .await
}

/// Posts one operation and returns `data`, panicking on errors.
pub async fn gql_ok(client: &reqwest::Client, base: &str, query: &str, variables: Value) -> Value {
    let body = gql(client, base, query, variables).await;
    assert!(body.get("errors").is_none(), "unexpected errors: {body}");
    body["data"].clone()
}

/// Posts one request body as it is (`query`, `operationName`, `variables`
/// …) to `{base}/graphql` and returns the answer.
pub async fn gql_body(client: &reqwest::Client, base: &str, body: &Value) -> Value {
    post_json(client, &format!("{base}/graphql"), None, &[], body).await
}

/// Posts `body` to `url`, with `Authorization: Bearer {token}` when a token
/// is given and the extra `headers`, and returns the JSON answer.
pub async fn post_json(
    client: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &Value,
) -> Value {
    let mut req = client.post(url).timeout(Duration::from_secs(60)).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send()
        .await
        .expect("request sent")
        .json()
        .await
        .expect("JSON body")
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// An HS256 token of `claims` as they are, signed with `secret`.
pub fn hs256(secret: &str, claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("token")
}

/// An HS256 token signed with `secret` for user `sub` of `tenant` with
/// `roles`, expiring `ttl` seconds from now (in the past when negative).
pub fn token(secret: &str, tenant: &str, sub: &str, roles: &[&str], ttl: i64) -> String {
    hs256(
        secret,
        &json!({ "sub": sub, "tenant_id": tenant, "roles": roles, "exp": unix_now() + ttl }),
    )
}

/// Posts a batch (a JSON array of `{query, variables}`) and returns the
/// array of responses, in order.
pub async fn gql_batch(client: &reqwest::Client, base: &str, ops: &[Value]) -> Vec<Value> {
    let body: Value = client
        .post(format!("{base}/graphql"))
        .timeout(Duration::from_secs(120))
        .json(&Value::Array(ops.to_vec()))
        .send()
        .await
        .expect("batch sent")
        .json()
        .await
        .expect("JSON body");
    let items = body
        .as_array()
        .unwrap_or_else(|| panic!("a batch answers with an array, got {body}"))
        .clone();
    assert_eq!(items.len(), ops.len(), "one response per operation");
    items
}

/// Creates a project named `name` and returns the cursor of its
/// `PROJECT_CREATED` event.
pub async fn create_project_cursor(client: &reqwest::Client, base: &str, name: &str) -> String {
    let data = gql_ok(
        client,
        base,
        "mutation($name: String!) { createProject(input: {name: $name}) { event { cursor } } }",
        json!({ "name": name }),
    )
    .await;
    data["createProject"]["event"]["cursor"]
        .as_str()
        .expect("cursor")
        .to_string()
}

/// The catalog pack in `root` as `CatalogFileInput`s: of each of its
/// folders (`agents`, `agent-teams`, `workflows`) the first `per_folder`
/// files by name.
pub fn catalog_files(root: &std::path::Path, per_folder: usize) -> Vec<Value> {
    let mut files = vec![];
    for dir in ["agents", "agent-teams", "workflows"] {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(dir))
            .expect("a pack folder")
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries.into_iter().take(per_folder) {
            let path = format!("{dir}/{}", e.file_name().to_string_lossy());
            let content = std::fs::read_to_string(e.path()).expect("read");
            files.push(json!({ "path": path, "content": content }));
        }
    }
    files
}

/// The `extensions.code` of a response's first error; empty without one.
pub fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

/// Polls `fut` `polls` times, sleeping between polls so that the socket
/// has the answer to whatever the last poll sent, then drops it: the
/// moment a request is cancelled with its statement on the wire.
pub async fn drop_after_polls<F: std::future::Future>(fut: F, polls: usize) {
    let mut fut = std::pin::pin!(fut);
    for _ in 0..polls {
        if futures::poll!(fut.as_mut()).is_ready() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Opens a graphql-transport-ws socket to `base` with extra request
/// headers: the socket, or the refusal's HTTP status, `Retry-After` and
/// JSON body (`Null` when it has none).
pub async fn ws_upgrade(
    base: &str,
    headers: &[(&str, &str)],
) -> Result<WsStream, (u16, Option<String>, Value)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = ws_url(base).into_client_request().expect("ws request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    for (k, v) in headers {
        req.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    match tokio::time::timeout(
        Duration::from_secs(20),
        tokio_tungstenite::connect_async(req),
    )
    .await
    .expect("an answer in time")
    {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let retry = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((resp.status().as_u16(), retry, body))
        }
        Err(e) => panic!("the upgrade got no HTTP answer: {e}"),
    }
}

/// A `VmRSS`/`VmHWM`/… figure of a process from `/proc/<pid>/status`, in kB.
pub fn proc_status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The `cerebral` binary running as a child process (so it can be signalled,
/// killed, restarted and measured). Killed when dropped.
pub struct ServerProcess {
    /// The child process (None after `kill` until `restart`).
    pub child: Option<std::process::Child>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Process id of the current child.
    pub pid: u32,
    /// The listening port (kept across restarts).
    pub port: u16,
    /// The database URL.
    pub database_url: String,
    envs: Vec<(String, String)>,
    log_path: std::path::PathBuf,
    /// The SQLite database's folder when the server made its own.
    _dir: Option<tempfile::TempDir>,
}

impl ServerProcess {
    /// Starts the server binary on a free port over `database_url` with
    /// extra environment variables (`CEREBRAL_…`), and waits until
    /// `/healthz` answers. Background sweepers and event polling are off
    /// unless `envs` turns them on, as in the in-process harness.
    pub async fn start(database_url: &str, envs: &[(&str, &str)]) -> ServerProcess {
        let envs: Vec<(String, String)> = envs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let log_path = std::env::temp_dir().join(format!(
            "cerebral-test-{}.log",
            uuid::Uuid::now_v7().simple()
        ));
        let mut server = ServerProcess {
            child: None,
            base: String::new(),
            pid: 0,
            port: 0,
            database_url: database_url.to_string(),
            envs,
            log_path,
            _dir: None,
        };
        // The port was free a moment ago; should something else take it
        // before the server binds, try another.
        for _ in 0..5 {
            server.port = free_port();
            server.base = format!("http://127.0.0.1:{}", server.port);
            if server.launch().await {
                return server;
            }
        }
        panic!("no free port for the server:\n{}", server.log());
    }

    /// Starts the server binary as [`ServerProcess::start`] does, on a
    /// fresh database of its own (kept as long as the server).
    pub async fn start_fresh(envs: &[(&str, &str)]) -> ServerProcess {
        let (url, dir) = fresh_database().await;
        let mut server = Self::start(&url, envs).await;
        server._dir = dir;
        server
    }

    /// Starts the child and waits until it serves; false when it could not
    /// bind its port.
    async fn launch(&mut self) -> bool {
        let log_start = std::fs::metadata(&self.log_path)
            .map(|m| m.len() as usize)
            .unwrap_or(0);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cerebral"));
        for (k, _) in std::env::vars() {
            if k.starts_with("CEREBRAL_") || k == "DATABASE_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.env("DATABASE_URL", &self.database_url)
            .env("CEREBRAL_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("CEREBRAL_EVENT_POLL_MS", "0")
            .env("CEREBRAL_SWEEP_INTERVAL_SECONDS", "0")
            .env("CEREBRAL_AGENT_STALE_SECONDS", "0")
            .env("CEREBRAL_RATE_LIMIT_PER_SECOND", "0")
            .env("CEREBRAL_LOG_FORMAT", "text")
            .env("RUST_LOG", "info,sqlx=warn,sea_orm=warn")
            .env("NO_COLOR", "1");
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(log);
        let child = cmd.spawn().expect("server binary starts");
        self.pid = child.id();
        self.child = Some(child);
        self.wait_healthy(log_start, Duration::from_secs(90)).await
    }

    /// Waits until this child logged its listening address and answers
    /// `/healthz` (another process on the port would answer too).
    async fn wait_healthy(&mut self, log_start: usize, timeout: Duration) -> bool {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + timeout;
        let address = format!("listening on http://127.0.0.1:{}", self.port);
        loop {
            let log = self.log();
            let new_log = log.get(log_start..).unwrap_or("");
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                if new_log.contains("cannot listen") {
                    return false;
                }
                panic!("server exited during start-up with {status}:\n{new_log}");
            }
            let ok = new_log.contains(&address)
                && client
                    .get(format!("{}/healthz", self.base))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
            if ok {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!("server not healthy in {timeout:?}:\n{new_log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a signal (`TERM`, `KILL`, `STOP`, …) with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {} failed", self.pid);
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
    }

    /// Kills the process if it runs and starts it again on the same port,
    /// database and environment.
    pub async fn restart(&mut self) {
        self.kill().await;
        for _ in 0..40 {
            if self.launch().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("port {} did not come free for the restart", self.port);
    }

    /// What the server has logged so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// A `/proc/<pid>/status` figure in kB (`VmRSS`, `VmHWM`).
    pub fn status_kb(&self, field: &str) -> Option<u64> {
        proc_status_kb(self.pid, field)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "server log ({}):\n{}",
                self.log_path.display(),
                tail(&self.log(), 4000)
            );
        } else {
            let _ = std::fs::remove_file(&self.log_path);
        }
    }
}

fn tail(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}
