//! GraphiQL, served from the binary.
//!
//! The page and every asset it loads (React, GraphiQL, Monaco and its web
//! workers, fonts) are built once from `web/graphiql` with Vite, committed
//! in `web/graphiql/dist`, and embedded at compile time, so the IDE works
//! on a machine that reaches nothing but this server (async-graphql's own
//! page loads them from a public CDN). See
//! `docs/decisions/0005-graphiql-in-the-binary.md`.
//!
//! The page holds no data, so it is served without a token; the requests
//! it sends carry the user's token from its headers editor and go through
//! the same checks as any other client's.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

/// The Vite build of `web/graphiql`. `debug-embed` embeds it in debug
/// builds too, so tests see the bytes a release serves.
#[derive(RustEmbed)]
#[folder = "web/graphiql/dist/"]
struct Dist;

/// Only this server: scripts, workers, styles and connections (HTTP and
/// WebSocket) all come from it. Monaco sets styles inline and GraphiQL's
/// stylesheet carries its fonts and a few icons as `data:` URLs; nothing
/// else is let in, and no other site may frame the page.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; \
script-src 'self'; \
worker-src 'self' blob:; \
style-src 'self' 'unsafe-inline'; \
font-src 'self' data:; \
img-src 'self' data: blob:; \
connect-src 'self'; \
base-uri 'none'; \
form-action 'none'; \
frame-ancestors 'none'; \
object-src 'none'";

/// Where the assets are served; the Vite `base` of `web/graphiql`.
pub const ASSETS_PATH: &str = "/graphiql/assets/{*path}";

/// The page at `GET /graphql` for a browser. Revalidated on every load
/// (`no-cache`) so a new binary's assets are picked up at once.
pub fn page(headers: &HeaderMap) -> Response {
    serve("index.html", headers, "no-cache")
}

/// `GET /graphiql/assets/*`: the bundle's scripts, styles and fonts. Their
/// names carry a hash of their content, so a browser may keep them for a
/// year without asking again.
pub async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(
        &format!("assets/{path}"),
        &headers,
        "public, max-age=31536000, immutable",
    )
}

fn serve(name: &str, headers: &HeaderMap, cache: &'static str) -> Response {
    let Some(file) = Dist::get(name) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let etag = format!("\"{}\"", hex(&file.metadata.sha256_hash()));
    let mut resp = if matches(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, file.data.into_owned()).into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(file.metadata.mimetype()) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// Whether `If-None-Match` names this entity tag (or `*`). Weak tags
/// compare equal to strong ones for GET (RFC 9110, 13.1.2).
fn matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
