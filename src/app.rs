//! Builds the whole server from a [`Config`]: database, migrations,
//! catalog, event bus, services, schema and router, bound to its address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::db::{self, StatementCounter};
use crate::events::EventBus;
use crate::graphql::build_schema;
use crate::http::{AppState, router};
use crate::service::{ServiceSettings, Services};

/// A built server, bound but not yet serving.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    services: Services,
    statements: Arc<StatementCounter>,
}

impl App {
    /// Connects and migrates the database, loads the built-in catalog and
    /// binds the listen address (port 0 picks a free port).
    pub async fn build(config: &Config) -> anyhow::Result<App> {
        let (conn, statements) =
            db::connect(&config.database_url, config.db_max_connections).await?;
        db::migrate(&conn).await?;
        let head = EventBus::read_head(&conn)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let bus = EventBus::new(head, config.event_buffer, config.max_replay_events);
        bus.spawn_fanout(db::uncounted(&conn));
        // Also on SQLite: another process (`cerebral import`) may append to
        // the same file, and only polling notices that.
        if !db::is_sqlite(&conn) {
            bus.spawn_pg_listener(conn.clone());
        }
        // A safety net on PostgreSQL (and the only cross-process signal on
        // SQLite, e.g. a CLI import into the server's file).
        if config.event_poll_ms > 0 {
            bus.spawn_poller(conn.clone(), Duration::from_millis(config.event_poll_ms));
        }
        let services = Services::new(
            conn,
            bus,
            ServiceSettings {
                session_timeout: chrono::Duration::minutes(config.session_timeout_minutes),
                max_context_history: config.max_context_history,
                max_sessions_per_user: config.max_sessions_per_user,
                max_checkpoints_per_task: config.max_checkpoints_per_task,
                checkpoint_retention: chrono::Duration::days(config.checkpoint_retention_days),
            },
        );
        if services
            .load_builtin_catalog()
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
        {
            tracing::info!("built-in catalog loaded");
        }
        if config.sweep_interval_seconds > 0 {
            services.spawn_sweeper(Duration::from_secs(config.sweep_interval_seconds));
        }
        if config.agent_stale_seconds > 0 {
            services.spawn_stale_agent_check(Duration::from_secs(config.agent_stale_seconds));
        }
        let state = AppState {
            schema: build_schema(services.clone()),
            services: services.clone(),
            loader_delay: Duration::from_micros(config.dataloader_delay_us),
            statements: statements.clone(),
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        Ok(App {
            listener,
            router: router(state),
            services,
            statements,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The service layer (for tests and embedding).
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// SQL statements executed so far.
    pub fn statements(&self) -> Arc<StatementCounter> {
        self.statements.clone()
    }

    /// Serves until SIGINT or SIGTERM, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("server error")
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
