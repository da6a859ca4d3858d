//! The module layers of `docs/architecture.md`, checked: every top-level
//! module of `src/` names (`crate::x`) only modules of a lower layer, so
//! there is no import cycle and a change to an upper layer never reaches
//! down; `config` is read by the composition root (`app`) alone; `domain`
//! does no I/O. Comments and unit-test modules are not counted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module and its layer, highest first. A module may use
/// modules of strictly lower layers only.
const LAYERS: &[(&str, u8)] = &[
    ("app", 10),
    ("demo", 10),
    ("config", 9),
    ("http", 8),
    ("graphql", 7),
    ("service", 6),
    ("events", 5),
    ("rls", 4),
    ("db", 3),
    ("auth", 3),
    ("catalog", 3),
    ("entity", 3),
    ("metrics", 3),
    ("domain", 2),
    ("ids", 1),
    ("net", 1),
    ("error", 0),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without comments and without its unit tests.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names through `crate::`.
fn used(code: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        out.push(name);
    }
    out
}

/// `module -> (used module -> first place)` for every module of `src/`.
fn graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    rust_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).expect("in src");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_string())
            .expect("name");
        if top == "lib" || top == "main" {
            continue;
        }
        let uses = g.entry(top.clone()).or_default();
        for m in used(&code(&f)) {
            if m != top {
                uses.entry(m).or_insert_with(|| rel.display().to_string());
            }
        }
    }
    g
}

#[test]
fn modules_use_only_lower_layers() {
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let g = graph();
    for m in g.keys() {
        assert!(
            layer.contains_key(m.as_str()),
            "src/{m} has no layer: add it to LAYERS here and to docs/architecture.md"
        );
    }
    let mut wrong = vec![];
    for (m, uses) in &g {
        for (u, at) in uses {
            let Some(&to) = layer.get(u.as_str()) else {
                continue; // `crate::` in a string or macro path, not a module
            };
            if to >= layer[m.as_str()] {
                wrong.push(format!("{m} -> {u} ({at})"));
            }
            if u == "config" && m != "app" {
                wrong.push(format!("{m} reads config ({at}); only app may"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "upward or sideways dependencies:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_domain_does_no_io() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
    let mut files = vec![];
    rust_files(&dir, &mut files);
    for f in files {
        let c = code(&f);
        for io in [
            "ConnectionTrait",
            "DatabaseConnection",
            "DatabaseTransaction",
            "async_graphql::Context",
            "tokio::",
            "reqwest",
            "std::fs",
            "std::net",
            "async fn",
        ] {
            assert!(!c.contains(io), "{} uses {io}", f.display());
        }
    }
}
