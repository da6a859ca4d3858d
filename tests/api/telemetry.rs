//! OpenTelemetry: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, the server's
//! spans (HTTP request with its request id, GraphQL resolvers) reach an
//! OTLP/HTTP collector, and a SIGTERM flushes what is still queued.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::json;

use crate::support;

/// Every OTLP request the fake collector received: content type and body.
type Received = Arc<Mutex<Vec<(String, Bytes)>>>;

/// An OTLP/HTTP collector that accepts everything on `/v1/traces`.
async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let sink = sink.clone();
            async move {
                let ctype = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                if let Ok(mut r) = sink.lock() {
                    r.push((ctype, body));
                }
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), received)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_and_sigterm_flushes_them() {
    let (endpoint, received) = collector().await;
    let mut server = support::ServerProcess::start_fresh(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        // Nothing is exported on a timer during the test: what arrives
        // was flushed at shutdown.
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ])
    .await;
    let id = format!("otel-{}", uuid::Uuid::now_v7().simple());
    let body = support::post_json(
        &reqwest::Client::new(),
        &format!("{}/graphql", server.base),
        None,
        &[("x-request-id", &id)],
        &json!({ "query": "query Count { projects { totalCount } }" }),
    )
    .await;
    assert_eq!(body["data"]["projects"]["totalCount"], 0, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        received.lock().expect("lock").is_empty(),
        "batched, not sent per span"
    );

    server.terminate();
    let status = server
        .wait_exit(Duration::from_secs(30))
        .await
        .expect("exits after SIGTERM");
    assert!(status.success(), "{status}\n{}", server.log());

    let got = received.lock().expect("lock").clone();
    assert!(!got.is_empty(), "nothing exported:\n{}", server.log());
    assert!(
        got.iter()
            .all(|(ctype, _)| ctype == "application/x-protobuf"),
        "{:?}",
        got.iter().map(|(c, _)| c).collect::<Vec<_>>()
    );
    let all: Vec<u8> = got.iter().flat_map(|(_, b)| b.to_vec()).collect();
    // Protobuf keeps strings as they are, so the names can be found.
    for needle in ["cerebral", "request", "field", "projects", id.as_str()] {
        assert!(
            contains(&all, needle),
            "`{needle}` not in the exported spans"
        );
    }
}
