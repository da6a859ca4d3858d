//! Where the V4 packs that tests import are found.
//!
//! Every test imports the project's own pack, `tests/fixtures/bmad-v4`, so a
//! fresh clone passes anywhere. The same checks also run on the real BMad
//! Method V4 core files when they can be found, because those are what users
//! import; their prose is MIT-licensed text that must not be copied into the
//! project, so they are never committed here. When they are absent the test
//! says so on stderr (past the test harness's capture, so `cargo test` shows
//! it) and passes.
//!
//! Plain `std` only: the library's unit tests include this file too (by
//! `#[path]` from `src/catalog/mod.rs`), so there is one copy of the rules.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Names a folder holding the real BMad Method V4 core files (`bmad-core/` of
/// the V4 release, with `agents/`, `agent-teams/` and `workflows/`).
pub const REAL_FILES_VAR: &str = "CEREBRAL_BMAD_FIXTURES";

/// The project's own V4 pack, always present.
pub fn own_pack() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bmad-v4")
}

/// Where the real V4 core files are looked for when `CEREBRAL_BMAD_FIXTURES`
/// is not set: `shared/fixtures/bmad-core-v4` beside the checkout, as CI
/// lays it out.
pub fn real_files_beside_checkout() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .unwrap_or(manifest)
        .join("shared/fixtures/bmad-core-v4")
}

/// The folder of the real V4 core files, or `None` after printing that
/// `test` was skipped.
///
/// A set `CEREBRAL_BMAD_FIXTURES` must point at such a folder: a wrong value
/// fails the test rather than silently skipping what was asked for.
pub fn real_files(test: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(REAL_FILES_VAR).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        assert!(
            dir.join("agents").is_dir() && dir.join("workflows").is_dir(),
            "{REAL_FILES_VAR}={} has no agents/ and workflows/ folders: point it at a copy of bmad-core/ of the BMad Method V4 release",
            dir.display()
        );
        return Some(dir);
    }
    let beside = real_files_beside_checkout();
    if beside.is_dir() {
        return Some(beside);
    }
    // Written to the process's stderr directly: `eprintln!` would be
    // captured by the test harness and shown only when the test fails.
    let _ = writeln!(
        std::io::stderr(),
        "{test}: skipped: real BMad Method V4 files not found at {}; set {REAL_FILES_VAR} to run it",
        beside.display()
    );
    None
}
