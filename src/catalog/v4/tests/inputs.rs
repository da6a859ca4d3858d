//! Broken, hostile and oversized inputs: what is refused, what is
//! reported per file, and that the rest still imports.

use super::*;

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
                reason: "duplicate persona key 'scout', first defined in agents/scout.md".into(),
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
    let alias_only = "workflow:\n  id: lol2\n  name: Lol\n  y: *a\n  sequence:\n    - step: done\n";
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
