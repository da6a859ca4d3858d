//! Inputs that expand once the server reads them: a gzip bomb in a persona
//! context snapshot (`importPersonaContext`) and YAML alias expansion
//! ("billion laughs") in a catalog file (`importCatalog`, `cerebral import`).

use std::io::Write;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::watch::{server, watch};
use crate::support::{gql, gql_ok, proc_status_kb};

/// A refused snapshot is inflated up to the 1 MiB cap and no further: well
/// under a second even in a debug build on a loaded core.
const SNAPSHOT_REFUSED_WITHIN: Duration = Duration::from_secs(3);
/// What one refused snapshot may cost: the request (under 100 KB), the
/// decoded gzip and at most the 1 MiB the cap lets through, plus buffers
/// (the unbounded server went from 29 MB to 2.16 GB).
const SNAPSHOT_MEMORY: u64 = 24 * 1024 * 1024;
/// A refused catalog file is scanned once, event by event, without
/// expanding anything: milliseconds.
const CATALOG_REFUSED_WITHIN: Duration = Duration::from_secs(5);
/// A catalog import of two small files, one refused: the request and the
/// parsed good file (the unbounded server peaked at 740 MB on the 15 KB
/// file).
const CATALOG_MEMORY: u64 = 24 * 1024 * 1024;
/// The whole `cerebral import` process (runtime, SQLite, migrations and
/// the built-in catalog included) with the 15 KB file refused; the debug
/// binary needs about 40 MB for a normal import.
const CLI_IMPORT_PEAK: u64 = 160 * 1024 * 1024;

const START: &str = "mutation { startSession { session { id } } }";
const IMPORT: &str = "mutation($s: ID!, $snap: PersonaContextSnapshotInput!) { importPersonaContext(input: {sessionId: $s, snapshot: $snap}) { context { id history } } }";
const WRITTEN: &str =
    "{ events(first: 0, filter: {types: [PERSONA_CONTEXT_UPDATED]}) { totalCount } }";

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A gzip of `len` bytes, written `chunk` by `chunk` so the test itself
/// never holds the inflated document; with its SHA-256 and length.
fn gzip_of(prefix: &[u8], chunk: &[u8], len: usize, suffix: &[u8]) -> (Vec<u8>, String, usize) {
    use sha2::Digest;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut sha = sha2::Sha256::new();
    let mut put = |b: &[u8]| {
        gz.write_all(b).expect("gzip");
        sha.update(b);
    };
    put(prefix);
    let mut written = prefix.len();
    while written + chunk.len() + suffix.len() <= len {
        put(chunk);
        written += chunk.len();
    }
    put(suffix);
    written += suffix.len();
    (
        gz.finish().expect("gzip"),
        format!("sha256:{:x}", sha.finalize()),
        written,
    )
}

/// 64 MiB of zeros, about 64 KB of gzip: not JSON at all.
fn zeros_bomb() -> &'static Value {
    static BOMB: OnceLock<Value> = OnceLock::new();
    BOMB.get_or_init(|| {
        let (gz, checksum, size) = gzip_of(b"", &[0u8; 64 * 1024], 64 * 1024 * 1024, b"");
        json!({ "data": base64(&gz), "compressed": true, "checksum": checksum, "size": size })
    })
}

/// A valid snapshot, checksum and all, whose history is 60 MiB of empty
/// objects (about 20 million of them): the document that took the server
/// to 2.16 GB once parsed into values and cloned. It declares a small
/// size, as an attacker would.
fn json_bomb() -> &'static Value {
    static BOMB: OnceLock<Value> = OnceLock::new();
    BOMB.get_or_init(|| {
        let prefix = br#"{"format":"cerebral.persona-context/1","persona":"analyst","state":{},"history":["#;
        let suffix = br#"{}],"historyTotal":1,"activeTool":null,"activeWorkflow":null,"exportedAt":"2026-01-01T00:00:00Z"}"#;
        let chunk = "{},".repeat(16 * 1024);
        let (gz, checksum, _) = gzip_of(prefix, chunk.as_bytes(), 60 * 1024 * 1024, suffix);
        json!({ "data": base64(&gz), "compressed": true, "checksum": checksum, "size": 1000 })
    })
}

async fn session(client: &reqwest::Client, base: &str) -> String {
    gql_ok(client, base, START, json!({})).await["startSession"]["session"]["id"]
        .as_str()
        .expect("session id")
        .to_string()
}

fn assert_refused(body: &Value, what: &str) {
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
        "{what}: {body}"
    );
    let message = body["errors"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("1048576 bytes"),
        "{what}: the refusal names the limit: {message}"
    );
}

#[tokio::test]
async fn a_gzip_bomb_snapshot_is_refused_before_it_inflates() {
    let target = server(&[]).await;
    let client = reqwest::Client::new();
    let sid = session(&client, &target.base).await;
    for (what, bomb) in [
        ("60 MiB of JSON history", json_bomb()),
        ("64 MiB of zeros", zeros_bomb()),
    ] {
        eprintln!(
            "{what}: {} bytes of base64",
            bomb["data"].as_str().map_or(0, str::len)
        );
        let (body, cost) = watch(
            &target,
            gql(
                &client,
                &target.base,
                IMPORT,
                json!({ "s": sid, "snap": bomb }),
            ),
        )
        .await;
        assert_refused(&body, what);
        cost.assert_within(what, SNAPSHOT_REFUSED_WITHIN, SNAPSHOT_MEMORY);
    }
    let written = gql_ok(&client, &target.base, WRITTEN, json!({})).await;
    assert_eq!(written["events"]["totalCount"], 0, "nothing was imported");
}

#[tokio::test]
async fn two_gzip_bombs_at_once_are_both_refused() {
    let target = server(&[]).await;
    let client = reqwest::Client::new();
    let sid = session(&client, &target.base).await;
    let bomb = json_bomb();
    let send = || {
        gql(
            &client,
            &target.base,
            IMPORT,
            json!({ "s": sid, "snap": bomb }),
        )
    };
    let ((a, b), cost) = watch(&target, async { tokio::join!(send(), send()) }).await;
    assert_refused(&a, "first of two");
    assert_refused(&b, "second of two");
    // Two requests, each within its own budget.
    cost.assert_within(
        "two bombs at once",
        SNAPSHOT_REFUSED_WITHIN,
        2 * SNAPSHOT_MEMORY,
    );
    let written = gql_ok(&client, &target.base, WRITTEN, json!({})).await;
    assert_eq!(written["events"]["totalCount"], 0, "nothing was imported");
}

/// A YAML file whose 3,000 aliases each expand a 3,000-item anchor: about
/// 15 KB of text, nine million nodes once expanded.
fn billion_laughs() -> String {
    let items = vec!["x"; 3000].join(",");
    let aliases = vec!["*b"; 3000].join(",");
    format!(
        "workflow:\n  id: lol\n  name: Lol\n  sequence:\n    - agent: analyst\n      notes: &b [{items}]\n  padding: [{aliases}]\n"
    )
}

const GOOD_WORKFLOW: &str = "workflow:\n  id: trail-run\n  name: Trail Run\n  sequence:\n    - agent: analyst\n      creates: map.md\n    - step: done\n";

#[tokio::test]
async fn yaml_aliases_in_an_imported_catalog_file_are_refused_and_the_rest_imports() {
    let target = server(&[]).await;
    let client = reqwest::Client::new();
    let lol = billion_laughs();
    eprintln!("billion laughs: {} bytes of YAML", lol.len());
    let files = json!([
        { "path": "workflows/lol.yaml", "content": lol },
        { "path": "workflows/trail-run.yaml", "content": GOOD_WORKFLOW },
    ]);
    let (body, cost) = watch(
        &target,
        gql(
            &client,
            &target.base,
            "mutation($f: [CatalogFileInput!]!) { importCatalog(input: {files: $f}) { workflows { key } errors { path reason } } }",
            json!({ "f": files }),
        ),
    )
    .await;
    assert!(body.get("errors").is_none(), "{body}");
    let payload = &body["data"]["importCatalog"];
    assert_eq!(
        payload["workflows"],
        json!([{ "key": "trail-run" }]),
        "{body}"
    );
    assert_eq!(payload["errors"][0]["path"], "workflows/lol.yaml", "{body}");
    let reason = payload["errors"][0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("anchor") || reason.contains("alias"),
        "{reason}"
    );
    cost.assert_within(
        "billion laughs via importCatalog",
        CATALOG_REFUSED_WITHIN,
        CATALOG_MEMORY,
    );
}

#[tokio::test]
async fn yaml_aliases_in_a_folder_are_refused_by_cerebral_import() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(dir.path().join("workflows")).expect("mkdir");
    std::fs::write(dir.path().join("workflows/lol.yaml"), billion_laughs()).expect("write");
    std::fs::write(dir.path().join("workflows/trail-run.yaml"), GOOD_WORKFLOW).expect("write");
    let (url, _db_dir) = crate::support::fresh_database().await;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cerebral"));
    for (k, _) in std::env::vars() {
        if k.starts_with("CEREBRAL_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    let started = Instant::now();
    let mut child = cmd
        .arg("import")
        .arg(dir.path())
        .env("DATABASE_URL", &url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("cerebral import starts");
    // VmHWM is the process's high-water mark: the last sample before it
    // exits holds its peak.
    let mut peak_kb = 0;
    while child.try_wait().expect("wait").is_none() {
        if let Some(kb) = proc_status_kb(child.id(), "VmHWM") {
            peak_kb = peak_kb.max(kb);
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "cerebral import did not finish"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("output");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("cerebral import: {elapsed:?}, peak {} KiB", peak_kb);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a refused file exits 2: {stdout} {stderr}"
    );
    assert!(
        stdout.contains("imported 0 personas, 0 teams, 1 workflows"),
        "{stdout}"
    );
    assert!(
        stderr.contains("skipped workflows/lol.yaml") && stderr.contains("alias"),
        "{stderr}"
    );
    assert!(
        peak_kb * 1024 <= CLI_IMPORT_PEAK,
        "cerebral import peaked at {peak_kb} KiB, budget {} KiB",
        CLI_IMPORT_PEAK / 1024
    );
    // Time from start to exit includes migrations: the refusal itself is
    // a scan of 15 KB.
    assert!(elapsed < Duration::from_secs(30), "{elapsed:?}");
}
