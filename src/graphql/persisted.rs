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

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::{Request, ServerError, ServerResult};
use sha2::{Digest, Sha256};

use super::codes::with_code;

/// `extensions.code` when the hash is not (or no longer) known; Apollo
/// clients answer it by sending the hash with the full document.
pub const NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";

/// `extensions.code` when the document does not hash to the given hash, or
/// the extension is malformed.
pub const INVALID: &str = "PERSISTED_QUERY_INVALID";

/// Documents by SHA-256 (lower-case hex), least recently used dropped
/// first. Shared by every tenant: a document is not data, and a document
/// is only stored under its own hash, so no one can plant another's text.
#[derive(Clone)]
pub struct PersistedQueries {
    cache: Arc<Mutex<lru::LruCache<String, Arc<str>>>>,
}

impl PersistedQueries {
    /// A store of at most `capacity` documents (at least 1). Each is at
    /// most the document size limit, so memory is bounded by their
    /// product.
    pub fn new(capacity: usize) -> Self {
        let cap = NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN);
        PersistedQueries {
            cache: Arc::new(Mutex::new(lru::LruCache::new(cap))),
        }
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
            && let Some(text) = self
                .cache
                .lock()
                .ok()
                .and_then(|mut c| c.get(&hash).cloned())
        {
            request.query = text.to_string();
        }
    }

    /// Applies the protocol to `request`: with a hash and no document,
    /// fills in the remembered document (or fails with
    /// `PERSISTED_QUERY_NOT_FOUND`); with both, checks the hash and
    /// remembers the document. Requests without the extension pass as they
    /// are.
    pub fn resolve(&self, request: &mut Request) -> ServerResult<()> {
        let Some(value) = request.extensions.remove("persistedQuery") else {
            return Ok(());
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
            let found = self
                .cache
                .lock()
                .ok()
                .and_then(|mut c| c.get(&hash).cloned());
            return match found {
                Some(text) => {
                    request.query = text.to_string();
                    Ok(())
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
        if let Ok(mut c) = self.cache.lock() {
            c.put(hash, Arc::from(request.query.as_str()));
        }
        Ok(())
    }
}

/// The schema extension: resolves persisted queries over HTTP and
/// WebSocket alike, before parsing, so every limit still applies.
pub struct Apq(pub PersistedQueries);

impl ExtensionFactory for Apq {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Apq(self.0.clone()))
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for Apq {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        self.0.resolve(&mut request)?;
        next.run(ctx, request).await
    }
}
