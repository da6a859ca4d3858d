//! The shape of a parsed document, measured with each fragment counted
//! once.
//!
//! A document may spread a fragment that spreads another ten times, and so
//! on: 25 such levels fit in 2 KB and expand to 10²⁵ fields. Walking the
//! expansion (as a naive check does, and as async-graphql's own recursion
//! check and complexity visitor do) never ends. Here every fragment is
//! measured once per context and its figures are reused wherever it is
//! spread, with saturating arithmetic, so the cost of the walk is linear in
//! the document's size. The walk stops at the first limit crossed, and a
//! fragment that spreads itself is refused at once (validation would
//! refuse it too, but only after the library's checks expanded it).
//!
//! Introspection is measured too. Its depth has a limit of its own (the
//! standard introspection query that GraphiQL sends is deeper than any
//! data query needs to be), and its cost multiplies through its lists with
//! the sizes of this schema: `__schema { types { fields { type { fields
//! … } } } }` costs types × fields × fields, the answer it would build.

use crate::error::code;
use std::collections::HashMap;

use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{Positioned, ServerError};

use super::{Limits, refuse};

/// How many of each introspection object this schema has: the list sizes
/// the introspection cost multiplies by. Read once from the schema's SDL.
#[derive(Debug, Clone, Default)]
pub struct IntrospectionSizes {
    /// Types, the introspection types and built-in scalars included.
    pub types: u64,
    /// Fields over all types, and the most on one type.
    pub fields: (u64, u64),
    /// Arguments over all fields, and the most on one field.
    pub args: (u64, u64),
    /// Input fields over all input types, and the most on one.
    pub input_fields: (u64, u64),
    /// Enum values over all enums, and the most in one.
    pub enum_values: (u64, u64),
    /// Interfaces implemented, over all types and the most by one.
    pub interfaces: (u64, u64),
    /// Possible types over all abstract types, and the most of one.
    pub possible_types: (u64, u64),
    /// Directives, and their arguments over all of them and the most on one.
    pub directives: u64,
    /// See `directives`.
    pub directive_args: (u64, u64),
}

/// The introspection types and scalars every schema has besides its own:
/// `__Schema`, `__Type`, `__Field`, `__InputValue`, `__EnumValue`,
/// `__Directive`, `__TypeKind`, `__DirectiveLocation`, and five scalars.
const BUILT_IN_TYPES: u64 = 13;
/// The most fields of an introspection type (`__Type` has 12).
const BUILT_IN_MAX_FIELDS: u64 = 12;
/// The most values of an introspection enum (`__DirectiveLocation`).
const BUILT_IN_MAX_ENUM_VALUES: u64 = 19;
/// `@skip`, `@include`, `@deprecated`, `@specifiedBy`, `@oneOf`.
const BUILT_IN_DIRECTIVES: u64 = 5;

impl IntrospectionSizes {
    /// The sizes of the schema printed as `sdl`, introspection types
    /// included; a schema that does not parse gives sizes that refuse
    /// nothing but the shape limits.
    pub fn of_sdl(sdl: &str) -> Self {
        use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
        let mut s = IntrospectionSizes {
            types: BUILT_IN_TYPES,
            fields: (60, BUILT_IN_MAX_FIELDS),
            args: (20, 2),
            input_fields: (0, 0),
            enum_values: (40, BUILT_IN_MAX_ENUM_VALUES),
            interfaces: (0, 0),
            possible_types: (0, 0),
            directives: BUILT_IN_DIRECTIVES,
            directive_args: (BUILT_IN_DIRECTIVES, 1),
        };
        let Ok(doc) = async_graphql::parser::parse_schema(sdl) else {
            return s;
        };
        fn add(total: &mut (u64, u64), n: usize) {
            let n = n as u64;
            total.0 += n;
            total.1 = total.1.max(n);
        }
        for def in &doc.definitions {
            match def {
                TypeSystemDefinition::Type(t) => {
                    s.types += 1;
                    match &t.node.kind {
                        TypeKind::Object(o) => {
                            add(&mut s.fields, o.fields.len());
                            add(&mut s.interfaces, o.implements.len());
                            for f in &o.fields {
                                add(&mut s.args, f.node.arguments.len());
                            }
                        }
                        TypeKind::Interface(i) => {
                            add(&mut s.fields, i.fields.len());
                            add(&mut s.interfaces, i.implements.len());
                            for f in &i.fields {
                                add(&mut s.args, f.node.arguments.len());
                            }
                        }
                        TypeKind::Union(u) => add(&mut s.possible_types, u.members.len()),
                        TypeKind::Enum(e) => add(&mut s.enum_values, e.values.len()),
                        TypeKind::InputObject(i) => add(&mut s.input_fields, i.fields.len()),
                        TypeKind::Scalar => {}
                    }
                }
                TypeSystemDefinition::Directive(d) => {
                    s.directives += 1;
                    add(&mut s.directive_args, d.node.arguments.len());
                }
                TypeSystemDefinition::Schema(_) => {}
            }
        }
        // An interface's possible types are the types implementing it: at
        // most every implementation there is.
        s.possible_types.0 += s.interfaces.0;
        s.possible_types.1 = s.possible_types.1.max(s.interfaces.0);
        s
    }
}

/// What the walk found: the figures the limits are checked against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outline {
    /// Selections (fields, fragment spreads, inline fragments) with every
    /// spread expanded.
    pub selections: u64,
    /// Aliased fields with every spread expanded.
    pub aliases: u64,
    /// Fields directly in the selection set (spreads and inline fragments
    /// flattened): the root fields of an operation.
    pub top_fields: u64,
    /// Deepest nesting of data fields.
    pub depth: u32,
    /// Deepest nesting inside `__schema` or `__type` (which count as 1).
    pub introspection_depth: u32,
    /// What the introspection in it builds, in objects and values, with
    /// lists multiplied by this schema's sizes.
    pub introspection_cost: u64,
}

impl Outline {
    fn then(self, o: Outline) -> Outline {
        Outline {
            selections: self.selections.saturating_add(o.selections),
            aliases: self.aliases.saturating_add(o.aliases),
            top_fields: self.top_fields.saturating_add(o.top_fields),
            depth: self.depth.max(o.depth),
            introspection_depth: self.introspection_depth.max(o.introspection_depth),
            introspection_cost: self.introspection_cost.saturating_add(o.introspection_cost),
        }
    }
}

/// Which introspection object a selection set is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Schema,
    Type,
    Field,
    InputValue,
    EnumValue,
    Directive,
}

/// Where a selection set is: in data, or on introspection objects — either
/// all objects of its kind that the schema has (`__schema { types { … } }`
/// enumerates every type once), or one object of it, to be multiplied by
/// however many the parent selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Place {
    Data,
    All(Kind),
    One(Kind),
}

/// The walk over one document.
pub struct Walk<'a> {
    doc: &'a ExecutableDocument,
    limits: &'a Limits,
    sizes: &'a IntrospectionSizes,
    /// Each fragment's outline per place, measured once.
    memo: HashMap<(&'a str, Place), Outline>,
    /// Fragments being measured: a spread of one of them is a cycle.
    open: Vec<&'a str>,
    /// Selections visited: the walk's work, bounded by the document's size
    /// times the number of places (see the property tests).
    steps: u64,
}

impl<'a> Walk<'a> {
    /// Measures every operation of `doc` and refuses it at the first limit
    /// it crosses. Returns the largest introspection cost of its
    /// operations, which the complexity check adds to the data's.
    pub fn check(
        doc: &'a ExecutableDocument,
        limits: &'a Limits,
        sizes: &'a IntrospectionSizes,
    ) -> Result<Outline, ServerError> {
        Self::counted(doc, limits, sizes).0
    }

    /// [`Walk::check`], and the selections it visited.
    pub(crate) fn counted(
        doc: &'a ExecutableDocument,
        limits: &'a Limits,
        sizes: &'a IntrospectionSizes,
    ) -> (Result<Outline, ServerError>, u64) {
        let mut walk = Walk {
            doc,
            limits,
            sizes,
            memo: HashMap::new(),
            open: Vec::new(),
            steps: 0,
        };
        let result = walk.operations();
        (result, walk.steps)
    }

    fn operations(&mut self) -> Result<Outline, ServerError> {
        let (doc, limits) = (self.doc, self.limits);
        let walk = self;
        let mut worst = Outline::default();
        for (_, op) in doc.operations.iter() {
            walk.directives(op.node.directives.len(), "operation")?;
            let o = walk.set(&op.node.selection_set, Place::Data)?;
            if o.top_fields > limits.max_root_fields as u64 {
                return Err(refuse(
                    format!(
                        "the operation selects {} root fields; at most {} are accepted",
                        o.top_fields, limits.max_root_fields
                    ),
                    code::MAX_ROOT_FIELDS_EXCEEDED,
                ));
            }
            worst = Outline {
                top_fields: worst.top_fields.max(o.top_fields),
                ..worst.then(o)
            };
        }
        // Fragments that no operation spreads are refused by validation;
        // their directives are still bounded here, as the library's own
        // directive check walks them.
        for (_, f) in doc.fragments.iter() {
            walk.directives(f.node.directives.len(), "fragment")?;
        }
        Ok(worst)
    }

    fn directives(&self, n: usize, on: &str) -> Result<(), ServerError> {
        if n > self.limits.max_directives {
            return Err(refuse(
                format!(
                    "a {on} has {n} directives; at most {} are accepted",
                    self.limits.max_directives
                ),
                code::MAX_DIRECTIVES_EXCEEDED,
            ));
        }
        Ok(())
    }

    /// Refuses once a running figure is past its limit; every figure only
    /// grows as the walk goes up, so a part over a limit means the whole is.
    fn bound(&self, o: Outline) -> Result<Outline, ServerError> {
        let l = self.limits;
        if o.selections > l.max_fields as u64 {
            return Err(refuse(
                format!(
                    "the document selects more than {} fields with its fragments expanded",
                    l.max_fields
                ),
                code::MAX_FIELDS_EXCEEDED,
            ));
        }
        if o.aliases > l.max_aliases as u64 {
            return Err(refuse(
                format!("the document uses more than {} aliases", l.max_aliases),
                code::MAX_ALIASES_EXCEEDED,
            ));
        }
        if o.depth as usize > l.max_depth {
            return Err(refuse(
                format!(
                    "the operation is nested more than {} fields deep",
                    l.max_depth
                ),
                code::MAX_DEPTH_EXCEEDED,
            ));
        }
        if o.introspection_depth as usize > l.max_introspection_depth {
            return Err(refuse(
                format!(
                    "the introspection is nested more than {} fields deep (the standard introspection query needs {})",
                    l.max_introspection_depth,
                    super::STANDARD_INTROSPECTION_DEPTH
                ),
                code::MAX_DEPTH_EXCEEDED,
            ));
        }
        if o.introspection_cost > l.max_complexity as u64 {
            return Err(super::too_complex(l.max_complexity));
        }
        Ok(o)
    }

    fn set(
        &mut self,
        set: &'a Positioned<SelectionSet>,
        at: Place,
    ) -> Result<Outline, ServerError> {
        let mut sum = Outline::default();
        for sel in &set.node.items {
            self.steps += 1;
            let o = match &sel.node {
                Selection::Field(f) => self.field(&f.node, at)?,
                Selection::InlineFragment(f) => {
                    self.directives(f.node.directives.len(), "fragment")?;
                    let inner = self.set(&f.node.selection_set, at)?;
                    Outline {
                        selections: inner.selections.saturating_add(1),
                        ..inner
                    }
                }
                Selection::FragmentSpread(s) => {
                    self.directives(s.node.directives.len(), "fragment spread")?;
                    let inner = self.spread(&s.node.fragment_name.node, at)?;
                    Outline {
                        selections: inner.selections.saturating_add(1),
                        ..inner
                    }
                }
            };
            sum = self.bound(sum.then(o))?;
        }
        Ok(sum)
    }

    fn spread(&mut self, name: &'a str, at: Place) -> Result<Outline, ServerError> {
        if let Some(o) = self.memo.get(&(name, at)) {
            return Ok(*o);
        }
        if self.open.contains(&name) {
            return Err(super::with_code(
                ServerError::new(
                    format!("Cannot spread fragment \"{name}\" within itself."),
                    None,
                ),
                code::GRAPHQL_VALIDATION_FAILED,
            ));
        }
        // An unknown fragment is refused by validation; it adds nothing.
        let Some((_, fragment)) = self.doc.fragments.iter().find(|(n, _)| n.as_str() == name)
        else {
            return Ok(Outline::default());
        };
        self.open.push(name);
        let o = self.set(&fragment.node.selection_set, at);
        self.open.pop();
        let o = o?;
        self.memo.insert((name, at), o);
        Ok(o)
    }

    fn field(&mut self, field: &'a Field, at: Place) -> Result<Outline, ServerError> {
        self.directives(field.directives.len(), "field")?;
        let name = field.name.node.as_str();
        let own = Outline {
            selections: 1,
            aliases: u64::from(field.alias.is_some()),
            top_fields: 1,
            ..Outline::default()
        };
        if !self.limits.introspection && name.starts_with("__") && name != "__typename" {
            return Err(refuse(
                "introspection is switched off on this server".into(),
                code::INTROSPECTION_DISABLED,
            ));
        }
        let (child_place, per_parent, node_count) = match at {
            Place::Data => match name {
                "__schema" => (Place::All(Kind::Schema), 1, 1),
                "__type" => (Place::One(Kind::Type), 1, 1),
                _ => {
                    let inner = self.set(&field.selection_set, Place::Data)?;
                    return Ok(Outline {
                        depth: inner.depth.saturating_add(u32::from(name != "__typename")),
                        top_fields: 1,
                        ..own.then(Outline {
                            top_fields: 0,
                            ..inner
                        })
                    });
                }
            },
            Place::All(kind) | Place::One(kind) => {
                let all = matches!(at, Place::All(_));
                let parents = if all { self.count(kind) } else { 1 };
                match self.relation(kind, name, all) {
                    Some((child, n)) => (child, n, parents),
                    None => {
                        // A leaf, one value per parent — or a field that
                        // validation will refuse, whose selections must
                        // still be counted: the library's own checks
                        // expand them before validation runs.
                        let inner = self.set(&field.selection_set, Place::Data)?;
                        return Ok(Outline {
                            selections: own.selections.saturating_add(inner.selections),
                            aliases: own.aliases.saturating_add(inner.aliases),
                            top_fields: 1,
                            depth: inner.depth,
                            introspection_depth: inner.introspection_depth.saturating_add(1),
                            introspection_cost: parents.saturating_add(inner.introspection_cost),
                        });
                    }
                }
            }
        };
        let inner = self.set(&field.selection_set, child_place)?;
        let cost = match child_place {
            // `inner` already covers every object of the kind.
            Place::All(_) => inner.introspection_cost,
            _ => per_parent.saturating_mul(inner.introspection_cost),
        };
        Ok(Outline {
            selections: own.selections.saturating_add(inner.selections),
            aliases: own.aliases.saturating_add(inner.aliases),
            top_fields: 1,
            depth: 0,
            introspection_depth: inner.introspection_depth.saturating_add(1),
            introspection_cost: node_count.saturating_add(cost),
        })
    }

    /// How many objects of `kind` the schema has.
    fn count(&self, kind: Kind) -> u64 {
        let s = self.sizes;
        match kind {
            Kind::Schema => 1,
            Kind::Type => s.types,
            Kind::Field => s.fields.0,
            Kind::InputValue => s.args.0 + s.input_fields.0 + s.directive_args.0,
            Kind::EnumValue => s.enum_values.0,
            Kind::Directive => s.directives,
        }
    }

    /// The objects field `name` of `kind` leads to, and how many of them:
    /// for all parents together when `all` (then `Place::All` when they
    /// are every object of their kind, each once), else for one parent.
    fn relation(&self, kind: Kind, name: &str, all: bool) -> Option<(Place, u64)> {
        let s = self.sizes;
        // (child kind, total over all parents, most for one parent, whether
        // all parents together list every child exactly once)
        let (child, total, most, enumerates) = match (kind, name) {
            (Kind::Schema, "types") => (Kind::Type, s.types, s.types, true),
            (Kind::Schema, "directives") => (Kind::Directive, s.directives, s.directives, true),
            (Kind::Schema, "queryType" | "mutationType" | "subscriptionType") => {
                (Kind::Type, 1, 1, false)
            }
            (Kind::Type, "fields") => (Kind::Field, s.fields.0, s.fields.1, true),
            (Kind::Type, "inputFields") => {
                (Kind::InputValue, s.input_fields.0, s.input_fields.1, false)
            }
            (Kind::Type, "enumValues") => (Kind::EnumValue, s.enum_values.0, s.enum_values.1, true),
            (Kind::Type, "interfaces") => (Kind::Type, s.interfaces.0, s.interfaces.1, false),
            (Kind::Type, "possibleTypes") => {
                (Kind::Type, s.possible_types.0, s.possible_types.1, false)
            }
            (Kind::Type, "ofType") => (Kind::Type, s.types, 1, false),
            (Kind::Field, "args") => (Kind::InputValue, s.args.0, s.args.1, false),
            (Kind::Field | Kind::InputValue, "type") => (Kind::Type, self.count(kind), 1, false),
            (Kind::Directive, "args") => (
                Kind::InputValue,
                s.directive_args.0,
                s.directive_args.1,
                false,
            ),
            _ => return None,
        };
        Some(match (all, enumerates) {
            (true, true) => (Place::All(child), 1),
            (true, false) => (Place::One(child), total),
            (false, _) => (Place::One(child), most),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// graphql-js 16.15's `getIntrospectionQuery()` with every option on:
    /// the largest standard introspection query (GraphiQL sends a subset).
    const STANDARD: &str = include_str!("../../../tests/fixtures/introspection-query.graphql");

    fn sizes() -> IntrospectionSizes {
        IntrospectionSizes::of_sdl(&crate::graphql::sdl())
    }

    fn check(query: &str) -> Result<Outline, ServerError> {
        let doc = async_graphql::parser::parse_query(query).expect("parses");
        Walk::check(&doc, &Limits::default(), &sizes())
    }

    fn code(e: &ServerError) -> String {
        e.extensions
            .as_ref()
            .and_then(|x| x.get("code"))
            .map(|v| v.to_string().trim_matches('"').to_string())
            .unwrap_or_default()
    }

    #[test]
    fn the_standard_introspection_query_passes_at_the_default_limits() {
        let o = check(STANDARD).expect("admitted");
        assert_eq!(
            o.introspection_depth as usize,
            crate::graphql::limits::STANDARD_INTROSPECTION_DEPTH
        );
        assert!(
            o.introspection_cost < Limits::default().max_complexity as u64,
            "{o:?}"
        );
        assert!(o.introspection_cost > 1_000, "{o:?}");
    }

    #[test]
    fn one_more_level_of_introspection_is_refused() {
        // TypeRef is the last fragment, and its last `ofType` the deepest.
        let at = STANDARD.rfind("ofType {").expect("TypeRef") + "ofType {".len();
        let deeper = format!("{} ofType {{ kind }} {}", &STANDARD[..at], &STANDARD[at..]);
        let e = check(&deeper).expect_err("refused");
        assert_eq!(code(&e), "MAX_DEPTH_EXCEEDED", "{e:?}");
    }

    // Fragment bombs, cycles, introspection walks and aliases through
    // fragments are in the attack corpus (`fuzz.rs`).

    #[test]
    fn root_fields_count_through_fragments() {
        let q = format!(
            "query {{ ...A ...A }} fragment A on Query {{ {} }}",
            "__typename ".repeat(11)
        );
        let e = check(&q).expect_err("refused");
        assert_eq!(code(&e), "MAX_ROOT_FIELDS_EXCEEDED", "{e:?}");
    }

    #[test]
    fn data_depth_counts_through_fragments_and_skips_typename() {
        let ok = check("{ projects { nodes { tasks { nodes { id __typename } } } } }").expect("ok");
        assert_eq!(ok.depth, 5);
        let deep = format!("{{ {} x {} }}", "a { ".repeat(10), "} ".repeat(10));
        let e = check(&deep).expect_err("refused");
        assert_eq!(code(&e), "MAX_DEPTH_EXCEEDED", "{e:?}");
    }
}
