//! `GET /projects/{id}/artifacts.zip`: the latest version of every artifact
//! of a project as one ZIP, streamed while it is written (one artifact's
//! content in memory at a time).

use async_zip::tokio::write::ZipFileWriter;
use async_zip::{Compression, ZipEntryBuilder};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio_util::io::ReaderStream;

use super::{AppState, error_response, principal_of};
use crate::error::AppError;
use crate::ids::{self, Kind};

/// The handler.
pub async fn artifacts_zip(
    State(app): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    extensions: axum::http::Extensions,
) -> Response {
    let p = match principal_of(&app, &headers).await {
        Ok(p) => p,
        Err(refusal) => return refusal,
    };
    if let Some(refusal) = app.limiter.refusal(&p, &extensions, 1) {
        return refusal;
    }
    let project = match ids::decode(Kind::Project, &id) {
        Ok(u) => u,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let artifacts = match app.services.latest_artifacts(&p, project).await {
        Ok(a) => a,
        Err(e @ AppError::NotFound { .. }) => return error(StatusCode::NOT_FOUND, &e),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let (writer, reader) = tokio::io::duplex(64 * 1024);
    let services = app.services.clone();
    tokio::spawn(async move {
        let mut zip = ZipFileWriter::with_tokio(writer);
        for a in artifacts {
            let content = match services.artifact_content(&p, a.id).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = ?e, artifact = %a.id, "artifact content unreadable; ZIP cut short");
                    return;
                }
            };
            let entry = ZipEntryBuilder::new(
                safe_name(&a.name, &a.id.to_string()).into(),
                Compression::Deflate,
            );
            if let Err(e) = zip.write_entry_whole(entry, &render(&content)).await {
                // The client went away; nothing more to do.
                tracing::debug!(error = %e, "ZIP stream ended early");
                return;
            }
        }
        if let Err(e) = zip.close().await {
            tracing::debug!(error = %e, "ZIP stream ended early");
        }
    });
    let mut resp = Body::from_stream(ReaderStream::new(reader)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"project-{project}-artifacts.zip\""
    )) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

/// A string is written as its text; anything else as pretty JSON.
fn render(content: &Value) -> Vec<u8> {
    match content {
        Value::String(s) => s.clone().into_bytes(),
        other => serde_json::to_vec_pretty(other).unwrap_or_default(),
    }
}

/// An artifact name as a path inside the archive: no absolute paths, no
/// `..`, no backslashes, so unpacking cannot write outside its folder.
fn safe_name(name: &str, fallback: &str) -> String {
    let parts: Vec<&str> = name
        .split(['/', '\\'])
        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
        .collect();
    if parts.is_empty() {
        format!("artifact-{fallback}")
    } else {
        parts.join("/")
    }
}

fn error(status: StatusCode, e: &AppError) -> Response {
    error_response(status, &e.to_string(), e.code())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_cannot_escape_the_archive() {
        assert_eq!(super::safe_name("../../etc/passwd", "x"), "etc/passwd");
        assert_eq!(super::safe_name("/abs\\win.md", "x"), "abs/win.md");
        assert_eq!(super::safe_name("..", "x"), "artifact-x");
        assert_eq!(super::safe_name("docs/prd.md", "x"), "docs/prd.md");
    }
}
