//! Request rates: a token bucket per tenant (per client address when the
//! server runs without authentication), with `governor`'s keyed GCRA
//! limiter. Each key has its own lock-free cell, so a tenant at its limit
//! costs other tenants nothing.
//!
//! A refusal is HTTP 429 with `Retry-After` (whole seconds, rounded up) and
//! a GraphQL error `RATE_LIMITED`; nothing runs.

use crate::error::code;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use uuid::Uuid;

use crate::auth::Principal;

/// Who a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// An authenticated tenant.
    Tenant(Uuid),
    /// A client address, without authentication (`None` when unknown).
    Address(Option<IpAddr>),
}

/// The limiter of one server.
pub struct RateLimiter {
    buckets: Option<DefaultKeyedRateLimiter<Key>>,
    per_tenant: bool,
    clock: DefaultClock,
}

impl RateLimiter {
    /// `per_second` requests a second with bursts of `burst` for each
    /// tenant (with `per_tenant`) or client address; `per_second == 0`
    /// turns limiting off.
    pub fn new(per_second: u32, burst: u32, per_tenant: bool) -> Arc<Self> {
        let buckets = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Arc::new(RateLimiter {
            buckets,
            per_tenant,
            clock: DefaultClock::default(),
        })
    }

    /// Forgets buckets that are full again, every `every`, so the key map
    /// does not grow with every address ever seen.
    pub fn spawn_cleanup(self: &Arc<Self>, every: Duration) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                if let Some(b) = &me.buckets {
                    b.retain_recent();
                    b.shrink_to_fit();
                }
            }
        });
    }

    /// The bucket a caller draws from.
    pub fn key(&self, principal: &Principal, address: Option<IpAddr>) -> Key {
        if self.per_tenant {
            Key::Tenant(principal.tenant_id)
        } else {
            Key::Address(address)
        }
    }

    /// Takes one request from `key`'s bucket: `None` admits it, else how
    /// long until the bucket has room again.
    pub fn wait(&self, key: &Key) -> Option<Duration> {
        let buckets = self.buckets.as_ref()?;
        buckets
            .check_key(key)
            .err()
            .map(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Takes `n` requests (the operations of one HTTP request) from the
    /// caller's bucket: `None` admits them, else the 429 answer. A batch
    /// larger than the burst can never pass, and is told so.
    pub fn refusal(
        &self,
        principal: &Principal,
        extensions: &Extensions,
        n: usize,
    ) -> Option<Response> {
        let buckets = self.buckets.as_ref()?;
        let address = extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let key = self.key(principal, address);
        let n = NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN);
        let (secs, message) = match buckets.check_key_n(&key, n) {
            Ok(Ok(())) => return None,
            Ok(Err(not_until)) => {
                let secs = retry_after(not_until.wait_time_from(self.clock.now()));
                (secs, format!("too many requests; retry in {secs} s"))
            }
            Err(_) => (
                60,
                format!("the batch holds {n} operations, more than the rate limit's burst"),
            ),
        };
        let mut resp =
            super::error_response(StatusCode::TOO_MANY_REQUESTS, &message, code::RATE_LIMITED);
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        Some(resp)
    }
}

/// Whole seconds to wait, rounded up and at least 1 (`Retry-After` has no
/// fractions, and 0 would invite an immediate retry).
pub fn retry_after(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}
