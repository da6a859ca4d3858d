//! Idempotency keys.
//!
//! A client may send `idempotencyKey` with a creating or transitioning
//! mutation. The first request with a key runs normally, and the key — with
//! the operation, a hash of the request's arguments and the sequence numbers
//! of the events the change appended — is written **in the same
//! transaction** as the change (see `Tx::commit`), so the key exists exactly
//! when the change does. A repeat with the same key and the same arguments
//! changes nothing and returns the original result, rebuilt from those
//! events; the same key with other arguments is a `CONFLICT`. Keys are per
//! tenant and kept at least 24 hours (the sweeper drops them after 25).
//!
//! The claim travels to `Services::begin` in a task-local, so service
//! signatures stay as they are; a mutation that opens more than one write
//! transaction must not take a key (the second commit would collide).

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::Services;
use crate::auth::Principal;
use crate::entity::{event, idempotency_key};
use crate::error::{AppError, AppResult};

/// The key a running mutation has claimed.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The client's key.
    pub key: String,
    /// The mutation field, e.g. `startTask`.
    pub operation: String,
    /// SHA-256 (hex) of the operation and its arguments.
    pub request_hash: String,
}

tokio::task_local! {
    /// The claim of the mutation running on this task, if any.
    pub static CLAIM: Claim;
}

/// How long keys are kept at least.
pub const KEEP: chrono::Duration = chrono::Duration::hours(25);

/// What a lookup found.
pub enum Lookup {
    /// Not seen: run the mutation under this claim.
    New(Claim),
    /// Seen with the same arguments: these are the events of the original
    /// change, in order.
    Replay(Vec<event::Model>),
}

impl Services {
    /// Checks a key before a mutation runs.
    pub async fn idempotency_lookup(
        &self,
        p: &Principal,
        key: &str,
        operation: &str,
        request: &serde_json::Value,
    ) -> AppResult<Lookup> {
        let key = key.trim();
        if key.is_empty() || key.len() > 200 {
            return Err(AppError::bad_input(
                "idempotencyKey must be 1–200 characters",
            ));
        }
        let request_hash = {
            use sha2::Digest;
            let bytes = serde_json::to_vec(&(operation, request)).unwrap_or_default();
            format!("{:x}", sha2::Sha256::digest(&bytes))
        };
        let found = idempotency_key::Entity::find_by_id((p.tenant_id, key.to_string()))
            .one(&self.reader(p.tenant_id))
            .await?;
        let Some(found) = found else {
            return Ok(Lookup::New(Claim {
                key: key.to_string(),
                operation: operation.to_string(),
                request_hash,
            }));
        };
        if found.operation != operation || found.request_hash != request_hash {
            return Err(AppError::Conflict(format!(
                "idempotencyKey '{key}' was already used for a different request ({}); use a new key",
                found.operation
            )));
        }
        let seqs: Vec<i64> = serde_json::from_value(found.event_seqs).unwrap_or_default();
        let events = event::Entity::find()
            .filter(event::Column::TenantId.eq(p.tenant_id))
            .filter(event::Column::Seq.is_in(seqs))
            .order_by_asc(event::Column::Seq)
            .all(&self.reader(p.tenant_id))
            .await?;
        Ok(Lookup::Replay(events))
    }

    /// Drops keys older than [`KEEP`]. Returns how many.
    pub async fn prune_idempotency_keys(&self) -> AppResult<u64> {
        let res = idempotency_key::Entity::delete_many()
            .filter(idempotency_key::Column::CreatedAt.lt(super::now() - KEEP))
            .exec(&self.all_tenants())
            .await?;
        Ok(res.rows_affected)
    }
}

/// The claim of the running task, if any.
pub fn current_claim() -> Option<Claim> {
    CLAIM.try_with(|c| c.clone()).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keep_is_at_least_a_day() {
        assert!(super::KEEP >= chrono::Duration::hours(24));
    }

    #[test]
    fn no_claim_outside_a_scope() {
        assert!(super::current_claim().is_none());
    }
}
