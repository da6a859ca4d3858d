//! Limits on what one operation may ask for, checked before anything runs.
//!
//! An out-of-the-box GraphQL server executes whatever it is sent: a
//! thousand aliases of one expensive field, a three-level fan-out of
//! hundred-row pages, a megabyte of tokens for the parser. Each limit here
//! refuses such a document with its own stable `extensions.code`, before
//! any resolver runs.
//!
//! The size and token limits are checked before parsing (so the parser
//! never sees the document), the shape limits — depth, aliases, root fields,
//! directives — on the parsed document, and complexity by async-graphql's
//! validation from each field's cost (a page costs `first × child`, see
//! [`super::page_cost`]). Depth does not count introspection fields: the
//! standard introspection query that GraphiQL sends is nested some twelve
//! levels deep, but only walks the (small, fixed) schema.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextRequest,
    NextValidation,
};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Positioned, Response, ServerError, ServerResult, ValidationResult, Variables};

use super::codes::with_code;

/// The limits, from configuration (`CEREBRAL_MAX_*`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest HTTP request body, in bytes (413 `PAYLOAD_TOO_LARGE`).
    pub max_body_bytes: usize,
    /// Largest GraphQL document, in bytes (`DOCUMENT_TOO_LARGE`).
    pub max_document_bytes: usize,
    /// Most lexical tokens in a document (`DOCUMENT_TOO_LARGE`).
    pub max_tokens: usize,
    /// Deepest field nesting, introspection excluded (`MAX_DEPTH_EXCEEDED`).
    pub max_depth: usize,
    /// Highest cost (`MAX_COMPLEXITY_EXCEEDED`).
    pub max_complexity: usize,
    /// Most aliased fields in a document (`MAX_ALIASES_EXCEEDED`).
    pub max_aliases: usize,
    /// Most fields at the root of one operation (`MAX_ROOT_FIELDS_EXCEEDED`).
    pub max_root_fields: usize,
    /// Most directives on one field (`MAX_DIRECTIVES_EXCEEDED`).
    pub max_directives: usize,
    /// Most operations in one batch (`BATCH_TOO_LARGE`).
    pub max_batch: usize,
    /// Most errors returned in one response; the rest are summed up in one
    /// last error (`TOO_MANY_ERRORS`).
    pub max_errors: usize,
    /// Longest an HTTP request may run (`TIMEOUT`).
    pub request_timeout: Duration,
    /// Whether introspection and "did you mean" suggestions are served
    /// (`INTROSPECTION_DISABLED` when not).
    pub introspection: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_document_bytes: 32 * 1024,
            max_tokens: 15_000,
            max_depth: 10,
            max_complexity: 50_000,
            max_aliases: 30,
            max_root_fields: 20,
            max_directives: 10,
            max_batch: 10,
            max_errors: 100,
            request_timeout: Duration::from_secs(10),
            introspection: true,
        }
    }
}

/// The extension factory to register on the schema.
pub struct LimitsExtension(pub Arc<Limits>);

impl ExtensionFactory for LimitsExtension {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Check(self.0.clone()))
    }
}

struct Check(Arc<Limits>);

fn refuse(message: String, code: &'static str) -> ServerError {
    with_code(ServerError::new(message, None), code)
}

#[async_graphql::async_trait::async_trait]
impl Extension for Check {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut resp = next.run(ctx).await;
        let max = self.0.max_errors.max(1);
        if resp.errors.len() > max {
            let dropped = resp.errors.len() - (max - 1);
            resp.errors.truncate(max - 1);
            resp.errors.push(refuse(
                format!("{dropped} more errors were left out (at most {max} are returned)"),
                "TOO_MANY_ERRORS",
            ));
        }
        resp
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        // Reached only when parsing, validation and every limit passed.
        if let Some(mark) = ctx.data_opt::<Arc<crate::http::Executed>>() {
            mark.set();
        }
        next.run(ctx, operation_name).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let l = &self.0;
        if query.len() > l.max_document_bytes {
            return Err(refuse(
                format!(
                    "the document is {} bytes; at most {} are accepted",
                    query.len(),
                    l.max_document_bytes
                ),
                "DOCUMENT_TOO_LARGE",
            ));
        }
        let tokens = count_tokens(query, l.max_tokens);
        if tokens > l.max_tokens {
            return Err(refuse(
                format!(
                    "the document has more than {} tokens; at most {} are accepted",
                    l.max_tokens, l.max_tokens
                ),
                "DOCUMENT_TOO_LARGE",
            ));
        }
        let doc = next.run(ctx, query, variables).await?;
        Shape::check(&doc, l)?;
        Ok(doc)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    // async-graphql's own complexity check has no code.
                    if e.message == "Query is too complex." {
                        let mut e = refuse(
                            format!(
                                "the operation costs more than {} (each page costs its size times what it selects)",
                                self.0.max_complexity
                            ),
                            "MAX_COMPLEXITY_EXCEEDED",
                        );
                        e.locations = Vec::new();
                        e
                    } else {
                        e
                    }
                })
                .collect()
        })
    }
}

/// Counts GraphQL lexical tokens (names, numbers, strings, punctuators),
/// stopping once past `stop`: comments, whitespace and commas are ignored,
/// as the spec's lexer does.
fn count_tokens(src: &str, stop: usize) -> usize {
    let b = src.as_bytes();
    let mut i = 0;
    let mut n = 0;
    while i < b.len() && n <= stop {
        match b[i] {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' && b[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' => {
                n += 1;
                if b[i..].starts_with(b"\"\"\"") {
                    i += 3;
                    while i < b.len() && !b[i..].starts_with(b"\"\"\"") {
                        i += if b[i..].starts_with(b"\\\"\"\"") {
                            4
                        } else {
                            1
                        };
                    }
                    i += 3;
                } else {
                    i += 1;
                    while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                        i += if b[i] == b'\\' { 2 } else { 1 };
                    }
                    i += 1;
                }
            }
            b'.' if b[i..].starts_with(b"...") => {
                n += 1;
                i += 3;
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'-' => {
                n += 1;
                i += 1;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b'+' | b'-'))
                {
                    i += 1;
                }
            }
            _ => {
                n += 1;
                i += 1;
            }
        }
    }
    n
}

/// The shape limits, walked over the document with fragments expanded
/// where they are spread (a fragment spread ten times counts ten times, as
/// it executes ten times). A spread already on the current path is not
/// followed: such a cycle is a validation error reported later.
struct Shape<'a> {
    doc: &'a ExecutableDocument,
    limits: &'a Limits,
    aliases: usize,
    path: HashSet<&'a str>,
}

impl<'a> Shape<'a> {
    fn check(doc: &'a ExecutableDocument, limits: &'a Limits) -> ServerResult<()> {
        let mut shape = Shape {
            doc,
            limits,
            aliases: 0,
            path: HashSet::new(),
        };
        for (_, op) in doc.operations.iter() {
            let roots = shape.root_fields(&op.node.selection_set);
            if roots > limits.max_root_fields {
                return Err(refuse(
                    format!(
                        "the operation selects {roots} root fields; at most {} are accepted",
                        limits.max_root_fields
                    ),
                    "MAX_ROOT_FIELDS_EXCEEDED",
                ));
            }
            shape.walk(&op.node.selection_set, 0)?;
        }
        Ok(())
    }

    fn root_fields(&mut self, set: &'a Positioned<SelectionSet>) -> usize {
        let mut n = 0;
        for sel in &set.node.items {
            n += match &sel.node {
                Selection::Field(_) => 1,
                Selection::InlineFragment(f) => self.root_fields(&f.node.selection_set),
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    match self.doc.fragments.get(&s.node.fragment_name.node) {
                        Some(f) if self.path.insert(name) => {
                            let k = self.root_fields(&f.node.selection_set);
                            self.path.remove(name);
                            k
                        }
                        _ => 0,
                    }
                }
            };
        }
        n
    }

    fn walk(&mut self, set: &'a Positioned<SelectionSet>, depth: usize) -> ServerResult<()> {
        for sel in &set.node.items {
            match &sel.node {
                Selection::Field(f) => {
                    let field = &f.node;
                    if field.alias.is_some() {
                        self.aliases += 1;
                        if self.aliases > self.limits.max_aliases {
                            return Err(refuse(
                                format!(
                                    "the document uses more than {} aliases",
                                    self.limits.max_aliases
                                ),
                                "MAX_ALIASES_EXCEEDED",
                            ));
                        }
                    }
                    if field.directives.len() > self.limits.max_directives {
                        return Err(refuse(
                            format!(
                                "the field `{}` has {} directives; at most {} are accepted",
                                field.name.node,
                                field.directives.len(),
                                self.limits.max_directives
                            ),
                            "MAX_DIRECTIVES_EXCEEDED",
                        ));
                    }
                    // Introspection walks the schema, not the data.
                    if field.name.node.starts_with("__") {
                        if !self.limits.introspection && field.name.node != "__typename" {
                            return Err(refuse(
                                "introspection is switched off on this server".into(),
                                "INTROSPECTION_DISABLED",
                            ));
                        }
                        continue;
                    }
                    let depth = depth + 1;
                    if depth > self.limits.max_depth {
                        return Err(refuse(
                            format!(
                                "the operation is nested more than {} fields deep",
                                self.limits.max_depth
                            ),
                            "MAX_DEPTH_EXCEEDED",
                        ));
                    }
                    self.walk(&field.selection_set, depth)?;
                }
                Selection::InlineFragment(f) => self.walk(&f.node.selection_set, depth)?,
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    if let Some(f) = self.doc.fragments.get(&s.node.fragment_name.node)
                        && self.path.insert(name)
                    {
                        let r = self.walk(&f.node.selection_set, depth);
                        self.path.remove(name);
                        r?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::count_tokens;

    #[test]
    fn tokens_are_counted_as_the_lexer_sees_them() {
        assert_eq!(count_tokens("{ a }", 100), 3);
        assert_eq!(
            count_tokens(
                "query Q($x: Int = -1.5e3) { a(x: $x) @skip(if: true) }",
                100
            ),
            26
        );
        // Strings, block strings and comments.
        assert_eq!(count_tokens("{ a(s: \"x \\\" y\") } # { b }", 100), 8);
        assert_eq!(
            count_tokens("{ a(s: \"\"\"x \"\" \\\"\"\" y\"\"\") }", 100),
            8
        );
        assert_eq!(count_tokens("{ ...F } fragment F on Q { a }", 100), 11);
        // Counting stops just past the limit.
        assert_eq!(count_tokens(&"{ a } ".repeat(1000), 10), 11);
    }
}
