//! Workflow files: the sequence of steps, their personas, artifacts and
//! conditions, with unique keys.

use super::{WorkflowDef, WorkflowStepDef, is_valid_key};
use serde_yaml_ng::Value;
use std::collections::HashSet;

use super::*;

/// Parses one workflow file.
pub(crate) fn parse_workflow(content: &str) -> Result<WorkflowDef, String> {
    let doc = parse_yaml(content, 1)?;
    let workflow = Value::Mapping(section(&doc, "workflow")?.clone());

    let key = section_key(&workflow, "workflow")?;
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
pub(crate) fn slugify(text: &str) -> String {
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
pub(crate) fn unique_key(base: &str, used: &mut HashSet<String>) -> String {
    let mut key = base.to_owned();
    let mut n = 2;
    while used.contains(&key) {
        key = format!("{base}-{n}");
        n += 1;
    }
    used.insert(key.clone());
    key
}
