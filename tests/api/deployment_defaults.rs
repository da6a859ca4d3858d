//! What a deployment inherits from the container image: it refuses to
//! start without a token key unless told explicitly (`CEREBRAL_REQUIRE_AUTH`),
//! and serves `/metrics` on a port of its own. The binary is run as the
//! image runs it, with the image's environment.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The `ENV` settings of the Dockerfile's runtime stage, as (name, value).
fn image_env() -> Vec<(String, String)> {
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile"))
        .expect("Dockerfile");
    let runtime = dockerfile
        .rsplit("\nFROM ")
        .next()
        .expect("a runtime stage");
    // `ENV A=1 \` continued lines, joined.
    let joined = runtime.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.strip_prefix("ENV "))
        .flat_map(|l| l.split_whitespace())
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The binary with the image's environment, on a fresh SQLite file and
/// free ports instead of the image's fixed ones.
fn as_in_the_image(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cerebral"));
    for (k, v) in image_env() {
        cmd.env(k, v);
    }
    cmd.env(
        "DATABASE_URL",
        format!("sqlite://{}?mode=rwc", dir.join("c.db").display()),
    )
    .env("CEREBRAL_LISTEN", "127.0.0.1:0")
    .env("CEREBRAL_METRICS_LISTEN", "127.0.0.1:0")
    .env_remove("CEREBRAL_JWT_SECRET")
    .env_remove("CEREBRAL_JWT_PUBLIC_KEY")
    .env_remove("CEREBRAL_JWKS_URL")
    .env("RUST_LOG", "info")
    .arg("serve");
    cmd
}

#[test]
fn the_image_requires_a_token_key_and_serves_metrics_apart() {
    let env = image_env();
    assert_eq!(get(&env, "CEREBRAL_REQUIRE_AUTH"), Some("true"), "{env:?}");
    assert_eq!(
        get(&env, "CEREBRAL_LISTEN"),
        Some("0.0.0.0:8000"),
        "{env:?}"
    );
    let metrics = get(&env, "CEREBRAL_METRICS_LISTEN").expect("a metrics listener");
    assert!(
        metrics.ends_with(":9000") && metrics != "0.0.0.0:8000",
        "{metrics}"
    );
}

#[test]
fn without_a_key_the_image_refuses_to_start_and_names_the_opt_out() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("stderr");
    let mut child = as_in_the_image(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("runs");
    // A server that starts never exits by itself: give it a bound.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&log).unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("started without a token key:\n{err}"));
    assert!(!status.success(), "{err}");
    assert!(err.contains("CEREBRAL_REQUIRE_AUTH=false"), "{err}");
}

/// The explicit opt-out (a local trial) starts the open development server.
#[test]
fn the_explicit_opt_out_starts_in_development_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = as_in_the_image(dir.path())
        .env("CEREBRAL_REQUIRE_AUTH", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut log = Vec::new();
    let started = loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let done = line.contains("Prometheus metrics on http://127.0.0.1:");
                log.push(line);
                if done {
                    break true;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let log = log.join("\n");
    assert!(started, "the server did not start:\n{log}");
    assert!(log.contains("NO AUTHENTICATION"), "{log}");
}
