//! One subscription on a socket: how it was asked, how it runs (light
//! operations share executions, see `crate::graphql::share`), how its items are
//! batched into frames, and why it stops.

use crate::error::code;
use crate::graphql::share::ItemSlot;
use crate::graphql::subscription::{EventStream, OneItem, Plan};
use async_graphql::{Data, Response};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use serde_json::Value;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use super::*;

/// Most `next` frames written in one go: those ready at once, up to this
/// many or [`BATCH_BYTES`], are queued and then flushed together.
pub(crate) const BATCH_FRAMES: usize = 64;

/// Bytes of frames past which a batch is flushed (and past which the
/// socket's write buffer writes out on its own).
pub(crate) const BATCH_BYTES: usize = 16 * 1024;

/// What one item of an operation's stream means for the socket.
pub(crate) enum Item {
    /// A result to send as `next` (`data` in the legacy protocol): the
    /// serialized payload, and whether it came from another subscriber's
    /// execution (see [`crate::graphql::share`]).
    Next(Arc<str>, bool),
    /// An item could not be run or serialized (a bug, never expected):
    /// the socket is closed rather than sent a wrong payload.
    Broken,
    /// The operation could not start: send `error` and forget it.
    Refused(Box<Response>),
    /// The stream ended: send `complete`.
    End,
}

/// One operation's stream, counted in the gauge while it exists.
pub(crate) struct Operation {
    pub(crate) run: Run,
    /// The operation's link to the shared frames; `None` when its items
    /// cannot be shared.
    pub(crate) slot: Option<Arc<ItemSlot>>,
    pub(crate) first: bool,
    pub(crate) ended: bool,
    pub(crate) _held: Held,
}

/// How an operation runs.
///
/// An idle subscription held by async-graphql costs its stream, the parsed
/// document, the query environment and the root field's stream: about
/// 8 KB a socket, most of an idle socket's memory (docs/benchmarks.md).
/// Yet most sockets share their selection with others, whose items the
/// shared frames answer anyway. So an operation that can share is *light*:
/// it is planned first — the library runs it with a [`Plan`] in its data,
/// the root field checks its arguments and hands its event stream over
/// instead of streaming it — and then the operation holds only that event
/// stream. For each event it takes the payload from the shared frames, or,
/// the first of its selection to reach the event, runs the operation
/// through the library once for that event ([`OneItem`]) and stores the
/// payload for the others. The frames are the same as a full run's: the
/// same document, variables and caller run the same resolvers and hooks.
pub(crate) enum Run {
    /// The library's stream does everything, item by item: an operation
    /// that cannot share.
    Full(BoxStream<'static, Response>),
    /// Being planned; what was asked is kept to run it in full should it
    /// not plan (several root fields).
    Planning {
        setup: BoxStream<'static, Response>,
        plan: Arc<Plan>,
        asked: Box<Asked>,
    },
    /// Planned: its events, and each event's payload from the shared
    /// frames or one run of the selection.
    Light(Box<Light>),
}

/// What a subscribe asked for, to run it in full if planning does not do.
pub(crate) struct Asked {
    pub(crate) request: Value,
    pub(crate) schema: crate::graphql::AppSchema,
    pub(crate) session: Arc<Data>,
}

/// A planned operation.
pub(crate) struct Light {
    pub(crate) events: EventStream,
    /// The document its items run, when it differs from the one sent (a
    /// persisted query's text).
    pub(crate) query: Option<String>,
    pub(crate) schema: crate::graphql::AppSchema,
    pub(crate) session: Arc<Data>,
    /// The item being run: its event (`None` for an error) and the run.
    pub(crate) running: Option<(Option<i64>, BoxStream<'static, Response>)>,
}

impl Operation {
    /// An operation run in full by the library.
    pub(crate) fn full(stream: BoxStream<'static, Response>, held: Held) -> Operation {
        Operation {
            run: Run::Full(stream),
            slot: None,
            first: true,
            ended: false,
            _held: held,
        }
    }

    /// An executed item: the protocol's `error` when it is the first and
    /// nothing executed (a parse, validation or argument error), else its
    /// payload.
    pub(crate) fn answer(&mut self, r: Response, seq: Option<i64>) -> Item {
        let first = std::mem::replace(&mut self.first, false);
        if first && nothing_ran(&r) {
            self.ended = true;
            return Item::Refused(Box::new(r));
        }
        let text: Arc<str> = match serde_json::to_string(&r) {
            Ok(t) => Arc::from(t),
            Err(_) => return Item::Broken,
        };
        if let (Some(seq), Some(slot)) = (seq, &self.slot) {
            slot.keep(seq, &r, &text);
        }
        Item::Next(text, false)
    }

    /// Planning ended with `streams` handed over: light with one; with
    /// none (every root skipped by `@skip` or `@include`) nothing to
    /// stream, as a full run would find; with several, whose items would
    /// interleave, run in full.
    pub(crate) fn planned(&mut self, mut streams: Vec<EventStream>, query: Option<String>) {
        let slot = match (&self.slot, streams.len()) {
            (Some(slot), 1) => slot.clone(),
            (_, 0) => {
                self.run = Run::Full(futures::stream::empty().boxed());
                return;
            }
            _ => return self.rerun(query),
        };
        let Run::Planning { asked, .. } = self.take_run() else {
            return;
        };
        let query = query.filter(|q| !slot.sent(q));
        if let Some(events) = streams.pop() {
            self.run = Run::Light(Box::new(Light {
                events,
                query,
                schema: asked.schema,
                session: asked.session,
                running: None,
            }));
        }
    }

    /// Runs a planned operation again, in full, from the start (nothing
    /// was sent for it yet); its items are not shared.
    fn rerun(&mut self, query: Option<String>) {
        if let Run::Planning { asked, .. } = self.take_run() {
            self.slot = None;
            self.run = Run::Full(asked.full(query));
        }
    }

    /// The operation's run, leaving an ended one in its place for the
    /// caller to replace.
    fn take_run(&mut self) -> Run {
        std::mem::replace(&mut self.run, Run::Full(futures::stream::empty().boxed()))
    }
}

/// Whether an answer is a refusal: errors and no data (a parse, validation
/// or argument error), so nothing executed.
fn nothing_ran(r: &Response) -> bool {
    !r.errors.is_empty() && r.data == async_graphql::Value::Null
}

impl Asked {
    /// The operation as a full run of the library's stream, of `query`
    /// when planning noted it (a persisted query's text: its hash may have
    /// left the store since). The operation was counted when it was
    /// planned, so this run is not.
    pub(crate) fn full(self, query: Option<String>) -> BoxStream<'static, Response> {
        let request = match serde_json::from_value::<async_graphql::Request>(self.request) {
            Ok(mut r) => {
                if let Some(q) = query {
                    r.query = q;
                    r.extensions.0.remove("persistedQuery");
                }
                r.data(crate::graphql::observe::Counted)
            }
            // It read the first time.
            Err(e) => {
                let err = crate::graphql::codes::with_code(
                    async_graphql::ServerError::new(e.to_string(), None),
                    code::INTERNAL_SERVER_ERROR,
                );
                return futures::stream::once(async move { Response::from_errors(vec![err]) })
                    .boxed();
            }
        };
        self.schema
            .execute_stream_with_session_data(request, self.session)
    }
}

impl Stream for Operation {
    type Item = Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            let this = &mut *self;
            match &mut this.run {
                Run::Full(inner) => {
                    return match inner.poll_next_unpin(cx) {
                        Poll::Pending => Poll::Pending,
                        Poll::Ready(Some(r)) => Poll::Ready(Some(this.answer(r, None))),
                        Poll::Ready(None) => {
                            this.ended = true;
                            Poll::Ready(Some(Item::End))
                        }
                    };
                }
                Run::Planning { setup, plan, .. } => match setup.poll_next_unpin(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Some(r)) => {
                        let planned = plan.take();
                        if planned.is_empty() {
                            // Nothing planned: a query or mutation sent over
                            // the socket, or a subscription with no event
                            // root. The stream is an ordinary full run.
                            if let Run::Planning { setup, .. } = this.take_run() {
                                this.run = Run::Full(setup);
                            }
                            return Poll::Ready(Some(this.answer(r, None)));
                        }
                        // An argument refused: the operation ends here.
                        if nothing_ran(&r) {
                            return Poll::Ready(Some(this.answer(r, None)));
                        }
                        // Event roots planned beside something that
                        // streamed: run it all in full from the start
                        // (nothing was sent yet). Never the case today:
                        // every root of the schema streams events.
                        let query = plan.query();
                        this.rerun(query);
                    }
                    Poll::Ready(None) => {
                        let (streams, query) = (plan.take(), plan.query());
                        this.planned(streams, query);
                    }
                },
                Run::Light(light) => {
                    if let Some((seq, running)) = &mut light.running {
                        let seq = *seq;
                        match running.poll_next_unpin(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(r) => {
                                light.running = None;
                                // One run, one item; none is a bug.
                                let Some(r) = r else {
                                    return Poll::Ready(Some(Item::Broken));
                                };
                                return Poll::Ready(Some(this.answer(r, seq)));
                            }
                        }
                    }
                    let item = match light.events.poll_next_unpin(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(None) => {
                            this.ended = true;
                            return Poll::Ready(Some(Item::End));
                        }
                        Poll::Ready(Some(item)) => item,
                    };
                    let seq = item.as_ref().ok().map(|e| e.seq);
                    if let (Some(seq), Some(slot)) = (seq, &this.slot)
                        && let Some(payload) = slot.cached(seq)
                    {
                        this.first = false;
                        return Poll::Ready(Some(Item::Next(payload, true)));
                    }
                    let request = this
                        .slot
                        .as_ref()
                        .and_then(|slot| slot.request(light.query.as_deref()));
                    let Some(request) = request else {
                        return Poll::Ready(Some(Item::Broken));
                    };
                    let request = request.data(Arc::new(OneItem::new(item)));
                    let run = light
                        .schema
                        .execute_stream_with_session_data(request, light.session.clone());
                    light.running = Some((seq, run));
                }
            }
        }
    }
}

/// Why the connection loop stopped.
pub(crate) enum Stop {
    /// Close with this code and reason.
    Close(u16, String),
    /// The peer is gone or unresponsive: just drop the socket.
    Drop,
    /// The client sent a close frame: answer it and end.
    ClientClosed,
}

pub(crate) fn close(code: u16, reason: impl Into<String>) -> Stop {
    Stop::Close(code, reason.into())
}

/// A close reason must fit in a control frame: at most 123 bytes of UTF-8.
pub(crate) fn clip_reason(reason: &str) -> String {
    if reason.len() <= 123 {
        return reason.to_string();
    }
    let mut end = 123;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_string()
}
