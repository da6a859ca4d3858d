//! Reading YAML safely (depth and anchors refused before libyaml sees them) and
//! the typed field accessors every file kind uses.

use super::is_valid_key;
use serde_yaml_ng::{Mapping, Value};
use std::collections::HashSet;

/// Parses YAML text whose first line is line `first_line` of the file, so
/// error messages point at the right line of the original file.
pub(crate) fn parse_yaml(text: &str, first_line: usize) -> Result<Value, String> {
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
pub(crate) const MAX_YAML_DEPTH: usize = 64;

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
pub(crate) fn prescan_yaml(text: &str, first_line: usize) -> Result<(), String> {
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
pub(crate) fn field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    match value.get(key) {
        Some(Value::Null) | None => None,
        Some(Value::Tagged(tagged)) => Some(&tagged.value),
        Some(v) => Some(v),
    }
}

/// Looks up a section that must be a mapping.
pub(crate) fn section<'a>(value: &'a Value, key: &str) -> Result<&'a Mapping, String> {
    match field(value, key) {
        None => Err(format!("missing {key} section")),
        Some(Value::Mapping(m)) => Ok(m),
        Some(_) => Err(format!("{key} must be a mapping")),
    }
}

/// Turns a scalar into trimmed text; empty text, null and collections give
/// `None` because they carry no usable value for a text field.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
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
pub(crate) fn optional_text(value: &Value, key: &str) -> Option<String> {
    field(value, key).and_then(scalar_text)
}

/// Reads a required text field; `what` is the dotted name used in errors.
pub(crate) fn required_text(value: &Value, key: &str, what: &str) -> Result<String, String> {
    match field(value, key) {
        None => Err(format!("missing {what}")),
        Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
            scalar_text(v).ok_or_else(|| format!("missing {what}"))
        }
        Some(_) => Err(format!("{what} must be text")),
    }
}

/// The `id` of a section (`agent`, `workflow`): required, and a valid
/// catalog key since teams and steps point at it.
pub(crate) fn section_key(section: &Value, name: &str) -> Result<String, String> {
    let key = required_text(section, "id", &format!("{name}.id"))?;
    if !is_valid_key(&key) {
        return Err(format!(
            "{name}.id '{key}' is not a valid key (use lowercase letters, digits and dashes)"
        ));
    }
    Ok(key)
}

/// Reads a field that may be one string or a list of strings, keeping only
/// non-empty entries, trimmed.
pub(crate) fn text_list(value: &Value, key: &str) -> Vec<String> {
    match field(value, key) {
        Some(Value::Sequence(items)) => items.iter().filter_map(scalar_text).collect(),
        Some(v) => scalar_text(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Reads a yes/no flag leniently: YAML booleans and the words true/yes count.
pub(crate) fn flag(value: &Value, key: &str) -> bool {
    match field(value, key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => {
            matches!(s.trim().to_ascii_lowercase().as_str(), "true" | "yes")
        }
        _ => false,
    }
}

/// Removes duplicates while keeping the first occurrence of each entry.
pub(crate) fn dedup_keep_order(items: Vec<String>) -> Vec<String> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}
