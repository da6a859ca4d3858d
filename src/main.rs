//! The `cerebral` binary: parses the command line and runs one command.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use migration::MigratorTrait;
use tracing_subscriber::EnvFilter;

use cerebral::app::App;
use cerebral::auth::Principal;
use cerebral::config::{Cli, Command, Config, LogFormat, MigrateAction};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.config);
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
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
            app.run_until_stopped().await?;
        }
        Command::Migrate { action } => {
            // One connection: `migrate` holds its advisory lock on it.
            // As the owner role when one is configured.
            let (db, _) = cerebral::db::connect(config.migration_url(), 1).await?;
            match action {
                MigrateAction::Up => cerebral::db::migrate(&db).await?,
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
                .jwt_secret
                .as_deref()
                .ok_or_else(|| anyhow::anyhow!("set CEREBRAL_JWT_SECRET to mint tokens"))?;
            println!(
                "{}",
                cerebral::auth::mint(secret, tenant, &sub, &roles, ttl)?
            );
        }
        Command::Import { dir } => {
            let report = cerebral::catalog::parse_dir(&dir)?;
            for e in &report.errors {
                eprintln!("skipped {}: {}", e.path, e.reason);
            }
            let app = App::build(&Config {
                listen: "127.0.0.1:0".parse()?,
                ..config
            })
            .await?;
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

fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
