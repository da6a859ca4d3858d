//! Objects resolved without async-graphql's per-field boxing, on the schema
//! that has no extension (plain HTTP queries, [`super::Lean`]).
//!
//! async-graphql resolves every object by boxing one future per selected
//! field and driving them through a `FuturesUnordered` of its own (one
//! allocation for the set, two per field, an atomic wake per field). A page
//! of 20 projects with 20 tasks and their personas is about 800 objects
//! and 2,000 fields, so that machinery was a fifth of the nested query's
//! server CPU (`docs/benchmarks.md`, "Objects without per-field boxing").
//! [`Fast`] resolves the same fields through the same generated
//! `resolve_field`, one boxed future per field polled in place, and
//! only where that is exactly what the library would do: no extension in
//! the schema (so no per-field hook to call) and a selection of plain
//! fields (no fragment, no directive left after `@skip`/`@include`, which
//! the library strips before execution). Anything else takes the library's
//! own path.
//!
//! One difference is deliberate: the fields of an object resolved here go
//! into the answer in the order they were selected, as the GraphQL
//! specification asks ("Serialized Map Ordering"), where the library's set
//! inserts them in the order they finish — a field waiting on a DataLoader
//! moved after its siblings. Objects the library resolves (the root, a
//! connection and its edges, a selection with fragments, any object on the
//! schema with the extension) keep the library's order.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use async_graphql::indexmap::IndexMap;
use async_graphql::parser::types::{Field, Selection};
use async_graphql::registry::Registry;
use async_graphql::resolver_utils::ContainerType;
use async_graphql::{ContextSelectionSet, Name, OutputType, Positioned, ServerResult, Value};

/// Marks the schema built without an extension: present in its data, so
/// [`Fast`] knows no per-field hook is skipped by resolving directly.
pub struct NoFieldHooks;

/// `T` in the schema, under `T`'s own name and fields; resolved as
/// described in the module's documentation.
pub struct Fast<T>(pub T);

impl<T: ContainerType> OutputType for Fast<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.0.introspection_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        match plain_fields(ctx) {
            Some(fields) => Ok(resolve_plain(ctx, &self.0, fields).await),
            None => self.0.resolve(ctx, field).await,
        }
    }
}

/// Past this many fields the library's own set resolves the object:
/// [`resolve_plain`] polls every unfinished field whenever one is woken.
const MAX_FIELDS: usize = 32;

/// The selected fields, when the selection is only plain fields on a schema
/// without an extension.
fn plain_fields<'a>(ctx: &ContextSelectionSet<'a>) -> Option<Vec<&'a Positioned<Field>>> {
    ctx.data_opt::<NoFieldHooks>()?;
    let items = &ctx.item.node.items;
    let mut fields = Vec::with_capacity(items.len());
    for selection in items {
        match &selection.node {
            Selection::Field(f) if f.node.directives.is_empty() && fields.len() < MAX_FIELDS => {
                fields.push(f)
            }
            _ => return None,
        }
    }
    Some(fields)
}

/// What `async_graphql::resolver_utils::resolve_container` answers for the
/// same plain fields, but in selection order: a field's error is recorded
/// on the context and the field left out, and two fields with one response
/// key are merged.
async fn resolve_plain<'a, T: ContainerType>(
    ctx: &ContextSelectionSet<'a>,
    root: &'a T,
    fields: Vec<&'a Positioned<Field>>,
) -> Value {
    // Boxed each, as the library does (a field's future is the size of
    // `resolve_field`'s largest branch, 0.5–1 KB, too large to move around
    // in a `join_all`), and polled in place in selection order: no set, no
    // per-field wake.
    let mut slots: Vec<Slot<_>> = fields
        .into_iter()
        .map(|field| {
            Slot::Running(Box::pin(async move {
                let ctx_field = ctx.with_field(field);
                let name = field.node.response_key().node.clone();
                if field.node.name.node == "__typename" {
                    return Ok((
                        name,
                        Value::String(root.introspection_type_name().into_owned()),
                    ));
                }
                let value = root.resolve_field(&ctx_field).await?;
                Ok((name, value.unwrap_or_default()))
            }))
        })
        .collect();
    std::future::poll_fn(|cx| {
        let mut ready = true;
        for slot in &mut slots {
            if let Slot::Running(f) = slot {
                match f.as_mut().poll(cx) {
                    Poll::Ready(res) => *slot = Slot::Done(res),
                    Poll::Pending => ready = false,
                }
            }
        }
        if ready {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    let mut results = IndexMap::with_capacity(slots.len());
    for slot in slots {
        match slot {
            Slot::Done(Ok((name, value))) => insert_value(&mut results, name, value),
            Slot::Done(Err(e)) => ctx.add_error(e),
            Slot::Running(_) => {}
        }
    }
    if results.is_empty() {
        Value::Null
    } else {
        Value::Object(results)
    }
}

/// One field of [`resolve_plain`]: its future until it finishes, then its
/// answer.
enum Slot<F: Future> {
    Running(Pin<Box<F>>),
    Done(F::Output),
}

/// async-graphql's merge of a field into an object already holding its
/// response key (`resolver_utils::container::insert_value`, private there).
fn insert_value(target: &mut IndexMap<Name, Value>, name: Name, value: Value) {
    let Some(prev) = target.get_mut(&name) else {
        target.insert(name, value);
        return;
    };
    match (prev, value) {
        (Value::Object(prev), Value::Object(obj)) => {
            for (k, v) in obj {
                insert_value(prev, k, v);
            }
        }
        (Value::List(prev), Value::List(list)) => {
            for (item, v) in prev.iter_mut().zip(list) {
                if let (Value::Object(prev), Value::Object(obj)) = (item, v) {
                    for (k, v) in obj {
                        insert_value(prev, k, v);
                    }
                }
            }
        }
        _ => {}
    }
}
