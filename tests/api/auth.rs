//! Bearer-token authentication: with a key configured, nothing runs without
//! a valid token, the tenant comes from the token alone, and a WebSocket's
//! token is checked at `connection_init` and again when it expires.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::support;

const SECRET: &str = "a-test-secret-that-is-long-enough-for-hs256";
const TENANT_A: &str = "0190a3c4-0000-7000-8000-00000000000a";
const TENANT_B: &str = "0190a3c4-0000-7000-8000-00000000000b";

fn now() -> i64 {
    support::unix_now()
}

fn token_with(claims: Value, secret: &str) -> String {
    support::hs256(secret, &claims)
}

fn token(tenant: &str, ttl: i64) -> String {
    support::token(
        SECRET,
        tenant,
        "alice",
        &["admin", "operator", "agent", "viewer"],
        ttl,
    )
}

async fn post(app: &support::TestApp, bearer: Option<&str>, query: &str) -> (u16, Value) {
    let mut req = app
        .http()
        .post(app.graphql_url())
        .json(&json!({ "query": query }));
    if let Some(t) = bearer {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let resp = req.send().await.expect("sent");
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap_or_default().to_string());
    let body: Value = resp.json().await.expect("json");
    if status == 401 {
        assert_eq!(www.as_deref(), Some("Bearer"));
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        assert!(body.get("data").is_none(), "{body}");
    }
    (status, body)
}

const CREATE: &str =
    "mutation { createProject(input: {name: \"secret plan\"}) { project { id } } }";
const COUNT: &str = "{ projects { totalCount } }";

#[tokio::test]
async fn without_a_valid_token_nothing_executes() {
    let app = support::spawn_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    let alg_none = {
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(json!({ "alg": "none", "typ": "JWT" })),
            b64(
                json!({ "sub": "mallory", "tenant_id": TENANT_A, "roles": ["admin"], "exp": now() + 600 })
            )
        )
    };
    let bad = [
        None,
        Some("not-a-jwt".to_string()),
        Some(alg_none),
        Some(token_with(
            json!({ "sub": "mallory", "tenant_id": TENANT_A, "roles": ["admin"], "exp": now() + 600 }),
            "another-secret-that-is-also-long-enough!!",
        )),
        Some(token(TENANT_A, -3600)),
        Some(token_with(
            json!({ "sub": "x", "roles": ["admin"], "exp": now() + 600 }),
            SECRET,
        )),
        Some(token_with(
            json!({ "sub": "x", "tenant_id": "acme", "exp": now() + 600 }),
            SECRET,
        )),
        Some(token_with(
            json!({ "sub": "x", "tenant_id": "00000000-0000-0000-0000-000000000000", "exp": now() + 600 }),
            SECRET,
        )),
        Some(token_with(
            json!({ "sub": "x", "tenant_id": TENANT_A }),
            SECRET,
        )),
    ];
    for (i, t) in bad.iter().enumerate() {
        let (status, _) = post(&app, t.as_deref(), CREATE).await;
        assert_eq!(status, 401, "case {i}");
    }
    // Nothing was created by any of them.
    let (status, body) = post(&app, Some(&token(TENANT_A, 600)), COUNT).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["projects"]["totalCount"], 0);
}

#[tokio::test]
async fn the_tenant_comes_from_the_token() {
    let app = support::spawn_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    let (status, body) = post(&app, Some(&token(TENANT_A, 600)), CREATE).await;
    assert_eq!(status, 200, "{body}");
    let (_, a) = post(&app, Some(&token(TENANT_A, 600)), COUNT).await;
    let (_, b) = post(&app, Some(&token(TENANT_B, 600)), COUNT).await;
    assert_eq!(a["data"]["projects"]["totalCount"], 1);
    assert_eq!(b["data"]["projects"]["totalCount"], 0);
}

#[tokio::test]
async fn a_websocket_needs_a_valid_token_in_connection_init_and_is_closed_when_it_expires() {
    let app = support::spawn_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    for payload in [
        json!({}),
        json!({ "authToken": "garbage" }),
        json!({ "Authorization": format!("Bearer {}", token(TENANT_A, -3600)) }),
    ] {
        let mut ws = support::RawWs::connect(&app.base).await;
        ws.send_json(json!({ "type": "connection_init", "payload": payload }))
            .await;
        assert_eq!(
            ws.close_code(Duration::from_secs(10)).await,
            Some(4403),
            "{payload}"
        );
    }
    for payload in [
        json!({ "authToken": token(TENANT_A, 600) }),
        json!({ "Authorization": format!("Bearer {}", token(TENANT_A, 600)) }),
    ] {
        let mut ws = support::RawWs::connect(&app.base).await;
        ws.send_json(json!({ "type": "connection_init", "payload": payload }))
            .await;
        let ack = ws.next_json(Duration::from_secs(10)).await.expect("ack");
        assert_eq!(ack["type"], "connection_ack");
    }
    // A token that expires in two seconds: accepted, then closed with 4403.
    let mut ws = support::RawWs::connect(&app.base).await;
    ws.send_json(
        json!({ "type": "connection_init", "payload": { "authToken": token(TENANT_A, 2) } }),
    )
    .await;
    let ack = ws.next_json(Duration::from_secs(10)).await.expect("ack");
    assert_eq!(ack["type"], "connection_ack");
    assert_eq!(ws.close_code(Duration::from_secs(15)).await, Some(4403));
}

#[tokio::test]
async fn require_auth_without_a_key_refuses_to_start() {
    let (url, _dir) = support::fresh_database().await;
    let mut config = cerebral::config::Config::for_database(&url);
    config.auth.require_auth = true;
    assert!(cerebral::app::App::build(&config).await.is_err());
    config.auth.jwt_secret = Some("short".into());
    assert!(cerebral::app::App::build(&config).await.is_err());
}

#[tokio::test]
async fn a_post_that_is_not_json_is_refused_with_415_and_not_executed() {
    let app = support::spawn().await;
    let body = json!({ "query": CREATE }).to_string();
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut req = app.http().post(app.graphql_url()).body(body.clone());
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.expect("sent");
        assert_eq!(resp.status().as_u16(), 415, "{ct:?}");
        let v: Value = resp.json().await.expect("json");
        assert_eq!(
            v["errors"][0]["extensions"]["code"],
            "UNSUPPORTED_MEDIA_TYPE"
        );
    }
    // JSON with a charset parameter is JSON.
    let resp = app
        .http()
        .post(app.graphql_url())
        .header("content-type", "application/json; charset=utf-8")
        .body(json!({ "query": COUNT }).to_string())
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status().as_u16(), 200);
    let v: Value = resp.json().await.expect("json");
    assert_eq!(
        v["data"]["projects"]["totalCount"], 0,
        "nothing was created"
    );
    // Other methods are not GraphQL over HTTP.
    for m in ["PUT", "DELETE", "PATCH"] {
        let resp = app
            .http()
            .request(m.parse().expect("method"), app.graphql_url())
            .json(&json!({ "query": CREATE }))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 405, "{m}");
    }
}

fn key_file(name: &str) -> String {
    format!("{}/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn signed(
    alg: jsonwebtoken::Algorithm,
    kid: Option<&str>,
    key: &jsonwebtoken::EncodingKey,
) -> String {
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(
        &header,
        &json!({ "sub": "bob", "tenant_id": TENANT_A, "roles": ["viewer"], "exp": now() + 600 }),
        key,
    )
    .expect("token")
}

fn rsa(name: &str) -> jsonwebtoken::EncodingKey {
    let pem = std::fs::read(key_file(name)).expect("key");
    jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("rsa key")
}

#[tokio::test]
async fn tokens_are_verified_against_a_jwks_url_and_a_rotated_key_is_picked_up() {
    use jsonwebtoken::Algorithm::RS256;
    use jsonwebtoken::jwk::{Jwk, JwkSet};
    let jwk = |name: &str, kid: &str| {
        let mut k = Jwk::from_encoding_key(&rsa(name), RS256).expect("jwk");
        k.common.key_id = Some(kid.to_string());
        k
    };
    let set = std::sync::Arc::new(std::sync::Mutex::new(JwkSet {
        keys: vec![jwk("rsa-1.pem", "one")],
    }));
    let served = set.clone();
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let set = served.lock().expect("lock").clone();
            async move { axum::Json(set) }
        }),
    );
    let url = serve_jwks(router).await;

    let app = support::spawn_with(|c| c.auth.jwks_url = Some(url)).await;
    let good = signed(RS256, Some("one"), &rsa("rsa-1.pem"));
    let (status, body) = post(&app, Some(&good), COUNT).await;
    assert_eq!(status, 200, "{body}");
    // Signed by a key the set does not hold, under a known or unknown kid,
    // or with no kid at all.
    for t in [
        signed(RS256, Some("one"), &rsa("rsa-2.pem")),
        signed(RS256, Some("two"), &rsa("rsa-2.pem")),
        signed(RS256, None, &rsa("rsa-1.pem")),
    ] {
        assert_eq!(post(&app, Some(&t), COUNT).await.0, 401);
    }
    // The provider rotates in a second key: once the refetch pause has
    // passed, a token naming it is accepted without a restart.
    set.lock().expect("lock").keys.push(jwk("rsa-2.pem", "two"));
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let rotated = signed(RS256, Some("two"), &rsa("rsa-2.pem"));
    let (status, body) = post(&app, Some(&rotated), COUNT).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_public_key_accepts_its_own_signatures_and_refuses_an_algorithm_swap() {
    let public = key_file("ec.pub.pem");
    let app = support::spawn_with(|c| c.auth.jwt_public_key = Some(public.clone())).await;
    let ec =
        jsonwebtoken::EncodingKey::from_ec_pem(&std::fs::read(key_file("ec.pem")).expect("key"))
            .expect("ec key");
    let good = signed(jsonwebtoken::Algorithm::ES256, None, &ec);
    assert_eq!(post(&app, Some(&good), COUNT).await.0, 200);
    // The classic confusion attack: HS256 "signed" with the public key's
    // text as the secret.
    let pem = std::fs::read(&public).expect("pem");
    let swapped = signed(
        jsonwebtoken::Algorithm::HS256,
        None,
        &jsonwebtoken::EncodingKey::from_secret(&pem),
    );
    assert_eq!(post(&app, Some(&swapped), COUNT).await.0, 401);
    let other = signed(jsonwebtoken::Algorithm::RS256, None, &rsa("rsa-1.pem"));
    assert_eq!(post(&app, Some(&other), COUNT).await.0, 401);
}

const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "cerebral";

/// Claims a server with an issuer and an audience configured accepts,
/// changed by `edit`.
fn claims_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut claims = json!({
        "sub": "carol", "tenant_id": TENANT_A, "roles": ["admin"], "exp": now() + 600,
        "iss": ISSUER, "aud": AUDIENCE,
    });
    edit(claims.as_object_mut().expect("object"));
    token_with(claims, SECRET)
}

/// How a WebSocket's `connection_init` carrying `token` ends: `Ok` on
/// `connection_ack`, the close code otherwise.
async fn ws_init(app: &support::TestApp, token: &str) -> Result<(), Option<u16>> {
    let mut ws = support::RawWs::connect(&app.base).await;
    ws.send_json(json!({ "type": "connection_init", "payload": { "authToken": token } }))
        .await;
    match ws.next_json(Duration::from_secs(10)).await {
        Some(m) if m["type"] == "connection_ack" => Ok(()),
        _ => Err(ws.close_code(Duration::from_secs(10)).await),
    }
}

#[tokio::test]
async fn a_configured_issuer_and_audience_must_be_present_and_nbf_is_honoured() {
    let app = support::spawn_with(|c| {
        c.auth.jwt_secret = Some(SECRET.into());
        c.auth.jwt_issuer = Some(ISSUER.into());
        c.auth.jwt_audience = Some(AUDIENCE.into());
    })
    .await;
    let refused = [
        (
            "no aud",
            claims_with(|c| {
                c.remove("aud");
            }),
        ),
        (
            "another aud",
            claims_with(|c| {
                c.insert("aud".into(), json!("billing"));
            }),
        ),
        (
            "an empty aud list",
            claims_with(|c| {
                c.insert("aud".into(), json!([]));
            }),
        ),
        (
            "no iss",
            claims_with(|c| {
                c.remove("iss");
            }),
        ),
        (
            "another iss",
            claims_with(|c| {
                c.insert("iss".into(), json!("https://evil.example"));
            }),
        ),
        (
            "nbf two minutes ahead",
            claims_with(|c| {
                c.insert("nbf".into(), json!(now() + 120));
            }),
        ),
        (
            "nbf not a number",
            claims_with(|c| {
                c.insert("nbf".into(), json!("soon"));
            }),
        ),
    ];
    for (case, token) in &refused {
        let (status, body) = post(&app, Some(token), CREATE).await;
        assert_eq!(status, 401, "{case}: {body}");
        assert_eq!(ws_init(&app, token).await, Err(Some(4403)), "{case}");
    }
    let (_, body) = post(&app, Some(&claims_with(|_| {})), COUNT).await;
    assert_eq!(
        body["data"]["projects"]["totalCount"], 0,
        "none of them created anything"
    );
    let accepted = [
        ("every claim", claims_with(|_| {})),
        (
            "aud in a list",
            claims_with(|c| {
                c.insert("aud".into(), json!(["billing", AUDIENCE]));
            }),
        ),
        (
            "nbf within the clock leeway",
            claims_with(|c| {
                c.insert("nbf".into(), json!(now() + 10));
            }),
        ),
        (
            "nbf past",
            claims_with(|c| {
                c.insert("nbf".into(), json!(now() - 60));
            }),
        ),
    ];
    for (case, token) in &accepted {
        let (status, body) = post(&app, Some(token), COUNT).await;
        assert_eq!(status, 200, "{case}: {body}");
        assert_eq!(ws_init(&app, token).await, Ok(()), "{case}");
    }
}

#[tokio::test]
async fn without_an_issuer_or_audience_configured_tokens_need_neither() {
    let app = support::spawn_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    let bare = claims_with(|c| {
        c.remove("iss");
        c.remove("aud");
    });
    assert_eq!(post(&app, Some(&bare), COUNT).await.0, 200);
    assert_eq!(ws_init(&app, &bare).await, Ok(()));
    assert_eq!(post(&app, Some(&claims_with(|_| {})), COUNT).await.0, 200);
}

#[tokio::test]
async fn a_plain_http_jwks_url_is_refused_at_start_up_except_on_loopback() {
    for (url, starts) in [
        ("http://idp.example/.well-known/jwks.json", false),
        ("http://10.0.0.7:8080/jwks.json", false),
        ("ftp://idp.example/jwks.json", false),
        ("not a url", false),
        ("https://idp.example/.well-known/jwks.json", true),
        ("http://127.0.0.1:9/jwks.json", true),
        ("http://localhost:9/jwks.json", true),
        ("http://[::1]:9/jwks.json", true),
    ] {
        let mut config = cerebral::config::Config::for_database("sqlite::memory:");
        config.auth.jwks_url = Some(url.into());
        let built = cerebral::auth::Authenticator::new(&cerebral::app::auth_settings(&config));
        assert_eq!(built.is_ok(), starts, "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_jwks_refresh_does_not_hold_up_tokens_with_known_kids() {
    use jsonwebtoken::Algorithm::RS256;
    use jsonwebtoken::jwk::{Jwk, JwkSet};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let mut jwk = Jwk::from_encoding_key(&rsa("rsa-1.pem"), RS256).expect("jwk");
    jwk.common.key_id = Some("one".into());
    let set = JwkSet { keys: vec![jwk] };
    // The provider answers at once until `slow` is set; then it holds each
    // answer until `release` (or 4 s, within the server's 5 s timeout).
    let slow = Arc::new(AtomicBool::new(false));
    let fetches = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let router = {
        let (slow, fetches, release) = (slow.clone(), fetches.clone(), release.clone());
        axum::Router::new().route(
            "/jwks.json",
            axum::routing::get(move || {
                let (slow, fetches, release, set) =
                    (slow.clone(), fetches.clone(), release.clone(), set.clone());
                async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    if slow.load(Ordering::SeqCst) {
                        let _ =
                            tokio::time::timeout(Duration::from_secs(4), release.notified()).await;
                    }
                    axum::Json(set)
                }
            }),
        )
    };
    let url = serve_jwks(router).await;
    let app = support::spawn_with(|c| c.auth.jwks_url = Some(url)).await;
    let known = signed(RS256, Some("one"), &rsa("rsa-1.pem"));
    assert_eq!(post(&app, Some(&known), COUNT).await.0, 200);
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    // Past the refetch pause, a token with an unknown kid starts a fetch
    // that hangs at the provider.
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    slow.store(true, Ordering::SeqCst);
    let unknown = signed(RS256, Some("two"), &rsa("rsa-2.pem"));
    // A request with the unknown kid, in the background: its status.
    let unknown_kid = || {
        let (http, url, unknown) = (app.http().clone(), app.graphql_url(), unknown.clone());
        tokio::spawn(async move {
            http.post(url)
                .bearer_auth(unknown)
                .json(&json!({ "query": COUNT }))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let waiting = unknown_kid();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while fetches.load(Ordering::SeqCst) < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no second fetch");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Meanwhile tokens with the known kid are served from the cache...
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let answered =
            tokio::time::timeout(Duration::from_secs(2), post(&app, Some(&known), COUNT)).await;
        assert_eq!(
            answered.map(|(status, _)| status),
            Ok(200),
            "a known kid waited {:?} for a JWKS fetch it does not need",
            started.elapsed()
        );
    }
    // ...and another unknown kid waits for that fetch instead of starting
    // its own.
    let second = unknown_kid();
    tokio::time::sleep(Duration::from_millis(200)).await;
    release.notify_waiters();
    assert_eq!(waiting.await.expect("task").expect("answer"), 401);
    assert_eq!(second.await.expect("task").expect("answer"), 401);
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "one fetch at a time");
}

// ---------- cross-site WebSocket hijacking and DNS rebinding ----------

/// Serves `router` (a fake identity provider with `/jwks.json`) on a
/// loopback port and returns the key set's URL.
async fn serve_jwks(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// Opens a WebSocket to `base` with extra request headers: the socket, or
/// the refusal's status and JSON body.
async fn upgrade_with(
    base: &str,
    headers: &[(&str, &str)],
) -> Result<support::WsStream, (u16, Value)> {
    support::ws_upgrade(base, headers)
        .await
        .map_err(|(status, _, body)| (status, body))
}

/// Runs `createProject` over an open graphql-transport-ws socket and
/// returns its result message.
async fn create_over(ws: support::WsStream) -> Value {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut ws = ws;
    for msg in [
        json!({ "type": "connection_init", "payload": {} }),
        json!({ "id": "1", "type": "subscribe", "payload": { "query": CREATE } }),
    ] {
        ws.send(Message::text(msg.to_string())).await.expect("sent");
    }
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = ws.next().await {
            if let Message::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).expect("json");
                if v["id"] == "1" {
                    return v;
                }
            }
        }
        Value::Null
    })
    .await
    .expect("an answer in time")
}

#[tokio::test]
async fn a_websocket_from_a_foreign_origin_is_refused_before_the_upgrade() {
    let app =
        support::spawn_with(|c| c.server.cors_origins = vec!["https://app.example".into()]).await;
    let port = app.base.rsplit(':').next().expect("port").to_string();
    for origin in [
        "http://attacker.example".to_string(),
        "null".to_string(),
        // Same host, another port: another origin.
        format!(
            "http://127.0.0.1:{}",
            port.parse::<u16>().expect("port") ^ 1
        ),
        "https://app.example.evil".to_string(),
    ] {
        let refused = upgrade_with(&app.base, &[("origin", &origin)]).await;
        let (status, body) = refused
            .err()
            .unwrap_or_else(|| panic!("{origin} was upgraded"));
        assert_eq!(status, 403, "{origin}: {body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "FORBIDDEN",
            "{origin}"
        );
    }
    assert_eq!(
        app.ok(COUNT, json!({})).await["projects"]["totalCount"],
        0,
        "a refused page ran nothing"
    );
    // The server's own pages (GraphiQL), configured origins and clients
    // without an Origin are served.
    let own = format!("http://127.0.0.1:{port}");
    for headers in [
        vec![("origin", own.as_str())],
        vec![("origin", "https://app.example")],
        vec![],
    ] {
        let ws = upgrade_with(&app.base, &headers)
            .await
            .unwrap_or_else(|e| panic!("{headers:?} refused: {e:?}"));
        let answer = create_over(ws).await;
        assert_eq!(answer["type"], "next", "{headers:?}: {answer}");
    }
    assert_eq!(app.ok(COUNT, json!({})).await["projects"]["totalCount"], 3);
}

#[tokio::test]
async fn without_authentication_only_loopback_host_names_are_served() {
    let app = support::spawn().await;
    let port = app.base.rsplit(':').next().expect("port").to_string();
    let post_as = |host: String| {
        let req = app
            .http()
            .post(app.graphql_url())
            .header("host", host)
            .json(&json!({ "query": CREATE }));
        async move {
            let resp = req.send().await.expect("sent");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // A page on attacker.example whose name now resolves to 127.0.0.1: its
    // requests are same-origin to the browser, and name the attacker.
    for host in [
        format!("attacker.example:{port}"),
        format!("localhost.attacker.example:{port}"),
        format!("192.168.1.10:{port}"),
    ] {
        let (status, body) = post_as(host.clone()).await;
        assert_eq!(status, 403, "{host}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
        let origin = format!("http://{host}");
        let refused = upgrade_with(&app.base, &[("host", &host), ("origin", &origin)]).await;
        assert_eq!(refused.err().map(|(s, _)| s), Some(403), "{host}");
    }
    // Probes are answered under any name.
    let probe = app
        .http()
        .get(format!("{}/healthz", app.base))
        .header("host", format!("10.1.2.3:{port}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(probe.status().as_u16(), 200);
    assert_eq!(app.ok(COUNT, json!({})).await["projects"]["totalCount"], 0);
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.2:{port}"),
        format!("[::1]:{port}"),
        format!("app.localhost:{port}"),
    ] {
        let (status, body) = post_as(host.clone()).await;
        assert_eq!(status, 200, "{host}: {body}");
        let origin = format!("http://{host}");
        let ws = upgrade_with(&app.base, &[("host", &host), ("origin", &origin)])
            .await
            .unwrap_or_else(|e| panic!("{host} refused: {e:?}"));
        assert_eq!(create_over(ws).await["type"], "next", "{host}");
    }
}

#[tokio::test]
async fn allowed_hosts_opens_named_hosts_and_authentication_opens_any() {
    let named =
        support::spawn_with(|c| c.server.allowed_hosts = vec!["cerebral.internal".into()]).await;
    let any = support::spawn_with(|c| c.server.allowed_hosts = vec!["*".into()]).await;
    let authed = support::spawn_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    let status = |app: &support::TestApp, host: &str, bearer: Option<String>| {
        let mut req = app
            .http()
            .post(app.graphql_url())
            .header("host", host)
            .json(&json!({ "query": COUNT }));
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        async move { req.send().await.expect("sent").status().as_u16() }
    };
    assert_eq!(status(&named, "cerebral.internal:80", None).await, 200);
    assert_eq!(status(&named, "CEREBRAL.internal", None).await, 200);
    assert_eq!(status(&named, "other.internal", None).await, 403);
    assert_eq!(status(&any, "anything.example", None).await, 200);
    // With tokens, a rebinding page has nothing to send: any name is
    // served, and the token decides.
    assert_eq!(
        status(&authed, "api.example", Some(token(TENANT_A, 600))).await,
        200
    );
    assert_eq!(status(&authed, "api.example", None).await, 401);
    // A typo stops the server instead of locking everyone out.
    let (url, _dir) = support::fresh_database().await;
    let mut config = cerebral::config::Config::for_database(&url);
    config.server.allowed_hosts = vec!["https://cerebral.internal/".into()];
    assert!(cerebral::app::App::build(&config).await.is_err());
}
