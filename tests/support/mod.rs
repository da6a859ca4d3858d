//! Test harness: the real server on port 0 over a fresh database (a SQLite
//! file, or a uniquely named PostgreSQL database when `TEST_DATABASE_URL` is
//! set), a GraphQL over HTTP client and a graphql-transport-ws client.
#![allow(dead_code)]

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
    /// The database URL the server uses.
    pub database_url: String,
    /// The server's service layer, for driving the schema as another
    /// principal in-process.
    pub services: cerebral::service::Services,
    http: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
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
    config.event_poll_ms = 0;
    // Background sweepers would race the tests that call them by hand.
    config.sweep_interval_seconds = 0;
    config.agent_stale_seconds = 0;
    tweak(&mut config);
    let app = App::build(&config).await.expect("app builds");
    let base = format!("http://{}", app.local_addr());
    let statements = app.statements();
    let services = app.services().clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        statements,
        database_url: url,
        services,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

/// Starts the server with the default test config.
pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

impl TestApp {
    /// The GraphQL endpoint.
    pub fn graphql_url(&self) -> String {
        format!("{}/graphql", self.base)
    }

    /// Posts one operation and returns the whole response body.
    pub async fn post(&self, query: &str, variables: Value) -> Value {
        self.http
            .post(self.graphql_url())
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("JSON body")
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

    /// A raw HTTP client for protocol-level checks.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
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
