//! Builds the whole server from a [`Config`]: database, migrations,
//! catalog, event bus, services, schema and router, bound to its address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::auth::{AuthSettings, Authenticator};
use crate::config::Config;
use crate::db::{self, StatementCounter};
use crate::events::EventBus;
use crate::graphql::build_schemas_with;
use crate::http::ws::{WsGauges, WsSettings};
use crate::http::{AppState, metrics_router, router};
use crate::rls::{Scope, Scoped, Sessions};
use crate::service::{ServiceSettings, Services};
use tokio_util::sync::CancellationToken;

/// The authenticator's settings from the server's.
pub fn auth_settings(c: &Config) -> AuthSettings {
    AuthSettings {
        jwt_secret: c.auth.jwt_secret.clone(),
        jwt_public_key: c.auth.jwt_public_key.clone(),
        jwks_url: c.auth.jwks_url.clone(),
        require_auth: c.auth.require_auth,
        jwt_issuer: c.auth.jwt_issuer.clone(),
        jwt_audience: c.auth.jwt_audience.clone(),
    }
}

/// The size bounds of a catalog import the settings describe.
pub fn catalog_limits(c: &Config) -> crate::catalog::ImportLimits {
    crate::catalog::ImportLimits {
        max_file_bytes: c.catalog.max_catalog_file_bytes,
        max_total_bytes: c.catalog.max_catalog_import_bytes,
    }
}

/// The operation limits the settings describe.
pub fn query_limits(c: &Config) -> crate::graphql::limits::Limits {
    crate::graphql::limits::Limits {
        max_body_bytes: c.requests.max_body_bytes,
        max_json_values: c.requests.max_json_values,
        max_document_bytes: c.query.max_document_bytes,
        max_tokens: c.query.max_tokens,
        max_depth: c.query.max_depth,
        max_introspection_depth: c.query.max_introspection_depth,
        max_fields: c.query.max_fields,
        max_complexity: c.query.max_complexity,
        max_aliases: c.query.max_aliases,
        max_root_fields: c.query.max_root_fields,
        max_directives: c.query.max_directives,
        max_batch: c.query.max_batch,
        max_errors: c.query.max_errors,
        max_response_bytes: c.query.max_response_bytes,
        request_timeout: std::time::Duration::from_secs(c.requests.request_timeout_seconds),
        introspection: c.query.introspection,
    }
}

/// A built server, bound but not yet serving.
pub struct App {
    listener: TcpListener,
    router: axum::Router,
    /// The `/metrics` listener and its router, when `CEREBRAL_METRICS_LISTEN`
    /// is set.
    metrics: Option<(TcpListener, axum::Router)>,
    services: Services,
    statements: Arc<StatementCounter>,
    shutdown: CancellationToken,
    ws_gauges: Arc<WsGauges>,
    drain_timeout: Duration,
}

impl App {
    /// Connects and migrates the database, loads the built-in catalog and
    /// binds the listen address (port 0 picks a free port).
    pub async fn build(config: &Config) -> anyhow::Result<App> {
        let mut steps = Steps::start();
        let no_key = config.auth.jwt_secret.is_none()
            && config.auth.jwt_public_key.is_none()
            && config.auth.jwks_url.is_none();
        let auth = match Authenticator::new(&auth_settings(config)) {
            // The container image sets CEREBRAL_REQUIRE_AUTH: say how to
            // opt out, since a local trial is the one case that should.
            Err(e) if config.auth.require_auth && no_key => {
                return Err(e.context(
                    "no token key: configure one, or set CEREBRAL_REQUIRE_AUTH=false to run \
                     an open single-tenant development server (local trials only)",
                ));
            }
            other => other?,
        };
        let hosts =
            crate::http::origin::HostPolicy::new(&config.server.allowed_hosts, auth.enabled())?;
        if config.server.allowed_hosts.is_empty()
            && hosts != crate::http::origin::HostPolicy::Any
            && !config.server.listen.ip().is_loopback()
        {
            tracing::warn!(
                listen = %config.server.listen,
                "without authentication only requests naming a loopback host (localhost, 127.0.0.1, [::1]) are answered, whatever address the server listens on; list the names clients use in CEREBRAL_ALLOWED_HOSTS"
            );
        }
        crate::http::layers::LayerSettings {
            cors_origins: config.server.cors_origins.clone(),
            ..Default::default()
        }
        .validate()?;
        steps.done("settings checked");
        // With an owner role configured, start-up always migrates as it
        // (below): its connection opens together with the serving pool's.
        let owner = config.db.database_url.starts_with("postgres")
            && config
                .db
                .migration_database_url
                .as_deref()
                .is_some_and(|m| m != config.db.database_url);
        let serving = db::connect_with(
            &config.db.database_url,
            config.db.db_max_connections,
            // A second past the request's own limit: the request is
            // answered by then, and this ends what it left running.
            (config.requests.request_timeout_seconds > 0)
                .then(|| Duration::from_secs(config.requests.request_timeout_seconds + 1)),
        );
        let ((conn, statements), mut migrator) = if owner {
            // On a connection of its own: the serving pool's statement
            // timeout would cut a long migration short.
            let (serving, migrator) = tokio::join!(serving, db::connect(config.migration_url(), 1));
            (serving?, Some(migrator?.0))
        } else {
            (serving.await?, None)
        };
        steps.done("database connected");
        let postgres = !db::is_sqlite(&conn);
        if !postgres {
            db::migrate(&conn).await?;
        } else {
            // With an owner role configured, always migrate as it (which
            // also keeps the serving role's grants right). With one URL,
            // skip the migrator when nothing is pending: a serving role
            // that owns nothing cannot run it (it may not even create the
            // migration table), and a migration job has done the work.
            let up_to_date = !owner
                && db::pending_migrations(&conn)
                    .await
                    .is_ok_and(|p| p.is_empty());
            if !up_to_date {
                // On a connection of its own: the serving pool's statement
                // timeout would cut a long migration short.
                let migrator = match migrator.take() {
                    Some(m) => m,
                    None => db::connect(config.migration_url(), 1).await?.0,
                };
                let serving = db::serving_role(&config.db.database_url);
                db::migrate_granting(&migrator, serving.as_deref())
                    .await
                    .with_context(|| {
                        if owner {
                            "cannot migrate as CEREBRAL_MIGRATION_DATABASE_URL"
                        } else {
                            "migrations are pending and DATABASE_URL cannot apply them: run `cerebral migrate up` as the owner role, or set CEREBRAL_MIGRATION_DATABASE_URL"
                        }
                    })?;
                migrator.close().await?;
            }
        }
        steps.done("migrations checked");
        let metrics = crate::metrics::Metrics::new();
        let head = EventBus::read_head(&conn)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // Streams catching up may use three quarters of the pool at once;
        // requests always keep the rest. (Fewer permits made catch-up after
        // a replica restart visibly slower in the chaos benchmark:
        // docs/streams.md.)
        let pool = config.db.db_max_connections as usize;
        let bus = EventBus::new(
            head,
            config.events.event_buffer,
            config.events.event_buffer_bytes,
            config.events.max_replay_events,
            (pool - pool / 4).max(1),
        );
        bus.set_metrics(metrics.clone());
        // Reads keep their scope on a connection between statements
        // (PostgreSQL): see `rls::sessions`.
        let sessions = postgres
            .then(|| {
                Sessions::new(
                    conn.get_postgres_connection_pool().clone(),
                    Some(statements.clone()),
                )
            })
            .flatten();
        // The one reader of every tenant's new events: read-only, all tenants.
        bus.spawn_fanout(
            Scoped::with_sessions(db::uncounted(&conn), Scope::AllTenants, sessions.clone())
                .uncounted(),
        );
        // Started as early as the head is known: the LISTEN connection is a
        // connection of its own, readiness waits for it, and it opens while
        // the rest of start-up runs.
        if postgres {
            bus.lag_in_transactions();
            bus.spawn_pg_listener(conn.clone());
            bus.spawn_pg_notifier(conn.clone());
        }
        steps.done("event bus started");
        if postgres {
            warn_if_rls_is_bypassed(&conn).await;
            steps.done("database role checked");
        }
        let services = Services::new(
            conn,
            bus,
            ServiceSettings {
                session_timeout: chrono::Duration::minutes(
                    config.lifecycle.session_timeout_minutes,
                ),
                max_context_history: config.lifecycle.max_context_history,
                max_snapshot_bytes: config.catalog.max_snapshot_bytes,
                catalog_limits: catalog_limits(config),
                max_sessions_per_user: config.lifecycle.max_sessions_per_user,
                max_checkpoints_per_task: config.lifecycle.max_checkpoints_per_task,
                checkpoint_retention: chrono::Duration::days(
                    config.lifecycle.checkpoint_retention_days,
                ),
                max_json_bytes: config.requests.max_json_bytes,
                max_content_bytes: config.requests.max_content_bytes,
            },
            sessions,
        );
        let persisted = (config.query.apq_cache_size > 0).then(|| {
            crate::graphql::persisted::PersistedQueries::with_max_bytes(
                config.query.apq_cache_size,
                config.query.apq_cache_bytes,
            )
        });
        // Building the schema (and its SDL, for the introspection limits)
        // is CPU work that needs no database: on a blocking thread, while
        // the built-in catalog is looked at below.
        let schema = tokio::task::spawn_blocking({
            let services = services.clone();
            let limits = query_limits(config);
            let extras = crate::graphql::SchemaExtras {
                metrics: Some(metrics.clone()),
                persisted: persisted.clone(),
                panic_probe: config.test_hooks(),
            };
            move || build_schemas_with(services, &limits, extras)
        });
        // Replicas started together on a fresh database race to load the
        // built-in catalog: one commits it and the others' inserts collide
        // with its rows (`Conflict`); looking again finds it loaded.
        let mut attempts = 0;
        let loaded = loop {
            match services.load_builtin_catalog().await {
                Err(crate::error::AppError::Conflict(_)) if attempts < 5 => {
                    attempts += 1;
                    tokio::time::sleep(Duration::from_millis(50 * attempts)).await;
                }
                other => break other.map_err(|e| anyhow::anyhow!("{e:?}"))?,
            }
        };
        if loaded {
            tracing::info!("built-in catalog loaded");
        }
        steps.done("built-in catalog checked");
        let (schema, lean) = schema.await.context("cannot build the GraphQL schema")?;
        steps.done("schema built");
        // A safety net on PostgreSQL (and the only cross-process signal on
        // SQLite, e.g. a CLI import into the server's file). Its first look
        // is at once, so it starts after start-up's own statements instead
        // of taking a connection from under them.
        if config.events.event_poll_ms > 0 {
            services.bus().spawn_poller(
                services.unscoped().clone(),
                Duration::from_millis(config.events.event_poll_ms),
            );
        }
        if config.lifecycle.sweep_interval_seconds > 0 {
            services.spawn_sweeper(Duration::from_secs(config.lifecycle.sweep_interval_seconds));
        }
        if config.lifecycle.agent_stale_seconds > 0 {
            services
                .spawn_stale_agent_check(Duration::from_secs(config.lifecycle.agent_stale_seconds));
        }
        let shutdown = CancellationToken::new();
        let ws_gauges = Arc::new(WsGauges::default());
        let state = AppState {
            schema,
            lean,
            services: services.clone(),
            loader_delay: Duration::from_micros(config.db.dataloader_delay_us),
            statements: statements.clone(),
            ws: Arc::new(WsSettings {
                init_timeout: Duration::from_millis(config.ws.ws_init_timeout_ms),
                max_subscriptions: config.ws.ws_max_subscriptions,
                ping_interval: (config.ws.ws_ping_interval_seconds > 0)
                    .then(|| Duration::from_secs(config.ws.ws_ping_interval_seconds)),
                max_message_bytes: config.ws.ws_max_message_bytes,
                max_early_bytes: config.ws.ws_max_early_bytes,
                max_early_operations: config.ws.ws_max_early_operations,
            }),
            ws_gauges: ws_gauges.clone(),
            frames: crate::graphql::share::FrameCache::standard(),
            ws_admission: crate::http::ws::Admission::new(
                config.ws.ws_max_connections_per_address,
                config.ws.ws_max_connections,
                config.ws.ws_upgrades_per_second,
            ),
            hosts: Arc::new(hosts),
            shutdown: shutdown.clone(),
            limits: Arc::new(query_limits(config)),
            limiter: {
                let l = crate::http::rate::RateLimiter::new(
                    config.requests.rate_limit_per_second,
                    config.requests.rate_limit_burst,
                    auth.enabled(),
                );
                l.spawn_cleanup(Duration::from_secs(60));
                l
            },
            auth,
            metrics,
            work_counts: Arc::new(crate::metrics::CountCache::new(Duration::from_secs(
                config.server.metrics_counts_ttl_seconds,
            ))),
            metrics_on_main: config.server.metrics_listen.is_none(),
            migrated: Default::default(),
            cors_origins: Arc::new(config.server.cors_origins.clone()),
            #[cfg(feature = "test-hooks")]
            test_routes: config.server.test_routes,
            persisted,
        };
        let listener = TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.server.listen))?;
        let metrics = match config.server.metrics_listen {
            Some(addr) => Some((
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} for /metrics"))?,
                metrics_router(state.clone()),
            )),
            None => None,
        };
        steps.done("listening");
        Ok(App {
            listener,
            router: router(state),
            metrics,
            services,
            statements,
            shutdown,
            ws_gauges,
            drain_timeout: Duration::from_secs(config.server.shutdown_timeout_seconds),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The bound address of the `/metrics` listener, when there is one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The service layer (for tests and embedding).
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// SQL statements executed so far.
    pub fn statements(&self) -> Arc<StatementCounter> {
        self.statements.clone()
    }

    /// Serves until SIGINT or SIGTERM, then shuts down in order: stop
    /// accepting, drain in-flight HTTP requests, close every WebSocket with
    /// 1001 (going away) so clients reconnect to another replica, and
    /// return.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Like [`App::run_until_stopped`], stopping when `signal` completes.
    pub async fn run_until(
        self,
        signal: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let token = self.shutdown.clone();
        let gauges = self.ws_gauges.clone();
        // Scraped until the very end: it stops with the WebSockets, once
        // the HTTP side has drained.
        let metrics_server = self.metrics.map(|(listener, router)| {
            let stop = token.clone();
            tokio::spawn(async move {
                let served = axum::serve(listener, router)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the /metrics listener failed");
                }
            })
        });
        // Upgraded sockets are no longer HTTP connections, so axum's graceful
        // shutdown does not wait for them — and must not: they would never
        // end by themselves. They are closed once the HTTP side has drained.
        let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            signal.await;
            let _ = signalled_tx.send(());
        })
        .into_future();
        // A request that never finishes (a stalled download) must not keep
        // the WebSockets from their 1001 until the orchestrator kills us.
        let drain_timeout = self.drain_timeout;
        let drain_limit = async move {
            if signalled_rx.await.is_ok() {
                tokio::time::sleep(drain_timeout).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            r = served => r.context("server error"),
            _ = drain_limit => {
                tracing::warn!(seconds = drain_timeout.as_secs(), "in-flight requests outlived the shutdown timeout; stopping anyway");
                Ok(())
            }
        };
        tracing::info!("HTTP stopped; closing WebSockets");
        token.cancel();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while gauges.connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(server) = metrics_server {
            // A scrape in flight gets a moment; a stuck one does not hold
            // the exit.
            let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
        }
        result
    }
}

/// How long each start-up step took, logged at debug level
/// (`RUST_LOG=cerebral::app=debug`): where start-up time goes, without a
/// profiler (see bench/startup.py).
struct Steps {
    begun: std::time::Instant,
    last: std::time::Instant,
}

impl Steps {
    fn start() -> Self {
        let now = std::time::Instant::now();
        Steps {
            begun: now,
            last: now,
        }
    }

    fn done(&mut self, step: &'static str) {
        let now = std::time::Instant::now();
        tracing::debug!(
            step,
            step_ms = (now - self.last).as_secs_f64() * 1e3,
            total_ms = (now - self.begun).as_secs_f64() * 1e3,
            "start-up step done"
        );
        self.last = now;
    }
}

/// Row-level security binds only a role that is not a superuser, has no
/// `BYPASSRLS` and owns no table. Development setups often serve as
/// `postgres`, so this warns loudly instead of refusing to start.
async fn warn_if_rls_is_bypassed(db: &sea_orm::DatabaseConnection) {
    match crate::rls::check_role(db).await {
        Ok(Some(check)) => {
            let weak = check.weaknesses();
            if !weak.is_empty() {
                tracing::warn!(
                    role = %check.role,
                    "ROW-LEVEL SECURITY IS NOT ENFORCED for this server: its database role {}. \
                     Serve as a role that owns nothing (DATABASE_URL) and migrate as the owner \
                     (CEREBRAL_MIGRATION_DATABASE_URL); see README, \"Tenant isolation on PostgreSQL\".",
                    weak.join("; ")
                );
            }
        }
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot check the database role for row-level security")
        }
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
