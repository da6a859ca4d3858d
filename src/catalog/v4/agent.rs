//! Agent files: the YAML block fenced in Markdown, and the persona and commands
//! it defines.

use super::PersonaDef;
use serde_yaml_ng::{Mapping, Value};

use super::*;

/// Finds the first fenced ```yaml / ```yml block (backticks or tildes) and
/// returns its text plus the 1-based file line where that text starts.
///
/// An unclosed fence runs to the end of the file, as in `CommonMark`.
pub(crate) fn fenced_yaml(markdown: &str) -> Option<(String, usize)> {
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
pub(crate) fn parse_agent(content: &str) -> Result<PersonaDef, String> {
    let (yaml, first_line) = fenced_yaml(content).ok_or("no fenced YAML block")?;
    let doc = parse_yaml(&yaml, first_line)?;
    if !doc.is_mapping() {
        return Err("the YAML block is not a mapping".to_owned());
    }
    let agent = Value::Mapping(section(&doc, "agent")?.clone());

    let key = section_key(&agent, "agent")?;
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
pub(crate) fn clean_command(raw: &str) -> Option<String> {
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
