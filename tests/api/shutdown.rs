//! Graceful shutdown: on SIGTERM (or SIGINT) the server stops accepting,
//! lets the requests in flight finish, then exits 0.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_a_request_in_flight_and_refuses_new_ones() {
    let mut server = support::ServerProcess::start_fresh(&[]).await;
    // A request whose body is still arriving when the signal comes.
    let body = r#"{"query":"{ projects { totalCount } }"}"#;
    let (head, tail) = body.split_at(10);
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect");
    conn.write_all(
        format!(
            "POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{head}\r\n",
            head.len()
        )
        .as_bytes(),
    )
    .await
    .expect("send the first part");
    tokio::time::sleep(Duration::from_millis(300)).await;

    server.terminate();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        server.wait_exit(Duration::from_millis(10)).await.is_none(),
        "exited with a request in flight"
    );
    let refused = reqwest::Client::new()
        .get(format!("{}/healthz", server.base))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        refused.is_err() || refused.is_ok_and(|r| !r.status().is_success()),
        "a new request was served after SIGTERM"
    );

    conn.write_all(format!("{:x}\r\n{tail}\r\n0\r\n\r\n", tail.len()).as_bytes())
        .await
        .expect("send the rest");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"totalCount\":0"), "{answer}");

    let status = server
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("exits once drained");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_the_server_cleanly() {
    let mut server = support::ServerProcess::start_fresh(&[]).await;
    server.signal("INT");
    let status = server
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("exits after SIGINT");
    assert!(status.success(), "{status}\n{}", server.log());
}
