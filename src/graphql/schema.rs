//! The schema's three roots, each merged from the nouns' parts (one module
//! per noun: its types, queries, mutations and streams).

use async_graphql::{MergedObject, MergedSubscription};

use super::types::*;

/// The query root.
#[derive(MergedObject, Default)]
pub struct Query(
    NodeQuery,
    ProjectQuery,
    TaskQuery,
    HitlQuery,
    CheckpointQuery,
    ArtifactQuery,
    AgentQuery,
    CatalogQuery,
    SessionQuery,
    StoryQuery,
    EventQuery,
    AnalyticsQuery,
);

/// The mutation root.
#[derive(MergedObject, Default)]
pub struct Mutation(
    ProjectMutation,
    TaskMutation,
    HitlMutation,
    CheckpointMutation,
    ArtifactMutation,
    AgentMutation,
    SessionMutation,
    PersonaContextMutation,
    CatalogMutation,
    StoryMutation,
    QaGateMutation,
);

/// The subscription root: live streams of the tenant's events that resume
/// from a cursor without a gap.
#[derive(MergedSubscription, Default)]
pub struct Subscription(
    EventSubscription,
    TaskSubscription,
    ArtifactSubscription,
    AgentSubscription,
    HitlSubscription,
    StorySubscription,
);
