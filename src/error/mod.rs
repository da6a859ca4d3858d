//! The one error type of the services and its one conversion to a GraphQL
//! error.
//!
//! Codes are API, listed in [`code`] with every other code the server
//! answers with; they are tested and never renamed. The crate enables
//! async-graphql's `custom-error-conversion`, so a bare `?` on any other
//! error type does not compile: nothing can reach a client without a code.

pub mod code;

use async_graphql::ErrorExtensions;
use sea_orm::{DbErr, SqlErr};

/// Every failure a service can report, classified by whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input is malformed or breaks a rule that does not depend on state.
    #[error("{0}")]
    BadInput(String),
    /// No such object for the caller (another tenant's object included).
    #[error("{entity} {id} not found")]
    NotFound {
        /// GraphQL type name, e.g. `Task`.
        entity: &'static str,
        /// The id as the client sent it.
        id: String,
    },
    /// The lifecycle does not allow this change from the current state, or
    /// a precondition of the change (dependencies, the project's state)
    /// does not hold; `reason` says which.
    #[error("cannot move {entity} from {from} to {to}{}; allowed from {from}: {allowed}", reason.as_ref().map(|r| format!(" ({r})")).unwrap_or_default(), allowed = if .allowed.is_empty() { "none (terminal state)".to_string() } else { .allowed.join(", ") })]
    InvalidTransition {
        /// GraphQL type name.
        entity: &'static str,
        /// The current state.
        from: String,
        /// The requested state.
        to: String,
        /// The states the current one may move to.
        allowed: Vec<String>,
        /// Why a transition the table allows is refused now.
        reason: Option<String>,
    },
    /// The change raced another one or targets a stale version.
    #[error("{0}")]
    Conflict(String),
    /// A write based on an old version of a versioned object (`CONFLICT`,
    /// with `expectedVersion` and `latestVersion` so the client can reload
    /// and retry).
    #[error("version conflict on {what}: expected {expected}, latest is {latest}")]
    VersionConflict {
        /// What was written, e.g. `checkpoint step 'draft'`.
        what: String,
        /// The version the client based its write on.
        expected: i32,
        /// The version that is current.
        latest: i32,
    },
    /// No valid credentials.
    #[error("authentication required")]
    Unauthenticated,
    /// Valid credentials without the right to do this.
    #[error("{0}")]
    Forbidden(String),
    /// A stream subscriber is further behind than the server will replay
    /// (`RESYNC_REQUIRED`, with `latestCursor` and `reason`): reload state
    /// with queries, then subscribe again from `latestCursor`. Sent as the
    /// last item of the stream instead of silently skipping events.
    #[error("resync required: {reason}")]
    ResyncRequired {
        /// The newest committed cursor when the stream gave up.
        latest_cursor: i64,
        /// Why the server stopped replaying.
        reason: String,
    },
    /// PostgreSQL cancelled a statement that ran past `statement_timeout`
    /// (`TIMEOUT`); nothing of the change was kept.
    #[error("the database statement ran too long and was cancelled")]
    Timeout,
    /// A fault of the server; logged in full, shown to the client as a code only.
    #[error("internal server error")]
    Internal(#[source] anyhow::Error),
}

/// Result type of the service layer.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// The stable `extensions.code` of this error.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadInput(_) => code::BAD_USER_INPUT,
            AppError::NotFound { .. } => code::NOT_FOUND,
            AppError::InvalidTransition { .. } => code::INVALID_TRANSITION,
            AppError::Conflict(_) | AppError::VersionConflict { .. } => code::CONFLICT,
            AppError::Unauthenticated => code::UNAUTHENTICATED,
            AppError::Forbidden(_) => code::FORBIDDEN,
            AppError::ResyncRequired { .. } => code::RESYNC_REQUIRED,
            AppError::Timeout => code::TIMEOUT,
            AppError::Internal(_) => code::INTERNAL_SERVER_ERROR,
        }
    }

    /// Shorthand for [`AppError::NotFound`].
    pub fn not_found(entity: &'static str, id: impl ToString) -> Self {
        AppError::NotFound {
            entity,
            id: id.to_string(),
        }
    }

    /// Shorthand for [`AppError::BadInput`].
    pub fn bad_input(msg: impl Into<String>) -> Self {
        AppError::BadInput(msg.into())
    }

    /// Builds [`AppError::InvalidTransition`] from any lifecycle enum.
    pub fn transition<S: sea_orm::ActiveEnum<Value = String> + Copy>(
        entity: &'static str,
        from: S,
        to: S,
        allowed: &[S],
    ) -> Self {
        AppError::InvalidTransition {
            entity,
            from: from.to_value(),
            to: to.to_value(),
            allowed: allowed.iter().map(|s| s.to_value()).collect(),
            reason: None,
        }
    }

    /// Adds the reason to an [`AppError::InvalidTransition`].
    pub fn because(self, why: impl Into<String>) -> Self {
        match self {
            AppError::InvalidTransition {
                entity,
                from,
                to,
                allowed,
                ..
            } => AppError::InvalidTransition {
                entity,
                from,
                to,
                allowed,
                reason: Some(why.into()),
            },
            other => other,
        }
    }
}

impl From<DbErr> for AppError {
    fn from(e: DbErr) -> Self {
        // A unique or foreign key violation is the client's race or mistake,
        // not a server fault; everything else is internal.
        match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                AppError::Conflict("a conflicting change was made at the same time".into())
            }
            Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
                AppError::BadInput("a referenced object does not exist".into())
            }
            // SQLSTATE 57014: query_canceled (statement_timeout).
            _ if e.to_string().contains("57014") || e.to_string().contains("statement timeout") => {
                AppError::Timeout
            }
            _ => AppError::Internal(e.into()),
        }
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(e: AppError) -> Self {
        if let AppError::Internal(inner) = &e {
            tracing::error!(error = ?inner, "internal error");
        }
        let code = e.code();
        let base = async_graphql::Error::new(e.to_string());
        base.extend_with(|_, ext| {
            ext.set("code", code);
            match &e {
                AppError::NotFound { entity, id } => {
                    ext.set("entity", *entity);
                    ext.set("id", id.as_str());
                }
                AppError::InvalidTransition {
                    entity,
                    from,
                    to,
                    allowed,
                    reason,
                } => {
                    if let Some(r) = reason {
                        ext.set("reason", r.as_str());
                    }
                    ext.set("entity", *entity);
                    ext.set("from", from.as_str());
                    ext.set("to", to.as_str());
                    ext.set(
                        "allowed",
                        async_graphql::Value::List(
                            allowed
                                .iter()
                                .map(|a| async_graphql::Value::from(a.as_str()))
                                .collect(),
                        ),
                    );
                }
                AppError::VersionConflict {
                    expected, latest, ..
                } => {
                    ext.set("expectedVersion", *expected);
                    ext.set("latestVersion", *latest);
                }
                AppError::ResyncRequired {
                    latest_cursor,
                    reason,
                } => {
                    ext.set("latestCursor", latest_cursor.to_string());
                    ext.set("reason", reason.as_str());
                }
                _ => {}
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TaskStatus;

    #[test]
    fn the_code_survives_conversion_to_a_graphql_error() {
        let e: async_graphql::Error = AppError::transition(
            "Task",
            TaskStatus::Completed,
            TaskStatus::Working,
            TaskStatus::Completed.allowed_transitions(),
        )
        .into();
        let ext = e.extensions.expect("extensions are set");
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("INVALID_TRANSITION"))
        );
        assert_eq!(
            ext.get("from"),
            Some(&async_graphql::Value::from("COMPLETED"))
        );
    }

    #[test]
    fn internal_errors_do_not_leak_their_text() {
        let e: async_graphql::Error =
            AppError::Internal(anyhow::anyhow!("SELECT secret FROM x")).into();
        assert_eq!(e.message, "internal server error");
    }
}
