//! Automatic persisted queries (Apollo APQ): a client sends only the
//! SHA-256 of a document it sent before and the server runs the document it
//! remembered, so repeated large queries cost a hash on the wire (and fit a
//! cacheable GET).
//!
//! Why not async-graphql's own `ApolloPersistedQueries`: it caches parsed
//! documents and hands them to the executor already parsed, which skips
//! the `parse_query` hook — and with it our token, size, alias, root-field
//! and directive limits (`limits.rs`). This store keeps the *text* and puts
//! it back in the request, so a persisted query is parsed and checked like
//! any other. Protocol: <https://github.com/apollographql/apollo-link-persisted-queries#protocol>.

use crate::error::code;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use async_graphql::{Request, ServerError, ServerResult};
use sha2::{Digest, Sha256};

use super::codes::with_code;

/// `extensions.code` when the hash is not (or no longer) known; Apollo
/// clients answer it by sending the hash with the full document.
pub const NOT_FOUND: &str = code::PERSISTED_QUERY_NOT_FOUND;

/// `extensions.code` when the document does not hash to the given hash, or
/// the extension is malformed.
pub const INVALID: &str = code::PERSISTED_QUERY_INVALID;

/// Documents by SHA-256 (lower-case hex), least recently used dropped
/// first. Shared by every tenant: a document is not data, and a document
/// is only stored under its own hash, so no one can plant another's text.
/// A document is stored only after the limits admitted it (so never one
/// larger than the document limit), and the store is bounded by bytes as
/// well as by count.
#[derive(Clone)]
pub struct PersistedQueries {
    cache: Arc<Mutex<Store>>,
}

struct Store {
    entries: lru::LruCache<String, Arc<str>>,
    bytes: usize,
    max_bytes: usize,
}

/// The most bytes of documents the store keeps by default: 100 documents
/// of 32 KiB, the default document limit, would be 3.2 MiB.
pub const DEFAULT_MAX_BYTES: usize = 4 * 1024 * 1024;

impl PersistedQueries {
    /// A store of at most `capacity` documents (at least 1) and at most
    /// [`DEFAULT_MAX_BYTES`] of their text.
    pub fn new(capacity: usize) -> Self {
        Self::with_max_bytes(capacity, DEFAULT_MAX_BYTES)
    }

    /// A store of at most `capacity` documents and `max_bytes` of text.
    pub fn with_max_bytes(capacity: usize, max_bytes: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        PersistedQueries {
            cache: Arc::new(Mutex::new(Store {
                entries: lru::LruCache::new(cap),
                bytes: 0,
                max_bytes,
            })),
        }
    }

    fn lookup(&self, hash: &str) -> Option<Arc<str>> {
        self.cache
            .lock()
            .ok()
            .and_then(|mut c| c.entries.get(hash).cloned())
    }

    /// Remembers `text` under `hash` (its SHA-256, checked by
    /// [`PersistedQueries::resolve`]), dropping the least recently used
    /// documents until the text fits. A document larger than the whole
    /// store is not kept.
    pub fn remember(&self, hash: String, text: &str) {
        let Ok(mut c) = self.cache.lock() else {
            return;
        };
        if text.len() > c.max_bytes || c.entries.contains(&hash) {
            return;
        }
        while c.bytes + text.len() > c.max_bytes {
            match c.entries.pop_lru() {
                Some((_, old)) => c.bytes -= old.len(),
                None => break,
            }
        }
        c.bytes += text.len();
        if let Some((_, old)) = c.entries.push(hash, Arc::from(text)) {
            c.bytes -= old.len();
        }
    }

    /// Bytes of documents held (for tests and metrics).
    pub fn bytes(&self) -> usize {
        self.cache.lock().map_or(0, |c| c.bytes)
    }

    /// Fills in the remembered document of a hash-only request and leaves
    /// everything else (the extension included) as it is, so the HTTP layer
    /// can see which operation a GET would run before anything runs;
    /// [`PersistedQueries::resolve`] then checks and answers as usual.
    pub fn fill_known(&self, request: &mut Request) {
        if !request.query.is_empty() {
            return;
        }
        let hash = request
            .extensions
            .get("persistedQuery")
            .and_then(|v| match v {
                async_graphql::Value::Object(o) => o.get("sha256Hash").cloned(),
                _ => None,
            })
            .and_then(|h| match h {
                async_graphql::Value::String(h) => Some(h.to_ascii_lowercase()),
                _ => None,
            });
        if let Some(hash) = hash
            && let Some(text) = self.lookup(&hash)
        {
            request.query = text.to_string();
        }
    }

    /// Applies the protocol to `request`: with a hash and no document,
    /// fills in the remembered document (or fails with
    /// `PERSISTED_QUERY_NOT_FOUND`); with both, checks the hash and returns
    /// it, for the caller to [`PersistedQueries::remember`] the document
    /// once the limits admitted it. Requests without the extension pass as
    /// they are.
    pub fn resolve(&self, request: &mut Request) -> ServerResult<Option<String>> {
        let Some(value) = request.extensions.remove("persistedQuery") else {
            return Ok(None);
        };
        let invalid = |m: &str| with_code(ServerError::new(m, None), INVALID);
        let json = value
            .into_json()
            .map_err(|_| invalid("the persistedQuery extension is not JSON"))?;
        if json.get("version").and_then(|v| v.as_i64()) != Some(1) {
            return Err(invalid(
                "only version 1 of the persistedQuery extension is supported",
            ));
        }
        let hash = json
            .get("sha256Hash")
            .and_then(|v| v.as_str())
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| invalid("persistedQuery.sha256Hash must be 64 hex digits"))?
            .to_ascii_lowercase();
        if request.query.is_empty() {
            return match self.lookup(&hash) {
                Some(text) => {
                    request.query = text.to_string();
                    Ok(None)
                }
                None => Err(with_code(
                    ServerError::new("PersistedQueryNotFound", None),
                    NOT_FOUND,
                )),
            };
        }
        let actual = format!("{:x}", Sha256::digest(request.query.as_bytes()));
        if actual != hash {
            return Err(invalid(
                "persistedQuery.sha256Hash is not the SHA-256 of the query",
            ));
        }
        Ok(Some(hash))
    }
}
