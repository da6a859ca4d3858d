//! The tower-http layers around every route: request ids, tracing spans,
//! catch-panic, a backstop timeout, compression, CORS and the body limit.
//!
//! The GraphQL handler enforces its own body limit and timeout with GraphQL
//! error bodies; these layers are the wall for everything else (and for a
//! handler that misbehaves), and their bare refusals are given the same
//! JSON error shape so every client parses one format.

use crate::error::code;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// `x-request-id`: taken from the request when a proxy set one, else a new
/// UUID; echoed on the response and recorded on the request's span.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What the layers need from the configuration.
#[derive(Debug, Clone, Default)]
pub struct LayerSettings {
    /// Origins allowed by CORS; empty for none (no CORS headers), `*` for
    /// any.
    pub cors_origins: Vec<String>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The GraphQL request timeout; the backstop fires 5 s after it. Zero
    /// turns the backstop off too.
    pub request_timeout: Duration,
}

impl LayerSettings {
    /// Checks the CORS origins, so a typo stops the server at start-up
    /// rather than silently refusing every browser.
    pub fn validate(&self) -> anyhow::Result<()> {
        for origin in &self.cors_origins {
            if origin == "*" {
                continue;
            }
            let ok = (origin.starts_with("http://") || origin.starts_with("https://"))
                && !origin.ends_with('/')
                && !origin.contains(char::is_whitespace)
                && HeaderValue::from_str(origin).is_ok();
            if !ok {
                anyhow::bail!(
                    "CEREBRAL_CORS_ORIGINS: `{origin}` is not an origin (scheme://host[:port], no path, or `*`)"
                );
            }
        }
        Ok(())
    }

    fn cors(&self) -> Option<CorsLayer> {
        if self.cors_origins.is_empty() {
            return None;
        }
        let origin = if self.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                self.cors_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        // Tokens travel in `Authorization`, never in cookies, so
        // credentials stay off (and `*` stays legal).
        Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::ACCEPT,
                    REQUEST_ID,
                ])
                .expose_headers([REQUEST_ID, header::RETRY_AFTER])
                .max_age(Duration::from_secs(600)),
        )
    }
}

/// Wraps `router` in the layers, outermost first: request id, trace span,
/// id propagation, catch-panic, timeout, compression, CORS, body limit.
pub fn apply(router: Router, settings: &LayerSettings) -> Router {
    let mut router = router
        .layer(RequestBodyLimitLayer::new(settings.max_body_bytes))
        .layer(axum::middleware::map_response(json_refusals));
    if let Some(cors) = settings.cors() {
        router = router.layer(cors);
    }
    // ZIP archives are compressed already; 101 upgrades and tiny bodies
    // gain nothing.
    let compress = SizeAbove::new(256)
        .and(NotForContentType::const_new("application/zip"))
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE)
        .and(
            |status: StatusCode,
             _: axum::http::Version,
             _: &axum::http::HeaderMap,
             _: &axum::http::Extensions| { status != StatusCode::SWITCHING_PROTOCOLS },
        );
    router = router.layer(
        CompressionLayer::new()
            .gzip(true)
            .br(true)
            .compress_when(compress),
    );
    if !settings.request_timeout.is_zero() {
        router = router
            .layer(TimeoutLayer::with_status_code(
                StatusCode::GATEWAY_TIMEOUT,
                settings.request_timeout + Duration::from_secs(5),
            ))
            .layer(axum::middleware::map_response(json_refusals));
    }
    router
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
                let id = req
                    .headers()
                    .get(&REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                // The path only: a query string may carry a whole GraphQL
                // document.
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    path = %req.uri().path(),
                    request_id = %id,
                )
            }),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// A panic anywhere under the layers: the request gets a 500 with a
/// GraphQL error (never the panic text), the connection and the process
/// carry on.
fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response<Body> {
    let detail = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("non-string panic payload");
    tracing::error!(panic = detail, "request handler panicked");
    super::error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal server error",
        code::INTERNAL_SERVER_ERROR,
    )
}

/// Gives the layers' bare 413 and 504 (empty or plain-text bodies) the
/// GraphQL error shape; handler answers already have it and pass as they
/// are.
async fn json_refusals(resp: Response<Body>) -> Response<Body> {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if is_json {
        return resp;
    }
    match resp.status() {
        StatusCode::PAYLOAD_TOO_LARGE => super::error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the request body is too large",
            code::PAYLOAD_TOO_LARGE,
        ),
        StatusCode::GATEWAY_TIMEOUT => super::error_response(
            StatusCode::GATEWAY_TIMEOUT,
            "the request took too long and was cancelled",
            code::TIMEOUT,
        ),
        _ => resp,
    }
}
