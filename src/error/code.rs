//! Every `extensions.code` the server answers with, in one place.
//!
//! Codes are API: clients branch on them, so they are never renamed. Each
//! is listed in [`ALL`] and in the README's error table; a test
//! (`tests/api/schema.rs`) fails when the two differ. The first group comes
//! from [`super::AppError`] (a resolver's refusal); the others from the
//! layers in front of the resolvers, which refuse a request before any of
//! it runs (the HTTP status applies to those sent over HTTP).

/// The input is malformed or breaks a rule that does not depend on state;
/// also a value that does not coerce to its input type.
pub const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
/// No such object for the caller (another tenant's object included).
pub const NOT_FOUND: &str = "NOT_FOUND";
/// The lifecycle does not allow the change from the current state, or a
/// precondition does not hold; with `from`, `to`, `allowed` and `reason`.
pub const INVALID_TRANSITION: &str = "INVALID_TRANSITION";
/// A race, a stale version (`expectedVersion`, `latestVersion`) or an
/// idempotency key reused for another request.
pub const CONFLICT: &str = "CONFLICT";
/// No valid credentials (HTTP 401).
pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
/// Valid credentials without the right, or a browser origin not allowed
/// (HTTP 403).
pub const FORBIDDEN: &str = "FORBIDDEN";
/// A stream further behind than the server replays; with `latestCursor`.
pub const RESYNC_REQUIRED: &str = "RESYNC_REQUIRED";
/// A statement or the request ran past its time and was cancelled; nothing
/// of the change was kept (HTTP 504 for the request timeout).
pub const TIMEOUT: &str = "TIMEOUT";
/// A fault of the server, logged in full, never described to the client.
pub const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";

/// The document does not parse.
pub const GRAPHQL_PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// The document fails the schema's validation.
pub const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
/// The document's text is longer than `CEREBRAL_MAX_DOCUMENT_BYTES`, or
/// holds more tokens than `CEREBRAL_MAX_TOKENS`.
pub const DOCUMENT_TOO_LARGE: &str = "DOCUMENT_TOO_LARGE";
/// Nested deeper than `CEREBRAL_MAX_DEPTH`.
pub const MAX_DEPTH_EXCEEDED: &str = "MAX_DEPTH_EXCEEDED";
/// More root fields than `CEREBRAL_MAX_ROOT_FIELDS`.
pub const MAX_ROOT_FIELDS_EXCEEDED: &str = "MAX_ROOT_FIELDS_EXCEEDED";
/// More fields, fragments expanded, than `CEREBRAL_MAX_FIELDS`.
pub const MAX_FIELDS_EXCEEDED: &str = "MAX_FIELDS_EXCEEDED";
/// More aliases than `CEREBRAL_MAX_ALIASES`.
pub const MAX_ALIASES_EXCEEDED: &str = "MAX_ALIASES_EXCEEDED";
/// More directives on one location than `CEREBRAL_MAX_DIRECTIVES`.
pub const MAX_DIRECTIVES_EXCEEDED: &str = "MAX_DIRECTIVES_EXCEEDED";
/// Costs more than `CEREBRAL_MAX_COMPLEXITY`.
pub const MAX_COMPLEXITY_EXCEEDED: &str = "MAX_COMPLEXITY_EXCEEDED";
/// Introspection asked of a server with it switched off.
pub const INTROSPECTION_DISABLED: &str = "INTROSPECTION_DISABLED";
/// The answer would be larger than `CEREBRAL_MAX_RESPONSE_BYTES`; no data.
pub const RESPONSE_TOO_LARGE: &str = "RESPONSE_TOO_LARGE";
/// The last error of an answer that had more than `CEREBRAL_MAX_ERRORS`.
pub const TOO_MANY_ERRORS: &str = "TOO_MANY_ERRORS";
/// A persisted query's hash the server does not hold (send the text).
pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
/// A persisted query whose text does not hash to the hash sent.
pub const PERSISTED_QUERY_INVALID: &str = "PERSISTED_QUERY_INVALID";

/// Not a GraphQL request (HTTP 400).
pub const BAD_REQUEST: &str = "BAD_REQUEST";
/// A batch of more operations than `CEREBRAL_MAX_BATCH` (HTTP 400).
pub const BATCH_TOO_LARGE: &str = "BATCH_TOO_LARGE";
/// A body larger than `CEREBRAL_MAX_BODY_BYTES` (HTTP 413).
pub const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
/// A mutation by GET, or a method the endpoint does not serve (HTTP 405).
pub const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
/// An `Accept` header naming no type the server sends (HTTP 406).
pub const NOT_ACCEPTABLE: &str = "NOT_ACCEPTABLE";
/// A POST body that is not `application/json`, which would let a web page
/// send mutations cross-site (HTTP 415).
pub const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
/// Over the caller's request rate, or over its subscription rate on a
/// socket (HTTP 429, with `Retry-After`).
pub const RATE_LIMITED: &str = "RATE_LIMITED";
/// A WebSocket upgrade over a connection limit or the upgrade rate of one
/// address (HTTP 429, or 503 when the whole server is full).
pub const TOO_MANY_CONNECTIONS: &str = "TOO_MANY_CONNECTIONS";
/// More live subscriptions on one socket than
/// `CEREBRAL_WS_MAX_SUBSCRIPTIONS`.
pub const TOO_MANY_SUBSCRIPTIONS: &str = "TOO_MANY_SUBSCRIPTIONS";

/// Every code above, in the order of the README's table.
pub const ALL: &[&str] = &[
    BAD_USER_INPUT,
    NOT_FOUND,
    INVALID_TRANSITION,
    CONFLICT,
    UNAUTHENTICATED,
    FORBIDDEN,
    RESYNC_REQUIRED,
    TIMEOUT,
    INTERNAL_SERVER_ERROR,
    GRAPHQL_PARSE_FAILED,
    GRAPHQL_VALIDATION_FAILED,
    DOCUMENT_TOO_LARGE,
    MAX_DEPTH_EXCEEDED,
    MAX_ROOT_FIELDS_EXCEEDED,
    MAX_FIELDS_EXCEEDED,
    MAX_ALIASES_EXCEEDED,
    MAX_DIRECTIVES_EXCEEDED,
    MAX_COMPLEXITY_EXCEEDED,
    INTROSPECTION_DISABLED,
    RESPONSE_TOO_LARGE,
    TOO_MANY_ERRORS,
    PERSISTED_QUERY_NOT_FOUND,
    PERSISTED_QUERY_INVALID,
    BAD_REQUEST,
    BATCH_TOO_LARGE,
    PAYLOAD_TOO_LARGE,
    METHOD_NOT_ALLOWED,
    NOT_ACCEPTABLE,
    UNSUPPORTED_MEDIA_TYPE,
    RATE_LIMITED,
    TOO_MANY_CONNECTIONS,
    TOO_MANY_SUBSCRIPTIONS,
];
