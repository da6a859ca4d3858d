//! The V4 import against the project's own pack and, when present, the
//! real BMad Method V4 files: what each kind of file becomes.

use super::*;
use std::collections::HashSet;

use crate::catalog::test_packs;

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

/// The item of `items` whose key is `key`; a panic naming `what` when
/// there is none.
fn named<'a, T>(items: &'a [T], key: &str, key_of: impl Fn(&T) -> &str, what: &str) -> &'a T {
    items
        .iter()
        .find(|item| key_of(item) == key)
        .unwrap_or_else(|| panic!("{what} {key} missing"))
}

fn persona<'a>(pack: &'a CatalogPack, key: &str) -> &'a PersonaDef {
    named(&pack.personas, key, |p| &p.key, "persona")
}

fn team<'a>(pack: &'a CatalogPack, key: &str) -> &'a TeamDef {
    named(&pack.teams, key, |t| &t.key, "team")
}

fn workflow<'a>(pack: &'a CatalogPack, key: &str) -> &'a WorkflowDef {
    named(&pack.workflows, key, |w| &w.key, "workflow")
}

fn step<'a>(wf: &'a WorkflowDef, key: &str) -> &'a WorkflowStepDef {
    named(&wf.steps, key, |s| &s.key, &format!("{} step", wf.key))
}

/// Declares the two tests of each check on a whole pack: on the project's
/// own pack (always) and on the real V4 core files (skipped with a notice
/// when they cannot be found).
macro_rules! on_both_packs {
    ($($check:ident: $own:ident, $real:ident;)*) => {$(
        #[test]
        fn $own() {
            $check(&own_pack());
        }

        #[test]
        fn $real() {
            if let Some(report) = real_files(stringify!($real)) {
                $check(&report);
            }
        }
    )*};
}

on_both_packs! {
    check_imports_completely: own_pack_imports_completely, real_files_imports_completely;
    check_persona_po: own_pack_persona_po, real_files_persona_po;
    check_command_shapes: own_pack_command_shapes, real_files_command_shapes;
    check_greenfield_service_steps:
        own_pack_greenfield_service_steps, real_files_greenfield_service_steps;
    check_step_with_both_step_and_agent_is_work:
        own_pack_step_with_both_step_and_agent_is_work, real_files_step_with_both_step_and_agent_is_work;
    check_teams: own_pack_teams, real_files_teams;
}

const GOOD_AGENT: &str = "# scout\n\n```yaml\nagent:\n  id: scout\n  name: Pat\n  title: Trail Scout\n  icon: 🧭\ncommands:\n  - help: list\n  - \"scan {area}: look around\"\n```\n";

const GOOD_WORKFLOW: &str = "workflow:\n  id: trail-run\n  name: Trail Run\n  sequence:\n    - agent: scout\n      creates: map.md\n    - step: done\n";

fn check_imports_completely(report: &ImportReport) {
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.files_read, 20);
    assert_eq!(report.pack.personas.len(), 10);
    assert_eq!(report.pack.teams.len(), 4);
    assert_eq!(report.pack.workflows.len(), 6);
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

mod inputs;
