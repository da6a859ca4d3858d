//! Pure lifecycle rules: the status enums of every entity and the transitions
//! DESIGN.md allows between them. No I/O lives here, so every (state, command)
//! pair can be tested as a table.
//!
//! Each enum derives both the sea-orm and the GraphQL enum traits, so the value
//! stored in the database, the value in the API and the value the rules check
//! are one type. Stored values are stable upper-case strings.

// First, so its `stored_enum!` and `lifecycle!` reach the modules below.
#[macro_use]
pub mod lifecycle;
pub mod checkpoint;
pub mod event;
pub mod hitl;
pub mod project;
pub mod session;
pub mod story;
pub mod task;

pub use event::EventType;
pub use lifecycle::*;
