//! Readiness and the Prometheus `/metrics` endpoint.

use super::*;

/// The router of the metrics listener (`CEREBRAL_METRICS_LISTEN`): `/metrics`
/// and nothing else. It holds every tenant's counts and needs no token,
/// which is why it may live on an address only Prometheus reaches; its
/// scrapes are not counted in the request metrics.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(10),
        ))
}

/// Ready when the database answers within 2 s, every migration this
/// binary knows is applied, and (on PostgreSQL) the event listener is
/// connected; otherwise 503 with the reason, so a load balancer takes the
/// replica out until it recovers.
pub(crate) async fn readyz(State(app): State<AppState>) -> Response {
    // Neither the ping nor the migration table touches tenant rows.
    let db = app.services.unscoped();
    let unavailable = |reason: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "reason": reason })),
        )
            .into_response()
    };
    let within = Duration::from_secs(2);
    if !matches!(
        tokio::time::timeout(within, crate::db::ping(db)).await,
        Ok(true)
    ) {
        return unavailable("database unreachable within 2 s");
    }
    if !app.migrated.load(std::sync::atomic::Ordering::Relaxed) {
        match tokio::time::timeout(within, crate::db::pending_migrations(db)).await {
            Ok(Ok(pending)) if pending.is_empty() => {
                app.migrated
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(Ok(pending)) => {
                return unavailable(&format!("migrations not applied: {}", pending.join(", ")));
            }
            _ => return unavailable("cannot read the applied migrations"),
        }
    }
    if !crate::db::is_sqlite(db) && !app.services.bus().listening() {
        return unavailable("event listener not connected");
    }
    Json(json!({ "status": "ready" })).into_response()
}

pub(crate) async fn metrics(State(app): State<AppState>) -> Response {
    let db = app.services.unscoped();
    let (size, idle) = app.services.pool_stats();
    let within = Duration::from_secs(2);
    // Counts over every tenant (a read-only all-tenants scope), at most
    // once per TTL whatever the scrape rate.
    let counts = app
        .work_counts
        .get_or_count(|| async {
            let (tasks_by_status, hitl_pending) =
                tokio::time::timeout(within, crate::db::work_counts(&app.services.all_tenants()))
                    .await
                    .unwrap_or((None, None));
            crate::metrics::WorkCounts {
                tasks_by_status,
                hitl_pending,
            }
        })
        .await;
    let bus = app.services.bus();
    let snapshot = crate::metrics::Snapshot {
        db_statements: app.statements.get(),
        db_transactions: app.statements.transactions(),
        db_connections_in_use: size.saturating_sub(idle),
        db_connections_idle: idle,
        event_head: bus.head(),
        event_listeners: bus.listeners() as u64,
        event_gap_reads: bus.gap_reads(),
        ws_connections: app.ws_gauges.connections() as u64,
        ws_subscriptions: app.ws_gauges.subscriptions() as u64,
        event_listener_connected: (!crate::db::is_sqlite(db)).then(|| bus.listening()),
        tasks_by_status: counts.tasks_by_status,
        hitl_pending: counts.hitl_pending,
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(&snapshot),
    )
        .into_response()
}
