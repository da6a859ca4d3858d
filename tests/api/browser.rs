//! GraphiQL in real headless Chromium, with no network but 127.0.0.1.
//!
//! Runs only with `CEREBRAL_BROWSER_TESTS=1` (it needs Debian's
//! `chromium` and `npm ci` in `tests/browser`; `.ci/run` sets both up);
//! otherwise it says it was skipped and passes. The browser side is
//! `tests/browser/graphiql.mjs`: it opens `/graphql` from a `?query=` link
//! and runs the query, runs a subscription and sees an event created
//! meanwhile, then, on a server with authentication, sees a query refused
//! without a token and answered with the token typed in the headers editor,
//! over HTTP and over WebSocket. It writes `docs/graphiql.png` and
//! `docs/graphiql-subscription.png`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::support;

const SECRET: &str = "a-browser-test-secret-long-enough-for-hs256";
const TENANT: &str = "0190a3c4-0000-7000-8000-0000000000b1";

#[tokio::test]
async fn graphiql_runs_a_query_and_a_subscription_in_headless_chromium_offline() {
    if std::env::var("CEREBRAL_BROWSER_TESTS").as_deref() != Ok("1") {
        eprintln!("browser test skipped: set CEREBRAL_BROWSER_TESTS=1 to run it");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in tests/browser first"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: apt-get install -y chromium"
    );

    let dev = support::spawn().await;
    let auth = support::spawn_with(|c| c.auth.jwt_secret = Some(SECRET.into())).await;
    let tenant = TENANT.parse().expect("tenant uuid");
    let token = cerebral::auth::mint(SECRET, tenant, "browser", &["admin".into()], 600)
        .expect("mint a token");

    let child = tokio::process::Command::new("node")
        .arg("graphiql.mjs")
        .current_dir(&dir)
        .env("CEREBRAL_DEV_URL", &dev.base)
        .env("CEREBRAL_AUTH_URL", &auth.base)
        .env("CEREBRAL_TOKEN", &token)
        .env("CEREBRAL_SCREENSHOTS", root.join("docs"))
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let out = tokio::time::timeout(Duration::from_secs(180), child.wait_with_output())
        .await
        .expect("the browser run finishes within 180 s")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    assert!(out.status.success(), "the browser run failed:\n{stderr}");
    // Each check printed its line; a script that stopped early would not.
    for line in [
        "query from ?query= link shows the ten personas",
        "subscription shows the PROJECT_CREATED event",
        "without a token the query is refused",
        "with the token in the headers editor the query is answered",
        "token in connection_init",
        "no request left 127.0.0.1",
    ] {
        assert!(
            stdout.contains(line),
            "missing from the browser run: {line}"
        );
    }
    for shot in ["graphiql.png", "graphiql-subscription.png"] {
        let len = std::fs::metadata(root.join("docs").join(shot))
            .map(|m| m.len())
            .unwrap_or(0);
        assert!(len > 10_000, "docs/{shot} was not written");
    }
}
