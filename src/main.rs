//! The `cerebral` binary: parses the command line and runs one command.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use migration::MigratorTrait;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;

use cerebral::app::App;
use cerebral::auth::Principal;
use cerebral::config::{Cli, Command, Config, LogFormat, MigrateAction};

/// mimalloc instead of the system allocator: answering a query allocates
/// and frees many small objects (values, strings, futures), and glibc's
/// malloc took 30 % of the server's CPU on the nested benchmark query
/// (docs/benchmarks.md). Version 2 (the `v2` feature), which returns freed
/// pages to the system after 10 ms: version 3 waits a second, and under a
/// burst of large requests kept the process 40 MB over the memory bound
/// that tests/api/abuse checks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_with_env();
    let telemetry = init_tracing(&cli.config);
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Export the spans still queued (the last requests before a SIGTERM)
    // before the process ends; blocking, so off the async threads.
    if let Some(provider) = telemetry {
        let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(e)) = flushed {
            eprintln!("warning: OpenTelemetry flush failed: {e}");
        }
    }
    code
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = App::build(&config).await?;
            tracing::info!(
                "Cerebral listening on http://{0}/graphql (GraphiQL in a browser, WebSocket subscriptions on the same path)",
                app.local_addr()
            );
            if let Some(addr) = app.metrics_addr() {
                tracing::info!(
                    "Prometheus metrics on http://{addr}/metrics (and not on the main listener)"
                );
            }
            app.run_until_stopped().await?;
        }
        Command::Migrate { action } => {
            // One connection: `migrate` holds its advisory lock on it.
            // As the owner role when one is configured.
            let (db, _) = cerebral::db::connect(config.migration_url(), 1).await?;
            match action {
                // Grants the tables to DATABASE_URL's role (not PUBLIC)
                // when that is not the migrating role.
                MigrateAction::Up => {
                    let serving = cerebral::db::serving_role(&config.db.database_url);
                    cerebral::db::migrate_granting(&db, serving.as_deref()).await?
                }
                MigrateAction::Down => migration::Migrator::down(&db, Some(1)).await?,
                MigrateAction::Status => {
                    for m in migration::Migrator::get_migration_with_status(&db).await? {
                        println!("{}\t{}", m.name(), m.status());
                    }
                }
            }
        }
        Command::PrintSchema => print!("{}", cerebral::graphql::sdl()),
        Command::Token {
            tenant,
            sub,
            roles,
            ttl,
        } => {
            let secret = config
                .auth
                .jwt_secret
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("set CEREBRAL_JWT_SECRET to mint tokens"))?;
            println!(
                "{}",
                cerebral::auth::mint(secret, tenant, &sub, &roles, ttl)?
            );
        }
        Command::Import { dir } => {
            // Reading and parsing block: off the async workers.
            let limits = cerebral::app::catalog_limits(&config);
            let folder = dir.clone();
            let report = tokio::task::spawn_blocking(move || {
                cerebral::catalog::parse_dir_with(&folder, &limits)
            })
            .await??;
            for e in &report.errors {
                eprintln!("skipped {}: {}", e.path, e.reason);
            }
            let mut config = config;
            config.server.listen = "127.0.0.1:0".parse()?;
            config.server.metrics_listen = None;
            // Nothing is served: the import acts as the development
            // principal on the database it was pointed at, so an image
            // that requires a token key (CEREBRAL_REQUIRE_AUTH) can still
            // import without one.
            config.auth.require_auth = false;
            let app = App::build(&config).await?;
            let counts = app
                .services()
                .import_catalog(&Principal::development(), &report.pack)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "imported {} personas, {} teams, {} workflows from {} ({} files refused)",
                counts.personas,
                counts.teams,
                counts.workflows,
                dir.display(),
                report.errors.len()
            );
            if !report.errors.is_empty() {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Demo { url, workflow } => {
            let summary = cerebral::demo::run(&url, &workflow, |line| println!("{line}")).await?;
            println!(
                "project {} completed at {}% with {} artifacts, {} checkpoints and {} approvals",
                summary.project_id,
                summary.percentage,
                summary.artifacts,
                summary.checkpoints,
                summary.approvals
            );
        }
        Command::Healthcheck { url } => {
            let url = url.unwrap_or_else(|| config.self_url());
            let ok = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(3))
                .build()?
                .get(format!("{}/healthz", url.trim_end_matches('/')))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr (text or JSON) and, when `OTEL_EXPORTER_OTLP_ENDPOINT`
/// is set, exports the same spans over OTLP/HTTP (protobuf) to a
/// collector. The provider is returned so `main` can flush it on exit.
fn init_tracing(config: &Config) -> Option<SdkTracerProvider> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let fmt = match config.server.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
    };
    let provider = otlp_provider();
    let otel = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer().with_tracer(p.tracer("cerebral"))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .init();
    provider
}

/// The OTLP span exporter, configured by the standard `OTEL_*` variables
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`,
/// `OTEL_SERVICE_NAME`, `OTEL_BSP_*` …); None when no endpoint is set or
/// the exporter cannot be built (said on stderr: logging is not up yet).
fn otlp_provider() -> Option<SdkTracerProvider> {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
    if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        return None;
    }
    // The blocking HTTP client must not be built or dropped on an async
    // thread; the batch processor then exports from a thread of its own.
    let built = std::thread::spawn(|| {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
    })
    .join();
    let exporter = match built {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => {
            eprintln!("warning: OpenTelemetry export is off: {e}");
            return None;
        }
        Err(_) => return None,
    };
    let mut resource = opentelemetry_sdk::Resource::builder();
    if !set("OTEL_SERVICE_NAME") {
        resource = resource.with_service_name("cerebral");
    }
    Some(
        SdkTracerProvider::builder()
            .with_resource(resource.build())
            .with_batch_exporter(exporter)
            .build(),
    )
}
