//! Limits on what one operation may ask for, checked before anything runs.
//!
//! An out-of-the-box GraphQL server executes whatever it is sent: a
//! thousand aliases of one expensive field, a three-level fan-out of
//! hundred-row pages, a megabyte of tokens for the parser, fragments that
//! spread fragments until the expansion never ends. Each limit here
//! refuses such a document with its own stable `extensions.code`, before
//! any resolver runs — and before async-graphql's own checks, which expand
//! fragments without a budget.
//!
//! The front door ([`Check::front_door`]) runs on every request, over
//! HTTP and WebSocket alike, once the persisted-query store has filled in
//! its document: size and tokens on the text (so the parser never sees an
//! oversized or overnested document), then the parse, then the shape of
//! the parsed document with each fragment counted once
//! ([`shape::Walk`]): fields expanded, depth, introspection depth, aliases,
//! root fields, directives and what introspection would build. The parsed
//! document is handed on, so the library does not parse it again.
//! Complexity comes from async-graphql's validation (a page costs
//! `first × child`, see [`super::page_cost`]) plus the introspection cost,
//! and is budgeted across a whole batch. While executing, the answer is
//! counted as it is built (strings, `JSON` values and list items: what can
//! be large) and refused past `max_response_bytes`
//! (`RESPONSE_TOO_LARGE`) — by the per-field hook, or, for a plain HTTP
//! query run without it, by the string and `JSON` fields themselves
//! ([`Counted`]) — and an operation over WebSocket has the same time limit
//! as over HTTP.

#[cfg(test)]
mod fuzz;
pub mod shape;

use crate::error::code;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_graphql::extensions::{ExtensionContext, NextResolve, ResolveInfo};
use async_graphql::parser::types::{ExecutableDocument, OperationType};
use async_graphql::{Request, Response, ServerError, ServerResult, ValidationResult, Value};

pub use shape::IntrospectionSizes;

use super::codes::with_code;

/// How deep the standard introspection query nests, counting `__schema`
/// as 1: graphql-js's `getIntrospectionQuery()` (what GraphiQL sends)
/// reaches `__schema → types → fields → args → type` and then seven
/// `ofType` levels and their leaves. The default introspection depth limit
/// admits it and nothing deeper.
pub const STANDARD_INTROSPECTION_DEPTH: usize = 15;

/// Deepest bracket nesting (`{`, `(`, `[`) a document may have before it is
/// parsed: the parser recurses once per level, and no query within the
/// depth limits nests half as deep.
pub const MAX_NESTING: usize = 64;

/// The limits, from configuration (`CEREBRAL_MAX_*`).
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest HTTP request body, in bytes (413 `PAYLOAD_TOO_LARGE`).
    pub max_body_bytes: usize,
    /// Most JSON values in one request body or WebSocket message, counted
    /// before it is parsed (`BAD_REQUEST`).
    pub max_json_values: usize,
    /// Largest GraphQL document, in bytes (`DOCUMENT_TOO_LARGE`).
    pub max_document_bytes: usize,
    /// Most lexical tokens in a document (`DOCUMENT_TOO_LARGE`).
    pub max_tokens: usize,
    /// Deepest data field nesting (`MAX_DEPTH_EXCEEDED`).
    pub max_depth: usize,
    /// Deepest nesting inside `__schema` / `__type` (`MAX_DEPTH_EXCEEDED`).
    pub max_introspection_depth: usize,
    /// Most selections with every fragment spread expanded
    /// (`MAX_FIELDS_EXCEEDED`).
    pub max_fields: usize,
    /// Highest cost of one operation, and of all operations of a batch
    /// together (`MAX_COMPLEXITY_EXCEEDED`).
    pub max_complexity: usize,
    /// Most aliased fields in a document (`MAX_ALIASES_EXCEEDED`).
    pub max_aliases: usize,
    /// Most fields at the root of one operation (`MAX_ROOT_FIELDS_EXCEEDED`).
    pub max_root_fields: usize,
    /// Most directives on one field, fragment or operation
    /// (`MAX_DIRECTIVES_EXCEEDED`).
    pub max_directives: usize,
    /// Most operations in one batch (`BATCH_TOO_LARGE`).
    pub max_batch: usize,
    /// Most errors returned in one response; the rest are summed up in one
    /// last error (`TOO_MANY_ERRORS`).
    pub max_errors: usize,
    /// Largest answer of one operation, in bytes of JSON as it is built
    /// (`RESPONSE_TOO_LARGE`); 0 for no limit.
    pub max_response_bytes: usize,
    /// Longest an operation may run, over HTTP and WebSocket (`TIMEOUT`).
    pub request_timeout: Duration,
    /// Whether introspection and "did you mean" suggestions are served
    /// (`INTROSPECTION_DISABLED` when not).
    pub introspection: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1024 * 1024,
            max_json_values: 100_000,
            max_document_bytes: 32 * 1024,
            max_tokens: 15_000,
            max_depth: 10,
            max_introspection_depth: STANDARD_INTROSPECTION_DEPTH,
            max_fields: 5_000,
            max_complexity: 50_000,
            max_aliases: 30,
            max_root_fields: 20,
            max_directives: 10,
            max_batch: 10,
            max_errors: 100,
            max_response_bytes: 8 * 1024 * 1024,
            request_timeout: Duration::from_secs(10),
            introspection: true,
        }
    }
}

/// The limits a schema enforces (run by [`super::pipeline`]). The
/// introspection sizes are filled in once the schema is built (they are
/// read from it).
#[derive(Clone)]
pub struct LimitsExtension {
    /// The limits.
    pub limits: Arc<Limits>,
    /// This schema's introspection list sizes.
    pub sizes: Arc<OnceLock<IntrospectionSizes>>,
}

impl LimitsExtension {
    /// The per-request state (an extension instance is made per request).
    pub(crate) fn per_request(&self) -> Check {
        Check {
            limits: self.limits.clone(),
            sizes: self.sizes.clone(),
            response: Arc::new(ResponseBudget::default()),
        }
    }
}

/// The complexity left to a whole HTTP batch: every operation of it draws
/// on one budget, so ten operations cannot cost ten times the limit.
#[derive(Debug, Default)]
pub struct BatchBudget(AtomicU64);

/// The operations of a document as the front door parsed it (name and
/// type), for an observer that must name an operation the limits refused
/// before the library's own parse hook ran. Put it in the request's data
/// before the front door runs; the front door fills it in.
#[derive(Debug, Default)]
pub struct SeenOperations(pub std::sync::Mutex<Vec<(Option<String>, OperationType)>>);

/// The introspection cost the front door measured, for the complexity
/// check in validation.
struct IntrospectionCost(u64);

/// The answer's size so far, counted as fields resolve. Each execution
/// starts it afresh: a query or mutation executes once, a subscription
/// once per item (each item is an answer of its own).
#[derive(Debug, Default)]
struct ResponseBudget {
    bytes: AtomicU64,
    exceeded: AtomicBool,
}

/// The limits of one request (or WebSocket operation), run by
/// [`super::pipeline`].
#[derive(Clone)]
pub(crate) struct Check {
    limits: Arc<Limits>,
    sizes: Arc<OnceLock<IntrospectionSizes>>,
    /// One per request: an extension instance is created per request.
    response: Arc<ResponseBudget>,
}

fn refuse(message: String, code: &'static str) -> ServerError {
    with_code(ServerError::new(message, None), code)
}

fn too_complex(max: usize) -> ServerError {
    refuse(
        format!(
            "the operation costs more than {max} (each page costs its size times what it selects; introspection lists multiply by the schema's sizes; a batch shares one budget)"
        ),
        code::MAX_COMPLEXITY_EXCEEDED,
    )
}

/// The front door on a document's text and shape: size, tokens and
/// nesting before parsing, then the parse, then the shape walk. Returns the
/// parsed document and its introspection cost; fills in `seen` once the
/// document parsed. Its work is linear in the document's size whatever the
/// document (see the property tests in `fuzz.rs`).
pub fn admit(
    query: &str,
    l: &Limits,
    sizes: &IntrospectionSizes,
    seen: Option<&SeenOperations>,
) -> ServerResult<(ExecutableDocument, u64)> {
    if query.len() > l.max_document_bytes {
        return Err(refuse(
            format!(
                "the document is {} bytes; at most {} are accepted",
                query.len(),
                l.max_document_bytes
            ),
            code::DOCUMENT_TOO_LARGE,
        ));
    }
    let text = scan(query, l.max_tokens);
    if text.tokens > l.max_tokens {
        return Err(refuse(
            format!(
                "the document has more than {} tokens; at most {} are accepted",
                l.max_tokens, l.max_tokens
            ),
            code::DOCUMENT_TOO_LARGE,
        ));
    }
    if text.nesting > MAX_NESTING {
        return Err(refuse(
            format!("the document nests brackets more than {MAX_NESTING} deep"),
            code::MAX_DEPTH_EXCEEDED,
        ));
    }
    let doc = async_graphql::parser::parse_query(query)
        .map_err(|e| with_code(ServerError::from(e), code::GRAPHQL_PARSE_FAILED))?;
    if let Some(seen) = seen
        && let Ok(mut ops) = seen.0.lock()
    {
        *ops = doc
            .operations
            .iter()
            .map(|(name, op)| (name.map(|n| n.to_string()), op.node.ty))
            .collect();
    }
    let outline = shape::Walk::check(&doc, l, sizes)?;
    Ok((doc, outline.introspection_cost))
}

impl Check {
    /// Caps the number of errors of an answer (`TOO_MANY_ERRORS`).
    pub(crate) fn cap_errors(&self, mut resp: Response) -> Response {
        let max = self.limits.max_errors.max(1);
        if resp.errors.len() > max {
            let dropped = resp.errors.len() - (max - 1);
            resp.errors.truncate(max - 1);
            resp.errors.push(refuse(
                format!("{dropped} more errors were left out (at most {max} are returned)"),
                code::TOO_MANY_ERRORS,
            ));
        }
        resp
    }

    /// The front door: admits (or refuses) the request's document and
    /// hands the parsed document on.
    pub(crate) fn front_door(&self, request: &mut Request) -> ServerResult<()> {
        let seen = request
            .data
            .get(&std::any::TypeId::of::<Arc<SeenOperations>>())
            .and_then(|d| d.downcast_ref::<Arc<SeenOperations>>())
            .cloned();
        let fallback = IntrospectionSizes::default();
        let sizes = self.sizes.get().unwrap_or(&fallback);
        let (doc, cost) = admit(&request.query, &self.limits, sizes, seen.as_deref())?;
        crate::graphql::pin_reads_if_query(request, &doc);
        request.set_parsed_query(doc);
        request.data.insert(IntrospectionCost(cost));
        Ok(())
    }

    /// Names the library's complexity refusal and budgets complexity
    /// across a batch.
    pub(crate) fn validated(
        &self,
        ctx: &ExtensionContext<'_>,
        result: Result<ValidationResult, Vec<ServerError>>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let max = self.limits.max_complexity;
        let result = result.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| self.name_complexity(e))
                .collect::<Vec<_>>()
        })?;
        let introspection = ctx.data_opt::<IntrospectionCost>().map_or(0, |c| c.0);
        let cost = (result.complexity as u64).saturating_add(introspection);
        let spent = match ctx.data_opt::<Arc<BatchBudget>>() {
            Some(b) => b.0.fetch_add(cost, Ordering::Relaxed).saturating_add(cost),
            None => cost,
        };
        if spent > max as u64 {
            return Err(vec![too_complex(max)]);
        }
        Ok(result)
    }

    /// Runs one execution (for a subscription, one item): marks the HTTP
    /// request as executed, starts the answer's byte count afresh, applies
    /// the time limit over WebSocket and drops an answer that grew too
    /// large.
    pub(crate) async fn execute<F>(&self, ctx: &ExtensionContext<'_>, run: F) -> Response
    where
        F: std::future::Future<Output = Response>,
    {
        // Reached only when parsing, validation and every limit passed.
        let http = ctx.data_opt::<Arc<crate::graphql::pipeline::Executed>>();
        if let Some(mark) = http {
            mark.set();
        }
        self.restart_count();
        let limit = self.limits.request_timeout;
        // Over HTTP the handler's own deadline covers the whole request
        // (and answers 504); over WebSocket this is the only one.
        let resp = if http.is_some() || limit.is_zero() {
            run.await
        } else {
            match tokio::time::timeout(limit, run).await {
                Ok(resp) => resp,
                Err(_) => Response::from_errors(vec![refuse(
                    format!(
                        "the operation ran longer than {} s and was cancelled",
                        limit.as_secs_f32()
                    ),
                    code::TIMEOUT,
                )]),
            }
        };
        if self.exceeded() {
            // Whatever was built is dropped here, not sent in part.
            return Response::from_errors(vec![self.too_large()]);
        }
        resp
    }

    /// Counts a resolved field into the answer's size.
    pub(crate) async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let max = self.limits.max_response_bytes as u64;
        if max == 0 {
            return next.run(ctx, info).await;
        }
        if self.response.exceeded.load(Ordering::Relaxed) {
            // Past the limit: stop building, at once, everywhere.
            return Err(self.too_large());
        }
        if !may_be_large(info.return_type) {
            // Objects, ids, numbers, booleans, times and enums are small
            // and their count is bounded by complexity; counting every
            // field cost 7 % of a nested query's CPU (docs/benchmarks.md).
            return next.run(ctx, info).await;
        }
        let name_len = info.alias.unwrap_or(info.name).len();
        let json = info
            .return_type
            .trim_matches(|c| matches!(c, '[' | ']' | '!'))
            == "JSON";
        let value = next.run(ctx, info).await?;
        self.count(name_len, value.as_ref(), json)?;
        Ok(value)
    }

    /// Adds a resolved field (its name, `null` or its value) to the
    /// answer's size; past the limit, marks the answer too large.
    fn count(&self, name_len: usize, value: Option<&Value>, json: bool) -> ServerResult<()> {
        let max = self.limits.max_response_bytes as u64;
        let bytes = name_len as u64 + 4 + value.map_or(4, |v| own_bytes(v, json));
        let total = self.response.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if max > 0 && total > max {
            self.response.exceeded.store(true, Ordering::Relaxed);
            return Err(self.too_large());
        }
        Ok(())
    }

    /// Starts the answer's byte count afresh (each execution is an answer).
    pub(crate) fn restart_count(&self) {
        self.response.bytes.store(0, Ordering::Relaxed);
        self.response.exceeded.store(false, Ordering::Relaxed);
    }

    /// Whether the answer grew past `max_response_bytes`.
    pub(crate) fn exceeded(&self) -> bool {
        self.response.exceeded.load(Ordering::Relaxed)
    }

    /// Names a validation error as the validation hook does: the library's
    /// complexity refusal becomes `MAX_COMPLEXITY_EXCEEDED`, any other
    /// `GRAPHQL_VALIDATION_FAILED`.
    pub(crate) fn validation_error(&self, e: ServerError) -> ServerError {
        with_code(self.name_complexity(e), code::GRAPHQL_VALIDATION_FAILED)
    }

    /// async-graphql's own complexity refusal has no code.
    fn name_complexity(&self, e: ServerError) -> ServerError {
        if e.message == "Query is too complex." {
            too_complex(self.limits.max_complexity)
        } else {
            e
        }
    }

    /// The refusal of an answer past `max_response_bytes`.
    pub(crate) fn too_large(&self) -> ServerError {
        refuse(
            format!(
                "the answer is larger than {} bytes; select less or page with a smaller `first`",
                self.limits.max_response_bytes
            ),
            code::RESPONSE_TOO_LARGE,
        )
    }
}

/// Put in an operation's data when it runs without the per-field hook
/// (see `pipeline::Pipeline::run_lean`): its [`Counted`] fields count the
/// answer's size themselves.
pub(crate) struct Counting(pub(crate) Check);

/// A field's value that can be large (a string, a `JSON` value, a list
/// with no page size: of strings, or of objects at 3 bytes each as the
/// hook counts them, which bounds a list nested in a list), counted into
/// the answer's size as it resolves when the operation runs without the
/// per-field hook. The GraphQL type is `T`'s:
/// wrapping changes nothing in the schema.
///
/// An operation with the hook (every WebSocket operation, mutations,
/// introspection, batches) counts every field there and this counts
/// nothing; a plain HTTP query runs without it (the hook's machinery
/// costs a quarter of a nested query's CPU), and then each such field counts
/// itself — which is why every resolver of a string, a `JSON` value or an
/// unpaged list returns one. (A paged list is bounded by complexity.) The
/// serialized answer is measured again before it is sent, so a field that
/// was missed cannot make an answer go out past the limit.
pub struct Counted<T>(pub T);

impl<T: async_graphql::OutputType> async_graphql::OutputType for Counted<T> {
    fn type_name() -> std::borrow::Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &async_graphql::ContextSelectionSet<'_>,
        field: &async_graphql::Positioned<async_graphql::parser::types::Field>,
    ) -> ServerResult<Value> {
        let counting = ctx.data_opt::<Counting>();
        if let Some(Counting(check)) = counting
            && check.exceeded()
        {
            // Past the limit: stop building, at once, everywhere.
            return Err(check.too_large());
        }
        let value = self.0.resolve(ctx, field).await?;
        if let Some(Counting(check)) = counting {
            let name_len = field.node.response_key().node.len();
            check.count(name_len, Some(&value), T::type_name() == "JSON")?;
        }
        Ok(value)
    }
}

/// Whether a field of this GraphQL type can add much to an answer by
/// itself: strings, `JSON` values and lists (counted per item).
fn may_be_large(return_type: &str) -> bool {
    return_type.starts_with('[') || matches!(return_type.trim_end_matches('!'), "String" | "JSON")
}

/// The bytes a resolved value adds to the answer by itself: all of a
/// scalar (a `JSON` value included), and only the punctuation of an object
/// or a list of objects, whose fields are counted as they resolve.
fn own_bytes(value: &Value, json: bool) -> u64 {
    if json {
        return json_bytes(value);
    }
    match value {
        Value::Object(_) => 2,
        Value::List(items) => items
            .iter()
            .map(|v| match v {
                Value::Object(_) => 3,
                v => json_bytes(v) + 1,
            })
            .sum::<u64>()
            .saturating_add(2),
        v => json_bytes(v),
    }
}

/// About the length of `value` as JSON (strings without escapes).
fn json_bytes(value: &Value) -> u64 {
    match value {
        Value::Null => 4,
        Value::Boolean(_) => 5,
        Value::Number(_) => 8,
        Value::String(s) => s.len() as u64 + 2,
        Value::Enum(e) => e.len() as u64 + 2,
        Value::Binary(b) => b.len() as u64 * 4 / 3 + 2,
        Value::List(items) => items.iter().map(|v| json_bytes(v) + 1).sum::<u64>() + 2,
        Value::Object(o) => {
            o.iter()
                .map(|(k, v)| k.len() as u64 + 4 + json_bytes(v))
                .sum::<u64>()
                + 2
        }
    }
}

/// Whether `query` is small and shallow enough to hand to the parser (the
/// checks the front door makes before parsing): for code that must look at
/// a document before the request runs, such as the GET method check.
pub fn may_parse(query: &str, limits: &Limits) -> bool {
    if query.len() > limits.max_document_bytes {
        return false;
    }
    let text = scan(query, limits.max_tokens);
    text.tokens <= limits.max_tokens && text.nesting <= MAX_NESTING
}

/// How many JSON values `text` holds, counted without parsing it and
/// stopping once past `stop`: every value after the first in an array or
/// object follows a comma, and every array and object opens with a
/// bracket. Parsed JSON costs many times its text (a number is a 32-byte
/// value, an object member a map node), so a megabyte of `[1,1,1,…]` must
/// be refused before it is parsed, not after. Commas and brackets inside
/// strings do not count; `%2C`, `%5B` and `%7B` count too, so the same
/// pass bounds a URL-encoded query string (overcounting a little there).
pub fn json_values(text: &[u8], stop: usize) -> usize {
    let mut n = 1usize;
    let mut in_string = false;
    let mut i = 0;
    while i < text.len() && n <= stop {
        let b = text[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b',' | b'[' | b'{' => n += 1,
                b'%' if matches!(
                    text.get(i + 1..i + 3),
                    Some(b"2C" | b"2c" | b"5B" | b"5b" | b"7B" | b"7b")
                ) =>
                {
                    n += 1;
                    i += 2;
                }
                _ => {}
            }
        }
        i += 1;
    }
    n
}

/// What [`scan`] saw of a document's text.
#[derive(Debug, PartialEq, Eq)]
struct Text {
    /// Lexical tokens, counted until just past the limit.
    tokens: usize,
    /// Deepest bracket nesting seen.
    nesting: usize,
}

/// Counts GraphQL lexical tokens (names, numbers, strings, punctuators),
/// stopping once past `stop`, and the deepest bracket nesting: comments,
/// whitespace and commas are ignored, as the spec's lexer does.
fn scan(src: &str, stop: usize) -> Text {
    let b = src.as_bytes();
    let mut i = 0;
    let mut n = 0;
    let mut depth = 0usize;
    let mut nesting = 0usize;
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
            c => {
                match c {
                    b'{' | b'(' | b'[' => {
                        depth += 1;
                        nesting = nesting.max(depth);
                    }
                    b'}' | b')' | b']' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                n += 1;
                i += 1;
            }
        }
    }
    Text { tokens: n, nesting }
}

#[cfg(test)]
mod tests {
    use super::scan;

    fn count_tokens(src: &str, stop: usize) -> usize {
        scan(src, stop).tokens
    }

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

#[cfg(test)]
mod value_tests {
    use super::json_values;

    #[test]
    fn json_values_are_counted_outside_strings() {
        assert_eq!(json_values(b"1", 100), 1);
        assert_eq!(json_values(b"[1,2,3]", 100), 4);
        assert_eq!(json_values(br#"{"a":[1,{"b":"x,y[{"}]}"#, 100), 5);
        assert_eq!(json_values(br#"{"a":"\",["}"#, 100), 2);
        assert_eq!(json_values(b"variables=%5B1%2C2%5D", 100), 3);
        // Stops just past the limit, however long the text.
        assert_eq!(json_values("1,".repeat(1_000_000).as_bytes(), 10), 11);
    }
}
