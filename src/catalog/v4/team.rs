//! Team files: members and workflows, with `*` wildcards expanded.

use super::{TeamDef, is_valid_key};
use serde_yaml_ng::Value;

use super::*;

/// Parses one team file; the `"*"` wildcard is kept and expanded later by
/// [`parse_files`].
pub(crate) fn parse_team(path: &str, content: &str) -> Result<TeamDef, String> {
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
pub(crate) fn strip_yaml_extension(name: &str) -> &str {
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
pub(crate) fn expand_wildcard(keys: &[String], all_personas: &[String]) -> Vec<String> {
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
