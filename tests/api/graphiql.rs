//! GraphiQL over plain HTTP: the page and every asset it loads come from
//! the binary with the right types, cache headers and a self-only
//! Content-Security-Policy, and nothing names a CDN. tests/api/browser.rs runs
//! the same page in a real browser.

use std::collections::{BTreeSet, VecDeque};

use reqwest::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};
use serde_json::json;

use crate::support;

/// Hosts that serve front-end packages; the page must load from none.
const CDNS: &[&str] = &[
    "unpkg.com",
    "jsdelivr.net",
    "esm.sh",
    "cdnjs.cloudflare.com",
    "fonts.googleapis.com",
    "fonts.gstatic.com",
    "skypack.dev",
    "jspm.io",
];

async fn get(app: &support::TestApp, path: &str, accept: &str) -> reqwest::Response {
    app.http()
        .get(format!("{}{path}", app.base))
        .header("accept", accept)
        .send()
        .await
        .expect("get")
}

fn header(r: &reqwest::Response, name: reqwest::header::HeaderName) -> &str {
    r.headers()
        .get(&name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{} has no {name}", r.url()))
}

/// Names of Vite's hashed build files (`name-XXXXXXXX.ext`) that `text`
/// refers to, as `assets/…` paths or as sibling chunks (`./…`).
fn referenced_assets(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || "._/-".contains(c)))
        .filter_map(|token| {
            let name = token.rsplit('/').next()?;
            let (stem, ext) = name.rsplit_once('.')?;
            if !["js", "css", "ttf", "woff", "woff2"].contains(&ext) {
                return None;
            }
            // The hash is the last 8 characters and may itself hold `-`.
            let split = stem.len().checked_sub(9)?;
            let (head, hash) = stem.split_at_checked(split)?;
            (!head.is_empty()
                && hash.starts_with('-')
                && hash[1..]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .then(|| name.to_string())
        })
        .collect()
}

fn expected_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "javascript",
        Some("css") => "text/css",
        Some("ttf") => "font/ttf",
        Some("woff2") => "font/woff2",
        _ => "?",
    }
}

#[tokio::test]
async fn the_page_and_every_asset_it_loads_come_from_the_binary_with_a_self_only_policy() {
    let app = support::spawn().await;
    let page = get(
        &app,
        "/graphql",
        "text/html,application/xhtml+xml,*/*;q=0.8",
    )
    .await;
    assert_eq!(page.status(), 200);
    assert!(header(&page, CONTENT_TYPE).starts_with("text/html"));
    assert_eq!(header(&page, CACHE_CONTROL), "no-cache");
    let csp = header(&page, CONTENT_SECURITY_POLICY).to_string();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "CSP lacks {directive}: {csp}");
    }
    assert!(
        !csp.contains("http") && !csp.contains("unsafe-eval"),
        "CSP lets in another origin or eval: {csp}"
    );
    let html = page.text().await.expect("html");
    assert!(html.contains("/graphiql/assets/"), "{html}");

    // Every file the page reaches, following references through scripts
    // and stylesheets (chunks, Monaco's workers, fonts).
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<String> = referenced_assets(&html).into_iter().collect();
    let mut texts = vec![html];
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let r = get(&app, &format!("/graphiql/assets/{name}"), "*/*").await;
        assert_eq!(r.status(), 200, "/graphiql/assets/{name}");
        assert!(
            header(&r, CONTENT_TYPE).contains(expected_type(&name)),
            "{name} is served as {}",
            header(&r, CONTENT_TYPE)
        );
        assert_eq!(
            header(&r, CACHE_CONTROL),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(header(&r, X_CONTENT_TYPE_OPTIONS), "nosniff");
        let bytes = r.bytes().await.expect("body");
        if !name.ends_with(".ttf") && !name.ends_with(".woff2") {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            queue.extend(referenced_assets(&text));
            texts.push(text);
        }
    }
    for part in [
        "editor.worker-",
        "json.worker-",
        "graphql.worker-",
        "codicon-",
    ] {
        assert!(
            seen.iter().any(|n| n.starts_with(part)),
            "the page never reaches {part}*: {seen:?}"
        );
    }
    for text in &texts {
        for cdn in CDNS {
            assert!(!text.contains(cdn), "a served file names {cdn}");
        }
    }
}

#[tokio::test]
async fn an_unchanged_page_or_asset_is_answered_with_304() {
    let app = support::spawn().await;
    let page = get(&app, "/graphql", "text/html").await;
    let etag = header(&page, ETAG).to_string();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let html = page.text().await.expect("html");
    let asset = referenced_assets(&html)
        .into_iter()
        .find(|n| n.ends_with(".js"))
        .expect("the page loads a script");

    for path in ["/graphql".to_string(), format!("/graphiql/assets/{asset}")] {
        let first = get(&app, &path, "text/html").await;
        let tag = header(&first, ETAG).to_string();
        let again = app
            .http()
            .get(format!("{}{path}", app.base))
            .header("accept", "text/html")
            .header(IF_NONE_MATCH, format!("W/\"other\", {tag}"))
            .send()
            .await
            .expect("get");
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(header(&again, ETAG), tag);
        assert!(again.bytes().await.expect("body").is_empty());

        let changed = app
            .http()
            .get(format!("{}{path}", app.base))
            .header("accept", "text/html")
            .header(IF_NONE_MATCH, "\"something-else\"")
            .send()
            .await
            .expect("get");
        assert_eq!(changed.status(), 200, "{path}");
    }

    let missing = get(&app, "/graphiql/assets/nothing-12345678.js", "*/*").await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_page_needs_no_token_but_its_queries_do() {
    let app = support::spawn_with(|c| {
        c.auth.jwt_secret = Some("a-graphiql-test-secret-long-enough-for-hs256".into())
    })
    .await;
    let page = get(&app, "/graphql", "text/html").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    for name in referenced_assets(&html) {
        let r = get(&app, &format!("/graphiql/assets/{name}"), "*/*").await;
        assert_eq!(r.status(), 200, "{name}");
    }
    // GraphQL over GET (no text/html) still goes through authentication.
    let r = app
        .http()
        .get(app.graphql_url())
        .query(&[("query", "{ personas { totalCount } }")])
        .header("accept", "application/json")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        json!("UNAUTHENTICATED")
    );
}
