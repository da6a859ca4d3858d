//! GraphQL over WebSocket, written out rather than taken from
//! async-graphql-axum so every rule of the protocol is ours to keep:
//!
//! - `graphql-transport-ws` exactly as enisdenjo/graphql-ws `PROTOCOL.md`
//!   says: `connection_init` within the init timeout (else close 4408), no
//!   `subscribe` before `connection_ack` (4401), one `connection_init` only
//!   (4429), ids unique among active operations (4409), anything malformed
//!   closes with 4400 and a reason of at most 123 bytes, an operation that
//!   cannot run answers `error` for its id and the socket stays, `complete`
//!   from the client drops that stream at once, `ping` gets `pong`.
//!   Authentication failures in `connection_init` close with 4403.
//! - The legacy `graphql-ws` subprotocol (subscriptions-transport-ws:
//!   `start`/`data`/`stop`/`ka`) on the same state machine, for old clients.
//!
//! Lifetimes are explicit: every operation is a stream owned by its
//! connection's task, so a socket that goes away — closed, reset, or silent
//! for two ping intervals — drops all its streams with it; a gauge counts
//! connections and subscriptions; server shutdown closes every socket with
//! 1001 (going away) so clients reconnect to another replica.

use super::AppState;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response as HttpResponse;
use std::time::Duration;

mod admission;
mod connection;
mod operation;
pub use admission::*;
pub(crate) use connection::*;
pub(crate) use operation::*;

/// The subprotocols this endpoint speaks, preferred first.
pub const PROTOCOLS: [&str; 2] = ["graphql-transport-ws", "graphql-ws"];

/// WebSocket limits and timers (from [`crate::config::Config`]).
#[derive(Debug, Clone)]
pub struct WsSettings {
    /// Time allowed between the upgrade and `connection_init`.
    pub init_timeout: Duration,
    /// Active operations one socket may hold.
    pub max_subscriptions: usize,
    /// Interval of server pings; `None` turns pinging and the dead-peer
    /// check off.
    pub ping_interval: Option<Duration>,
    /// Largest message a client may send, in bytes.
    pub max_message_bytes: usize,
    /// What may arrive before `connection_ack`, in bytes: one message, or
    /// all queued legacy `start`s together.
    pub max_early_bytes: usize,
    /// Legacy `start`s that may be queued before `connection_init`.
    pub max_early_operations: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// `graphql-transport-ws` (enisdenjo/graphql-ws).
    TransportWs,
    /// `graphql-ws` (apollographql/subscriptions-transport-ws).
    Legacy,
}

/// Accepts the upgrade with deliberately small buffers: an idle socket
/// should cost a few kilobytes, not the 128 KiB read buffer tungstenite
/// allocates by default. Nothing is queued for a client beyond the message
/// being written: each send waits until the socket takes it (write buffer
/// 0), so a client that stops reading stops its streams — which then cost
/// nothing and catch up from the log later — instead of growing a queue.
pub fn upgrade(
    app: AppState,
    upgrade: WebSocketUpgrade,
    from_header: Option<crate::auth::Verified>,
    address: Option<std::net::IpAddr>,
    admitted: Admitted,
) -> HttpResponse {
    let s = app.ws.clone();
    upgrade
        .protocols(PROTOCOLS)
        .read_buffer_size(1024)
        // Frames ready together are written together (see `run`); a
        // `flush` writes the buffer whatever its size.
        .write_buffer_size(BATCH_BYTES)
        .max_message_size(s.max_message_bytes)
        .max_frame_size(s.max_message_bytes)
        .on_upgrade(move |socket| {
            let protocol = match socket.protocol().and_then(|p| p.to_str().ok()) {
                Some("graphql-ws") => Protocol::Legacy,
                // No subprotocol asked for: the current protocol.
                _ => Protocol::TransportWs,
            };
            Connection::new(socket, protocol, app, from_header, address, admitted).run()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_clipped_to_123_bytes_on_a_char_boundary() {
        let long = "é".repeat(100);
        let clipped = clip_reason(&long);
        assert!(clipped.len() <= 123);
        assert!(clipped.len() >= 121);
        assert!(clipped.chars().all(|c| c == 'é'));
        assert_eq!(clip_reason("short"), "short");
    }
}
