//! HTTP: GraphQL over HTTP (POST and GET), GraphiQL, WebSocket
//! subscriptions on the same path, health probes and the artifacts ZIP.

mod endpoint;
pub mod graphiql;
mod health;
pub mod layers;
pub mod origin;
pub mod rate;
pub mod ws;
pub mod zip;

use crate::auth::Principal;
use crate::db::StatementCounter;
use crate::error::code;
use crate::graphql::batch::{self, Batching, Ticks};
use crate::graphql::pipeline::Executed;
use crate::graphql::pipeline::lean_may_run;
use crate::graphql::{AppSchema, request_data_with};
use crate::service::Services;
use async_graphql::parser::types::OperationType;
use async_graphql_axum::GraphQLRequest;
use async_graphql_axum::rejection::GraphQLRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use endpoint::*;
use futures::future::Either;
pub use health::*;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The schema.
    pub schema: AppSchema,
    /// The schema without its extension, for plain queries over HTTP
    /// (None when the test-only panic probe needs the per-field hook).
    pub lean: Option<crate::graphql::Lean>,
    /// The services.
    pub services: Services,
    /// DataLoader batching window.
    pub loader_delay: Duration,
    /// SQL statements executed so far.
    pub statements: Arc<StatementCounter>,
    /// WebSocket limits and timers.
    pub ws: Arc<ws::WsSettings>,
    /// Open WebSocket connections and operations.
    pub ws_gauges: Arc<ws::WsGauges>,
    /// Subscription payloads serialized once per event and selection and
    /// sent to every socket of that selection.
    pub frames: Arc<crate::graphql::share::FrameCache>,
    /// Open WebSockets per client address and in total, and the upgrade
    /// rate per address.
    pub ws_admission: Arc<ws::Admission>,
    /// The `Host` names this server answers (DNS rebinding).
    pub hosts: Arc<origin::HostPolicy>,
    /// Cancelled when the server shuts down: every WebSocket then closes
    /// with 1001.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Verifies bearer tokens (or admits everyone in development mode).
    pub auth: crate::auth::Authenticator,
    /// Operation limits.
    pub limits: Arc<crate::graphql::limits::Limits>,
    /// Request rates per tenant and per address.
    pub limiter: Arc<crate::http::rate::RateLimiter>,
    /// Prometheus metrics of this server.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The task and HITL counts of `/metrics`, reused for a TTL.
    pub work_counts: Arc<crate::metrics::CountCache>,
    /// Whether this router serves `/metrics` itself; false when a listener
    /// of its own does ([`metrics_router`], `CEREBRAL_METRICS_LISTEN`).
    pub metrics_on_main: bool,
    /// Set once `/readyz` has seen every migration applied (they are not
    /// rolled back under a running server, so it is not checked again).
    pub migrated: Arc<std::sync::atomic::AtomicBool>,
    /// Origins allowed by CORS (`CEREBRAL_CORS_ORIGINS`).
    pub cors_origins: Arc<Vec<String>>,
    /// Adds `/__test/panic` and `/__test/sleep/{ms}`, for the tests of
    /// the catch-panic and timeout layers; never set from the command line
    /// and compiled only with the `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    pub test_routes: bool,
    /// The automatic persisted queries store (None when APQ is off): GET
    /// looks a hash up before it checks the operation type.
    pub persisted: Option<crate::graphql::persisted::PersistedQueries>,
}

/// The router of the whole server.
pub fn router(state: AppState) -> Router {
    let settings = layers::LayerSettings {
        cors_origins: state.cors_origins.to_vec(),
        max_body_bytes: state.limits.max_body_bytes,
        request_timeout: state.limits.request_timeout,
    };
    let mut routes = Router::new();
    #[cfg(feature = "test-hooks")]
    if state.test_routes {
        routes = routes
            .route(
                "/__test/panic",
                get(|| async {
                    if true {
                        panic!("a handler panicked on purpose");
                    }
                }),
            )
            .route(
                "/__test/sleep/{ms}",
                get(
                    |axum::extract::Path(ms): axum::extract::Path<u64>| async move {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        "slept"
                    },
                ),
            );
    }
    if state.metrics_on_main {
        routes = routes.route("/metrics", get(metrics));
    }
    let routes = routes
        .route(
            "/graphql",
            get(graphql_get)
                .post(graphql_post)
                .fallback(graphql_other_method),
        )
        .route(graphiql::ASSETS_PATH, get(graphiql::asset))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/projects/{id}/artifacts.zip", get(zip::artifacts_zip))
        // After routing, so the route template (not the raw path, which
        // would make a series per project id) labels the request.
        .route_layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            count_request,
        ))
        // Before routing, so a page reaching the server under a foreign
        // name (DNS rebinding) gets nothing, not even a 404.
        .layer(axum::middleware::from_fn_with_state(
            state.hosts.clone(),
            origin::check_host,
        ))
        .with_state(state);
    layers::apply(routes, &settings)
}

/// Counts and times each routed request for `/metrics`.
async fn count_request(
    State(metrics): State<Arc<crate::metrics::Metrics>>,
    route: Option<axum::extract::MatchedPath>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let resp = next.run(req).await;
    let route = route.as_ref().map_or("unmatched", |r| r.as_str());
    metrics.http_request(
        route,
        method.as_str(),
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

/// The caller of an HTTP request, or the answer when there is none: 401
/// (`UNAUTHENTICATED`, with `WWW-Authenticate: Bearer`) when the token is
/// missing or invalid, 403 (`FORBIDDEN`) when it grants no role. Nothing
/// executes then.
pub(crate) async fn principal_of(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<Principal, Response> {
    match app.auth.from_headers(headers).await {
        Ok((p, _)) => Ok(p),
        Err(crate::error::AppError::Forbidden(m)) => {
            Err(error_response(StatusCode::FORBIDDEN, &m, code::FORBIDDEN))
        }
        Err(_) => Err(unauthenticated()),
    }
}

/// The answer to a request without a valid token.
fn unauthenticated() -> Response {
    let mut resp = error_response(
        StatusCode::UNAUTHORIZED,
        "authentication required: send Authorization: Bearer <token>",
        code::UNAUTHENTICATED,
    );
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// A refusal before any GraphQL ran: a GraphQL error body with its stable
/// code, and no `data` key.
pub(crate) fn error_response(status: StatusCode, message: &str, code: &str) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    (status, Json(body)).into_response()
}

async fn websocket(app: AppState, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &app).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    // Any page may open a WebSocket to any server (there is no CORS for
    // them); the browser says which page in `Origin`.
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("null"));
    let authority = origin::request_authority(&parts.headers, &parts.uri);
    if !origin::origin_allowed(origin, authority, &app.cors_origins) {
        return error_response(
            StatusCode::FORBIDDEN,
            "WebSockets are accepted from this server's own pages, the origins in CEREBRAL_CORS_ORIGINS and clients that send no Origin",
            code::FORBIDDEN,
        );
    }
    let address = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    // Before the token is looked at: a flood of upgrades costs a short
    // answer each, not a verification (or a JWKS fetch).
    let admitted = match app.ws_admission.admit(address) {
        Ok(a) => a,
        Err(refusal) => return too_many_connections(refusal),
    };
    // Browsers cannot set headers on a WebSocket, so the token normally
    // comes in `connection_init`; a valid header is used when it does not.
    let from_header = app.auth.from_headers(&parts.headers).await.ok();
    ws::upgrade(app, upgrade, from_header, address, admitted)
}

/// The answer to an upgrade over a connection limit: 503 when the server
/// is full, 429 when the client's address is (with `Retry-After` when it
/// opens sockets too fast).
fn too_many_connections(refusal: ws::Refusal) -> Response {
    match refusal {
        ws::Refusal::Total => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the server holds as many WebSockets as it may; try again later or another replica",
            code::TOO_MANY_CONNECTIONS,
        ),
        ws::Refusal::PerAddress => error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "this address holds as many WebSockets as it may (CEREBRAL_WS_MAX_CONNECTIONS_PER_ADDRESS); close one first",
            code::TOO_MANY_CONNECTIONS,
        ),
        ws::Refusal::Rate(wait) => {
            let secs = rate::retry_after(wait);
            let mut resp = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                &format!(
                    "this address opens WebSockets too fast (CEREBRAL_WS_UPGRADES_PER_SECOND); retry in {secs} s"
                ),
                code::TOO_MANY_CONNECTIONS,
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            resp
        }
    }
}

fn is_websocket(h: &HeaderMap) -> bool {
    h.get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn wants_html(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}
