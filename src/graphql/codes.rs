//! Gives every error a stable `extensions.code`, including the ones
//! async-graphql makes itself before any resolver runs.
//!
//! Resolver errors get theirs from `AppError`. The library's own errors do
//! not carry one: a document that does not parse gets
//! `GRAPHQL_PARSE_FAILED`, one that fails validation
//! `GRAPHQL_VALIDATION_FAILED` (the codes Apollo clients know), and any
//! other error without a code — in practice a value that does not coerce to
//! its input type — `BAD_USER_INPUT`.

use crate::error::code;
use async_graphql::{Response, ServerError};

/// Sets `code` unless the error already has one.
pub fn with_code(mut e: ServerError, code: &'static str) -> ServerError {
    let ext = e.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", code);
    }
    e
}

/// Gives every error of an answer without a code `BAD_USER_INPUT` (in
/// practice a value that does not coerce to its input type).
pub fn fill(mut resp: Response) -> Response {
    resp.errors = resp
        .errors
        .into_iter()
        .map(|e| with_code(e, code::BAD_USER_INPUT))
        .collect();
    resp
}
