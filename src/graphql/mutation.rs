//! What every mutation shares: running under an idempotency key.
//!
//! Each noun's module holds its own mutation root: one lifecycle verb per
//! transition, each taking a `<Verb><Noun>Input` and returning a
//! `<Verb><Noun>Payload` with the changed object and the event it appended,
//! so a client needs one round trip.

use async_graphql::{Context, Result};
use serde_json::Value;

use super::{principal, services};
use crate::service::Services;
use crate::service::idempotency::Replay;

/// Runs a mutation under its `idempotencyKey` through the service layer
/// (`crate::service::idempotency`), which also rebuilds a repeat's result;
/// the field's name and arguments identify the request.
pub(crate) async fn keyed<P, R, Run, Fut>(
    ctx: &Context<'_>,
    key: Option<&str>,
    run: Run,
) -> Result<P>
where
    P: From<R>,
    R: Replay,
    Run: FnOnce(Services) -> Fut,
    Fut: std::future::Future<Output = crate::error::AppResult<R>>,
{
    let request = match key {
        Some(_) => {
            let field = ctx.field();
            let args = field
                .arguments()
                .map_err(|e| async_graphql::Error::new(e.message))?;
            Value::Object(
                args.into_iter()
                    .map(|(k, v)| (k.to_string(), v.into_json().unwrap_or_default()))
                    .collect(),
            )
        }
        None => Value::Null,
    };
    let done = services(ctx)
        .keyed(principal(ctx), key, (ctx.field().name(), &request), run)
        .await?;
    Ok(done.into())
}
