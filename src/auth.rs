//! Who is calling: the principal every service function takes.
//!
//! Without authentication configured the server is single-tenant: every
//! caller is [`Principal::development`]. The authentication issue fills the
//! principal from a verified token instead; nothing below the HTTP layer
//! changes.

use uuid::Uuid;

/// The tenant that owns the built-in catalog, visible to every tenant.
pub const SYSTEM_TENANT: Uuid = Uuid::nil();

/// The one tenant of single-tenant (development) mode.
pub const DEFAULT_TENANT: Uuid = Uuid::from_u128(1);

/// A role a principal holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// May read.
    Viewer,
    /// May report status, progress, artifacts and checkpoints, and ask humans.
    Agent,
    /// May run lifecycle changes and answer HITL requests.
    Operator,
    /// May import catalogs and force changes.
    Admin,
}

/// The caller of a request, as established by the HTTP layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The tenant every read and write is scoped to.
    pub tenant_id: Uuid,
    /// The user (or agent) id, recorded as the actor of events.
    pub user_id: String,
    /// What the principal may do.
    pub roles: Vec<Role>,
}

impl Principal {
    /// The caller in single-tenant mode: the default tenant, every role.
    pub fn development() -> Self {
        Principal {
            tenant_id: DEFAULT_TENANT,
            user_id: "developer".to_string(),
            roles: vec![Role::Viewer, Role::Agent, Role::Operator, Role::Admin],
        }
    }

    /// Refuses with `FORBIDDEN` unless the principal holds `role`; `what`
    /// names the action in the message.
    pub fn require(&self, role: Role, what: &str) -> Result<(), crate::error::AppError> {
        if self.roles.contains(&role) {
            Ok(())
        } else {
            Err(crate::error::AppError::Forbidden(format!(
                "only the {role:?} role may {what}"
            )))
        }
    }

    /// A principal for the system itself (start-up catalog load, sweepers).
    pub fn system() -> Self {
        Principal {
            tenant_id: SYSTEM_TENANT,
            user_id: "system".to_string(),
            roles: vec![Role::Admin],
        }
    }
}
