//! Global object ids.
//!
//! Every object's GraphQL `id` is `<Type>:<uuid>`, e.g.
//! `Task:0193a6b2-…`. The type prefix lets `node(id:)` find the table in one
//! step and lets every argument refuse an id of the wrong type with a clear
//! `BAD_USER_INPUT` instead of a confusing `NOT_FOUND`.

use uuid::Uuid;

use crate::error::AppError;

/// The object types that have global ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Project:…`
    Project,
    /// `Task:…`
    Task,
    /// `Persona:…`
    Persona,
    /// `Team:…`
    Team,
    /// `Workflow:…`
    Workflow,
    /// `WorkflowStep:…`
    WorkflowStep,
    /// `Session:…`
    Session,
    /// `PersonaContext:…`
    PersonaContext,
    /// `TaskCheckpoint:…`
    TaskCheckpoint,
    /// `HitlRequest:…`
    HitlRequest,
    /// `Artifact:…`
    Artifact,
    /// `AgentStatus:…`
    AgentStatus,
    /// `Event:…`
    Event,
    /// `Epic:…`
    Epic,
    /// `Story:…`
    Story,
    /// `QaGate:…`
    QaGate,
}

impl Kind {
    /// The prefix, equal to the GraphQL type name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Project => "Project",
            Kind::Task => "Task",
            Kind::Persona => "Persona",
            Kind::Team => "Team",
            Kind::Workflow => "Workflow",
            Kind::WorkflowStep => "WorkflowStep",
            Kind::Session => "Session",
            Kind::PersonaContext => "PersonaContext",
            Kind::TaskCheckpoint => "TaskCheckpoint",
            Kind::HitlRequest => "HitlRequest",
            Kind::Artifact => "Artifact",
            Kind::AgentStatus => "AgentStatus",
            Kind::Event => "Event",
            Kind::Epic => "Epic",
            Kind::Story => "Story",
            Kind::QaGate => "QaGate",
        }
    }

    const ALL: [Kind; 16] = [
        Kind::Project,
        Kind::Task,
        Kind::Persona,
        Kind::Team,
        Kind::Workflow,
        Kind::WorkflowStep,
        Kind::Session,
        Kind::PersonaContext,
        Kind::TaskCheckpoint,
        Kind::HitlRequest,
        Kind::Artifact,
        Kind::AgentStatus,
        Kind::Event,
        Kind::Epic,
        Kind::Story,
        Kind::QaGate,
    ];
}

/// Formats a global id (the GraphQL layer wraps it in an `ID`).
pub fn encode(kind: Kind, id: Uuid) -> String {
    format!("{}:{}", kind.name(), id)
}

/// Splits any global id into its kind and UUID.
pub fn decode_any(id: &str) -> Result<(Kind, Uuid), AppError> {
    let (prefix, raw) = id.split_once(':').ok_or_else(|| {
        AppError::bad_input(format!("'{id}' is not a Cerebral id (<Type>:<uuid>)"))
    })?;
    let kind = Kind::ALL
        .into_iter()
        .find(|k| k.name() == prefix)
        .ok_or_else(|| AppError::bad_input(format!("'{prefix}' is not a type with ids")))?;
    let uuid = Uuid::parse_str(raw)
        .map_err(|_| AppError::bad_input(format!("'{raw}' in id '{id}' is not a UUID")))?;
    Ok((kind, uuid))
}

/// Parses a global id that must be of `kind`.
pub fn decode(kind: Kind, id: &str) -> Result<Uuid, AppError> {
    let (found, uuid) = decode_any(id)?;
    if found != kind {
        return Err(AppError::bad_input(format!(
            "expected a {} id, got a {} id",
            kind.name(),
            found.name()
        )));
    }
    Ok(uuid)
}

/// Parses an optional global id that must be of `kind`.
pub fn decode_opt<S: AsRef<str>>(kind: Kind, id: Option<S>) -> Result<Option<Uuid>, AppError> {
    id.map(|i| decode(kind, i.as_ref())).transpose()
}

/// Parses global ids that must all be of `kind`; the first bad one is the error.
pub fn decode_all<S: AsRef<str>>(
    kind: Kind,
    ids: impl IntoIterator<Item = S>,
) -> Result<Vec<Uuid>, AppError> {
    ids.into_iter().map(|i| decode(kind, i.as_ref())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_wrong_types_are_refused() {
        let u = Uuid::now_v7();
        let id = encode(Kind::Task, u);
        assert_eq!(decode(Kind::Task, &id).expect("round trip"), u);
        assert!(matches!(
            decode(Kind::Project, &id),
            Err(AppError::BadInput(_))
        ));
        assert!(decode_any("Task:nope").is_err());
        assert!(decode_any("nothing").is_err());
    }
}
