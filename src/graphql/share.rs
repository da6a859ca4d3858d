//! One execution per event and selection, however many sockets subscribe.
//!
//! Thousands of sockets usually hold the same subscription (a dashboard's
//! `events { … }`), and each item of each of them used to run the whole
//! selection — resolvers, every extension hook, the JSON serialization —
//! again, for the same event and the same answer. Subscribers whose
//! operation has the same document, operation name and variables, and whose
//! caller has the same tenant and roles, get the same payload for the same
//! event: the first of them to reach an event runs the selection for it,
//! serializes the result once into a [`FrameCache`], and every other socket
//! of that selection sends the event from there without executing anything.
//!
//! What makes an answer differ is what makes the key: the tenant (every read
//! is scoped to it) and the roles (guards). No field of the event types
//! depends on the caller's user id; one that ever does must add it to
//! [`SelectionKey`]. Only clean answers are shared: a payload with errors
//! (a timeout, `RESPONSE_TOO_LARGE`, a failing read) is each subscriber's
//! own, and is computed by each. Entries live a few seconds at most, so a
//! field resolved "as it is now" (`Event.task`) is never older than that.
//!
//! The socket's light operations (`crate::http::ws`) use this: each holds
//! an [`ItemSlot`] (its interned key), looks every event up with
//! [`ItemSlot::cached`], and on a miss runs the selection for that one event
//! from [`ItemSlot::request`] and stores it with [`ItemSlot::keep`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::Response;

/// What must be equal for two subscribers to be sent the same payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SelectionKey {
    /// The caller's tenant: every read is scoped to it.
    pub tenant: uuid::Uuid,
    /// The caller's roles by name, sorted: guards decide by them.
    pub roles: Vec<&'static str>,
    /// The document as sent.
    pub query: String,
    /// The operation of the document to run.
    pub operation_name: Option<String>,
    /// The variables, as JSON text.
    pub variables: String,
}

/// Interned [`SelectionKey`]s: one small number per distinct key, so a
/// cache lookup compares two integers, not two documents. An id is never
/// reused while a subscriber holds it, and is forgotten with the last one.
#[derive(Default)]
struct Keys {
    ids: HashMap<Arc<SelectionKey>, (u64, usize)>,
    next: u64,
}

/// A subscriber's hold on an interned key.
pub struct KeyId {
    id: u64,
    key: Arc<SelectionKey>,
    cache: Arc<FrameCache>,
}

impl Drop for KeyId {
    fn drop(&mut self) {
        let Ok(mut keys) = self.cache.keys.lock() else {
            return;
        };
        if let Some((_, holders)) = keys.ids.get_mut(&self.key) {
            *holders -= 1;
            if *holders == 0 {
                keys.ids.remove(&self.key);
            }
        }
    }
}

struct Entry {
    payload: Arc<str>,
    at: Instant,
}

#[derive(Default)]
struct Frames {
    map: HashMap<(u64, i64), Entry>,
    order: VecDeque<(u64, i64)>,
    bytes: usize,
}

/// Serialized `next` payloads by (selection, event), bounded in count,
/// bytes and age; the oldest go first.
pub struct FrameCache {
    keys: Mutex<Keys>,
    frames: Mutex<Frames>,
    max_entries: usize,
    max_bytes: usize,
    max_age: Duration,
}

impl FrameCache {
    /// A cache of at most `max_entries` payloads and `max_bytes` bytes, each
    /// reused for at most `max_age`; `max_entries` 0 shares nothing.
    pub fn new(max_entries: usize, max_bytes: usize, max_age: Duration) -> Arc<FrameCache> {
        Arc::new(FrameCache {
            keys: Mutex::default(),
            frames: Mutex::default(),
            max_entries,
            max_bytes,
            max_age,
        })
    }

    /// The sizes the server runs with: a few thousand payloads (some
    /// hundred selections times a burst of events), 16 MiB, 5 s — longer
    /// than a fan-out to every socket takes, short enough that nothing
    /// shared is stale.
    pub fn standard() -> Arc<FrameCache> {
        FrameCache::new(4096, 16 << 20, Duration::from_secs(5))
    }

    /// The id of `key` for as long as the returned hold lives.
    pub fn intern(self: &Arc<Self>, key: SelectionKey) -> Option<KeyId> {
        if self.max_entries == 0 {
            return None;
        }
        let mut keys = self.keys.lock().ok()?;
        let (key, id) = match keys.ids.get_key_value(&key) {
            Some((shared, _)) => {
                let shared = shared.clone();
                let entry = keys.ids.get_mut(&key)?;
                entry.1 += 1;
                (shared, entry.0)
            }
            None => {
                keys.next += 1;
                let id = keys.next;
                let key = Arc::new(key);
                keys.ids.insert(key.clone(), (id, 1));
                (key, id)
            }
        };
        Some(KeyId {
            id,
            key,
            cache: self.clone(),
        })
    }

    /// The payload stored for `(key, seq)`, when young enough.
    pub fn get(&self, key: u64, seq: i64) -> Option<Arc<str>> {
        let frames = self.frames.lock().ok()?;
        frames
            .map
            .get(&(key, seq))
            .filter(|e| e.at.elapsed() <= self.max_age)
            .map(|e| e.payload.clone())
    }

    /// Stores the payload of `(key, seq)`; a payload over an eighth of the
    /// byte budget is not kept (it would push out everything else).
    pub fn put(&self, key: u64, seq: i64, payload: Arc<str>) {
        if self.max_entries == 0 || payload.len() > self.max_bytes / 8 {
            return;
        }
        let Ok(mut frames) = self.frames.lock() else {
            return;
        };
        let frames = &mut *frames;
        let size = payload.len();
        let now = Instant::now();
        if let Some(old) = frames.map.insert((key, seq), Entry { payload, at: now }) {
            frames.bytes -= old.payload.len();
        } else {
            frames.order.push_back((key, seq));
        }
        frames.bytes += size;
        while frames.order.len() > self.max_entries || frames.bytes > self.max_bytes {
            let Some(oldest) = frames.order.pop_front() else {
                break;
            };
            if let Some(e) = frames.map.remove(&oldest) {
                frames.bytes -= e.payload.len();
            }
        }
    }
}

/// One light WebSocket operation's link to the cache: its selection.
pub struct ItemSlot {
    key: KeyId,
}

impl ItemSlot {
    /// The slot of an operation with this key.
    pub fn new(key: KeyId) -> Arc<ItemSlot> {
        Arc::new(ItemSlot { key })
    }

    /// The payload another subscriber of this selection stored for event
    /// `seq`, when young enough.
    pub fn cached(&self, seq: i64) -> Option<Arc<str>> {
        self.key.cache.get(self.key.id, seq)
    }

    /// Stores the payload of event `seq` for the other subscribers of this
    /// selection (only clean answers: see the module comment).
    pub fn keep(&self, seq: i64, resp: &Response, payload: &Arc<str>) {
        if resp.errors.is_empty() {
            self.key.cache.put(self.key.id, seq, payload.clone());
        }
    }

    /// A request for this selection: its document (`query`, when given,
    /// in place of the key's: a persisted query's text), operation name,
    /// variables and extensions (but `persistedQuery`). `None` if the
    /// variables no longer read back (they were written from a request, so
    /// never expected).
    pub fn request(&self, query: Option<&str>) -> Option<async_graphql::Request> {
        let key = &self.key.key;
        let (variables, mut extensions): (async_graphql::Variables, async_graphql::Extensions) =
            serde_json::from_str(&key.variables).ok()?;
        let mut r = async_graphql::Request::new(query.unwrap_or(&key.query));
        // The text is known and was checked against its hash when the
        // operation was planned: no lookup by hash again (the entry may be
        // gone by now), and no remembering it again either (that would
        // push other callers' documents out of the store).
        extensions.0.remove("persistedQuery");
        r.operation_name.clone_from(&key.operation_name);
        r.variables = variables;
        r.extensions = extensions;
        Some(r)
    }

    /// Whether `query` is the key's document as sent.
    pub fn sent(&self, query: &str) -> bool {
        self.key.key.query == query
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(q: &str) -> SelectionKey {
        SelectionKey {
            tenant: uuid::Uuid::nil(),
            roles: vec!["viewer"],
            query: q.into(),
            operation_name: None,
            variables: "{}".into(),
        }
    }

    #[test]
    fn equal_selections_share_an_id_and_it_is_forgotten_with_the_last_holder() {
        let cache = FrameCache::standard();
        let a = cache.intern(key("a")).expect("on");
        let a2 = cache.intern(key("a")).expect("on");
        let b = cache.intern(key("b")).expect("on");
        assert_eq!(a.id, a2.id);
        assert_ne!(a.id, b.id);
        drop((a, a2));
        let a3 = cache.intern(key("a")).expect("on");
        assert_ne!(a3.id, b.id);
        assert_eq!(cache.keys.lock().expect("lock").ids.len(), 2);
    }

    #[test]
    fn the_cache_keeps_its_bounds_and_forgets_old_payloads() {
        let cache = FrameCache::new(2, 1 << 20, Duration::from_secs(60));
        for seq in 1..=3 {
            cache.put(1, seq, Arc::from(format!("p{seq}")));
        }
        assert!(cache.get(1, 1).is_none(), "evicted by count");
        assert_eq!(cache.get(1, 3).as_deref(), Some("p3"));
        assert!(cache.get(2, 3).is_none(), "other selection");

        let small = FrameCache::new(100, 80, Duration::from_secs(60));
        small.put(1, 1, Arc::from("x".repeat(11)));
        assert!(small.get(1, 1).is_none(), "over an eighth of the bytes");

        let young = FrameCache::new(10, 1 << 20, Duration::from_millis(1));
        young.put(1, 1, Arc::from("p"));
        std::thread::sleep(Duration::from_millis(5));
        assert!(young.get(1, 1).is_none(), "too old");
    }
}
