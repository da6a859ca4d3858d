//! Analytics for analysts, computed in SQL (one grouped query each; no
//! table is loaded into memory). Durations are in seconds.
//!
//! p95 is the nearest-rank percentile: the value at rank ⌈0.95·n⌉ of the
//! sorted durations, found with a window function so SQLite (which has no
//! percentile aggregate) and PostgreSQL give the same answer.

use sea_orm::{DbBackend, FromQueryResult, Statement, Value};
use uuid::Uuid;

use super::Services;
use crate::auth::Principal;
use crate::error::AppResult;

/// Outcomes of one persona's tasks.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct PersonaStats {
    /// The persona.
    pub persona_id: Uuid,
    /// Tasks COMPLETED.
    pub completed: i64,
    /// Tasks FAILED.
    pub failed: i64,
    /// Mean start-to-end time of completed tasks, seconds.
    pub mean_seconds: Option<f64>,
    /// 95th percentile (nearest rank) of the same, seconds.
    pub p95_seconds: Option<f64>,
}

/// Outcomes of one workflow's projects.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct WorkflowStats {
    /// The workflow.
    pub workflow_id: Uuid,
    /// Projects created from it.
    pub started: i64,
    /// Of those, COMPLETED.
    pub completed: i64,
    /// Mean creation-to-completion time of the completed ones, seconds.
    pub mean_seconds: Option<f64>,
}

#[derive(Debug, FromQueryResult)]
struct Wait {
    project_id: Uuid,
    seconds: Option<f64>,
}

/// `end - start` in seconds, per back-end.
fn seconds_between(backend: DbBackend, start: &str, end: &str) -> String {
    match backend {
        DbBackend::Postgres => format!("EXTRACT(EPOCH FROM ({end} - {start}))::float8"),
        _ => format!("((julianday({end}) - julianday({start})) * 86400.0)"),
    }
}

/// Placeholder number `n` (1-based) per back-end.
fn ph(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_string(),
    }
}

impl Services {
    /// Per persona: tasks completed and failed, mean and p95 duration of
    /// completed tasks (optionally of one project).
    pub async fn persona_stats(
        &self,
        p: &Principal,
        project: Option<Uuid>,
    ) -> AppResult<Vec<PersonaStats>> {
        let b = self.unscoped().get_database_backend();
        let dur = seconds_between(b, "started_at", "ended_at");
        let mut values: Vec<Value> = vec![p.tenant_id.into()];
        let project_sql = match project {
            Some(pid) => {
                values.push(pid.into());
                format!(" AND project_id = {}", ph(b, 2))
            }
            None => String::new(),
        };
        let tenant = ph(b, 1);
        let sql = format!(
            "WITH t AS (
                SELECT persona_id, status,
                       CASE WHEN status = 'COMPLETED' AND started_at IS NOT NULL AND ended_at IS NOT NULL THEN {dur} END AS secs
                FROM tasks WHERE tenant_id = {tenant} AND persona_id IS NOT NULL{project_sql}
            ),
            ranked AS (
                SELECT persona_id, secs,
                       ROW_NUMBER() OVER (PARTITION BY persona_id ORDER BY secs) AS rn,
                       COUNT(*) OVER (PARTITION BY persona_id) AS n
                FROM t WHERE secs IS NOT NULL
            ),
            p95 AS (
                SELECT persona_id, MIN(secs) AS p95_seconds FROM ranked
                WHERE rn = (95 * n + 99) / 100 GROUP BY persona_id
            )
            SELECT t.persona_id AS persona_id,
                   SUM(CASE WHEN t.status = 'COMPLETED' THEN 1 ELSE 0 END) AS completed,
                   SUM(CASE WHEN t.status = 'FAILED' THEN 1 ELSE 0 END) AS failed,
                   AVG(t.secs) AS mean_seconds,
                   MIN(p95.p95_seconds) AS p95_seconds
            FROM t LEFT JOIN p95 ON p95.persona_id = t.persona_id
            GROUP BY t.persona_id
            ORDER BY t.persona_id"
        );
        Ok(
            PersonaStats::find_by_statement(Statement::from_sql_and_values(b, sql, values))
                .all(&self.reader(p.tenant_id))
                .await?,
        )
    }

    /// Per workflow: projects started and completed, mean time to complete.
    pub async fn workflow_stats(&self, p: &Principal) -> AppResult<Vec<WorkflowStats>> {
        let b = self.unscoped().get_database_backend();
        let dur = seconds_between(b, "created_at", "ended_at");
        let sql = format!(
            "SELECT workflow_id,
                    COUNT(*) AS started,
                    SUM(CASE WHEN status = 'COMPLETED' THEN 1 ELSE 0 END) AS completed,
                    AVG(CASE WHEN status = 'COMPLETED' AND ended_at IS NOT NULL THEN {dur} END) AS mean_seconds
             FROM projects WHERE tenant_id = {} AND workflow_id IS NOT NULL
             GROUP BY workflow_id ORDER BY workflow_id",
            ph(b, 1)
        );
        Ok(
            WorkflowStats::find_by_statement(Statement::from_sql_and_values(
                b,
                sql,
                [p.tenant_id.into()],
            ))
            .all(&self.reader(p.tenant_id))
            .await?,
        )
    }

    /// Seconds each project spent waiting for humans: the sum over its HITL
    /// requests of the time from asking to answer (or to now, while
    /// pending). Overlapping requests count once each.
    pub async fn human_wait(
        &self,
        tenant: Uuid,
        projects: &[Uuid],
    ) -> AppResult<std::collections::HashMap<Uuid, f64>> {
        if projects.is_empty() {
            return Ok(Default::default());
        }
        let b = self.unscoped().get_database_backend();
        let now = match b {
            DbBackend::Postgres => "now()".to_string(),
            _ => "strftime('%Y-%m-%d %H:%M:%f', 'now')".to_string(),
        };
        let end = format!("COALESCE(resolved_at, {now})");
        let dur = seconds_between(b, "created_at", &end);
        let mut values: Vec<Value> = vec![tenant.into()];
        let phs: Vec<String> = projects
            .iter()
            .map(|p| {
                values.push((*p).into());
                ph(b, values.len())
            })
            .collect();
        let sql = format!(
            "SELECT project_id, SUM({dur}) AS seconds FROM hitl_requests
             WHERE tenant_id = {} AND project_id IN ({}) GROUP BY project_id",
            ph(b, 1),
            phs.join(", ")
        );
        let rows = Wait::find_by_statement(Statement::from_sql_and_values(b, sql, values))
            .all(&self.reader(tenant))
            .await?;
        Ok(rows
            .into_iter()
            .map(|w| (w.project_id, w.seconds.unwrap_or(0.0).max(0.0)))
            .collect())
    }
}
