//! Property tests of the front door: random documents (fragments that
//! spread each other, cycles included, aliases, directives, inline
//! fragments, introspection fields) and random text. Whatever comes in,
//! the front door never panics and its work stays linear in the
//! document's size; where the document is small enough to expand by brute
//! force, its count of expanded selections is exact. The attacks found by
//! the review are kept as a corpus of regression inputs
//! (`tests/fixtures/front-door-attacks`, each with the code it must get).

use proptest::prelude::*;

use super::shape::{IntrospectionSizes, Walk};
use super::{Limits, admit};

/// Field names the generator draws from: data, introspection and leaves.
const NAMES: &[&str] = &[
    "a",
    "b",
    "projects",
    "nodes",
    "__typename",
    "__schema",
    "__type",
    "types",
    "fields",
    "type",
    "ofType",
    "args",
    "possibleTypes",
    "interfaces",
    "name",
];

/// Places a fragment can be measured in: data, and each of six
/// introspection kinds either all at once or one at a time.
const PLACES: u64 = 13;

#[derive(Debug, Clone)]
enum Sel {
    Field {
        name: usize,
        alias: bool,
        directives: usize,
        children: Vec<Sel>,
    },
    Spread(usize),
    Inline(Vec<Sel>),
}

fn selection(fragments: usize) -> impl Strategy<Value = Sel> {
    let leaf = prop_oneof![
        (0..NAMES.len(), any::<bool>(), 0..3usize).prop_map(|(name, alias, directives)| {
            Sel::Field {
                name,
                alias,
                directives,
                children: vec![],
            }
        }),
        (0..fragments).prop_map(Sel::Spread),
    ];
    leaf.prop_recursive(4, 48, 4, |inner| {
        prop_oneof![
            (
                0..NAMES.len(),
                any::<bool>(),
                0..3usize,
                prop::collection::vec(inner.clone(), 1..4)
            )
                .prop_map(|(name, alias, directives, children)| Sel::Field {
                    name,
                    alias,
                    directives,
                    children,
                }),
            prop::collection::vec(inner, 1..4).prop_map(Sel::Inline),
        ]
    })
}

/// A document: one operation and up to five fragments, as text, with the
/// number of selections written in it.
fn document() -> impl Strategy<Value = (String, u64)> {
    (1..6usize)
        .prop_flat_map(|n| {
            (
                prop::collection::vec(selection(n), 1..4),
                prop::collection::vec(prop::collection::vec(selection(n), 1..5), n),
            )
        })
        .prop_map(|(op, fragments)| {
            let mut text = String::from("query ");
            let mut count = 0;
            render(&op, &mut text, &mut count);
            for (i, body) in fragments.iter().enumerate() {
                text.push_str(&format!("\nfragment F{i} on Query "));
                render(body, &mut text, &mut count);
            }
            (text, count)
        })
}

fn render(set: &[Sel], out: &mut String, count: &mut u64) {
    out.push_str("{ ");
    for (i, sel) in set.iter().enumerate() {
        *count += 1;
        match sel {
            Sel::Field {
                name,
                alias,
                directives,
                children,
            } => {
                if *alias {
                    out.push_str(&format!("x{i}: "));
                }
                out.push_str(NAMES[*name]);
                for _ in 0..*directives {
                    out.push_str(" @include(if: true)");
                }
                out.push(' ');
                if !children.is_empty() {
                    render(children, out, count);
                }
            }
            Sel::Spread(f) => out.push_str(&format!("...F{f} ")),
            Sel::Inline(children) => {
                out.push_str("... ");
                render(children, out, count);
            }
        }
    }
    out.push_str("} ");
}

/// Limits no generated document reaches, so the walk's counts can be
/// compared with a brute-force expansion.
fn unbounded() -> Limits {
    Limits {
        max_fields: usize::MAX,
        max_aliases: usize::MAX,
        max_depth: usize::MAX,
        max_introspection_depth: usize::MAX,
        max_root_fields: usize::MAX,
        max_directives: usize::MAX,
        max_complexity: usize::MAX,
        ..Limits::default()
    }
}

/// This schema's sizes, read once (building the schema is the slow part).
fn sizes() -> IntrospectionSizes {
    static SIZES: std::sync::OnceLock<IntrospectionSizes> = std::sync::OnceLock::new();
    SIZES
        .get_or_init(|| IntrospectionSizes::of_sdl(&crate::graphql::sdl()))
        .clone()
}

/// Expands every spread where it stands, giving up past `cap`; `None` when
/// a fragment spreads itself (directly or not) or the cap is passed.
fn brute_force(doc: &async_graphql::parser::types::ExecutableDocument, cap: u64) -> Option<u64> {
    use async_graphql::parser::types::{Selection, SelectionSet};
    fn walk(
        doc: &async_graphql::parser::types::ExecutableDocument,
        set: &SelectionSet,
        path: &mut Vec<String>,
        n: &mut u64,
        cap: u64,
    ) -> bool {
        for sel in &set.items {
            *n += 1;
            if *n > cap {
                return false;
            }
            let ok = match &sel.node {
                Selection::Field(f) => walk(doc, &f.node.selection_set.node, path, n, cap),
                Selection::InlineFragment(f) => walk(doc, &f.node.selection_set.node, path, n, cap),
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.to_string();
                    if path.contains(&name) {
                        return false;
                    }
                    match doc.fragments.get(&s.node.fragment_name.node) {
                        Some(f) => {
                            path.push(name);
                            let ok = walk(doc, &f.node.selection_set.node, path, n, cap);
                            path.pop();
                            ok
                        }
                        None => true,
                    }
                }
            };
            if !ok {
                return false;
            }
        }
        true
    }
    let mut n = 0;
    for (_, op) in doc.operations.iter() {
        if !walk(
            doc,
            &op.node.selection_set.node,
            &mut Vec::new(),
            &mut n,
            cap,
        ) {
            return None;
        }
    }
    Some(n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the fragments do, the walk visits each written selection
    /// at most once per place, and never panics.
    #[test]
    fn the_walk_is_linear_in_the_document(doc in document()) {
        let (text, written) = doc;
        let parsed = async_graphql::parser::parse_query(&text).expect("generated documents parse");
        let sizes = sizes();
        for limits in [Limits::default(), unbounded()] {
            let (_, steps) = Walk::counted(&parsed, &limits, &sizes);
            prop_assert!(steps <= PLACES * written, "{steps} steps for {written} selections:\n{text}");
        }
        // The whole front door, at the default limits, too.
        let _ = admit(&text, &Limits::default(), &sizes, None);
    }

    /// Counted once per fragment, the expanded selections are exactly what
    /// expanding every spread gives; a cycle is refused as one.
    #[test]
    fn the_walk_counts_what_expansion_would_give(doc in document()) {
        let (text, _) = doc;
        let parsed = async_graphql::parser::parse_query(&text).expect("generated documents parse");
        let (outline, _) = Walk::counted(&parsed, &unbounded(), &sizes());
        match (brute_force(&parsed, 200_000), outline) {
            (Some(n), Ok(o)) => prop_assert_eq!(o.selections, n, "{}", text),
            (None, Err(e)) => prop_assert!(e.message.contains("within itself"), "{e:?}"),
            // Past the brute-force cap: only the walk can tell.
            (None, Ok(o)) => prop_assert!(o.selections > 200_000, "{o:?}"),
            (Some(n), Err(e)) => prop_assert!(false, "{n} selections, yet refused: {e:?}\n{text}"),
        }
    }

    /// Random text from GraphQL's punctuation and a few words: the front
    /// door answers (admits or refuses), never panics, whatever the nesting.
    #[test]
    fn random_text_never_panics(text in "[{}()\\[\\]:.@$!=,\" a-z_0-9#\\n]{0,4000}") {
        let _ = admit(&text, &Limits::default(), &sizes(), None);
    }

    /// Deep nesting of every bracket kind, up to the token limit.
    #[test]
    fn deep_brackets_never_reach_the_parser(depth in 65usize..5_000, kind in 0..3usize) {
        let (open, close) = [("{a", "}"), ("(x: [", "])"), ("[", "]")][kind];
        let text = format!("{{ f{}{} }}", open.repeat(depth), close.repeat(depth));
        let e = admit(&text, &Limits::default(), &sizes(), None).expect_err("refused");
        let code = e.extensions.as_ref().and_then(|x| x.get("code")).map(|c| c.to_string());
        prop_assert!(
            matches!(code.as_deref(), Some("\"MAX_DEPTH_EXCEEDED\"") | Some("\"DOCUMENT_TOO_LARGE\"")),
            "{code:?}"
        );
    }
}

/// The reproduced attacks, each refused with its code and quickly.
#[test]
fn the_attack_corpus_is_refused_with_its_codes() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/front-door-attacks");
    let sizes = sizes();
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus folder") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("readable");
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} names its code on line 1", path.display()));
        let started = std::time::Instant::now();
        let e = admit(&text, &Limits::default(), &sizes, None)
            .expect_err(&format!("{} is refused", path.display()));
        let code = e
            .extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .map(|c| c.to_string().trim_matches('"').to_string());
        assert_eq!(code.as_deref(), Some(expect), "{}: {e:?}", path.display());
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "{} took {:?}",
            path.display(),
            started.elapsed()
        );
        seen += 1;
    }
    assert!(seen >= 10, "the corpus has {seen} files");
}
