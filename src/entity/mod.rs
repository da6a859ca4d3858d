//! sea-orm entities, one per table. They carry no GraphQL derives: the API has
//! its own output types built from these models.

pub mod agent_status;
pub mod agent_status_history;
pub mod artifact;
pub mod artifact_content;
pub mod event;
pub mod event_sequence;
pub mod hitl_request;
pub mod idempotency_key;
pub mod persona;
pub mod persona_context;
pub mod project;
pub mod session;
pub mod task;
pub mod task_checkpoint;
pub mod task_checkpoint_state;
pub mod task_dependency;
pub mod team;
pub mod team_member;
pub mod team_workflow;
pub mod workflow;
pub mod workflow_step;
