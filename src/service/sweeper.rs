//! The background sweeper: expires what time has run out on. It runs in
//! every replica; each change it makes is a guarded update, so replicas
//! racing on the same row produce one change and one event.

use std::time::Duration;

use super::Services;

/// Rows one sweep handles per kind; the next sweep takes the rest.
const BATCH: u64 = 500;

impl Services {
    /// One sweep over every tenant. Errors are logged, never fatal.
    pub async fn sweep(&self) {
        match self.expire_overdue_sessions(None, BATCH).await {
            Ok(v) if !v.is_empty() => tracing::info!(count = v.len(), "sessions expired"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e, "session sweep failed"),
        }
        let keep = self.settings().max_checkpoints_per_task;
        let age = self.settings().checkpoint_retention;
        match self.prune_checkpoints(keep, age, BATCH * 10).await {
            Ok(n) if n > 0 => tracing::info!(count = n, "checkpoints pruned"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e, "checkpoint retention failed"),
        }
        match self.prune_idempotency_keys().await {
            Ok(n) if n > 0 => tracing::info!(count = n, "idempotency keys dropped"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e, "idempotency key cleanup failed"),
        }
        match self.expire_overdue_hitl(BATCH).await {
            Ok(n) if n > 0 => tracing::info!(count = n, "HITL requests expired"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e, "HITL sweep failed"),
        }
    }

    /// Marks agents STALE after `silence` without a sign of life, checking
    /// every half of it so none is reported more than 1.5 × late.
    pub fn spawn_stale_agent_check(&self, silence: Duration) {
        let s = self.clone();
        let limit = chrono::Duration::from_std(silence).unwrap_or(chrono::Duration::seconds(60));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval((silence / 2).max(Duration::from_secs(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match s.mark_stale_agents(limit, BATCH).await {
                    Ok(n) if n > 0 => tracing::info!(count = n, "agents marked STALE"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = ?e, "stale agent check failed"),
                }
            }
        });
    }

    /// Sweeps every `interval` until the process ends.
    pub fn spawn_sweeper(&self, interval: Duration) {
        let s = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                s.sweep().await;
            }
        });
    }
}
