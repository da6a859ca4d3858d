//! Who may open a socket: per-address and total connection limits, the upgrade
//! rate, and the gauges of open sockets and subscriptions.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Who may open a WebSocket now: open sockets per client address and in
/// total, and new upgrades per address. Checked before the upgrade, so a
/// refused client costs a short HTTP answer, not a socket.
pub struct Admission {
    per_address: usize,
    pub(crate) total: usize,
    pub(crate) open: std::sync::Mutex<OpenSockets>,
    pub(crate) upgrades: Option<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
}

#[derive(Default)]
pub(crate) struct OpenSockets {
    pub(crate) total: usize,
    by_address: std::collections::HashMap<std::net::IpAddr, usize>,
}

/// Why an upgrade was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds its limit of sockets (503).
    Total,
    /// The address holds its limit of sockets (429).
    PerAddress,
    /// The address opens sockets too fast; room again after this (429).
    Rate(Duration),
}

/// One admitted socket's place; freed when dropped, however the socket
/// (or the upgrade) ends.
pub struct Admitted {
    pub(crate) admission: Arc<Admission>,
    pub(crate) address: Option<std::net::IpAddr>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let Ok(mut open) = self.admission.open.lock() else {
            return;
        };
        open.total = open.total.saturating_sub(1);
        if let Some(a) = self.address
            && let std::collections::hash_map::Entry::Occupied(mut e) = open.by_address.entry(a)
        {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

impl Admission {
    /// At most `per_address` open sockets per client address and `total`
    /// in all, and `upgrades_per_second` new ones per address (bursts of
    /// `per_address`); 0 turns each limit off.
    pub fn new(per_address: usize, total: usize, upgrades_per_second: u32) -> Arc<Admission> {
        let upgrades = std::num::NonZeroU32::new(upgrades_per_second).map(|rate| {
            let burst = u32::try_from(per_address)
                .ok()
                .and_then(std::num::NonZeroU32::new)
                .map_or(rate, |b| b.max(rate));
            governor::DefaultKeyedRateLimiter::keyed(
                governor::Quota::per_second(rate).allow_burst(burst),
            )
        });
        let me = Arc::new(Admission {
            per_address,
            total,
            open: Default::default(),
            upgrades,
        });
        // Forget the upgrade buckets of addresses that went quiet, so the
        // map does not grow with every address ever seen.
        if me.upgrades.is_some() {
            let weak = Arc::downgrade(&me);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(60));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(me) = weak.upgrade() else { return };
                    if let Some(u) = &me.upgrades {
                        u.retain_recent();
                        u.shrink_to_fit();
                    }
                }
            });
        }
        me
    }

    /// Takes a place for a socket from `address`, or says why not.
    pub fn admit(self: &Arc<Self>, address: Option<std::net::IpAddr>) -> Result<Admitted, Refusal> {
        let mut open = self.open.lock().map_err(|_| Refusal::Total)?;
        if self.total > 0 && open.total >= self.total {
            return Err(Refusal::Total);
        }
        if let Some(a) = address {
            let held = open.by_address.get(&a).copied().unwrap_or(0);
            if self.per_address > 0 && held >= self.per_address {
                return Err(Refusal::PerAddress);
            }
            if let Some(u) = &self.upgrades
                && let Err(not_until) = u.check_key(&a)
            {
                use governor::clock::{Clock, DefaultClock};
                return Err(Refusal::Rate(
                    not_until.wait_time_from(DefaultClock::default().now()),
                ));
            }
            *open.by_address.entry(a).or_insert(0) += 1;
        }
        open.total += 1;
        Ok(Admitted {
            admission: self.clone(),
            address,
        })
    }
}

/// Live WebSocket figures of this process, exported on `/metrics`.
#[derive(Debug, Default)]
pub struct WsGauges {
    pub(crate) connections: AtomicI64,
    pub(crate) subscriptions: AtomicI64,
}

impl WsGauges {
    /// Open WebSocket connections.
    pub fn connections(&self) -> i64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Active operations over all WebSocket connections.
    pub fn subscriptions(&self) -> i64 {
        self.subscriptions.load(Ordering::Relaxed)
    }
}

/// Adds one to a gauge for as long as it lives, so no exit path can leave a
/// count behind.
pub(crate) struct Held(Arc<WsGauges>, fn(&WsGauges) -> &AtomicI64);

impl Held {
    pub(crate) fn new(g: Arc<WsGauges>, which: fn(&WsGauges) -> &AtomicI64) -> Self {
        which(&g).fetch_add(1, Ordering::Relaxed);
        Held(g, which)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, Ordering::Relaxed);
    }
}
