//! Command line and configuration. Every setting is a flag `--some-name`
//! that can also be set by the environment variable `CEREBRAL_SOME_NAME`
//! (the flag's name, upper-cased, after `CEREBRAL_`; [`Cli::command_with_env`]
//! applies that rule once, so no name can drift from its flag), except
//! `DATABASE_URL`, which keeps the name every tool uses. Settings are
//! grouped by concern; `cerebral --help` lists them all under one heading
//! per group.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Cerebral: a GraphQL control plane for AI agent teams, compatible with the
/// BMad Method.
#[derive(Debug, Parser)]
#[command(name = "cerebral", version, about)]
pub struct Cli {
    /// What to do; `serve` when left out.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by every command.
    #[command(flatten)]
    pub config: Config,
}

impl Cli {
    /// The command line with every setting given its environment variable
    /// (`CEREBRAL_` and the upper-cased flag name, unless the field names
    /// one itself) and made global, so it can follow a subcommand too
    /// (`cerebral migrate --database-url …`).
    pub fn command_with_env() -> clap::Command {
        <Self as clap::CommandFactory>::command().mut_args(|arg| {
            let env = arg
                .get_env()
                .is_none()
                .then(|| format!("CEREBRAL_{}", arg.get_id().as_str().to_uppercase()));
            let arg = arg.global(true);
            match env {
                Some(env) => arg.env(env),
                None => arg,
            }
        })
    }

    /// Parses `args` (the program name first) and the environment.
    pub fn try_parse_with_env<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut matches = Self::command_with_env().try_get_matches_from(args)?;
        <Self as clap::FromArgMatches>::from_arg_matches_mut(&mut matches)
    }

    /// Parses the process's arguments and environment; prints the error or
    /// the help and exits when they ask for it.
    pub fn parse_with_env() -> Self {
        Self::try_parse_with_env(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }
}

/// The commands of the binary.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply or inspect database migrations.
    Migrate {
        /// What to do with the migrations.
        #[arg(value_enum, default_value = "up")]
        action: MigrateAction,
    },
    /// Print the GraphQL schema (SDL) to standard output.
    PrintSchema,
    /// Import a V4-format folder (agents/, agent-teams/, workflows/) into the
    /// catalog of the default tenant.
    Import {
        /// The folder to read.
        dir: PathBuf,
    },
    /// Play an agent team running the `greenfield-service` workflow against a
    /// running server, printing what happens.
    Demo {
        /// The GraphQL endpoint of the server.
        #[arg(
            long,
            env = "CEREBRAL_DEMO_URL",
            default_value = "http://127.0.0.1:8000/graphql"
        )]
        url: String,
        /// The workflow to run.
        #[arg(long, default_value = "greenfield-service")]
        workflow: String,
    },
    /// Print a bearer token signed with `CEREBRAL_JWT_SECRET`, for
    /// development and scripts (production tokens come from your identity
    /// provider).
    Token {
        /// The tenant (a UUID other than the nil one).
        #[arg(long)]
        tenant: uuid::Uuid,
        /// The user or agent id (`sub`).
        #[arg(long, default_value = "developer")]
        sub: String,
        /// Roles, comma-separated: viewer, agent, operator, admin.
        #[arg(long, value_delimiter = ',', default_value = "viewer")]
        roles: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// Exit 0 when the server answers on /healthz, 1 otherwise (for container
    /// health checks; needs no shell tools).
    Healthcheck {
        /// Base URL of the server; by default the listen address
        /// (`CEREBRAL_LISTEN`), with 0.0.0.0 or [::] probed on loopback.
        #[arg(long, env = "CEREBRAL_HEALTHCHECK_URL")]
        url: Option<String>,
    },
}

/// What `cerebral migrate` does.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Roll back the last applied migration.
    Down,
    /// List migrations and whether each is applied.
    Status,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Server settings, one group per concern (each its own `--help`
/// heading). Passed in explicitly (no globals), so tests build an app with
/// their own.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Where the server listens, how it shuts down, and what it logs.
    #[command(flatten)]
    pub server: ServerConfig,
    /// The database and how the server reads it.
    #[command(flatten)]
    pub db: DatabaseConfig,
    /// How bearer tokens are checked; none of these set means development mode.
    #[command(flatten)]
    pub auth: AuthConfig,
    /// What one HTTP request may carry and take, and how often a caller may send one.
    #[command(flatten)]
    pub requests: RequestConfig,
    /// What one GraphQL document or operation may ask for (checked before it runs), and automatic persisted queries.
    #[command(flatten)]
    pub query: QueryConfig,
    /// The event bus: how events reach other processes and live subscribers.
    #[command(flatten)]
    pub events: EventConfig,
    /// What one WebSocket, one address and the whole server may hold open.
    #[command(flatten)]
    pub ws: WsConfig,
    /// When sessions, HITL requests and agents time out, and what history is kept.
    #[command(flatten)]
    pub lifecycle: LifecycleConfig,
    /// What one catalog or persona-context import may bring.
    #[command(flatten)]
    pub catalog: CatalogConfig,
}

/// Where the server listens, how it shuts down, and what it logs.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Server")]
pub struct ServerConfig {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// Address of a second listener that serves only `/metrics`; when set,
    /// the main listener no longer does (404). The figures cover every
    /// tenant and need no token, so keep this address off the public
    /// network (`127.0.0.1:9000`, or `0.0.0.0:9000` in a container whose
    /// port 9000 is reachable by Prometheus only).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
    /// How long the task and HITL counts on `/metrics` are reused before
    /// they are counted again, in seconds: the counts scan the tables of
    /// every tenant, so a burst of scrapes costs one count, not one each.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub metrics_counts_ttl_seconds: u64,
    /// On SIGTERM/SIGINT, how long in-flight HTTP requests may take to
    /// finish, in seconds; then WebSockets are closed (1001) and the process
    /// exits whatever is still running.
    #[arg(long, default_value_t = 30)]
    pub shutdown_timeout_seconds: u64,
    /// Log format.
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Origins whose browser pages may call the API (CORS), comma-separated
    /// (`https://app.example.com,https://ops.example.com`), or `*` for any.
    /// Empty (the default): no CORS headers, so only pages served by this
    /// server (GraphiQL) and non-browser clients can call it. Credentials
    /// are never allowed: tokens travel in `Authorization`, not cookies.
    #[arg(long, value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Host names the server answers besides loopback ones, comma-separated
    /// (`cerebral.internal,10.0.0.5`), or `*` for any. Unset: only
    /// `localhost`, 127.0.0.0/8 and `[::1]` without authentication (so a
    /// web page cannot reach a development server through DNS rebinding),
    /// any name with it. Other names get 403 `FORBIDDEN`; `/healthz` and
    /// `/readyz` answer any.
    #[arg(long, value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Test-only routes that panic or sleep, and a resolver that panics
    /// when selected as `panicProbe`, to exercise the catch-panic and
    /// timeout layers; not settable from the command line or environment,
    /// and compiled only with the `test-hooks` feature (the tests').
    #[cfg(feature = "test-hooks")]
    #[arg(skip)]
    pub test_routes: bool,
}

/// The database and how the server reads it.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseConfig {
    /// Database URL: `sqlite://PATH?mode=rwc` (the default, created on first
    /// start) or `postgres://USER@HOST/DB`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://./data/cerebral.db?mode=rwc"
    )]
    pub database_url: String,
    /// Database URL migrations run with (start-up and `cerebral migrate`);
    /// defaults to `DATABASE_URL`. On PostgreSQL, point it at the role that
    /// owns the tables and `DATABASE_URL` at a role that owns nothing, so
    /// row-level security binds the server (README, "Tenant isolation on
    /// PostgreSQL").
    #[arg(long)]
    pub migration_database_url: Option<String>,
    /// Largest number of pooled database connections.
    #[arg(long, default_value_t = 16)]
    pub db_max_connections: u32,
    /// How long a DataLoader of a WebSocket operation waits to gather keys
    /// before it queries, in microseconds. Sibling fields register their keys
    /// within one poll, so a short window batches them without adding
    /// noticeable latency. Over HTTP no window is needed: a loader queries as
    /// soon as the operation waits (see `graphql::batch`).
    #[arg(long, default_value_t = 200)]
    pub dataloader_delay_us: u64,
}

/// How bearer tokens are checked; none of these set means development mode.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Authentication")]
pub struct AuthConfig {
    /// HS256 secret for bearer tokens. With it (or a public key) every
    /// request needs `Authorization: Bearer <jwt>` and every WebSocket its
    /// token in `connection_init`; without either, the server runs in
    /// single-tenant development mode.
    #[arg(long, hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// RS256 or ES256 public key for bearer tokens: PEM text or a path to a
    /// PEM file.
    #[arg(long)]
    pub jwt_public_key: Option<String>,
    /// URL of a JSON Web Key Set (RS256/ES256 keys chosen by the token's
    /// `kid`), e.g. an identity provider's `/.well-known/jwks.json`. Fetched
    /// on first use, again when a token names an unknown `kid` (at most
    /// every 5 s) and every 10 minutes.
    #[arg(long)]
    pub jwks_url: Option<String>,
    /// Required `iss` claim, when set.
    #[arg(long)]
    pub jwt_issuer: Option<String>,
    /// Required `aud` claim, when set.
    #[arg(long)]
    pub jwt_audience: Option<String>,
    /// Refuse to start without a token key (no development mode by accident
    /// in production).
    #[arg(long, default_value_t = false)]
    pub require_auth: bool,
}

/// What one HTTP request may carry and take, and how often a caller may send one.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Requests")]
pub struct RequestConfig {
    /// Largest HTTP request body in bytes; more is 413 `PAYLOAD_TOO_LARGE`, with or without a Content-Length.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Most JSON values (numbers, strings, array items, object members…) in one request body or WebSocket message, counted before it is parsed: parsed JSON takes many times the memory of its text (`BAD_REQUEST`, HTTP 400).
    #[arg(long, default_value_t = 100_000)]
    pub max_json_values: usize,
    /// Largest small JSON input, in bytes of JSON text: task output, HITL responses and response schemas, persona-context state patches and history entries — the JSON that travels in events (`BAD_USER_INPUT` naming the field).
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_json_bytes: usize,
    /// Largest JSON content, in bytes of JSON text: artifact content, checkpoint state, a persona context's state (after a patch too) — content fetched by id, never carried in events (`BAD_USER_INPUT` naming the field).
    #[arg(long, default_value_t = 512 * 1024)]
    pub max_content_bytes: usize,
    /// Longest a GraphQL request may run, in seconds; then it is cancelled (`TIMEOUT`: HTTP 504; over WebSocket an `error` for a query or mutation), and on PostgreSQL so is its running statement (`statement_timeout`). 0: no limit.
    #[arg(long, default_value_t = 10)]
    pub request_timeout_seconds: u64,
    /// Requests a second each tenant may send (each client address, without
    /// authentication), sustained; more is 429 `RATE_LIMITED` with
    /// `Retry-After`. 0 turns rate limiting off.
    #[arg(long, default_value_t = 50)]
    pub rate_limit_per_second: u32,
    /// Requests a tenant (or address) may send at once above the sustained
    /// rate, after a quiet spell.
    #[arg(long, default_value_t = 100)]
    pub rate_limit_burst: u32,
}

/// What one GraphQL document or operation may ask for (checked before it runs), and automatic persisted queries.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "GraphQL limits")]
pub struct QueryConfig {
    /// Largest GraphQL document in bytes (`DOCUMENT_TOO_LARGE`).
    #[arg(long, default_value_t = 32 * 1024)]
    pub max_document_bytes: usize,
    /// Most lexical tokens in a GraphQL document (`DOCUMENT_TOO_LARGE`).
    #[arg(long, default_value_t = 15_000)]
    pub max_tokens: usize,
    /// Deepest field nesting of an operation, introspection fields excluded (`MAX_DEPTH_EXCEEDED`).
    #[arg(long, default_value_t = 10)]
    pub max_depth: usize,
    /// Deepest nesting inside `__schema` / `__type`, counting them as 1 (`MAX_DEPTH_EXCEEDED`). The default is what the standard introspection query of graphql-js and GraphiQL needs, and no more.
    #[arg(long, default_value_t = crate::graphql::limits::STANDARD_INTROSPECTION_DEPTH)]
    pub max_introspection_depth: usize,
    /// Most fields, fragment spreads and inline fragments in a document with every fragment spread expanded where it is spread (`MAX_FIELDS_EXCEEDED`).
    #[arg(long, default_value_t = 5_000)]
    pub max_fields: usize,
    /// Highest cost of an operation, and of all operations of a batch together: a field costs 1, a page `first` × what each item selects, an introspection list the schema's size of it × what each item selects (`MAX_COMPLEXITY_EXCEEDED`).
    #[arg(long, default_value_t = 50_000)]
    pub max_complexity: usize,
    /// Most aliased fields in a document (`MAX_ALIASES_EXCEEDED`).
    #[arg(long, default_value_t = 30)]
    pub max_aliases: usize,
    /// Most root fields in one operation (`MAX_ROOT_FIELDS_EXCEEDED`).
    #[arg(long, default_value_t = 20)]
    pub max_root_fields: usize,
    /// Most directives on one field, fragment or operation (`MAX_DIRECTIVES_EXCEEDED`).
    #[arg(long, default_value_t = 10)]
    pub max_directives: usize,
    /// Most operations in one batched POST (`BATCH_TOO_LARGE`).
    #[arg(long, default_value_t = 10)]
    pub max_batch: usize,
    /// Most errors in one response; the rest are summed up in a last `TOO_MANY_ERRORS` error.
    #[arg(long, default_value_t = 100)]
    pub max_errors: usize,
    /// Largest answer to one operation, in bytes of JSON, counted as it is built (its strings, JSON values and list items; small scalars are bounded by complexity); past it the operation stops and is answered with `RESPONSE_TOO_LARGE` and no data. 0: no limit.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub max_response_bytes: usize,
    /// Serve introspection and "did you mean" suggestions. `false` hides
    /// the schema from callers (GraphiQL then cannot explore it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub introspection: bool,
    /// How many documents automatic persisted queries (Apollo APQ)
    /// remember, least recently used dropped first; 0 turns APQ off. Only
    /// documents the limits admitted are kept.
    #[arg(long, default_value_t = 1000)]
    pub apq_cache_size: usize,
    /// Most bytes of document text automatic persisted queries keep, all
    /// tenants together; least recently used documents go first.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub apq_cache_bytes: usize,
}

/// The event bus: how events reach other processes and live subscribers.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Events")]
pub struct EventConfig {
    /// How often each process checks the event log for events committed by
    /// other processes (replicas on PostgreSQL, a CLI import on SQLite), in
    /// milliseconds (0 turns it off).
    #[arg(long, default_value_t = 500)]
    pub event_poll_ms: u64,
    /// Events of the whole process kept in memory for live fan-out. A
    /// subscriber that falls further behind than this is not dropped: it
    /// catches up from the event table, then rejoins the live feed.
    #[arg(long, default_value_t = 1024)]
    pub event_buffer: usize,
    /// Most memory, in bytes, the events held whole in that buffer may take
    /// (their payloads as parsed JSON); past it an event goes on the buffer
    /// as a stub and the subscribers that want it read it from the event
    /// table. Bounds the buffer whatever the payloads' sizes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub event_buffer_bytes: usize,
    /// Largest number of its own events one subscription replays to catch up
    /// (after a late cursor or after falling behind); further behind, it
    /// gets `RESYNC_REQUIRED` with the latest cursor instead and ends, so one
    /// stale dashboard cannot make the server stream its whole history.
    /// 0: no limit (every event is always delivered).
    #[arg(long, default_value_t = 0)]
    pub max_replay_events: u64,
}

/// What one WebSocket, one address and the whole server may hold open.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "WebSocket")]
pub struct WsConfig {
    /// How long a WebSocket may stay open without `connection_init`, in
    /// milliseconds; then it is closed with 4408 (graphql-transport-ws).
    #[arg(long, default_value_t = 3000)]
    pub ws_init_timeout_ms: u64,
    /// Active subscriptions one WebSocket may hold; one more is answered
    /// with an `error` message (`TOO_MANY_SUBSCRIPTIONS`) and the socket stays.
    #[arg(long, default_value_t = 100)]
    pub ws_max_subscriptions: usize,
    /// How often the server pings a WebSocket, in seconds. A peer that sends
    /// nothing (not even a pong) for two intervals, or does not take a
    /// message for that long, is dropped (0 turns pinging off).
    #[arg(long, default_value_t = 15)]
    pub ws_ping_interval_seconds: u64,
    /// Largest WebSocket message a client may send, in bytes.
    #[arg(long, default_value_t = 256 * 1024)]
    pub ws_max_message_bytes: usize,
    /// What a WebSocket may send before its `connection_init` is
    /// acknowledged, in bytes: one message, or all the legacy `start`s
    /// queued until then. More closes the socket with 4400.
    #[arg(long, default_value_t = 64 * 1024)]
    pub ws_max_early_bytes: usize,
    /// Legacy (`graphql-ws`) `start` messages a socket may queue before its
    /// `connection_init`; one more closes it with 4400.
    #[arg(long, default_value_t = 16)]
    pub ws_max_early_operations: usize,
    /// Open WebSockets the server holds at once; one more upgrade is
    /// answered 503 `TOO_MANY_CONNECTIONS` (0: no limit).
    #[arg(long, default_value_t = 10_000)]
    pub ws_max_connections: usize,
    /// Open WebSockets one client address may hold; one more upgrade is
    /// answered 429 `TOO_MANY_CONNECTIONS` (0: no limit). The address is
    /// the TCP peer's: behind a proxy, all clients share the proxy's.
    #[arg(long, default_value_t = 64)]
    pub ws_max_connections_per_address: usize,
    /// New WebSockets a second one client address may open, sustained (in
    /// bursts of up to the per-address limit); more is 429
    /// `TOO_MANY_CONNECTIONS` with `Retry-After` (0: no limit).
    #[arg(long, default_value_t = 10)]
    pub ws_upgrades_per_second: u32,
}

/// When sessions, HITL requests and agents time out, and what history is kept.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Lifecycle and retention")]
pub struct LifecycleConfig {
    /// Inactivity after which a session expires, in minutes.
    #[arg(long, default_value_t = 60)]
    pub session_timeout_minutes: i64,
    /// Live sessions one user may hold; starting one more expires the least
    /// recently active of them.
    #[arg(long, default_value_t = 10)]
    pub max_sessions_per_user: usize,
    /// How often the background sweeper expires overdue sessions and HITL
    /// requests and marks silent agents STALE, in seconds (0 turns it off).
    #[arg(long, default_value_t = 300)]
    pub sweep_interval_seconds: u64,
    /// Silence after which an agent is reported STALE, in seconds; checked
    /// every half of it (0 turns the check off).
    #[arg(long, default_value_t = 60)]
    pub agent_stale_seconds: u64,
    /// Checkpoints kept per task whatever their age (retention).
    #[arg(long, default_value_t = 100)]
    pub max_checkpoints_per_task: u64,
    /// Age in days beyond which checkpoints beyond the kept ones are dropped
    /// (the newest of each task and pinned ones are always kept).
    #[arg(long, default_value_t = 30)]
    pub checkpoint_retention_days: i64,
    /// Entries kept in a persona context's history; the oldest are dropped.
    #[arg(long, default_value_t = 1000)]
    pub max_context_history: usize,
}

/// What one catalog or persona-context import may bring.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Catalog imports")]
pub struct CatalogConfig {
    /// Largest persona context snapshot `importPersonaContext` accepts, in
    /// bytes of its JSON once inflated; a snapshot that declares or
    /// inflates to more is `BAD_USER_INPUT`, and the rest of its gzip is
    /// never inflated.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_snapshot_bytes: usize,
    /// Largest catalog file (`importCatalog`, `cerebral import`), in bytes;
    /// a larger file is reported as refused and the rest imports.
    #[arg(long, default_value_t = 256 * 1024)]
    pub max_catalog_file_bytes: usize,
    /// Largest catalog import, all its files together, in bytes; the files
    /// past it are reported as refused and not read.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub max_catalog_import_bytes: usize,
}

impl Config {
    /// Whether the test-only hooks are on (`test_routes`):
    /// never in a build without the `test-hooks` feature.
    pub fn test_hooks(&self) -> bool {
        #[cfg(feature = "test-hooks")]
        return self.server.test_routes;
        #[cfg(not(feature = "test-hooks"))]
        false
    }

    /// The URL migrations run with: the migration URL if set, else the
    /// serving one.
    pub fn migration_url(&self) -> &str {
        self.db
            .migration_database_url
            .as_deref()
            .unwrap_or(&self.db.database_url)
    }

    /// The base URL at which this server answers itself: the listen
    /// address, with a wildcard one (0.0.0.0, [::]) on loopback.
    pub fn self_url(&self) -> String {
        let mut addr = self.server.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(match addr.ip() {
                std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        format!("http://{addr}")
    }

    /// Settings for tests and embedding: the defaults with the given database
    /// and port 0.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        let mut config = Cli::try_parse_with_env(["cerebral"])
            .unwrap_or_else(|e| e.exit())
            .config;
        config.db.database_url = database_url.into();
        config.server.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule the module states: every setting has its environment
    /// variable, named after its flag, and may follow a subcommand.
    #[test]
    fn every_setting_reads_the_variable_named_after_its_flag() {
        let command = Cli::command_with_env();
        let mut seen = 0;
        for arg in command.get_arguments() {
            let long = arg.get_long().expect("settings are flags");
            let env = arg.get_env().and_then(|e| e.to_str()).expect("an env");
            let expected = format!("CEREBRAL_{}", long.replace('-', "_").to_uppercase());
            assert!(env == expected || env == "DATABASE_URL", "{long}: {env}");
            assert!(arg.is_global_set(), "{long} is not global");
            seen += 1;
        }
        assert!(seen > 40, "only {seen} settings");
        let cli = Cli::try_parse_with_env(["cerebral", "migrate", "--max-depth", "3"])
            .expect("a setting after a subcommand");
        assert_eq!(cli.config.query.max_depth, 3);
    }

    /// README names settings by their variables; a renamed flag must not
    /// leave it naming one that no longer exists.
    #[test]
    fn every_variable_the_readme_names_is_a_setting() {
        let readme = include_str!("../README.md");
        let command = Cli::command_with_env();
        let settings: Vec<_> = command
            .get_arguments()
            .filter_map(|a| a.get_env()?.to_str())
            .collect();
        // Variables of other programs (scripts, the browser test, the
        // subcommands' own flags) that README also mentions.
        const OTHERS: [&str; 7] = [
            "CEREBRAL_TOKEN",
            "CEREBRAL_OWNER_PASSWORD",
            "CEREBRAL_APP_PASSWORD",
            "CEREBRAL_BROWSER_TESTS",
            "CEREBRAL_BMAD_FIXTURES",
            "CEREBRAL_DEMO_URL",
            "CEREBRAL_HEALTHCHECK_URL",
        ];
        let mut named = 0;
        for word in readme.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("CEREBRAL_") && !OTHERS.contains(&word) {
                assert!(settings.contains(&word), "README names {word}");
                named += 1;
            }
        }
        assert!(named > 10, "README names only {named} settings");
    }
}
