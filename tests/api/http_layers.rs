//! The tower-http layers around every route: request ids, compression,
//! CORS, catch-panic, the backstop timeout and the body limit.

use std::io::Read;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support;

const LIST: &str = r#"{"query":"{ projects(first: 20) { totalCount nodes { id name } } }"}"#;

async fn post_raw(base: &str, body: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/graphql"))
        .header("content-type", "application/json")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("request sent")
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_keeps_the_callers() {
    let app = support::spawn().await;
    let resp = post_raw(&app.base, LIST, &[]).await;
    let id = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "a fresh UUID: {id}");
    let again = post_raw(&app.base, LIST, &[]).await;
    assert_ne!(
        again.headers()["x-request-id"].to_str().ok(),
        Some(id.as_str())
    );

    let mine = "proxy-7f3a-0001";
    let resp = post_raw(&app.base, LIST, &[("x-request-id", mine)]).await;
    assert_eq!(resp.headers()["x-request-id"], mine, "a proxy's id is kept");
    let health = reqwest::Client::new()
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", mine)
        .send()
        .await
        .expect("healthz");
    assert_eq!(health.headers()["x-request-id"], mine, "on every route");
}

#[tokio::test]
async fn responses_are_compressed_when_asked_except_archives_and_upgrades() {
    let app = support::spawn().await;
    for i in 0..10 {
        app.create_project(&format!(
            "project {i} with a name long enough to make the answer worth compressing"
        ))
        .await;
    }
    let plain = post_raw(&app.base, LIST, &[]).await;
    assert!(plain.headers().get("content-encoding").is_none());
    let plain: Value = plain.json().await.expect("json");
    assert_eq!(plain["data"]["projects"]["totalCount"], 10);

    let gz = post_raw(&app.base, LIST, &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    let bytes = gz.bytes().await.expect("body");
    let mut text = String::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_string(&mut text)
        .expect("valid gzip");
    let unzipped: Value = serde_json::from_str(&text).expect("json inside");
    assert_eq!(unzipped, plain, "the same answer");
    assert!(bytes.len() < text.len(), "{} ≥ {}", bytes.len(), text.len());

    let br = post_raw(
        &app.base,
        LIST,
        &[("accept-encoding", "br;q=1, gzip;q=0.5")],
    )
    .await;
    assert_eq!(br.headers()["content-encoding"], "br");

    // A ZIP is compressed already.
    let p = app
        .ok("{ projects(first: 1) { nodes { id } } }", json!({}))
        .await["projects"]["nodes"][0]["id"]
        .as_str()
        .expect("id")
        .to_string();
    // Big enough to be worth compressing (hex compresses, but not to
    // nothing), so only the content type keeps it raw.
    app.ok(
        "mutation($p: ID!, $c: JSON!) { createArtifact(input: {projectId: $p, kind: SPEC, name: \"notes\", content: $c}) { artifact { id } } }",
        json!({ "p": p, "c": { "ids": (0..100).map(|_| uuid::Uuid::now_v7().to_string()).collect::<Vec<_>>() } }),
    )
    .await;
    let zip = reqwest::Client::new()
        .get(format!("{}/projects/{p}/artifacts.zip", app.base))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("zip");
    assert_eq!(zip.status(), 200, "{p}");
    assert_eq!(zip.headers()["content-type"], "application/zip");
    assert!(zip.headers().get("content-encoding").is_none());
    let archive = zip.bytes().await.expect("zip body");
    assert!(
        archive.len() > 512,
        "above the 256-byte threshold: {} bytes",
        archive.len()
    );

    // A WebSocket upgrade asked with gzip still upgrades and works.
    let mut req = support::ws_url(&app.base)
        .into_client_request()
        .expect("ws request");
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    req.headers_mut()
        .insert("Accept-Encoding", "gzip, br".parse().expect("header"));
    let (mut ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("upgrades");
    assert!(resp.headers().get("content-encoding").is_none());
    ws.send(Message::Text(r#"{"type":"connection_init"}"#.into()))
        .await
        .expect("send");
    let ack = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("in time")
        .expect("a message")
        .expect("ok");
    assert!(ack.to_text().expect("text").contains("connection_ack"));
}

async fn preflight(base: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{base}/graphql"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .expect("preflight")
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let closed = support::spawn().await;
    let resp = preflight(&closed.base, "https://app.example.com").await;
    assert!(
        resp.headers().get("access-control-allow-origin").is_none(),
        "no CORS unless configured"
    );

    let app = support::spawn_with(|c| {
        c.server.cors_origins = vec![
            "https://app.example.com".into(),
            "http://localhost:5173".into(),
        ];
    })
    .await;
    let resp = preflight(&app.base, "https://app.example.com").await;
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    assert!(
        resp.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );

    let other = preflight(&app.base, "https://evil.example.net").await;
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let actual = post_raw(&app.base, LIST, &[("origin", "http://localhost:5173")]).await;
    assert_eq!(
        actual.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let exposed = actual.headers()["access-control-expose-headers"]
        .to_str()
        .expect("ascii");
    assert!(exposed.contains("x-request-id"), "{exposed}");

    let any = support::spawn_with(|c| c.server.cors_origins = vec!["*".into()]).await;
    let resp = preflight(&any.base, "https://whoever.example.org").await;
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
}

#[tokio::test]
async fn a_malformed_cors_origin_stops_the_server_at_start_up() {
    let (url, _dir) = support::fresh_database().await;
    for bad in ["app.example.com", "https://app.example.com/", "https://a b"] {
        let mut config = cerebral::config::Config::for_database(&url);
        config.server.cors_origins = vec![bad.into()];
        let err = match cerebral::app::App::build(&config).await {
            Ok(_) => panic!("{bad} accepted"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("CEREBRAL_CORS_ORIGINS"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_gets_a_500_and_the_server_keeps_serving() {
    let app = support::spawn_with(|c| c.server.test_routes = true).await;
    for _ in 0..3 {
        let resp = reqwest::get(format!("{}/__test/panic", app.base))
            .await
            .expect("an answer, not a dropped connection");
        assert_eq!(resp.status(), 500);
        assert!(resp.headers().get("x-request-id").is_some());
        let body: Value = resp.json().await.expect("json");
        assert_eq!(
            body["errors"][0]["extensions"]["code"],
            "INTERNAL_SERVER_ERROR"
        );
        assert!(
            !body.to_string().contains("on purpose"),
            "the panic text stays in the log: {body}"
        );
    }
    let list = app.ok("{ projects { totalCount } }", json!({})).await;
    assert_eq!(list["projects"]["totalCount"], 0);

    // A resolver that panics, over HTTP: the same 500.
    let resp = post_raw(
        &app.base,
        r#"{"query":"{ panicProbe: projects { totalCount } }"}"#,
        &[],
    )
    .await;
    assert_eq!(resp.status(), 500);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "INTERNAL_SERVER_ERROR"
    );
    // Over WebSocket the panic ends that connection only.
    let mut ws = support::RawWs::connect_and_init(&app.base).await;
    ws.subscribe("1", "{ panicProbe: projects { totalCount } }", json!({}))
        .await;
    assert!(
        ws.ended_within(Duration::from_secs(5)).await
            || ws.next_for("1", Duration::from_secs(1)).await.is_some(),
        "the connection either closed or answered"
    );
    let mut other = support::RawWs::connect_and_init(&app.base).await;
    other
        .subscribe("1", "{ projects { totalCount } }", json!({}))
        .await;
    let data = other
        .next_data("1", Duration::from_secs(5))
        .await
        .expect("a new connection is served");
    assert_eq!(data["projects"]["totalCount"], 0, "{data}");
    let list = app.ok("{ projects { totalCount } }", json!({})).await;
    assert_eq!(list["projects"]["totalCount"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backstop_timeout_answers_a_stuck_handler() {
    let app = support::spawn_with(|c| {
        c.server.test_routes = true;
        c.requests.request_timeout_seconds = 1;
    })
    .await;
    let started = Instant::now();
    let resp = reqwest::get(format!("{}/__test/sleep/20000", app.base))
        .await
        .expect("answer");
    let took = started.elapsed();
    assert_eq!(resp.status(), 504);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["errors"][0]["extensions"]["code"], "TIMEOUT");
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(15),
        "request timeout + 5 s: {took:?}"
    );
    let quick = reqwest::get(format!("{}/__test/sleep/10", app.base))
        .await
        .expect("answer");
    assert_eq!(quick.status(), 200);
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_before_it_is_read() {
    let app = support::spawn_with(|c| c.requests.max_body_bytes = 2_000).await;
    let big = format!(
        r#"{{"query":"{{ projects {{ totalCount }} }}","extensions":{{"pad":"{}"}}}}"#,
        "x".repeat(5_000)
    );
    let resp = post_raw(&app.base, &big, &[]).await;
    assert_eq!(resp.status(), 413);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE");
    // Under the limit it runs.
    let ok = post_raw(&app.base, r#"{"query":"{ projects { totalCount } }"}"#, &[]).await;
    assert_eq!(ok.status(), 200);
}

/// Posts `body` the way Node's `fetch` does: the headers, then the whole
/// body (here slowly, so the server has answered before it arrives), and
/// only then reads the answer. Returns the answer, or the I/O error a
/// client sees when the server closed without reading the body (EPIPE or
/// a reset).
async fn post_slowly(
    base: &str,
    method: &str,
    content_type: &str,
    accept: &str,
    body: &[u8],
) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "{method} /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nAccept: {accept}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    // The server answers from the headers alone.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for chunk in body.chunks(16 * 1024) {
        conn.write_all(chunk).await?;
        conn.flush().await?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer))
        .await
        .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn a_refusal_sent_before_the_body_is_read_still_reaches_a_client_that_writes_it_all_first() {
    let app = support::spawn().await;
    // A 200 KB multipart upload (under the body limit): 415.
    let body = vec![b'x'; 200 * 1024];
    let answer = post_slowly(
        &app.base,
        "POST",
        "multipart/form-data; boundary=x",
        "*/*",
        &body,
    )
    .await
    .expect("the whole body is written and the answer read");
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    assert!(answer.contains("UNSUPPORTED_MEDIA_TYPE"), "{answer}");
    // JSON that asks for an answer type the server does not send: 406.
    let answer = post_slowly(&app.base, "POST", "application/json", "text/csv", &body)
        .await
        .expect("the whole body is written and the answer read");
    assert!(answer.starts_with("HTTP/1.1 406"), "{answer}");
    assert!(answer.contains("NOT_ACCEPTABLE"), "{answer}");
    // Another method: 405.
    let answer = post_slowly(&app.base, "PUT", "application/json", "*/*", &body)
        .await
        .expect("the whole body is written and the answer read");
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("METHOD_NOT_ALLOWED"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("allow: get, post"),
        "{answer}"
    );
    // The server still serves.
    let resp = post_raw(&app.base, LIST, &[]).await;
    assert_eq!(resp.status(), 200);
}
