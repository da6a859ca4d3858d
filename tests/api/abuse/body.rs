//! The request body: its declared and its actual size.

use std::time::Duration;

use super::watch::{server, watch};

/// Refusing a body is reading at most the limit: a fraction of a second.
const REFUSE_WITHIN: Duration = Duration::from_secs(2);
/// The server holds at most the 1 MiB limit of one body, plus buffers.
const BODY_MEMORY: u64 = 16 * 1024 * 1024;

#[tokio::test]
async fn a_64_mib_body_is_refused_without_being_held() {
    let target = server(&[]).await;
    let client = reqwest::Client::new();
    // 64 MiB of blanks (chunked bodies are covered by tests/api/limits.rs).
    let body = vec![b' '; 64 * 1024 * 1024];
    let (status, cost) = watch(&target, async {
        client
            .post(format!("{}/graphql", target.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
    })
    .await;
    // The server may answer 413 and close before the client finished
    // sending; either way nothing past the limit was kept.
    if let Ok(status) = status {
        assert_eq!(status, 413);
    }
    cost.assert_within("64 MiB chunked body", REFUSE_WITHIN, BODY_MEMORY);
}
