//! Analytics: per-persona and per-workflow figures computed from tasks and events.

use async_graphql::{Context, ID, Object, Result};

use super::limits::Counted;
use super::types::*;
use super::{loaders, principal, services};
use crate::ids::{self, Kind};

/// How one persona's tasks went.
#[derive(async_graphql::Description)]
pub struct PersonaAnalytics(pub crate::service::analytics::PersonaStats);

#[Object(use_type_description)]
impl PersonaAnalytics {
    /// The persona.
    async fn persona(&self, ctx: &Context<'_>) -> Result<Option<Persona>> {
        Ok(one(&loaders(ctx).personas, self.0.persona_id)
            .await?
            .map(Persona))
    }
    /// Tasks COMPLETED.
    async fn tasks_completed(&self) -> i64 {
        self.0.completed
    }
    /// Tasks FAILED.
    async fn tasks_failed(&self) -> i64 {
        self.0.failed
    }
    /// Share of finished tasks that completed: completed / (completed +
    /// failed), 0–1; null before any finished.
    async fn success_rate(&self) -> Option<f64> {
        let done = self.0.completed + self.0.failed;
        (done > 0).then(|| self.0.completed as f64 / done as f64)
    }
    /// Mean start-to-completion time of completed tasks, in seconds.
    async fn mean_duration_seconds(&self) -> Option<f64> {
        self.0.mean_seconds
    }
    /// 95th percentile (nearest rank) of the same, in seconds.
    async fn p95_duration_seconds(&self) -> Option<f64> {
        self.0.p95_seconds
    }
}

/// How one workflow's projects went.
#[derive(async_graphql::Description)]
pub struct WorkflowAnalytics(pub crate::service::analytics::WorkflowStats);

#[Object(use_type_description)]
impl WorkflowAnalytics {
    /// The workflow.
    async fn workflow(&self, ctx: &Context<'_>) -> Result<Option<Workflow>> {
        Ok(one(&loaders(ctx).workflows, self.0.workflow_id)
            .await?
            .map(Workflow))
    }
    /// Projects started from it.
    async fn projects_started(&self) -> i64 {
        self.0.started
    }
    /// Of those, COMPLETED.
    async fn projects_completed(&self) -> i64 {
        self.0.completed
    }
    /// Mean time from creation to completion, in seconds.
    async fn mean_time_to_complete_seconds(&self) -> Option<f64> {
        self.0.mean_seconds
    }
}

/// Analytics queries.
#[derive(Default)]
pub struct AnalyticsQuery;

#[Object]
impl AnalyticsQuery {
    /// Per persona: tasks completed and failed, success rate, mean and p95
    /// duration (seconds) — over the tenant, or one project.
    async fn persona_analytics(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only this project's tasks.")] project_id: Option<ID>,
    ) -> Result<Counted<Vec<PersonaAnalytics>>> {
        {
            let project = project_id
                .map(|p| ids::decode(Kind::Project, &p))
                .transpose()?;
            Ok(services(ctx)
                .persona_stats(principal(ctx), project)
                .await?
                .into_iter()
                .map(PersonaAnalytics)
                .collect())
        }
        .map(Counted)
    }

    /// Per workflow: projects started and completed, mean time to complete
    /// (seconds).
    async fn workflow_analytics(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Counted<Vec<WorkflowAnalytics>>> {
        {
            Ok(services(ctx)
                .workflow_stats(principal(ctx))
                .await?
                .into_iter()
                .map(WorkflowAnalytics)
                .collect())
        }
        .map(Counted)
    }
}
