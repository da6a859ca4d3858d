//! Prometheus metrics, recorded with the `metrics` crate and rendered by
//! `metrics-exporter-prometheus` on `GET /metrics`.
//!
//! Each server owns its recorder instead of installing a process-wide one:
//! several servers in one process (the test suite, an embedding
//! application) then each report their own figures. Counters and
//! histograms are recorded as things happen; gauges that mirror state
//! (pool, WebSockets) are read when Prometheus scrapes, so they can never
//! drift from the truth. Tasks by status and pending HITL requests are
//! counted at a scrape too, at most once per
//! `CEREBRAL_METRICS_COUNTS_TTL_SECONDS` ([`CountCache`]).
//!
//! Label values come from a closed set (routes, statuses, operation types),
//! except GraphQL operation names, which clients choose: they are kept to
//! [`MAX_OPERATION_NAMES`] distinct names of at most 64 word characters, and
//! anything else is reported as `other`, so a client cannot blow up the
//! number of series.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Distinct GraphQL operation names reported as labels; later new names are
/// reported as `other`.
pub const MAX_OPERATION_NAMES: usize = 200;

/// Histogram buckets for durations, in seconds: 1 ms to 10 s.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Histogram buckets for subscriber lag, in events.
const LAG_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 10000.0,
];

const METADATA: Metadata<'static> = Metadata::new("cerebral", Level::INFO, Some("cerebral"));

/// The metrics of one server.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    operation_names: Mutex<HashSet<String>>,
    /// Events this process put on its live ring.
    pub events_published: Counter,
    /// Events handed to subscribers.
    pub events_delivered: Counter,
    /// Subscription frames sent from another subscriber's execution of the
    /// same selection instead of running it again.
    pub frames_shared: Counter,
    /// For each event handed to a subscriber, how far the committed head
    /// was ahead of it (events on SQLite, transactions on PostgreSQL).
    pub subscriber_lag: Histogram,
    /// Times an event stream was woken because the fan-out put an event on
    /// the ring that its filter may want: events a stream's filter
    /// excludes must not move it.
    pub stream_wakeups: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// What `/metrics` reads from the server's state at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// SQL statements executed through the request pool.
    pub db_statements: u64,
    /// Scoped transactions begun on the request pool (PostgreSQL).
    pub db_transactions: u64,
    /// Pooled database connections in use.
    pub db_connections_in_use: u64,
    /// Pooled database connections idle.
    pub db_connections_idle: u64,
    /// Highest committed event sequence number known to this process.
    pub event_head: i64,
    /// Event streams joined to the live ring.
    pub event_listeners: u64,
    /// Times a stream fell behind the ring and read the gap from the log.
    pub event_gap_reads: u64,
    /// Open WebSocket connections.
    pub ws_connections: u64,
    /// Active operations over all WebSocket connections.
    pub ws_subscriptions: u64,
    /// Whether the PostgreSQL event listener is connected (`None` on SQLite).
    pub event_listener_connected: Option<bool>,
    /// Tasks by status, over all tenants (`None` when the count failed).
    pub tasks_by_status: Option<Vec<(String, u64)>>,
    /// Pending HITL requests, over all tenants.
    pub hitl_pending: Option<u64>,
}

/// Tasks by status and pending HITL requests over all tenants, as counted
/// at one moment (each `None` when its count failed).
#[derive(Debug, Default, Clone)]
pub struct WorkCounts {
    /// Tasks by status.
    pub tasks_by_status: Option<Vec<(String, u64)>>,
    /// Pending HITL requests.
    pub hitl_pending: Option<u64>,
}

/// The last [`WorkCounts`] and when they were taken, reused for a TTL.
///
/// Counting means two aggregates over every tenant's tasks and HITL
/// requests, so a scrape storm must not run one pair each. The counts are
/// cached, not maintained: a counter kept up to date by the write paths
/// would only see this replica's writes (other replicas, the sweeper of
/// another process and `cerebral import` write too) and would drift for
/// good after one missed update, while a cached count is at most one TTL
/// old and always comes back to the truth. The refresh happens on a
/// scrape, never in the background, so an idle replica counts nothing;
/// one refresh runs at a time (the lock is held across it), and the
/// scrapes that queued behind it take its result instead of counting
/// again. A failed count is cached too: a struggling database gets one
/// attempt per TTL, not one per scrape.
#[derive(Debug)]
pub struct CountCache {
    ttl: Duration,
    last: tokio::sync::Mutex<Option<(std::time::Instant, WorkCounts)>>,
}

impl CountCache {
    /// An empty cache whose counts are reused for `ttl`.
    pub fn new(ttl: Duration) -> CountCache {
        CountCache {
            ttl,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// The cached counts when younger than the TTL; otherwise runs `count`
    /// (one caller at a time), caches and returns its result.
    pub async fn get_or_count<F>(&self, count: impl FnOnce() -> F) -> WorkCounts
    where
        F: std::future::Future<Output = WorkCounts>,
    {
        let mut last = self.last.lock().await;
        if let Some((at, counts)) = last.as_ref()
            && at.elapsed() < self.ttl
        {
            return counts.clone();
        }
        let counts = count().await;
        *last = Some((std::time::Instant::now(), counts.clone()));
        counts
    }
}

impl Metrics {
    /// A fresh set of metrics with every family described, and a task that
    /// keeps histogram storage bounded between scrapes.
    pub fn new() -> Arc<Metrics> {
        let builder = PrometheusBuilder::new();
        // Both matchers are valid (non-empty buckets), so these cannot fail;
        // fall back to summaries rather than refusing to start if they did.
        let builder = builder
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), DURATION_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("cerebral_subscriber_lag_events".into()),
                    LAG_BUCKETS,
                )
            })
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let describe =
            |kind: Kind, name: &'static str, unit: Option<Unit>, help: &'static str| match kind {
                Kind::Counter => recorder.describe_counter(name.into(), unit, help.into()),
                Kind::Gauge => recorder.describe_gauge(name.into(), unit, help.into()),
                Kind::Histogram => recorder.describe_histogram(name.into(), unit, help.into()),
            };
        for (kind, name, unit, help) in FAMILIES {
            describe(*kind, name, *unit, help);
        }
        let m = Metrics {
            events_published: recorder.register_counter(
                &Key::from_static_name("cerebral_events_published_total"),
                &METADATA,
            ),
            events_delivered: recorder.register_counter(
                &Key::from_static_name("cerebral_events_delivered_total"),
                &METADATA,
            ),
            frames_shared: recorder.register_counter(
                &Key::from_static_name("cerebral_subscription_frames_shared_total"),
                &METADATA,
            ),
            subscriber_lag: recorder.register_histogram(
                &Key::from_static_name("cerebral_subscriber_lag_events"),
                &METADATA,
            ),
            stream_wakeups: recorder.register_counter(
                &Key::from_static_name("cerebral_event_stream_wakeups_total"),
                &METADATA,
            ),
            recorder,
            handle,
            operation_names: Mutex::new(HashSet::new()),
        };
        let m = Arc::new(m);
        let weak = Arc::downgrade(&m);
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tick.tick().await;
                    match weak.upgrade() {
                        Some(m) => m.handle.run_upkeep(),
                        None => break,
                    }
                }
            });
        }
        m
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    /// Records one HTTP request: its route template (`/graphql`,
    /// `/projects/{id}/artifacts.zip`, never the raw path), method, status
    /// and how long the handler took to answer.
    pub fn http_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        let labels = || {
            vec![
                Label::new("route", route.to_string()),
                Label::new("method", method.to_string()),
            ]
        };
        let mut with_status = labels();
        with_status.push(Label::new("status", status.to_string()));
        self.counter("cerebral_http_requests_total", with_status)
            .increment(1);
        self.histogram("cerebral_http_request_duration_seconds", labels())
            .record(took.as_secs_f64());
    }

    /// Records one GraphQL operation: `kind` is `query`, `mutation`,
    /// `subscription` or `unknown` (not parsed), `outcome` is `ok`, `error`
    /// (ran, with errors) or `refused` (stopped before execution); `took`
    /// is recorded for operations that ran to an answer.
    pub fn graphql_operation(
        &self,
        kind: &str,
        name: Option<&str>,
        outcome: &str,
        took: Option<Duration>,
    ) {
        let name = self.operation_name(name);
        let labels = vec![
            Label::new("type", kind.to_string()),
            Label::new("name", name),
            Label::new("outcome", outcome.to_string()),
        ];
        if let Some(took) = took {
            self.histogram(
                "cerebral_graphql_operation_duration_seconds",
                labels.clone(),
            )
            .record(took.as_secs_f64());
        }
        self.counter("cerebral_graphql_operations_total", labels)
            .increment(1);
    }

    /// The label for a client-chosen operation name (see the module docs).
    fn operation_name(&self, name: Option<&str>) -> String {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return "anonymous".into();
        };
        let valid =
            name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return "other".into();
        }
        let Ok(mut names) = self.operation_names.lock() else {
            return "other".into();
        };
        if names.contains(name) {
            return name.to_string();
        }
        if names.len() < MAX_OPERATION_NAMES {
            names.insert(name.to_string());
            return name.to_string();
        }
        "other".into()
    }

    /// Sets the scrape-time gauges from `s` and renders every family in the
    /// Prometheus text format.
    pub fn render(&self, s: &Snapshot) -> String {
        let set = |name: &'static str, labels: Vec<Label>, v: f64| self.gauge(name, labels).set(v);
        self.counter("cerebral_db_statements_total", vec![])
            .absolute(s.db_statements);
        self.counter("cerebral_db_transactions_total", vec![])
            .absolute(s.db_transactions);
        self.counter("cerebral_event_gap_reads_total", vec![])
            .absolute(s.event_gap_reads);
        set(
            "cerebral_db_connections",
            vec![Label::new("state", "in_use")],
            s.db_connections_in_use as f64,
        );
        set(
            "cerebral_db_connections",
            vec![Label::new("state", "idle")],
            s.db_connections_idle as f64,
        );
        set("cerebral_event_head", vec![], s.event_head as f64);
        set("cerebral_event_listeners", vec![], s.event_listeners as f64);
        set(
            "cerebral_ws_connections_active",
            vec![],
            s.ws_connections as f64,
        );
        set(
            "cerebral_ws_subscriptions_active",
            vec![],
            s.ws_subscriptions as f64,
        );
        if let Some(c) = s.event_listener_connected {
            set(
                "cerebral_event_listener_connected",
                vec![],
                if c { 1.0 } else { 0.0 },
            );
        }
        if let Some(tasks) = &s.tasks_by_status {
            use sea_orm::{ActiveEnum, Iterable};
            // Every status, zeros included: a series that vanishes at zero
            // breaks rate() and alerts on it.
            for status in crate::domain::TaskStatus::iter() {
                let status = status.to_value();
                let n = tasks
                    .iter()
                    .find(|(st, _)| *st == status)
                    .map_or(0, |(_, n)| *n);
                set(
                    "cerebral_tasks",
                    vec![Label::new("status", status)],
                    n as f64,
                );
            }
        }
        if let Some(n) = s.hitl_pending {
            set("cerebral_hitl_requests_pending", vec![], n as f64);
        }
        self.handle.render()
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every family with its help text: the page Prometheus and people read.
const FAMILIES: &[(Kind, &str, Option<Unit>, &str)] = &[
    (
        Kind::Counter,
        "cerebral_http_requests_total",
        None,
        "HTTP requests answered, by route template, method and status.",
    ),
    (
        Kind::Histogram,
        "cerebral_http_request_duration_seconds",
        Some(Unit::Seconds),
        "Time to answer an HTTP request (for a WebSocket: the upgrade), by route and method.",
    ),
    (
        Kind::Counter,
        "cerebral_graphql_operations_total",
        None,
        "GraphQL operations over HTTP and WebSocket, by type, operation name and outcome (ok, error, refused; subscriptions count when they start).",
    ),
    (
        Kind::Histogram,
        "cerebral_graphql_operation_duration_seconds",
        Some(Unit::Seconds),
        "Execution time of GraphQL queries and mutations, by type, operation name and outcome.",
    ),
    (
        Kind::Gauge,
        "cerebral_ws_connections_active",
        None,
        "Open WebSocket connections.",
    ),
    (
        Kind::Gauge,
        "cerebral_ws_subscriptions_active",
        None,
        "Active operations over all WebSocket connections.",
    ),
    (
        Kind::Counter,
        "cerebral_events_published_total",
        None,
        "Committed events this process put on its live ring for its subscribers.",
    ),
    (
        Kind::Counter,
        "cerebral_events_delivered_total",
        None,
        "Events handed to subscribers (one event delivered to three subscribers counts three).",
    ),
    (
        Kind::Counter,
        "cerebral_subscription_frames_shared_total",
        None,
        "Subscription frames sent from another socket's execution of the same selection and event instead of running it again.",
    ),
    (
        Kind::Histogram,
        "cerebral_subscriber_lag_events",
        None,
        "How far the committed head was ahead of each event when it was handed to a subscriber (events on SQLite, transactions on PostgreSQL).",
    ),
    (
        Kind::Counter,
        "cerebral_event_stream_wakeups_total",
        None,
        "Times an event stream was woken for an event its filter may want (events a filter excludes wake nothing).",
    ),
    (
        Kind::Counter,
        "cerebral_event_gap_reads_total",
        None,
        "Times a stream fell behind the live ring and read the gap from the event log.",
    ),
    (
        Kind::Gauge,
        "cerebral_event_head",
        None,
        "Highest committed event position known to this process.",
    ),
    (
        Kind::Gauge,
        "cerebral_event_listeners",
        None,
        "Event streams joined to this process's live ring.",
    ),
    (
        Kind::Gauge,
        "cerebral_event_listener_connected",
        None,
        "1 while the PostgreSQL LISTEN connection for cross-replica events is up (PostgreSQL only).",
    ),
    (
        Kind::Counter,
        "cerebral_db_statements_total",
        None,
        "SQL statements executed through the request pool.",
    ),
    (
        Kind::Counter,
        "cerebral_db_transactions_total",
        None,
        "Times a row-level-security scope was set on the request pool (PostgreSQL: once per write transaction, and once each time a kept read session takes a tenant other than its own; a warm query sets none).",
    ),
    (
        Kind::Gauge,
        "cerebral_db_connections",
        None,
        "Pooled database connections, by state (in_use, idle).",
    ),
    (
        Kind::Gauge,
        "cerebral_tasks",
        None,
        "Tasks by status, over all tenants.",
    ),
    (
        Kind::Gauge,
        "cerebral_hitl_requests_pending",
        None,
        "HITL requests waiting for a person, over all tenants.",
    ),
];
