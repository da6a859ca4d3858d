//! The binary's commands, run as a user would.

use std::process::Command;

#[test]
fn import_reads_a_v4_folder_into_the_database() {
    let dir = tempfile::tempdir().expect("tmp");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("c.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_cerebral"))
        .args([
            "import",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../shared/fixtures/bmad-core-v4"
            ),
        ])
        .env("DATABASE_URL", &url)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("imported 10 personas, 4 teams, 6 workflows"),
        "{stdout}"
    );

    let status = Command::new(env!("CARGO_BIN_EXE_cerebral"))
        .args(["migrate", "status"])
        .env("DATABASE_URL", &url)
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(
        text.lines().filter(|l| l.ends_with("Applied")).count(),
        4,
        "{text}"
    );
}

#[test]
fn print_schema_prints_the_sdl() {
    let out = Command::new(env!("CARGO_BIN_EXE_cerebral"))
        .arg("print-schema")
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&out.stdout).contains("type Query"));
}
