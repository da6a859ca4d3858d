//! WebSockets before they are anyone: what a client may make the server
//! hold before `connection_init` is acknowledged, and how many sockets one
//! address may open.

use std::time::Duration;

use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::watch::{server, watch};
use crate::support::RawWs;

/// Legacy sockets the attack opens at once (the review's figure: 2.6 GB).
const SOCKETS: usize = 8;
/// `start` messages each socket sends before `connection_init`.
const STARTS: usize = 100;
/// Each `start` is just under the 256 KiB message limit.
const START_BYTES: usize = 255 * 1024;
/// Closing a socket at its first oversized message: well under a second
/// each, two loaded cores for eight.
const REFUSE_WITHIN: Duration = Duration::from_secs(10);
/// Eight sockets each reading one 256 KiB message before refusing it, plus
/// buffers and allocator slack: the queue itself is gone.
const EARLY_MEMORY: u64 = 32 * 1024 * 1024;
/// Sockets opened by the flood of upgrades from one address.
const FLOOD: usize = 200;
/// Refusing upgrades is a short HTTP answer each.
const FLOOD_WITHIN: Duration = Duration::from_secs(20);
/// The 64 admitted sockets idle before init, plus the refused answers.
const FLOOD_MEMORY: u64 = 32 * 1024 * 1024;

/// A `start` of about `bytes` whose variables parse to many small values
/// (a JSON array of numbers grows most when parsed).
fn big_start(id: usize, bytes: usize) -> String {
    let numbers = vec!["1"; bytes / 2].join(",");
    json!({
        "id": id.to_string(),
        "type": "start",
        "payload": { "query": "subscription { events(after: \"HEAD\") { type } }" },
    })
    .to_string()
    .replace(
        "\"payload\":{",
        &format!("\"payload\":{{\"variables\":{{\"v\":[{numbers}]}},"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_starts_flooded_before_connection_init_are_refused_without_being_held() {
    // A long init window: what bounds the server is the cap, not the timer.
    let target = server(&[("CEREBRAL_WS_INIT_TIMEOUT_MS", "30000")]).await;
    let start = big_start(0, START_BYTES);
    assert!(start.len() <= 256 * 1024 && start.len() > 250 * 1024);
    let (closes, cost) = watch(&target, async {
        let sockets = (0..SOCKETS).map(|_| {
            let base = target.base.clone();
            let start = start.clone();
            tokio::spawn(async move {
                let mut ws = RawWs::connect_protocol(&base, "graphql-ws").await;
                for _ in 0..STARTS {
                    // Fed without waiting for each: the server closes
                    // while the client is still writing.
                    if ws.inner().send(Message::text(start.clone())).await.is_err() {
                        break;
                    }
                }
                ws.close_code(Duration::from_secs(30)).await
            })
        });
        let mut closes = Vec::new();
        for s in sockets.collect::<Vec<_>>() {
            closes.push(s.await.expect("socket task"));
        }
        closes
    })
    .await;
    // A client still writing may see the reset before the Close frame; no
    // socket may stay open, and those that read it saw 4400.
    for code in closes.iter().flatten() {
        assert_eq!(*code, 4400, "{closes:?}");
    }
    assert!(
        closes.iter().any(Option::is_some),
        "no socket saw its Close frame: {closes:?}"
    );
    cost.assert_within(
        "8 legacy sockets × 100 × 256 KiB start before init",
        REFUSE_WITHIN,
        EARLY_MEMORY,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_upgrades_from_one_address_is_refused_past_its_limit() {
    let target = server(&[("CEREBRAL_WS_INIT_TIMEOUT_MS", "60000")]).await;
    let ((opened, refused), cost) = watch(&target, async {
        let mut held = Vec::new();
        let mut refused = 0;
        for _ in 0..FLOOD {
            let req = {
                use tokio_tungstenite::tungstenite::client::IntoClientRequest;
                crate::support::ws_url(&target.base)
                    .into_client_request()
                    .expect("request")
            };
            match tokio_tungstenite::connect_async(req).await {
                Ok((ws, _)) => held.push(ws),
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                    assert_eq!(resp.status().as_u16(), 429);
                    refused += 1;
                }
                Err(e) => panic!("no HTTP answer: {e}"),
            }
        }
        (held.len(), refused)
    })
    .await;
    assert_eq!(opened, 64, "the default per-address limit");
    assert_eq!(refused, FLOOD - 64);
    cost.assert_within("200 upgrades from one address", FLOOD_WITHIN, FLOOD_MEMORY);
}
