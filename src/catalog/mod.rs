//! The catalog of personas, teams and workflows that Cerebral can staff an
//! agent team from.
//!
//! The catalog is deliberately plain data: the control plane reads it to offer
//! ready-made personas, team line-ups and step-by-step workflows, and the same
//! shapes are produced when a user imports a pack written in the V4 folder
//! format compatible with the BMad Method (see [`v4`]). Keeping one shape for
//! both sources means the rest of the system never cares where a definition
//! came from.

pub mod v4;

pub use v4::{
    ImportError, ImportFileError, ImportLimits, ImportReport, parse_dir, parse_dir_with,
    parse_files, parse_files_with,
};

use serde::{Deserialize, Serialize};

/// The embedded source of the built-in catalog, compiled into the binary so a
/// fresh install works without any files on disk.
const BUILTIN_YAML: &str = include_str!("builtin.yaml");

/// A self-contained set of personas, teams and workflows.
///
/// A pack is the unit of import and of the built-in catalog, so that teams and
/// workflows can refer to personas by key without a global registry.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogPack {
    /// Every persona of the pack, in the order they were defined, so listings
    /// stay stable between runs.
    #[serde(default)]
    pub personas: Vec<PersonaDef>,
    /// The team line-ups of the pack, which let a user start a whole team at
    /// once instead of picking personas one by one.
    #[serde(default)]
    pub teams: Vec<TeamDef>,
    /// The workflows of the pack, which tell the control plane who does what
    /// and in which order.
    #[serde(default)]
    pub workflows: Vec<WorkflowDef>,
}

/// One agent persona: who the agent pretends to be and what it can be asked
/// to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonaDef {
    /// The stable identifier (lowercase letters, digits and dashes) that teams
    /// and workflow steps use to point at this persona.
    pub key: String,
    /// The human first name the persona introduces itself with, so
    /// conversations feel like talking to a team member.
    pub name: String,
    /// The job title shown next to the name, which tells users at a glance
    /// what the persona is for.
    pub title: String,
    /// An optional emoji that makes the persona easy to spot in busy views.
    #[serde(default)]
    pub icon: Option<String>,
    /// A one-line statement of the persona's role, used in pickers and
    /// prompts.
    #[serde(default)]
    pub role: Option<String>,
    /// Guidance on when to pick this persona, so users can choose without
    /// reading its full definition.
    #[serde(default)]
    pub when_to_use: Option<String>,
    /// A longer description of the persona's identity and focus.
    #[serde(default)]
    pub description: Option<String>,
    /// The names of the commands the persona offers, without arguments, so the
    /// control plane can list and route them.
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// A named line-up of personas plus the workflows that line-up is meant to
/// run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamDef {
    /// The stable identifier of the team, taken from its file name on import.
    pub key: String,
    /// The display name of the team.
    pub name: String,
    /// An optional emoji that makes the team easy to spot in busy views.
    #[serde(default)]
    pub icon: Option<String>,
    /// A short explanation of what the team is good for.
    #[serde(default)]
    pub description: Option<String>,
    /// The personas in the team, in order and without duplicates; wildcards
    /// are already expanded so consumers never have to resolve them.
    #[serde(default)]
    pub persona_keys: Vec<String>,
    /// The keys of the workflows this team is meant to run, which may be empty
    /// for teams that are driven by hand.
    #[serde(default)]
    pub workflow_keys: Vec<String>,
}

/// A workflow: an ordered list of steps that takes a project from an idea (or
/// an existing code base) to delivered stories.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    /// The stable identifier of the workflow.
    pub key: String,
    /// The display name of the workflow.
    pub name: String,
    /// A short explanation of what the workflow is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The kind of project the workflow starts from, usually "greenfield" or
    /// "brownfield"; kept as free text so other packs can add kinds.
    #[serde(default)]
    pub kind: Option<String>,
    /// The project types the workflow suits, which helps a user pick one.
    #[serde(default)]
    pub project_types: Vec<String>,
    /// The steps in execution order.
    #[serde(default)]
    pub steps: Vec<WorkflowStepDef>,
}

/// One step of a workflow: which persona acts, what it produces and what it
/// needs first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowStepDef {
    /// The 0-based position of the step in the workflow, so order survives
    /// storage that does not keep list order.
    pub position: i32,
    /// An identifier unique within the workflow, so runs can record progress
    /// against a step even if the workflow is edited around it.
    pub key: String,
    /// The raw agent text as written (for example "analyst/pm" or "various"),
    /// kept because it can name several personas or none in particular.
    #[serde(default)]
    pub agent: Option<String>,
    /// The persona that should do the step by default: the first one named in
    /// `agent`, or none when the step is not tied to one persona.
    #[serde(default)]
    pub persona_key: Option<String>,
    /// What the step does, as a short machine-friendly phrase.
    #[serde(default)]
    pub action: Option<String>,
    /// The artifacts the step produces, named as in the source.
    #[serde(default)]
    pub creates: Vec<String>,
    /// The artifacts that must exist before the step can start.
    #[serde(default)]
    pub requires: Vec<String>,
    /// The artifacts the step may change, named as in the source.
    #[serde(default)]
    pub updates: Vec<String>,
    /// Whether the step may be skipped without breaking the workflow.
    #[serde(default)]
    pub optional: bool,
    /// The situation in which the step applies, if it is conditional.
    #[serde(default)]
    pub condition: Option<String>,
    /// How the step repeats (for example once per epic), if it does.
    #[serde(default)]
    pub repeats: Option<String>,
    /// Whether a human must approve the outcome before the workflow moves on.
    #[serde(default)]
    pub requires_approval: bool,
    /// Whether the step is only a marker (such as the end of the workflow or
    /// the point where a cycle repeats) rather than work for a persona.
    #[serde(default)]
    pub is_control: bool,
    /// Free-form guidance from the source pack; the built-in catalog leaves it
    /// out.
    #[serde(default)]
    pub notes: Option<String>,
}

/// Returns the built-in catalog: the core personas, teams and workflows
/// compatible with the BMad Method, described in Cerebral's own words.
///
/// The data is embedded in the binary, so this never touches the disk.
///
/// # Panics
///
/// Panics only if the embedded `builtin.yaml` is malformed, which the unit
/// tests rule out for every build.
#[must_use]
pub fn builtin() -> CatalogPack {
    serde_yaml_ng::from_str(BUILTIN_YAML)
        .expect("embedded builtin.yaml is valid (checked by tests)")
}

/// Tells whether `key` is a usable catalog key: non-empty and made only of
/// lowercase ASCII letters, digits and dashes, so it is safe in URLs, file
/// names and GraphQL arguments alike.
pub(crate) fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Where the V4 packs of the tests are: one file shared with the integration
/// tests, so the rules for finding the real BMad Method files live once.
#[cfg(test)]
#[path = "../../tests/support/bmad.rs"]
pub(crate) mod test_packs;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Clears the prose fields so only the structural facts are compared.
    fn facts_only(mut pack: CatalogPack) -> CatalogPack {
        for p in &mut pack.personas {
            p.role = None;
            p.when_to_use = None;
            p.description = None;
        }
        for t in &mut pack.teams {
            t.description = None;
        }
        for w in &mut pack.workflows {
            w.description = None;
            for s in &mut w.steps {
                s.notes = None;
            }
        }
        pack
    }

    #[test]
    fn builtin_parses_and_has_expected_sizes() {
        let pack = builtin();
        assert_eq!(pack.personas.len(), 10);
        assert_eq!(pack.teams.len(), 4);
        assert_eq!(pack.workflows.len(), 6);
    }

    /// Every piece of prose a pack holds, to check that none is copied.
    fn prose(pack: &CatalogPack) -> Vec<String> {
        let mut out = vec![];
        for p in &pack.personas {
            out.extend(p.role.clone());
            out.extend(p.when_to_use.clone());
            out.extend(p.description.clone());
        }
        for t in &pack.teams {
            out.extend(t.description.clone());
        }
        for w in &pack.workflows {
            out.extend(w.description.clone());
            out.extend(w.steps.iter().filter_map(|s| s.notes.clone()));
        }
        out
    }

    // The built-in catalog states the facts of the real V4 core release, so
    // it is compared with the real files; the project's own test pack is
    // smaller and cannot stand in for them.
    #[test]
    fn builtin_matches_fixture_facts() {
        let Some(dir) = test_packs::real_files("builtin_matches_fixture_facts") else {
            return;
        };
        let report = parse_dir(&dir).expect("fixture folder is readable");
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let expected = facts_only(report.pack);
        let actual = facts_only(builtin());
        // Compare piecewise first so a mismatch points at the culprit.
        assert_eq!(actual.personas, expected.personas);
        assert_eq!(actual.teams, expected.teams);
        for (a, e) in actual.workflows.iter().zip(&expected.workflows) {
            assert_eq!(a, e, "workflow {}", e.key);
        }
        assert_eq!(actual, expected);
    }

    #[test]
    fn builtin_has_own_prose_and_no_notes() {
        let pack = builtin();
        for p in &pack.personas {
            assert!(p.role.is_some(), "{} needs a role", p.key);
            assert!(p.when_to_use.is_some(), "{} needs when_to_use", p.key);
            assert!(p.description.is_some(), "{} needs a description", p.key);
        }
        for t in &pack.teams {
            assert!(t.description.is_some(), "{} needs a description", t.key);
        }
        for w in &pack.workflows {
            assert!(w.description.is_some(), "{} needs a description", w.key);
            assert!(w.steps.iter().all(|s| s.notes.is_none()), "{}", w.key);
        }
    }

    // None of the prose of the built-in catalog or of the project's own test
    // pack may be lifted from the source release.
    #[test]
    fn builtin_and_own_pack_copy_no_prose_of_the_real_files() {
        let Some(dir) =
            test_packs::real_files("builtin_and_own_pack_copy_no_prose_of_the_real_files")
        else {
            return;
        };
        let report = parse_dir(&dir).expect("fixture folder is readable");
        let source_prose: HashSet<String> = prose(&report.pack).into_iter().collect();
        assert!(source_prose.len() > 30, "the real files have prose");
        let own = parse_dir(&test_packs::own_pack()).expect("own pack is readable");
        for (what, pack) in [
            ("builtin.yaml", builtin()),
            ("tests/fixtures/bmad-v4", own.pack),
        ] {
            let texts = prose(&pack);
            assert!(!texts.is_empty(), "{what} has prose of its own");
            for text in texts {
                assert!(
                    !source_prose.contains(&text),
                    "{what}: copied prose: {text}"
                );
            }
        }
    }

    #[test]
    fn builtin_keys_are_valid_and_unique() {
        let pack = builtin();
        let mut seen = HashSet::new();
        for p in &pack.personas {
            assert!(is_valid_key(&p.key), "{}", p.key);
            assert!(seen.insert(p.key.clone()), "duplicate {}", p.key);
        }
        let personas: HashSet<_> = pack.personas.iter().map(|p| p.key.as_str()).collect();
        let workflows: HashSet<_> = pack.workflows.iter().map(|w| w.key.as_str()).collect();
        for t in &pack.teams {
            for k in &t.persona_keys {
                assert!(personas.contains(k.as_str()), "team {} -> {k}", t.key);
            }
            for k in &t.workflow_keys {
                assert!(workflows.contains(k.as_str()), "team {} -> {k}", t.key);
            }
        }
        for w in &pack.workflows {
            let mut step_keys = HashSet::new();
            for (i, s) in w.steps.iter().enumerate() {
                assert_eq!(s.position, i32::try_from(i).expect("few steps"));
                assert!(step_keys.insert(s.key.as_str()), "{}: {}", w.key, s.key);
                if let Some(pk) = &s.persona_key {
                    assert!(personas.contains(pk.as_str()), "{}: {pk}", w.key);
                }
            }
        }
    }

    #[test]
    fn key_validation() {
        assert!(is_valid_key("ux-expert"));
        assert!(is_valid_key("team2"));
        assert!(!is_valid_key(""));
        assert!(!is_valid_key("UX"));
        assert!(!is_valid_key("a_b"));
        assert!(!is_valid_key("a b"));
        assert!(!is_valid_key("é"));
    }

    #[test]
    fn pack_round_trips_through_json() {
        let pack = builtin();
        let json = serde_json::to_string(&pack).expect("serializable");
        let back: CatalogPack = serde_json::from_str(&json).expect("deserializable");
        assert_eq!(back, pack);
    }
}
