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

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io;
use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use super::{CatalogPack, PersonaDef, TeamDef, WorkflowDef, WorkflowStepDef, is_valid_key};

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
    let mut persona_origin: HashMap<String, String> = HashMap::new();
    let mut team_origin: HashMap<String, String> = HashMap::new();
    let mut workflow_origin: HashMap<String, String> = HashMap::new();
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
        match kind {
            FileKind::Agent => match parse_agent(content) {
                Ok(persona) => {
                    if let Some(first) = persona_origin.get(&persona.key) {
                        report.errors.push(file_error(
                            path,
                            format!(
                                "duplicate persona key '{}', first defined in {first}",
                                persona.key
                            ),
                        ));
                    } else {
                        persona_origin.insert(persona.key.clone(), path.clone());
                        report.pack.personas.push(persona);
                    }
                }
                Err(reason) => report.errors.push(file_error(path, reason)),
            },
            FileKind::Team => match parse_team(path, content) {
                Ok(team) => {
                    if let Some(first) = team_origin.get(&team.key) {
                        report.errors.push(file_error(
                            path,
                            format!(
                                "duplicate team key '{}', first defined in {first}",
                                team.key
                            ),
                        ));
                    } else {
                        team_origin.insert(team.key.clone(), path.clone());
                        report.pack.teams.push(team);
                    }
                }
                Err(reason) => report.errors.push(file_error(path, reason)),
            },
            FileKind::Workflow => match parse_workflow(content) {
                Ok(workflow) => {
                    if let Some(first) = workflow_origin.get(&workflow.key) {
                        report.errors.push(file_error(
                            path,
                            format!(
                                "duplicate workflow key '{}', first defined in {first}",
                                workflow.key
                            ),
                        ));
                    } else {
                        workflow_origin.insert(workflow.key.clone(), path.clone());
                        report.pack.workflows.push(workflow);
                    }
                }
                Err(reason) => report.errors.push(file_error(path, reason)),
            },
        }
    }

    // The wildcard can only be resolved once every agent file has been seen,
    // because team files may come before agent files in the input.
    let all_personas: Vec<String> = report.pack.personas.iter().map(|p| p.key.clone()).collect();
    for team in &mut report.pack.teams {
        team.persona_keys = expand_wildcard(&team.persona_keys, &all_personas);
    }
    report
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

// ---------------------------------------------------------------------------
// YAML helpers
// ---------------------------------------------------------------------------

/// Parses YAML text whose first line is line `first_line` of the file, so
/// error messages point at the right line of the original file.
fn parse_yaml(text: &str, first_line: usize) -> Result<Value, String> {
    prescan_yaml(text, first_line)?;
    let mut value: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        let message = e.to_string();
        // The library appends its own (block-relative) position; drop it in
        // favour of a file-relative line number.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .trim()
            .to_owned();
        match e.location() {
            Some(loc) => format!(
                "YAML error at line {}: {message}",
                loc.line() + first_line - 1
            ),
            None => format!("YAML error: {message}"),
        }
    })?;
    value
        .apply_merge()
        .map_err(|e| format!("YAML error: {e}"))?;
    Ok(value)
}

/// Deepest nesting of mappings and sequences a catalog file may have (the
/// BMad Method files go six deep). libyaml, under `serde_yaml_ng`, spends
/// time quadratic in the depth of unclosed flow collections: 64 K nested
/// `{a: ` took over a minute before its own recursion limit.
const MAX_YAML_DEPTH: usize = 64;

/// Reads a catalog file's YAML events once, with a real YAML parser
/// (`saphyr-parser`, so `&` and `*` in quoted or plain text are fine), and
/// refuses what `serde_yaml_ng` must not be given:
///
/// - anchors (`&name`) and aliases (`*name`): `serde_yaml_ng` bounds alias
///   jumps, not the nodes they expand to, so a 15 KB file of aliases to a
///   large anchor expands to millions of values (catalog files have no use
///   for them, and the BMad Method files use none);
/// - nesting deeper than [`MAX_YAML_DEPTH`];
/// - YAML this parser cannot read (reported with its line), so libyaml
///   only ever sees documents already read to the end within the bounds.
fn prescan_yaml(text: &str, first_line: usize) -> Result<(), String> {
    use saphyr_parser::{Event, Parser};
    let mut depth = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            format!(
                "YAML error at line {}: {}",
                e.marker().line() + first_line - 1,
                e.info()
            )
        })?;
        let line = span.start.line() + first_line - 1;
        let anchored = match event {
            Event::Alias(_) => {
                return Err(anchors_refused("an alias", line));
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                depth += 1;
                if depth > MAX_YAML_DEPTH {
                    return Err(format!(
                        "YAML nested deeper than {MAX_YAML_DEPTH} levels at line {line}"
                    ));
                }
                anchor > 0
            }
            Event::SequenceEnd | Event::MappingEnd => {
                depth = depth.saturating_sub(1);
                false
            }
            Event::Scalar(_, _, anchor, _) => anchor > 0,
            _ => false,
        };
        if anchored {
            return Err(anchors_refused("an anchor", line));
        }
    }
    Ok(())
}

fn anchors_refused(found: &str, line: usize) -> String {
    format!(
        "YAML anchors and aliases (&name, *name) are not accepted in catalog files: {found} at line {line}; write the value out instead"
    )
}

/// Looks up `key` in `value` when it is a mapping, ignoring null values so
/// that `key:` with nothing after it counts as absent.
fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value.get(key) {
        Some(Value::Null) | None => None,
        Some(Value::Tagged(tagged)) => Some(&tagged.value),
        Some(v) => Some(v),
    }
}

/// Looks up a section that must be a mapping.
fn section<'a>(value: &'a Value, key: &str) -> Result<&'a Mapping, String> {
    match field(value, key) {
        None => Err(format!("missing {key} section")),
        Some(Value::Mapping(m)) => Ok(m),
        Some(_) => Err(format!("{key} must be a mapping")),
    }
}

/// Turns a scalar into trimmed text; empty text, null and collections give
/// `None` because they carry no usable value for a text field.
fn scalar_text(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Tagged(tagged) => return scalar_text(&tagged.value),
        Value::Null | Value::Sequence(_) | Value::Mapping(_) => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// Reads an optional text field leniently: absent, empty or non-text values
/// simply give `None`.
fn optional_text(value: &Value, key: &str) -> Option<String> {
    field(value, key).and_then(scalar_text)
}

/// Reads a required text field; `what` is the dotted name used in errors.
fn required_text(value: &Value, key: &str, what: &str) -> Result<String, String> {
    match field(value, key) {
        None => Err(format!("missing {what}")),
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
            scalar_text(v).ok_or_else(|| format!("missing {what}"))
        }
        Some(_) => Err(format!("{what} must be text")),
    }
}

/// Reads a field that may be one string or a list of strings, keeping only
/// non-empty entries, trimmed.
fn text_list(value: &Value, key: &str) -> Vec<String> {
    match field(value, key) {
        Some(Value::Sequence(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(v) => scalar_text(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Reads a yes/no flag leniently: YAML booleans and the words true/yes count.
fn flag(value: &Value, key: &str) -> bool {
    match field(value, key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => {
            matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "yes")
        }
        _ => false,
    }
}

/// Removes duplicates while keeping the first occurrence of each entry.
fn dedup_keep_order(items: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

// ---------------------------------------------------------------------------
// Agents
// ---------------------------------------------------------------------------

/// Finds the first fenced ```yaml / ```yml block (backticks or tildes) and
/// returns its text plus the 1-based file line where that text starts.
///
/// An unclosed fence runs to the end of the file, as in `CommonMark`.
fn fenced_yaml(markdown: &str) -> Option<(String, usize)> {
    let mut lines = markdown.lines().enumerate();
    while let Some((index, line)) = lines.next() {
        let Some((fence_char, fence_len, info)) = fence_open(line) else {
            continue;
        };
        let lang = info.split_whitespace().next().unwrap_or("");
        let is_yaml = lang.eq_ignore_ascii_case("yaml") || lang.eq_ignore_ascii_case("yml");
        let mut body = String::new();
        for (_, inner) in lines.by_ref() {
            if is_fence_close(inner, fence_char, fence_len) {
                break;
            }
            if is_yaml {
                body.push_str(inner);
                body.push('\n');
            }
        }
        if is_yaml {
            return Some((body, index + 2));
        }
    }
    None
}

/// Recognises an opening code fence and returns its character, length and
/// info string.
fn fence_open(line: &str) -> Option<(char, usize, &str)> {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return None;
    }
    let fence_char = trimmed.chars().next().filter(|c| *c == '`' || *c == '~')?;
    let fence_len = trimmed.chars().take_while(|c| *c == fence_char).count();
    if fence_len < 3 {
        return None;
    }
    let info = &trimmed[fence_len..];
    if fence_char == '`' && info.contains('`') {
        return None;
    }
    Some((fence_char, fence_len, info.trim()))
}

/// Recognises the closing fence matching an opening fence.
fn is_fence_close(line: &str, fence_char: char, fence_len: usize) -> bool {
    let trimmed = line.trim_start_matches(' ');
    if line.len() - trimmed.len() > 3 {
        return false;
    }
    let run = trimmed.chars().take_while(|c| *c == fence_char).count();
    run >= fence_len && trimmed[run..].trim().is_empty()
}

/// Parses one agent Markdown file into a persona.
fn parse_agent(content: &str) -> Result<PersonaDef, String> {
    let (yaml, first_line) = fenced_yaml(content).ok_or("no fenced YAML block")?;
    let doc = parse_yaml(&yaml, first_line)?;
    if !doc.is_mapping() {
        return Err("the YAML block is not a mapping".to_owned());
    }
    let agent = Value::Mapping(section(&doc, "agent")?.clone());

    let key = required_text(&agent, "id", "agent.id")?;
    if !is_valid_key(&key) {
        return Err(format!(
            "agent.id '{key}' is not a valid key (use lowercase letters, digits and dashes)"
        ));
    }
    let name = required_text(&agent, "name", "agent.name")?;
    let title = required_text(&agent, "title", "agent.title")?;

    let persona = field(&doc, "persona").cloned().unwrap_or(Value::Null);
    let identity = optional_text(&persona, "identity");
    let focus = optional_text(&persona, "focus");
    let description = match (identity, focus) {
        (Some(identity), Some(focus)) => Some(format!(
            "{}. Focus: {focus}",
            identity.trim_end_matches('.')
        )),
        (identity, focus) => identity.or(focus),
    };

    Ok(PersonaDef {
        key,
        name,
        title,
        icon: optional_text(&agent, "icon"),
        role: optional_text(&persona, "role"),
        when_to_use: optional_text(&agent, "whenToUse")
            .or_else(|| optional_text(&agent, "when_to_use")),
        description,
        capabilities: command_names(field(&doc, "commands")),
    })
}

/// Extracts command names from a `commands` section, which packs write as a
/// list of one-key maps, a list of `"name args: text"` strings, or a map.
fn command_names(commands: Option<&Value>) -> Vec<String> {
    let mut names = Vec::new();
    let take_keys = |map: &Mapping, names: &mut Vec<String>| {
        for key in map.keys() {
            if let Some(name) = scalar_text(key).and_then(|k| clean_command(&k)) {
                names.push(name);
            }
        }
    };
    match commands {
        Some(Value::Sequence(items)) => {
            for item in items {
                match item {
                    Value::Mapping(map) => take_keys(map, &mut names),
                    other => {
                        if let Some(name) = scalar_text(other).and_then(|t| clean_command(&t)) {
                            names.push(name);
                        }
                    }
                }
            }
        }
        Some(Value::Mapping(map)) => take_keys(map, &mut names),
        Some(other) => names.extend(scalar_text(other).and_then(|t| clean_command(&t))),
        None => {}
    }
    dedup_keep_order(names)
}

/// Reduces a command entry to its bare name: the text before the first ':'
/// outside placeholders, without `{arg}`, `[arg]` or `<arg>` placeholders and
/// without a leading `*`.
fn clean_command(raw: &str) -> Option<String> {
    let mut out = String::new();
    let mut depth = 0usize;
    for c in raw.chars() {
        match c {
            '{' | '[' | '<' => depth += 1,
            '}' | ']' | '>' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => break,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    let name = out
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches('*')
        .trim()
        .to_owned();
    (!name.is_empty()).then_some(name)
}

// ---------------------------------------------------------------------------
// Teams
// ---------------------------------------------------------------------------

/// Parses one team file; the `"*"` wildcard is kept and expanded later by
/// [`parse_files`].
fn parse_team(path: &str, content: &str) -> Result<TeamDef, String> {
    let key = file_stem(path).to_owned();
    if !is_valid_key(&key) {
        return Err(format!(
            "team key '{key}' (the file name) is not a valid key (use lowercase letters, digits and dashes)"
        ));
    }
    let doc = parse_yaml(content, 1)?;
    let bundle = Value::Mapping(section(&doc, "bundle")?.clone());
    let name = required_text(&bundle, "name", "bundle.name")?;

    let workflow_keys = text_list(&doc, "workflows")
        .into_iter()
        .map(|w| strip_yaml_extension(&w).to_owned())
        .filter(|w| !w.is_empty())
        .collect();

    Ok(TeamDef {
        key,
        name,
        icon: optional_text(&bundle, "icon"),
        description: optional_text(&bundle, "description"),
        persona_keys: dedup_keep_order(text_list(&doc, "agents")),
        workflow_keys: dedup_keep_order(workflow_keys),
    })
}

/// Removes a trailing `.yaml` / `.yml` so workflow references match keys.
fn strip_yaml_extension(name: &str) -> &str {
    for ext in [".yaml", ".yml"] {
        if name.len() > ext.len() && name.is_char_boundary(name.len() - ext.len()) {
            let (stem, tail) = name.split_at(name.len() - ext.len());
            if tail.eq_ignore_ascii_case(ext) {
                return stem;
            }
        }
    }
    name
}

/// Replaces each `"*"` with every persona of the pack, keeping order and
/// dropping duplicates.
fn expand_wildcard(keys: &[String], all_personas: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        if key == "*" {
            out.extend(all_personas.iter().cloned());
        } else {
            out.push(key.clone());
        }
    }
    dedup_keep_order(out)
}

// ---------------------------------------------------------------------------
// Workflows
// ---------------------------------------------------------------------------

/// Parses one workflow file.
fn parse_workflow(content: &str) -> Result<WorkflowDef, String> {
    let doc = parse_yaml(content, 1)?;
    let workflow = Value::Mapping(section(&doc, "workflow")?.clone());

    let key = required_text(&workflow, "id", "workflow.id")?;
    if !is_valid_key(&key) {
        return Err(format!(
            "workflow.id '{key}' is not a valid key (use lowercase letters, digits and dashes)"
        ));
    }
    let name = required_text(&workflow, "name", "workflow.name")?;
    let sequence = match field(&workflow, "sequence") {
        None => return Err("missing workflow.sequence".to_owned()),
        Some(Value::Sequence(items)) if !items.is_empty() => items,
        Some(_) => return Err("workflow.sequence must be a non-empty list".to_owned()),
    };

    let mut used_keys = HashSet::new();
    let mut steps = Vec::with_capacity(sequence.len());
    for (index, item) in sequence.iter().enumerate() {
        let step = parse_step(index, item, &mut used_keys)?;
        steps.push(step);
    }

    Ok(WorkflowDef {
        key,
        name,
        description: optional_text(&workflow, "description"),
        kind: optional_text(&workflow, "type"),
        project_types: text_list(&workflow, "project_types"),
        steps,
    })
}

/// Parses one entry of `workflow.sequence`; `used_keys` keeps step keys
/// unique within the workflow.
fn parse_step(
    index: usize,
    item: &Value,
    used_keys: &mut HashSet<String>,
) -> Result<WorkflowStepDef, String> {
    let item = match item {
        Value::Tagged(tagged) => &tagged.value,
        other => other,
    };
    if !item.is_mapping() {
        return Err(format!("workflow.sequence[{index}] is not a mapping"));
    }
    let agent = optional_text(item, "agent");
    let step_name = optional_text(item, "step");
    if agent.is_none() && step_name.is_none() {
        return Err(format!(
            "workflow.sequence[{index}] has neither 'agent' nor 'step'"
        ));
    }

    let validates = optional_text(item, "validates");
    let creates = text_list(item, "creates");
    let updates = text_list(item, "updates");
    let raw_action = optional_text(item, "action");

    let base_key = match &step_name {
        Some(name) => name.clone(),
        None => {
            // `agent` is present here, since one of agent/step must be.
            let who = agent.as_deref().unwrap_or("step");
            let what = raw_action
                .clone()
                .or_else(|| creates.first().cloned())
                .or_else(|| validates.as_ref().map(|v| format!("validate-{v}")))
                .or_else(|| updates.first().cloned());
            let slug = slugify(&match what {
                Some(what) => format!("{who}-{what}"),
                None => who.to_owned(),
            });
            if slug.is_empty() {
                "step".to_owned()
            } else {
                slug
            }
        }
    };
    let key = unique_key(&base_key, used_keys);

    let persona_key = agent.as_deref().and_then(persona_of_agent);
    let position =
        i32::try_from(index).map_err(|_| "workflow.sequence has too many steps".to_owned())?;

    Ok(WorkflowStepDef {
        position,
        key,
        persona_key,
        action: raw_action.or_else(|| validates.as_ref().map(|_| "validate".to_owned())),
        creates,
        requires: text_list(item, "requires"),
        updates,
        optional: flag(item, "optional"),
        condition: optional_text(item, "condition"),
        repeats: optional_text(item, "repeats"),
        requires_approval: validates.is_some()
            || flag(item, "requires_approval")
            || flag(item, "approval"),
        is_control: step_name.is_some() && agent.is_none(),
        notes: field(item, "notes")
            .and_then(|v| match v {
                Value::String(s) => Some(s.trim_end().to_owned()),
                other => scalar_text(other),
            })
            .filter(|s| !s.is_empty()),
        agent,
    })
}

/// Picks the default persona of a step from its agent text: the first of
/// several `/`-separated agents, and none for "various" or anything that is
/// not a valid persona key.
fn persona_of_agent(agent: &str) -> Option<String> {
    let first = agent
        .split('/')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    (first != "various" && is_valid_key(&first)).then_some(first)
}

/// Lowercases `text` and turns every run of other characters than ASCII
/// letters and digits into a single dash.
fn slugify(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// Returns `base`, or `base-2`, `base-3`… whichever is still free, and marks
/// it as used.
fn unique_key(base: &str, used: &mut HashSet<String>) -> String {
    let mut key = base.to_owned();
    let mut n = 2;
    while used.contains(&key) {
        key = format!("{base}-{n}");
        n += 1;
    }
    used.insert(key.clone());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::catalog::test_packs;

    // Each check on a whole pack runs twice: on the project's own pack
    // (`own_pack_…`, always) and on the real V4 core files (`real_files_…`,
    // skipped with a notice when they cannot be found).

    /// The project's own V4 pack, `tests/fixtures/bmad-v4`.
    fn own_pack() -> ImportReport {
        parse_dir(&test_packs::own_pack()).expect("own pack is readable")
    }

    /// The real V4 core files, or `None` once the skip is reported.
    fn real_files(test: &str) -> Option<ImportReport> {
        test_packs::real_files(test).map(|dir| parse_dir(&dir).expect("fixture folder is readable"))
    }

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, c)| ((*p).to_owned(), (*c).to_owned()))
            .collect()
    }

    fn persona<'a>(pack: &'a CatalogPack, key: &str) -> &'a PersonaDef {
        pack.personas
            .iter()
            .find(|p| p.key == key)
            .unwrap_or_else(|| panic!("persona {key} missing"))
    }

    fn team<'a>(pack: &'a CatalogPack, key: &str) -> &'a TeamDef {
        pack.teams
            .iter()
            .find(|t| t.key == key)
            .unwrap_or_else(|| panic!("team {key} missing"))
    }

    fn workflow<'a>(pack: &'a CatalogPack, key: &str) -> &'a WorkflowDef {
        pack.workflows
            .iter()
            .find(|w| w.key == key)
            .unwrap_or_else(|| panic!("workflow {key} missing"))
    }

    fn step<'a>(wf: &'a WorkflowDef, key: &str) -> &'a WorkflowStepDef {
        wf.steps
            .iter()
            .find(|s| s.key == key)
            .unwrap_or_else(|| panic!("step {key} missing in {}", wf.key))
    }

    const GOOD_AGENT: &str = "# scout\n\n```yaml\nagent:\n  id: scout\n  name: Pat\n  title: Trail Scout\n  icon: 🧭\ncommands:\n  - help: list\n  - \"scan {area}: look around\"\n```\n";

    const GOOD_WORKFLOW: &str = "workflow:\n  id: trail-run\n  name: Trail Run\n  sequence:\n    - agent: scout\n      creates: map.md\n    - step: done\n";

    #[test]
    fn own_pack_imports_completely() {
        check_imports_completely(&own_pack());
    }

    #[test]
    fn real_files_imports_completely() {
        if let Some(report) = real_files("real_files_imports_completely") {
            check_imports_completely(&report);
        }
    }

    fn check_imports_completely(report: &ImportReport) {
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.files_read, 20);
        assert_eq!(report.pack.personas.len(), 10);
        assert_eq!(report.pack.teams.len(), 4);
        assert_eq!(report.pack.workflows.len(), 6);
    }

    #[test]
    fn own_pack_persona_po() {
        check_persona_po(&own_pack());
    }

    #[test]
    fn real_files_persona_po() {
        if let Some(report) = real_files("real_files_persona_po") {
            check_persona_po(&report);
        }
    }

    fn check_persona_po(report: &ImportReport) {
        let po = persona(&report.pack, "po");
        assert_eq!(po.name, "Sarah");
        assert_eq!(po.title, "Product Owner");
        assert_eq!(po.icon.as_deref(), Some("📝"));
        assert!(po.role.is_some());
        assert!(po.when_to_use.is_some());
        assert!(
            po.description
                .as_deref()
                .is_some_and(|d| d.contains("Focus:"))
        );
        assert_eq!(
            po.capabilities,
            [
                "help",
                "correct-course",
                "create-epic",
                "create-story",
                "doc-out",
                "execute-checklist-po",
                "shard-doc",
                "validate-story-draft",
                "yolo",
                "exit"
            ]
        );
    }

    #[test]
    fn own_pack_command_shapes() {
        check_command_shapes(&own_pack());
    }

    #[test]
    fn real_files_command_shapes() {
        if let Some(report) = real_files("real_files_command_shapes") {
            check_command_shapes(&report);
        }
    }

    fn check_command_shapes(report: &ImportReport) {
        // Commands written as a map rather than a list.
        let orchestrator = persona(&report.pack, "bmad-orchestrator");
        assert_eq!(
            orchestrator.capabilities.first().map(String::as_str),
            Some("help")
        );
        assert!(orchestrator.capabilities.iter().any(|c| c == "party-mode"));
        // A command whose value is a nested list.
        let dev = persona(&report.pack, "dev");
        assert!(dev.capabilities.iter().any(|c| c == "develop-story"));
        assert!(
            !dev.capabilities
                .iter()
                .any(|c| c.contains("order-of-execution"))
        );
        // A command whose value is a block scalar.
        let qa = persona(&report.pack, "qa");
        assert!(qa.capabilities.iter().any(|c| c == "review"));
        for p in &report.pack.personas {
            for c in &p.capabilities {
                assert!(!c.contains('{') && !c.contains(':'), "{}: {c}", p.key);
            }
        }
    }

    #[test]
    fn own_pack_greenfield_service_steps() {
        check_greenfield_service_steps(&own_pack());
    }

    #[test]
    fn real_files_greenfield_service_steps() {
        if let Some(report) = real_files("real_files_greenfield_service_steps") {
            check_greenfield_service_steps(&report);
        }
    }

    fn check_greenfield_service_steps(report: &ImportReport) {
        let wf = workflow(&report.pack, "greenfield-service");
        assert_eq!(wf.name, "Greenfield Service/API Development");
        assert_eq!(wf.kind.as_deref(), Some("greenfield"));
        assert!(wf.project_types.iter().any(|t| t == "graphql-api"));
        assert_eq!(wf.steps.len(), 15);

        let validation = &wf.steps[4];
        assert_eq!(validation.key, "po-validate-all-artifacts");
        assert_eq!(validation.persona_key.as_deref(), Some("po"));
        assert_eq!(validation.action.as_deref(), Some("validate"));
        assert!(validation.requires_approval);
        assert_eq!(
            wf.steps.iter().filter(|s| s.requires_approval).count(),
            1,
            "only the validation step is a gate"
        );

        let prd = step(wf, "pm-prd-md");
        assert_eq!(prd.position, 1);
        assert_eq!(prd.creates, ["prd.md"]);
        assert_eq!(prd.requires, ["project-brief.md"]);
        assert!(!prd.is_control);

        let update = step(wf, "pm-prd-md-if-needed");
        assert_eq!(update.updates, ["prd.md (if needed)"]);
        assert_eq!(
            update.condition.as_deref(),
            Some("architecture_suggests_prd_changes")
        );

        let various = step(wf, "various-any-flagged-documents");
        assert_eq!(various.agent.as_deref(), Some("various"));
        assert_eq!(various.persona_key, None);

        let review = step(wf, "analyst-pm-review-draft-story");
        assert_eq!(review.agent.as_deref(), Some("analyst/pm"));
        assert_eq!(review.persona_key.as_deref(), Some("analyst"));
        assert!(review.optional);

        let story = step(wf, "sm-create-story");
        assert_eq!(story.repeats.as_deref(), Some("for_each_epic"));

        let end = wf.steps.last().expect("steps");
        assert_eq!(end.key, "workflow_end");
        assert!(end.is_control);
        assert_eq!(end.agent, None);
        assert_eq!(end.persona_key, None);
        assert_eq!(end.action.as_deref(), Some("project_complete"));
        assert!(end.notes.is_some());
        assert!(step(wf, "repeat_development_cycle").is_control);

        for (i, s) in wf.steps.iter().enumerate() {
            assert_eq!(s.position, i32::try_from(i).expect("few steps"));
        }
    }

    #[test]
    fn own_pack_step_with_both_step_and_agent_is_work() {
        check_step_with_both_step_and_agent_is_work(&own_pack());
    }

    #[test]
    fn real_files_step_with_both_step_and_agent_is_work() {
        if let Some(report) = real_files("real_files_step_with_both_step_and_agent_is_work") {
            check_step_with_both_step_and_agent_is_work(&report);
        }
    }

    fn check_step_with_both_step_and_agent_is_work(report: &ImportReport) {
        let wf = workflow(&report.pack, "brownfield-fullstack");
        let classify = step(wf, "enhancement_classification");
        assert_eq!(classify.persona_key.as_deref(), Some("analyst"));
        assert!(!classify.is_control);
        let routing = step(wf, "routing_decision");
        assert!(routing.is_control);
        assert_eq!(
            routing.condition.as_deref(),
            Some("based_on_classification")
        );
        let arch = step(wf, "architecture_decision");
        assert_eq!(arch.persona_key.as_deref(), Some("pm"));

        let ui = workflow(&report.pack, "brownfield-ui");
        let architecture = step(ui, "architect-architecture-md");
        assert_eq!(architecture.requires, ["prd.md", "front-end-spec.md"]);
    }

    #[test]
    fn own_pack_teams() {
        check_teams(&own_pack());
    }

    #[test]
    fn real_files_teams() {
        if let Some(report) = real_files("real_files_teams") {
            check_teams(&report);
        }
    }

    fn check_teams(report: &ImportReport) {
        let all = team(&report.pack, "team-all");
        assert_eq!(all.name, "Team All");
        assert_eq!(all.persona_keys.len(), 10);
        assert_eq!(all.persona_keys[0], "bmad-orchestrator");
        let unique: HashSet<_> = all.persona_keys.iter().collect();
        assert_eq!(unique.len(), 10);
        assert_eq!(all.workflow_keys.len(), 6);

        let minimal = team(&report.pack, "team-ide-minimal");
        assert_eq!(minimal.persona_keys, ["po", "sm", "dev", "qa"]);
        assert!(minimal.workflow_keys.is_empty());

        let no_ui = team(&report.pack, "team-no-ui");
        assert_eq!(
            no_ui.workflow_keys,
            ["greenfield-service", "brownfield-service"]
        );
        assert_eq!(no_ui.icon.as_deref(), Some("🔧"));
    }

    #[test]
    fn bad_files_are_reported_and_good_files_still_import() {
        let input = files(&[
            ("agents/scout.md", GOOD_AGENT),
            ("agents/empty.md", "# nothing here\n\nJust prose.\n"),
            (
                "agents/broken.md",
                "# broken\n\n```yaml\nagent:\n  id: broken\n  name: [unclosed\n```\n",
            ),
            (
                "workflows/no-id.yaml",
                "workflow:\n  name: Nameless\n  sequence:\n    - step: x\n",
            ),
            ("templates/story.yaml", "template: {}\n"),
            ("workflows/trail-run.yaml", GOOD_WORKFLOW),
            (
                "agent-teams/crew.yaml",
                "bundle:\n  name: Crew\nagents:\n  - scout\n",
            ),
        ]);
        let report = parse_files(&input);
        assert_eq!(report.files_read, 7);

        let reason = |path: &str| {
            report
                .errors
                .iter()
                .find(|e| e.path == path)
                .map(|e| e.reason.clone())
                .unwrap_or_else(|| panic!("no error for {path}: {:?}", report.errors))
        };
        assert_eq!(reason("agents/empty.md"), "no fenced YAML block");
        let yaml_error = reason("agents/broken.md");
        assert!(
            yaml_error.starts_with("YAML error at line "),
            "{yaml_error}"
        );
        // The flow sequence opens on file line 6 and the error is reported at or after it.
        let line: usize = yaml_error["YAML error at line ".len()..]
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("line number");
        assert!((6..=8).contains(&line), "{yaml_error}");
        assert_eq!(reason("workflows/no-id.yaml"), "missing workflow.id");
        assert!(reason("templates/story.yaml").starts_with("unsupported file"));
        assert_eq!(report.errors.len(), 4, "{:?}", report.errors);

        let keys: Vec<_> = report
            .pack
            .personas
            .iter()
            .map(|p| p.key.as_str())
            .collect();
        assert_eq!(keys, ["scout"]);
        assert_eq!(report.pack.workflows.len(), 1);
        assert_eq!(report.pack.teams.len(), 1);
    }

    #[test]
    fn required_agent_fields_are_enforced() {
        let cases = [
            (
                "```yaml\nagent:\n  name: A\n  title: B\n```\n",
                "missing agent.id",
            ),
            (
                "```yaml\nagent:\n  id: a\n  title: B\n```\n",
                "missing agent.name",
            ),
            (
                "```yaml\nagent:\n  id: a\n  name: ''\n  title: B\n```\n",
                "missing agent.name",
            ),
            (
                "```yaml\nagent:\n  id: a\n  name: A\n```\n",
                "missing agent.title",
            ),
            (
                "```yaml\npersona:\n  role: x\n```\n",
                "missing agent section",
            ),
            ("```yaml\n- a\n```\n", "the YAML block is not a mapping"),
        ];
        for (content, expected) in cases {
            let report = parse_files(&files(&[("agents/a.md", content)]));
            assert!(report.pack.personas.is_empty());
            assert_eq!(report.errors.len(), 1);
            assert_eq!(report.errors[0].reason, expected, "{content}");
        }
        let report = parse_files(&files(&[(
            "agents/a.md",
            "```yaml\nagent:\n  id: Bad_Key\n  name: A\n  title: B\n```\n",
        )]));
        assert!(
            report.errors[0]
                .reason
                .starts_with("agent.id 'Bad_Key' is not a valid key")
        );
    }

    #[test]
    fn workflow_item_without_agent_or_step_rejects_whole_file() {
        let content = "workflow:\n  id: half\n  name: Half\n  sequence:\n    - agent: pm\n      creates: prd.md\n    - action: orphan\n";
        let report = parse_files(&files(&[("workflows/half.yaml", content)]));
        assert!(report.pack.workflows.is_empty());
        assert_eq!(
            report.errors,
            [ImportFileError {
                path: "workflows/half.yaml".into(),
                reason: "workflow.sequence[1] has neither 'agent' nor 'step'".into(),
            }]
        );

        for (content, expected) in [
            (
                "workflow:\n  id: w\n  sequence: [{step: a}]\n",
                "missing workflow.name",
            ),
            (
                "workflow:\n  id: w\n  name: W\n",
                "missing workflow.sequence",
            ),
            (
                "workflow:\n  id: w\n  name: W\n  sequence: []\n",
                "workflow.sequence must be a non-empty list",
            ),
            (
                "workflow:\n  id: w\n  name: W\n  sequence: [step-a]\n",
                "workflow.sequence[0] is not a mapping",
            ),
            ("bundle:\n  name: x\n", "missing workflow section"),
        ] {
            let report = parse_files(&files(&[("workflows/w.yaml", content)]));
            assert!(report.pack.workflows.is_empty());
            assert_eq!(report.errors[0].reason, expected);
        }
    }

    #[test]
    fn duplicates_keep_the_first_definition() {
        let other = GOOD_AGENT.replace("Pat", "Sam");
        let report = parse_files(&files(&[
            ("agents/scout.md", GOOD_AGENT),
            ("agents/scout-copy.md", &other),
            ("workflows/a.yaml", GOOD_WORKFLOW),
            ("workflows/b.yaml", GOOD_WORKFLOW),
        ]));
        assert_eq!(report.pack.personas.len(), 1);
        assert_eq!(report.pack.personas[0].name, "Pat");
        assert_eq!(report.pack.workflows.len(), 1);
        assert_eq!(
            report.errors,
            [
                ImportFileError {
                    path: "agents/scout-copy.md".into(),
                    reason: "duplicate persona key 'scout', first defined in agents/scout.md"
                        .into(),
                },
                ImportFileError {
                    path: "workflows/b.yaml".into(),
                    reason: "duplicate workflow key 'trail-run', first defined in workflows/a.yaml"
                        .into(),
                },
            ]
        );
    }

    #[test]
    fn team_rules() {
        let report = parse_files(&files(&[
            // The team comes first: the wildcard must still see later agents.
            (
                "agent-teams/everyone.yml",
                "bundle:\n  name: Everyone\nagents:\n  - lead\n  - '*'\n  - scout\nworkflows:\n  - trail-run.yml\n  - trail-run.yaml\n",
            ),
            ("agents/scout.md", GOOD_AGENT),
            (
                "agents/lead.md",
                "```yml\nagent: {id: lead, name: Lee, title: Lead}\n```\n",
            ),
            ("agent-teams/nameless.yaml", "bundle:\n  icon: x\n"),
            ("agent-teams/Bad Name.yaml", "bundle:\n  name: Bad\n"),
        ]));
        let everyone = team(&report.pack, "everyone");
        assert_eq!(everyone.persona_keys, ["lead", "scout"]);
        assert_eq!(everyone.workflow_keys, ["trail-run"]);
        assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
        assert_eq!(report.errors[0].reason, "missing bundle.name");
        assert!(report.errors[1].reason.starts_with("team key 'Bad Name'"));
    }

    #[test]
    fn expansion_pack_persona_and_workflow() {
        let agent = r#"<!-- made for a test -->
# keeper

Some prose before the definition.

```yaml
activation-instructions:
  - greet
agent:
  name: Ada
  id: lighthouse-keeper
  title: Lighthouse Keeper
  whenToUse: When ships need guiding home
persona:
  role: Guardian of the light
  identity: Keeps the lamp lit through storms
commands:
  help: show commands
  "*polish-lens {lens}": clean a lens
  signal: send a signal
```

```yaml
agent:
  id: ignored-second-block
```
"#;
        let flow = r#"# a comment line
workflow:
  id: storm-night
  name: Storm Night
  type: rescue
  project_types: coastal
  custom_extension: {anything: goes}
  sequence:
    - agent: lighthouse-keeper
      action: light the lamp
      creates: [beam.log, " logbook.md "]
      requires_approval: true
      uses: lamp-checklist
    - agent: lighthouse-keeper
      action: light the lamp
      notes: twice on bad nights
    - agent: Lighthouse-Keeper/coastguard
      validates: rescue_plan
      optional: yes
    - agent: coastguard
      updates: [rescue_plan]
      approval: true
      repeats: per_ship
    - step: dawn
"#;
        let report = parse_files(&files(&[
            ("expansion/agents/lighthouse-keeper.md", agent),
            ("expansion/workflows/storm-night.yaml", flow),
        ]));
        assert!(report.errors.is_empty(), "{:?}", report.errors);

        let keeper = persona(&report.pack, "lighthouse-keeper");
        assert_eq!(keeper.name, "Ada");
        assert_eq!(keeper.icon, None);
        assert_eq!(keeper.role.as_deref(), Some("Guardian of the light"));
        assert_eq!(
            keeper.description.as_deref(),
            Some("Keeps the lamp lit through storms")
        );
        assert_eq!(keeper.capabilities, ["help", "polish-lens", "signal"]);

        let wf = workflow(&report.pack, "storm-night");
        assert_eq!(wf.kind.as_deref(), Some("rescue"));
        assert_eq!(wf.project_types, ["coastal"]);
        let keys: Vec<_> = wf.steps.iter().map(|s| s.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "lighthouse-keeper-light-the-lamp",
                "lighthouse-keeper-light-the-lamp-2",
                "lighthouse-keeper-coastguard-validate-rescue-plan",
                "coastguard-rescue-plan",
                "dawn",
            ]
        );
        assert_eq!(wf.steps[0].creates, ["beam.log", "logbook.md"]);
        assert!(wf.steps[0].requires_approval);
        assert_eq!(wf.steps[1].notes.as_deref(), Some("twice on bad nights"));
        assert!(!wf.steps[1].requires_approval);
        assert_eq!(
            wf.steps[2].persona_key.as_deref(),
            Some("lighthouse-keeper")
        );
        assert_eq!(wf.steps[2].action.as_deref(), Some("validate"));
        assert!(wf.steps[2].optional);
        assert!(wf.steps[3].requires_approval);
        assert_eq!(wf.steps[3].repeats.as_deref(), Some("per_ship"));
        assert!(wf.steps[4].is_control);
    }

    #[test]
    fn fenced_block_variants() {
        assert_eq!(
            fenced_yaml("intro\n```yml\na: 1\n```\n"),
            Some(("a: 1\n".to_owned(), 3))
        );
        assert_eq!(
            fenced_yaml("```text\nx: 1\n```\n~~~~yaml\nb: 2\n~~~~\n"),
            Some(("b: 2\n".to_owned(), 5))
        );
        // A shorter fence inside does not close a longer one.
        assert_eq!(
            fenced_yaml("````yaml\nc: |\n```\n````\n"),
            Some(("c: |\n```\n".to_owned(), 2))
        );
        // Unclosed fences run to the end of the file.
        assert_eq!(fenced_yaml("```YAML\nd: 4"), Some(("d: 4\n".to_owned(), 2)));
        assert_eq!(fenced_yaml("    ```yaml\nindented code\n"), None);
        assert_eq!(fenced_yaml("no fences"), None);
    }

    #[test]
    fn command_name_cleaning() {
        assert_eq!(
            clean_command("shard-doc {document} {destination}").as_deref(),
            Some("shard-doc")
        );
        assert_eq!(
            clean_command("gate {story}: write a gate").as_deref(),
            Some("gate")
        );
        assert_eq!(clean_command("*agent [name]").as_deref(), Some("agent"));
        assert_eq!(clean_command("{only}"), None);
        assert_eq!(clean_command("  "), None);
    }

    #[test]
    fn slugs_and_unique_keys() {
        assert_eq!(
            slugify("analyst/pm-review_draft_story"),
            "analyst-pm-review-draft-story"
        );
        assert_eq!(slugify("pm-prd.md (if needed)"), "pm-prd-md-if-needed");
        assert_eq!(slugify("--"), "");
        let mut used = HashSet::new();
        assert_eq!(unique_key("a", &mut used), "a");
        assert_eq!(unique_key("a", &mut used), "a-2");
        assert_eq!(unique_key("a-2", &mut used), "a-2-2");
        assert_eq!(unique_key("a", &mut used), "a-3");
    }

    #[test]
    fn classify_paths() {
        assert_eq!(classify("agents/po.md"), Some(FileKind::Agent));
        assert_eq!(classify("pack\\agent-teams\\t.YML"), Some(FileKind::Team));
        assert_eq!(classify("workflows/w.yaml"), Some(FileKind::Workflow));
        assert_eq!(classify("po.md"), None);
        assert_eq!(classify("agents/po.yaml"), None);
        assert_eq!(classify("workflows/.yaml"), None);
        assert_eq!(strip_yaml_extension("x.YAML"), "x");
        assert_eq!(strip_yaml_extension(".yml"), ".yml");
    }

    #[test]
    fn parse_dir_errors_and_empty_folders() {
        let missing = test_packs::own_pack().join("does-not-exist");
        assert!(matches!(parse_dir(&missing), Err(ImportError::Io { .. })));

        let empty = std::env::temp_dir().join(format!("catalog-v4-empty-{}", std::process::id()));
        fs::create_dir_all(&empty).expect("temp dir");
        let report = parse_dir(&empty);
        let _ = fs::remove_dir_all(&empty);
        let report = report.expect("empty folder is fine");
        assert_eq!(report, ImportReport::default());
    }

    #[test]
    fn parse_dir_reports_unreadable_files_and_skips_others() {
        let dir = std::env::temp_dir().join(format!("catalog-v4-mixed-{}", std::process::id()));
        let agents = dir.join("agents");
        fs::create_dir_all(&agents).expect("temp dir");
        fs::write(agents.join("scout.md"), GOOD_AGENT).expect("write");
        fs::write(agents.join("latin1.md"), [0xff_u8, 0xfe]).expect("write");
        fs::write(agents.join("README.txt"), "not an agent").expect("write");
        let report = parse_dir(&dir);
        let _ = fs::remove_dir_all(&dir);
        let report = report.expect("folder is readable");
        assert_eq!(report.files_read, 1);
        assert_eq!(report.pack.personas.len(), 1);
        assert_eq!(
            report.errors,
            [ImportFileError {
                path: "agents/latin1.md".into(),
                reason: "file is not valid UTF-8".into(),
            }]
        );
    }

    #[test]
    fn yaml_anchors_and_aliases_are_refused_in_every_kind_of_file() {
        let lol_workflow = "workflow:\n  id: lol\n  name: Lol\n  x: &a [l, l, l]\n  y: [*a, *a]\n  sequence:\n    - step: done\n";
        let alias_only =
            "workflow:\n  id: lol2\n  name: Lol\n  y: *a\n  sequence:\n    - step: done\n";
        let anchored_team = "bundle: &b\n  name: Crew\nagents:\n  - scout\n";
        let anchored_agent =
            "# a\n\nprose\n\n```yaml\nagent:\n  id: a\n  name: &n Al\n  title: *n\n```\n";
        let report = parse_files(&files(&[
            ("workflows/lol.yaml", lol_workflow),
            ("workflows/lol2.yaml", alias_only),
            ("agent-teams/crew.yaml", anchored_team),
            ("agents/a.md", anchored_agent),
            ("workflows/trail-run.yaml", GOOD_WORKFLOW),
        ]));
        let reasons: HashMap<&str, &str> = report
            .errors
            .iter()
            .map(|e| (e.path.as_str(), e.reason.as_str()))
            .collect();
        assert!(
            reasons["workflows/lol.yaml"].contains("an anchor at line 4"),
            "{reasons:?}"
        );
        // An alias without its anchor: still refused (as an alias or as
        // the parser's error), never expanded.
        assert!(
            reasons["workflows/lol2.yaml"].contains("alias")
                || reasons["workflows/lol2.yaml"].starts_with("YAML error"),
            "{reasons:?}"
        );
        assert!(reasons["agent-teams/crew.yaml"].contains("an anchor at line 1"));
        // File lines, not block lines: the agent's anchor is on line 8.
        assert!(
            reasons["agents/a.md"].contains("an anchor at line 8"),
            "{reasons:?}"
        );
        assert_eq!(report.errors.len(), 4, "{:?}", report.errors);
        assert_eq!(report.pack.workflows.len(), 1);
        assert!(report.pack.teams.is_empty() && report.pack.personas.is_empty());
    }

    #[test]
    fn ampersands_and_asterisks_in_text_are_not_anchors() {
        let workflow = "workflow:\n  id: r-and-d\n  name: \"R&D *fast*\"\n  description: 'Q&A & *notes*'\n  sequence:\n    - agent: analyst\n      notes: plain text with & and * inside, a&b *c\n    - step: done\n";
        let report = parse_files(&files(&[("workflows/r-and-d.yaml", workflow)]));
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.pack.workflows[0].name, "R&D *fast*");
        // A team's wildcard is a quoted asterisk.
        let team = "bundle:\n  name: All\nagents:\n  - \"*\"\n";
        let report = parse_files(&files(&[
            ("agents/scout.md", GOOD_AGENT),
            ("agent-teams/all.yaml", team),
        ]));
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.pack.teams[0].persona_keys, ["scout"]);
    }

    #[test]
    fn files_over_the_limits_are_reported_and_the_rest_imports() {
        let largest = GOOD_WORKFLOW.len().max(GOOD_AGENT.len());
        let limits = ImportLimits {
            max_file_bytes: largest,
            max_total_bytes: GOOD_WORKFLOW.len() + GOOD_AGENT.len(),
        };
        let big = format!("{GOOD_WORKFLOW}# {}\n", "-".repeat(largest));
        let input = files(&[
            ("workflows/big.yaml", &big),
            ("workflows/trail-run.yaml", GOOD_WORKFLOW),
            ("agents/scout.md", GOOD_AGENT),
            (
                "agent-teams/crew.yaml",
                "bundle:\n  name: Crew\nagents: [scout]\n",
            ),
        ]);
        let report = parse_files_with(&input, &limits);
        assert_eq!(report.errors.len(), 2, "{:?}", report.errors);
        assert_eq!(report.errors[0].path, "workflows/big.yaml");
        assert!(
            report.errors[0]
                .reason
                .contains(&format!("at most {largest} bytes"))
        );
        assert_eq!(
            report.errors[1].path, "agent-teams/crew.yaml",
            "{:?}",
            report.errors
        );
        assert!(report.errors[1].reason.contains("add up to more than"));
        assert_eq!(report.pack.workflows.len(), 1);
        assert_eq!(report.pack.personas.len(), 1);

        // From disk: the large file is refused by its size, not read.
        let dir = std::env::temp_dir().join(format!("catalog-v4-limits-{}", std::process::id()));
        fs::create_dir_all(dir.join("workflows")).expect("temp dir");
        fs::write(dir.join("workflows/big.yaml"), &big).expect("write");
        fs::write(dir.join("workflows/trail-run.yaml"), GOOD_WORKFLOW).expect("write");
        let report = parse_dir_with(&dir, &limits);
        let _ = fs::remove_dir_all(&dir);
        let report = report.expect("folder is readable");
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        assert_eq!(report.errors[0].path, "workflows/big.yaml");
        assert_eq!(report.pack.workflows.len(), 1);
    }

    #[test]
    fn deep_nesting_is_refused_before_libyaml_reads_it() {
        // 64 K unclosed `{a: ` (about the default file limit) took
        // libyaml over a minute in a debug build; six levels are plenty.
        for (what, text) in [
            (
                "flow mappings",
                "workflow: ".to_owned() + &"{a: ".repeat(60 * 1024),
            ),
            (
                "block sequences",
                "workflow: ".to_owned() + &"- ".repeat(120 * 1024),
            ),
        ] {
            let started = std::time::Instant::now();
            let report = parse_files(&files(&[("workflows/deep.yaml", &text)]));
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{what}: {:?}",
                started.elapsed()
            );
            assert_eq!(report.errors.len(), 1, "{what}");
            assert!(
                report.errors[0].reason.starts_with("YAML"),
                "{what}: {}",
                report.errors[0].reason
            );
        }
        let nested = (0..=MAX_YAML_DEPTH)
            .map(|i| format!("{}-\n", "  ".repeat(i)))
            .collect::<String>();
        let reason = prescan_yaml(&nested, 1).expect_err("too deep");
        assert!(reason.contains("deeper than 64 levels"), "{reason}");
    }
}
