//! HTTP: GraphQL over HTTP (POST and GET), GraphiQL, WebSocket
//! subscriptions on the same path, health probes and the artifacts ZIP.

pub mod graphiql;
pub mod layers;
pub mod origin;
pub mod rate;
pub mod ws;
pub mod zip;

use crate::error::code;
use crate::graphql::pipeline::Executed;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::parser::types::OperationType;
use async_graphql_axum::GraphQLRequest;
use async_graphql_axum::rejection::GraphQLRejection;
use axum::extract::{FromRequest, FromRequestParts, Request, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::Either;
use serde_json::json;

use crate::auth::Principal;
use crate::db::StatementCounter;

use crate::graphql::batch::{self, Batching, Ticks};
use crate::graphql::pipeline::lean_may_run;
use crate::graphql::{AppSchema, request_data_with};
use crate::service::Services;

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

/// The router of the metrics listener (`CEREBRAL_METRICS_LISTEN`): `/metrics`
/// and nothing else. It holds every tenant's counts and needs no token,
/// which is why it may live on an address only Prometheus reaches; its
/// scrapes are not counted in the request metrics.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(10),
        ))
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

/// What a client asked to receive (GraphQL over HTTP, "Accept").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MediaType {
    /// `application/json`: the legacy type every client understands; 200
    /// for every well-formed request, whatever its errors.
    Json,
    /// `application/graphql-response+json`: the status tells whether the
    /// operation ran (400 when it was refused before execution).
    GraphqlResponse,
}

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// The media type to answer with, or `None` when the client accepts none
/// we can send (406). No `Accept`, `*/*` and `application/*` get JSON.
fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(MediaType::Json);
    };
    let mut json = false;
    for item in accept.split(',') {
        let mut params = item.split(';');
        let media = params
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        // `q=0` means "not acceptable".
        let refused = params.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if refused {
            continue;
        }
        match media.as_str() {
            GRAPHQL_RESPONSE => return Some(MediaType::GraphqlResponse),
            "application/json" | "application/*" | "*/*" => json = true,
            _ => {}
        }
    }
    json.then_some(MediaType::Json)
}

/// Runs GraphQL requests for one HTTP request: the caller, the loaders,
/// the execution marks and the time limit.
async fn run(
    app: &AppState,
    principal: Principal,
    requests: Vec<async_graphql::Request>,
    media: MediaType,
    batched: bool,
) -> Response {
    let marks: Vec<Arc<Executed>> = requests.iter().map(|_| Arc::default()).collect();
    // Every operation of a batch draws on one complexity budget.
    let budget = Arc::new(crate::graphql::limits::BatchBudget::default());
    // Each operation reads through its own request reader: a query pins it
    // (one read session for all its statements, given back as the
    // operation's data is dropped), so one operation of a batch never
    // holds a connection while the next one runs.
    let requests: Vec<_> = requests
        .into_iter()
        .zip(&marks)
        .map(|(r, m)| {
            let reads = app.services.request_reader(principal.tenant_id);
            // Its loaders fetch when the operation waits, in this task
            // (see `graphql::batch`).
            let (ticks, fetches) = Ticks::new();
            let r = request_data_with(
                r,
                &app.services,
                principal.clone(),
                reads.clone(),
                Batching::Tick(ticks),
            )
            .data(m.clone())
            .data(budget.clone());
            (r, reads, fetches)
        })
        .collect();
    // One plain query (the common request) runs without the per-field
    // hook; a batch keeps it, for its shared complexity budget.
    let lean = app
        .lean
        .as_ref()
        .filter(|_| requests.len() == 1 && !batched)
        .filter(|_| requests.iter().all(|(r, ..)| lean_may_run(&r.query)));
    // As `Schema::execute_batch` does: one operation after the other.
    let execute = async {
        let mut out = Vec::with_capacity(requests.len());
        for (r, reads, fetches) in requests {
            let run = match lean {
                Some(l) => Either::Left(l.pipeline.run_lean(l, &app.schema, r)),
                None => Either::Right(app.schema.execute(r)),
            };
            let run = batch::drive(fetches, run);
            out.push(crate::service::Services::with_request_reader(reads, run).await);
        }
        out
    };
    // Dropping the execution cancels it at its next await; a statement
    // already running on PostgreSQL is ended by `statement_timeout`.
    // A zero timeout means none.
    let limit = match app.limits.request_timeout {
        t if t.is_zero() => Duration::MAX,
        t => t,
    };
    let responses = match tokio::time::timeout(limit, execute).await {
        Ok(rs) => rs,
        Err(_) => {
            return error_response(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "the request ran longer than {} s and was cancelled",
                    app.limits.request_timeout.as_secs_f32()
                ),
                code::TIMEOUT,
            );
        }
    };
    let mut executed_any = false;
    let mut headers = HeaderMap::new();
    let mut bodies = Vec::with_capacity(responses.len());
    for (mut r, m) in responses.into_iter().zip(&marks) {
        headers.extend(std::mem::take(&mut r.http_headers));
        let executed = m.get();
        executed_any |= executed;
        bodies.push(Body {
            response: r,
            data: executed,
        });
    }
    // Serialized straight to bytes: going through `serde_json::Value` first
    // cost 3 % of a nested query's CPU.
    let bytes = if batched {
        serde_json::to_vec(&bodies)
    } else {
        match bodies.first() {
            Some(b) => serde_json::to_vec(b),
            None => Ok(b"{}".to_vec()),
        }
    };
    let Ok(bytes) = bytes else {
        return error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the answer could not be serialized",
            code::INTERNAL_SERVER_ERROR,
        );
    };
    // A lean run counts its answer in the fields that can be large
    // (`limits::Counted`); measured here as well, a field that does not
    // count itself still cannot send an answer past the limit.
    let max = app.limits.max_response_bytes;
    let bytes = if let Some(l) = lean
        && max > 0
        && bytes.len() > max
    {
        let refusal =
            async_graphql::Response::from_errors(vec![l.pipeline.limits.per_request().too_large()]);
        match serde_json::to_vec(&Body {
            response: refusal,
            data: true,
        }) {
            Ok(b) => b,
            Err(_) => bytes,
        }
    } else {
        bytes
    };
    let status = if media == MediaType::GraphqlResponse && !executed_any {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut resp = (status, bytes).into_response();
    resp.headers_mut().extend(headers);
    set_media_type(&mut resp, media);
    resp
}

/// One GraphQL response as sent: `data` only when execution began (GraphQL
/// spec, "Response": no `data` entry when an error stopped the request
/// before execution), then `errors` and `extensions` when there are any.
struct Body {
    response: async_graphql::Response,
    data: bool,
}

impl serde::Serialize for Body {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let r = &self.response;
        let mut map = s.serialize_map(None)?;
        if self.data {
            map.serialize_entry("data", &r.data)?;
        }
        if !r.errors.is_empty() {
            map.serialize_entry("errors", &r.errors)?;
        }
        if !r.extensions.is_empty() {
            map.serialize_entry("extensions", &r.extensions)?;
        }
        map.end()
    }
}

fn set_media_type(resp: &mut Response, media: MediaType) {
    let value = match media {
        MediaType::Json => HeaderValue::from_static("application/json"),
        MediaType::GraphqlResponse => HeaderValue::from_static(GRAPHQL_RESPONSE),
    };
    resp.headers_mut().insert(header::CONTENT_TYPE, value);
}

fn not_acceptable() -> Response {
    error_response(
        StatusCode::NOT_ACCEPTABLE,
        "send Accept: application/graphql-response+json or application/json",
        code::NOT_ACCEPTABLE,
    )
}

async fn graphql_post(State(app): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    // GraphQL over HTTP: only JSON bodies. A browser sends text/plain,
    // form-urlencoded and multipart cross-site without a preflight, so
    // accepting them would let any web page run mutations with a visitor's
    // cookies or network position (CSRF).
    if !is_json(&headers) {
        drain(body, app.limits.max_body_bytes).await;
        return unsupported_media_type();
    }
    let Some(media) = negotiate(&headers) else {
        drain(body, app.limits.max_body_bytes).await;
        return not_acceptable();
    };
    // Read at most the limit, whether or not a Content-Length says so
    // (a chunked body has none).
    let bytes = match axum::body::to_bytes(body, app.limits.max_body_bytes).await {
        Ok(b) => b,
        Err(e) => {
            // Anywhere in the chain: the body-limit layer wraps the body
            // too, so the limit error may sit a level or two down.
            let too_large = std::iter::successors(std::error::Error::source(&e), |s| s.source())
                .any(|s| s.is::<http_body_util::LengthLimitError>());
            return if too_large {
                error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(
                        "the request body is larger than {} bytes",
                        app.limits.max_body_bytes
                    ),
                    code::PAYLOAD_TOO_LARGE,
                )
            } else {
                error_response(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                    code::BAD_REQUEST,
                )
            };
        }
    };
    if let Some(refusal) = too_many_values(&bytes, &app.limits) {
        return refusal;
    }
    let batch: async_graphql::BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a GraphQL request: {e}"),
                code::BAD_REQUEST,
            );
        }
    };
    let (requests, batched) = match batch {
        async_graphql::BatchRequest::Single(r) => (vec![r], false),
        async_graphql::BatchRequest::Batch(rs) => (rs, true),
    };
    if requests.len() > app.limits.max_batch {
        return error_response(
            StatusCode::BAD_REQUEST,
            &format!(
                "the batch holds {} operations; at most {} are accepted",
                requests.len(),
                app.limits.max_batch
            ),
            code::BATCH_TOO_LARGE,
        );
    }
    let principal = match principal_of(&app, &headers).await {
        Ok(p) => p,
        Err(refusal) => return refusal,
    };
    // Each operation of a batch is a request against the caller's rate.
    if let Some(refusal) = app
        .limiter
        .refusal(&principal, &parts.extensions, requests.len())
    {
        return refusal;
    }
    run(&app, principal, requests, media, batched).await
}

/// The 400 for a body (or query string) with more JSON values than the
/// limit allows, before any of it is parsed.
fn too_many_values(text: &[u8], limits: &crate::graphql::limits::Limits) -> Option<Response> {
    let max = limits.max_json_values;
    (crate::graphql::limits::json_values(text, max) > max).then(|| {
        error_response(
            StatusCode::BAD_REQUEST,
            &format!("the request holds more than {max} JSON values (CEREBRAL_MAX_JSON_VALUES)"),
            code::BAD_REQUEST,
        )
    })
}

/// PUT, DELETE, PATCH … on `/graphql`: 405 with `Allow: GET, POST` (a
/// GraphQL error body), after the body is drained like any refusal sent
/// from the headers.
async fn graphql_other_method(State(app): State<AppState>, req: Request) -> Response {
    drain(req.into_body(), app.limits.max_body_bytes).await;
    let mut resp = error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "GraphQL over HTTP is GET (queries) and POST",
        code::METHOD_NOT_ALLOWED,
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    resp
}

/// How long a refused request's body may take to arrive before the
/// answer goes out anyway.
const DRAIN_WITHIN: Duration = Duration::from_secs(2);

/// Reads and drops the body of a request refused from its headers alone
/// (at most `limit` bytes, for at most [`DRAIN_WITHIN`]). A client that
/// writes its whole body before reading (Node's `fetch`) otherwise meets
/// a connection closed with its body unread, and gets `EPIPE` or a reset
/// instead of the refusal.
async fn drain(body: axum::body::Body, limit: usize) {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut seen = 0usize;
    let _ = tokio::time::timeout(DRAIN_WITHIN, async {
        // An error (the body-limit layer's included) ends the drain.
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen = seen.saturating_add(data.len());
                if seen > limit {
                    break;
                }
            }
        }
    })
    .await;
}

/// A request that is not a GraphQL request at all (malformed JSON, wrong
/// shape): 400 with a GraphQL error body, never the parser's debug text.
fn bad_request(e: &GraphQLRejection) -> Response {
    let message = match &e.0 {
        async_graphql::ParseRequestError::InvalidRequest(inner) => {
            format!("the body is not a GraphQL request: {inner}")
        }
        _ => "the request could not be read as GraphQL over HTTP".to_string(),
    };
    error_response(StatusCode::BAD_REQUEST, &message, code::BAD_REQUEST)
}

async fn graphql_get(State(app): State<AppState>, req: Request) -> Response {
    let headers = req.headers().clone();
    if is_websocket(&headers) {
        return websocket(app, req).await;
    }
    if wants_html(&headers) {
        return graphiql::page(&headers);
    }
    let Some(media) = negotiate(&headers) else {
        return not_acceptable();
    };
    let extensions = req.extensions().clone();
    let query_string = req.uri().query().unwrap_or_default().as_bytes();
    if let Some(refusal) = too_many_values(query_string, &app.limits) {
        return refusal;
    }
    let mut gql = match GraphQLRequest::<GraphQLRejection>::from_request(req, &app).await {
        Ok(r) => r.into_inner(),
        Err(e) => return bad_request(&e),
    };
    // A hash-only GET (APQ) names its document by hash: put the document
    // in first, or a remembered mutation would slip past the rule below.
    if let Some(store) = &app.persisted {
        store.fill_known(&mut gql);
    }
    // GraphQL over HTTP: GET may only run queries, never change anything.
    if let Some(op) = operation_type(&gql, &app.limits)
        && op != OperationType::Query
    {
        let mut resp = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "only queries may be sent with GET; send mutations and subscriptions with POST or WebSocket",
            code::METHOD_NOT_ALLOWED,
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let principal = match principal_of(&app, &headers).await {
        Ok(p) => p,
        Err(refusal) => return refusal,
    };
    if let Some(refusal) = app.limiter.refusal(&principal, &extensions, 1) {
        return refusal;
    }
    run(&app, principal, vec![gql], media, false).await
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

/// Ready when the database answers within 2 s, every migration this
/// binary knows is applied, and (on PostgreSQL) the event listener is
/// connected; otherwise 503 with the reason, so a load balancer takes the
/// replica out until it recovers.
async fn readyz(State(app): State<AppState>) -> Response {
    // Neither the ping nor the migration table touches tenant rows.
    let db = app.services.unscoped();
    let unavailable = |reason: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason })),
        )
            .into_response()
    };
    let within = Duration::from_secs(2);
    if !matches!(
        tokio::time::timeout(within, crate::db::ping(db)).await,
        Ok(true)
    ) {
        return unavailable("database unreachable within 2 s");
    }
    if !app.migrated.load(std::sync::atomic::Ordering::Relaxed) {
        match tokio::time::timeout(within, crate::db::pending_migrations(db)).await {
            Ok(Ok(pending)) if pending.is_empty() => {
                app.migrated
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(Ok(pending)) => {
                return unavailable(&format!("migrations not applied: {}", pending.join(", ")));
            }
            _ => return unavailable("cannot read the applied migrations"),
        }
    }
    if !crate::db::is_sqlite(db) && !app.services.bus().listening() {
        return unavailable("event listener not connected");
    }
    Json(json!({ "status": "ready" })).into_response()
}

async fn metrics(State(app): State<AppState>) -> Response {
    let db = app.services.unscoped();
    let (size, idle) = app.services.pool_stats();
    let within = Duration::from_secs(2);
    // Counts over every tenant (a read-only all-tenants scope), at most
    // once per TTL whatever the scrape rate.
    let counts = app
        .work_counts
        .get_or_count(|| async {
            let (tasks_by_status, hitl_pending) =
                tokio::time::timeout(within, crate::db::work_counts(&app.services.all_tenants()))
                    .await
                    .unwrap_or((None, None));
            crate::metrics::WorkCounts {
                tasks_by_status,
                hitl_pending,
            }
        })
        .await;
    let bus = app.services.bus();
    let snapshot = crate::metrics::Snapshot {
        db_statements: app.statements.get(),
        db_transactions: app.statements.transactions(),
        db_connections_in_use: size.saturating_sub(idle),
        db_connections_idle: idle,
        event_head: bus.head(),
        event_listeners: bus.listeners() as u64,
        event_gap_reads: bus.gap_reads(),
        ws_connections: app.ws_gauges.connections() as u64,
        ws_subscriptions: app.ws_gauges.subscriptions() as u64,
        event_listener_connected: (!crate::db::is_sqlite(db)).then(|| bus.listening()),
        tasks_by_status: counts.tasks_by_status,
        hitl_pending: counts.hitl_pending,
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(&snapshot),
    )
        .into_response()
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
        code::UNSUPPORTED_MEDIA_TYPE,
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
/// A document over the size limit is not parsed here: the limits refuse it
/// before anything runs, and the parser should never see it.
fn operation_type(
    req: &async_graphql::Request,
    limits: &crate::graphql::limits::Limits,
) -> Option<OperationType> {
    if !crate::graphql::limits::may_parse(&req.query, limits) {
        return None;
    }
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
