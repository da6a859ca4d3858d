//! HTTP: GraphQL over HTTP (POST and GET), GraphiQL, WebSocket
//! subscriptions on the same path, health probes and the artifacts ZIP.

pub mod ws;
pub mod zip;

use std::sync::Arc;
use std::time::Duration;

use async_graphql::ServerError;
use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use async_graphql_axum::rejection::GraphQLRejection;
use async_graphql_axum::{GraphQLBatchRequest, GraphQLRequest, GraphQLResponse};
use axum::extract::{FromRequest, FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::auth::Principal;
use crate::db::StatementCounter;
use crate::graphql::{AppSchema, request_data};
use crate::service::Services;

/// What every handler needs.
#[derive(Clone)]
pub struct AppState {
    /// The schema.
    pub schema: AppSchema,
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
    /// Cancelled when the server shuts down: every WebSocket then closes
    /// with 1001.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Verifies bearer tokens (or admits everyone in development mode).
    pub auth: crate::auth::Authenticator,
}

/// The router of the whole server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/projects/{id}/artifacts.zip", get(zip::artifacts_zip))
        .with_state(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// The caller of an HTTP request, or the 401 answer (a GraphQL error with
/// `UNAUTHENTICATED` and `WWW-Authenticate: Bearer`) when the token is
/// missing or invalid; nothing executes then.
pub(crate) fn principal_of(app: &AppState, headers: &HeaderMap) -> Option<Principal> {
    app.auth.from_headers(headers).ok().map(|(p, _)| p)
}

/// The answer to a request without a valid token.
pub(crate) fn unauthenticated() -> Response {
    let mut resp = error_response(
        StatusCode::UNAUTHORIZED,
        "authentication required: send Authorization: Bearer <token>",
        "UNAUTHENTICATED",
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

async fn graphql_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    req: Result<GraphQLBatchRequest, GraphQLRejection>,
) -> Response {
    // GraphQL over HTTP: only JSON bodies. A browser sends text/plain,
    // form-urlencoded and multipart cross-site without a preflight, so
    // accepting them would let any web page run mutations with a visitor's
    // cookies or network position (CSRF).
    if !is_json(&headers) {
        return unsupported_media_type();
    }
    let req = match req {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    let principal = match principal_of(&app, &headers) {
        Some(p) => p,
        None => return unauthenticated(),
    };
    let batch = req.into_inner();
    let batch = match batch {
        async_graphql::BatchRequest::Single(r) => async_graphql::BatchRequest::Single(
            request_data(r, &app.services, principal, app.loader_delay),
        ),
        async_graphql::BatchRequest::Batch(rs) => async_graphql::BatchRequest::Batch(
            rs.into_iter()
                .map(|r| request_data(r, &app.services, principal.clone(), app.loader_delay))
                .collect(),
        ),
    };
    GraphQLResponse::from(app.schema.execute_batch(batch).await).into_response()
}

/// A request that is not a GraphQL request at all (malformed JSON, wrong
/// shape): 400 with a GraphQL error body, never the parser's debug text.
fn bad_request(e: &GraphQLRejection) -> Response {
    let message = match &e.0 {
        async_graphql::ParseRequestError::InvalidRequest(inner) => {
            format!("the body is not a GraphQL request: {inner}")
        }
        async_graphql::ParseRequestError::PayloadTooLarge => {
            "the request body is too large".to_string()
        }
        _ => "the request could not be read as GraphQL over HTTP".to_string(),
    };
    error_response(StatusCode::BAD_REQUEST, &message, "BAD_REQUEST")
}

async fn graphql_get(State(app): State<AppState>, req: Request) -> Response {
    let headers = req.headers().clone();
    if is_websocket(&headers) {
        return websocket(app, req).await;
    }
    if wants_html(&headers) {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql")
                .title("Cerebral")
                .finish(),
        )
        .into_response();
    }
    let gql = match GraphQLRequest::<GraphQLRejection>::from_request(req, &app).await {
        Ok(r) => r.into_inner(),
        Err(e) => return bad_request(&e),
    };
    // GraphQL over HTTP: GET may only run queries, never change anything.
    if let Some(op) = operation_type(&gql)
        && op != OperationType::Query
    {
        let mut resp = GraphQLResponse::from(async_graphql::Response::from_errors(vec![
            crate::graphql::codes::with_code(
                ServerError::new(
                    "only queries may be sent with GET; send mutations and subscriptions with POST or WebSocket",
                    None,
                ),
                "METHOD_NOT_ALLOWED",
            ),
        ]))
        .into_response();
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let principal = match principal_of(&app, &headers) {
        Some(p) => p,
        None => return unauthenticated(),
    };
    let gql = request_data(gql, &app.services, principal, app.loader_delay);
    GraphQLResponse::from(app.schema.execute(gql).await).into_response()
}

async fn websocket(app: AppState, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &app).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    // Browsers cannot set headers on a WebSocket, so the token normally
    // comes in `connection_init`; a valid header is used when it does not.
    let from_header = app.auth.from_headers(&parts.headers).ok();
    ws::upgrade(app, upgrade, from_header)
}

async fn readyz(State(app): State<AppState>) -> Response {
    if crate::db::ping(app.services.db()).await {
        Json(json!({ "status": "ready" })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": "database unreachable" })),
        )
            .into_response()
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    let body = format!(
        "# HELP cerebral_db_statements_total SQL statements executed.\n# TYPE cerebral_db_statements_total counter\ncerebral_db_statements_total {}\n# HELP cerebral_event_head Highest committed event sequence number known to this process.\n# TYPE cerebral_event_head gauge\ncerebral_event_head {}\n# HELP cerebral_ws_connections_active Open WebSocket connections.\n# TYPE cerebral_ws_connections_active gauge\ncerebral_ws_connections_active {}\n# HELP cerebral_ws_subscriptions_active Active operations over all WebSocket connections.\n# TYPE cerebral_ws_subscriptions_active gauge\ncerebral_ws_subscriptions_active {}\n# HELP cerebral_event_listeners Event streams joined to this process's live ring.\n# TYPE cerebral_event_listeners gauge\ncerebral_event_listeners {}\n# HELP cerebral_event_gap_reads_total Times a stream fell behind the live ring and read the gap from the event log.\n# TYPE cerebral_event_gap_reads_total counter\ncerebral_event_gap_reads_total {}\n",
        app.statements.get(),
        app.services.bus().head(),
        app.ws_gauges.connections(),
        app.ws_gauges.subscriptions(),
        app.services.bus().listeners(),
        app.services.bus().gap_reads(),
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

fn is_json(h: &HeaderMap) -> bool {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

fn unsupported_media_type() -> Response {
    error_response(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "POST bodies must be application/json (GraphQL over HTTP)",
        "UNSUPPORTED_MEDIA_TYPE",
    )
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

/// The type of the operation a request would run, when it can be told.
fn operation_type(req: &async_graphql::Request) -> Option<OperationType> {
    let doc = async_graphql::parser::parse_query(&req.query).ok()?;
    match &req.operation_name {
        Some(name) => doc
            .operations
            .iter()
            .find(|(n, _)| n.map(|n| n.as_str()) == Some(name.as_str()))
            .map(|(_, op)| op.node.ty),
        None => doc.operations.iter().next().map(|(_, op)| op.node.ty),
    }
}
