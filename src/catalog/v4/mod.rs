//! Importer for packs laid out in the V4 folder format compatible with the
//! BMad Method: `agents/*.md` (Markdown with one fenced YAML block),
//! `agent-teams/*.yaml` and `workflows/*.yaml`.
//!
//! Import is per file and all-or-nothing per file: a broken file is reported
//! with its path and a reason and contributes nothing, while every other file
//! still imports. That lets a user fix one typo without losing the rest of a
//! large pack, and never leaves a half-read persona or workflow behind.
//!
//! The importer is strict about the fields that identify things (ids, names,
//! the workflow sequence) and lenient about everything else, because
//! expansion packs add their own optional keys freely.

use super::{CatalogPack, PersonaDef, TeamDef, WorkflowDef, WorkflowStepDef, is_valid_key};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::Path;

mod agent;
mod team;
mod workflow;
mod yaml;
use agent::*;
use team::*;
use workflow::*;
use yaml::*;

/// A problem with one file of a pack, kept separate from the pack itself so a
/// caller can show every problem at once instead of stopping at the first.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportFileError {
    /// The path of the file relative to the pack folder, so the user knows
    /// which file to fix.
    pub path: String,
    /// A human-readable explanation of what is wrong with the file.
    pub reason: String,
}

/// The outcome of an import: whatever parsed cleanly plus a list of the files
/// that did not, so partial success is visible rather than silent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportReport {
    /// The personas, teams and workflows taken from the files that parsed.
    pub pack: CatalogPack,
    /// One entry per rejected file (or rejected duplicate definition).
    pub errors: Vec<ImportFileError>,
    /// How many files were read, so callers can tell an empty folder from a
    /// folder full of broken files.
    pub files_read: usize,
}

/// A failure that prevents the import from starting at all.
///
/// Problems with individual files never use this type; they are reported in
/// [`ImportReport::errors`] so the rest of the pack can still be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The pack folder itself could not be read (missing, not a folder, or no
    /// permission).
    #[error("cannot read {path}: {source}")]
    Io {
        /// The folder that could not be read.
        path: String,
        /// The underlying operating-system error.
        #[source]
        source: io::Error,
    },
}

/// The three kinds of file a V4 pack holds, decided by the folder they are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Agent,
    Team,
    Workflow,
}

/// The sub-folders [`parse_dir`] reads, with the file extensions accepted in
/// each.
const FOLDERS: [(&str, &[&str]); 3] = [
    ("agents", &["md"]),
    ("agent-teams", &["yaml", "yml"]),
    ("workflows", &["yaml", "yml"]),
];

/// How much one import may read. A catalog file is small text (the
/// largest file of the BMad Method core is about 11 KB); these bounds keep
/// an import of any folder or upload to a known cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImportLimits {
    /// Largest file, in bytes; a larger one is reported and not parsed.
    pub max_file_bytes: usize,
    /// Largest import, all files together, in bytes; files past it (in
    /// the order given) are reported and not parsed (nor read, from disk).
    pub max_total_bytes: usize,
}

impl Default for ImportLimits {
    /// The defaults of `CEREBRAL_MAX_CATALOG_FILE_BYTES` and
    /// `CEREBRAL_MAX_CATALOG_IMPORT_BYTES`.
    fn default() -> Self {
        ImportLimits {
            max_file_bytes: 256 * 1024,
            max_total_bytes: 8 * 1024 * 1024,
        }
    }
}

impl ImportLimits {
    /// Why a file of `len` bytes is refused when `so_far` bytes were
    /// taken before it, or None when it fits.
    fn refusal(&self, len: u64, so_far: u64) -> Option<String> {
        if len > self.max_file_bytes as u64 {
            return Some(format!(
                "file is {len} bytes; catalog files are at most {} bytes (CEREBRAL_MAX_CATALOG_FILE_BYTES)",
                self.max_file_bytes
            ));
        }
        if so_far.saturating_add(len) > self.max_total_bytes as u64 {
            return Some(format!(
                "not imported: the files of this import add up to more than {} bytes (CEREBRAL_MAX_CATALOG_IMPORT_BYTES)",
                self.max_total_bytes
            ));
        }
        None
    }
}

/// Parses the files of one pack with the default [`ImportLimits`]; see
/// [`parse_files_with`].
#[must_use]
pub fn parse_files(files: &[(String, String)]) -> ImportReport {
    parse_files_with(files, &ImportLimits::default())
}

/// Parses the files of one pack, given as `(relative path, content)` pairs.
///
/// `files` are (relative path, content) pairs, path like "agents/po.md",
/// "agent-teams/team-all.yaml", "workflows/greenfield-service.yaml". Kind is
/// decided by the folder part of the path (agents/, agent-teams/,
/// workflows/); any other file is reported as an error "unsupported file".
///
/// Taking contents rather than a folder lets callers import uploads or
/// archives without writing them to disk first. Files are handled in the
/// given order: when two files define the same key, the first one wins and
/// the second is reported. A `"*"` entry in a team's agent list expands to
/// every persona of this pack.
///
/// A file over `limits`, or past the import's total, is reported and not
/// parsed; so is a YAML file with anchors or aliases (their expansion is
/// unbounded, a "billion laughs" file of 15 KB expands to millions of
/// nodes). Parsing is CPU work: call this off the async workers.
#[must_use]
pub fn parse_files_with(files: &[(String, String)], limits: &ImportLimits) -> ImportReport {
    let mut report = ImportReport {
        files_read: files.len(),
        ..ImportReport::default()
    };
    let mut personas = Defined::new("persona");
    let mut teams = Defined::new("team");
    let mut workflows = Defined::new("workflow");
    let mut taken: u64 = 0;

    for (path, content) in files {
        if let Some(reason) = limits.refusal(content.len() as u64, taken) {
            report.errors.push(file_error(path, reason));
            continue;
        }
        taken += content.len() as u64;
        let Some(kind) = classify(path) else {
            report.errors.push(file_error(
                path,
                "unsupported file (expected agents/*.md, agent-teams/*.yaml or workflows/*.yaml)",
            ));
            continue;
        };
        let admitted = match kind {
            FileKind::Agent => personas.admit(path, parse_agent(content), |d| &d.key),
            FileKind::Team => teams.admit(path, parse_team(path, content), |d| &d.key),
            FileKind::Workflow => workflows.admit(path, parse_workflow(content), |d| &d.key),
        };
        if let Err(reason) = admitted {
            report.errors.push(file_error(path, reason));
        }
    }
    report.pack.personas = personas.defs;
    report.pack.teams = teams.defs;
    report.pack.workflows = workflows.defs;

    // The wildcard can only be resolved once every agent file has been seen,
    // because team files may come before agent files in the input.
    let all_personas: Vec<String> = report.pack.personas.iter().map(|p| p.key.clone()).collect();
    for team in &mut report.pack.teams {
        team.persona_keys = expand_wildcard(&team.persona_keys, &all_personas);
    }
    report
}

/// The definitions of one kind taken so far, in file order, with the file
/// each key came from: when two files define the same key, the first one
/// wins and the second is reported against it.
struct Defined<T> {
    /// The kind's name in the report ("persona").
    noun: &'static str,
    /// The definitions taken.
    defs: Vec<T>,
    /// The file that defined each key taken.
    origin: HashMap<String, String>,
}

impl<T> Defined<T> {
    fn new(noun: &'static str) -> Self {
        Defined {
            noun,
            defs: Vec::new(),
            origin: HashMap::new(),
        }
    }

    /// Takes what the file at `path` parsed to, unless parsing failed or an
    /// earlier file defined the same key; the error is the reason to report.
    fn admit(
        &mut self,
        path: &str,
        parsed: Result<T, String>,
        key: impl Fn(&T) -> &String,
    ) -> Result<(), String> {
        let def = parsed?;
        let key = key(&def);
        if let Some(first) = self.origin.get(key) {
            return Err(format!(
                "duplicate {} key '{key}', first defined in {first}",
                self.noun
            ));
        }
        self.origin.insert(key.clone(), path.to_owned());
        self.defs.push(def);
        Ok(())
    }
}

/// Reads a pack folder with the default [`ImportLimits`]; see
/// [`parse_dir_with`].
///
/// # Errors
///
/// As [`parse_dir_with`].
pub fn parse_dir(dir: &Path) -> Result<ImportReport, ImportError> {
    parse_dir_with(dir, &ImportLimits::default())
}

/// Reads a pack folder and parses it with [`parse_files_with`].
///
/// Reads DIR/agents/*.md, DIR/agent-teams/*.yaml|yml, DIR/workflows/*.yaml|yml
/// (missing subfolders are fine; files sorted by name for determinism) and
/// calls `parse_files`.
///
/// Only an unreadable `dir` is an [`ImportError`]; an unreadable sub-folder
/// or file is reported in the returned [`ImportReport::errors`] so the rest of
/// the pack still imports. Other files in the folders (such as a README) are
/// not read, nor is a file over `limits` (reported, by its size on disk,
/// and read through the limit should it grow meanwhile).
///
/// # Errors
///
/// Returns [`ImportError::Io`] when `dir` is missing, is not a folder or
/// cannot be listed.
pub fn parse_dir_with(dir: &Path, limits: &ImportLimits) -> Result<ImportReport, ImportError> {
    fs::read_dir(dir).map_err(|source| ImportError::Io {
        path: dir.display().to_string(),
        source,
    })?;

    let mut files = Vec::new();
    let mut read_errors = Vec::new();
    let mut taken: u64 = 0;
    for (folder, extensions) in FOLDERS {
        let folder_path = dir.join(folder);
        let entries = match fs::read_dir(&folder_path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                read_errors.push(file_error(folder, format!("cannot read folder: {e}")));
                continue;
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let wanted = extension(&name)
                        .is_some_and(|ext| extensions.iter().any(|e| ext.eq_ignore_ascii_case(e)));
                    // `metadata` follows symlinks, so linked files are read too.
                    let is_file = fs::metadata(entry.path()).is_ok_and(|m| m.is_file());
                    if wanted && is_file {
                        names.push((name, entry.path()));
                    }
                }
                Err(e) => {
                    read_errors.push(file_error(folder, format!("cannot list folder: {e}")));
                }
            }
        }
        names.sort();
        for (name, full_path) in names {
            let rel = format!("{folder}/{name}");
            match read_bounded(&full_path, limits, taken) {
                Ok(Ok(bytes)) => {
                    taken += bytes.len() as u64;
                    match String::from_utf8(bytes) {
                        Ok(text) => files.push((rel, text)),
                        Err(_) => read_errors.push(file_error(&rel, "file is not valid UTF-8")),
                    }
                }
                Ok(Err(reason)) => read_errors.push(file_error(&rel, reason)),
                Err(e) => read_errors.push(file_error(&rel, format!("cannot read file: {e}"))),
            }
        }
    }

    let mut report = parse_files_with(&files, limits);
    read_errors.append(&mut report.errors);
    report.errors = read_errors;
    Ok(report)
}

/// Reads a file unless it is over `limits` (with `so_far` bytes taken
/// before it), in which case the reason is returned instead; never more
/// than the limit plus one byte, whatever the file does meanwhile.
fn read_bounded(
    path: &Path,
    limits: &ImportLimits,
    so_far: u64,
) -> io::Result<Result<Vec<u8>, String>> {
    use std::io::Read;
    let file = fs::File::open(path)?;
    let declared = file.metadata()?.len();
    if let Some(reason) = limits.refusal(declared, so_far) {
        return Ok(Err(reason));
    }
    let mut bytes = Vec::new();
    file.take(limits.max_file_bytes as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(match limits.refusal(bytes.len() as u64, so_far) {
        Some(reason) => Err(reason),
        None => Ok(bytes),
    })
}

/// Builds an [`ImportFileError`] from anything that reads as a reason.
fn file_error(path: &str, reason: impl Into<String>) -> ImportFileError {
    ImportFileError {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Decides the kind of a file from its innermost folder and its extension.
fn classify(path: &str) -> Option<FileKind> {
    let normalized = path.replace('\\', "/");
    let (dir, file) = normalized.rsplit_once('/')?;
    let folder = dir.rsplit('/').next().unwrap_or(dir);
    let ext = extension(file)?.to_ascii_lowercase();
    match (folder, ext.as_str()) {
        ("agents", "md") => Some(FileKind::Agent),
        ("agent-teams", "yaml" | "yml") => Some(FileKind::Team),
        ("workflows", "yaml" | "yml") => Some(FileKind::Workflow),
        _ => None,
    }
}

/// Returns the extension of a file name, if it has a non-empty stem and one.
fn extension(file_name: &str) -> Option<&str> {
    match file_name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => Some(ext),
        _ => None,
    }
}

/// Returns the file name of `path` without folder and extension.
fn file_stem(path: &str) -> &str {
    let file = path.rsplit(['/', '\\']).next().unwrap_or(path);
    match file.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem,
        _ => file,
    }
}

#[cfg(test)]
mod tests;
