//! `/metrics`: every tenant's figures without a token, and two aggregates
//! over every tenant's tables per scrape (issue 13, item 10).

use std::time::Duration;

use super::watch::{server, watch};
use crate::support;

/// Concurrent scrapes of one storm: far more than any Prometheus sends.
const SCRAPES: usize = 200;
/// 200 scrapes of a cached page (or 404s) take well under a second on a
/// loaded machine; before the fix they queued for the pool behind their
/// counts.
const STORM_WITHIN: Duration = Duration::from_secs(5);
/// A rendered page is a few KiB; 200 at once stay far below this.
const STORM_MEMORY: u64 = 24 * 1024 * 1024;

async fn storm(url: &str) -> Vec<u16> {
    let client = reqwest::Client::new();
    let scrapes = (0..SCRAPES).map(|_| {
        let client = client.clone();
        async move {
            match client.get(url).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let _ = r.bytes().await;
                    status
                }
                Err(_) => 0,
            }
        }
    });
    futures::future::join_all(scrapes).await
}

/// With `CEREBRAL_METRICS_LISTEN` the public port does not serve the
/// figures at all, and a storm on the metrics port runs no count within
/// the TTL (the server's own statement counter does not move).
#[tokio::test]
async fn a_scrape_storm_is_refused_publicly_and_cached_privately() {
    let port = support::free_port();
    let metrics_listen = format!("127.0.0.1:{port}");
    let target = server(&[("CEREBRAL_METRICS_LISTEN", metrics_listen.as_str())]).await;
    let metrics = format!("http://{metrics_listen}/metrics");

    let (statuses, cost) = watch(&target, storm(&format!("{}/metrics", target.base))).await;
    assert!(statuses.iter().all(|s| *s == 404), "{statuses:?}");
    cost.assert_within(
        "/metrics storm on the public port",
        STORM_WITHIN,
        STORM_MEMORY,
    );

    // The first scrape counts (and primes the cache); the storm counts
    // nothing more, so the statement counter stays where it was.
    let statements = || async {
        support::metric(
            &format!("http://{metrics_listen}"),
            "cerebral_db_statements_total",
        )
        .await
        .expect("the metrics listener answers")
    };
    let before = statements().await;
    let (statuses, cost) = watch(&target, storm(&metrics)).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    cost.assert_within(
        "/metrics storm on the metrics port",
        STORM_WITHIN,
        STORM_MEMORY,
    );
    assert_eq!(statements().await, before, "the storm ran counts");
}
