//! The shapes every mutation shares, written once.

/// Declares the input of a mutation that takes an idempotency key: the
/// given fields, then `idempotencyKey` with the one description of how keys
/// behave (see `crate::service::idempotency`).
macro_rules! keyed_input {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(async_graphql::InputObject)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
            /// Makes the request safe to retry: a repeat with the same key and the
            /// same input returns the original result and changes nothing; the same
            /// key with other input is `CONFLICT`. Per tenant, kept ≥ 24 h; 1–200 chars.
            pub idempotency_key: Option<String>,
        }
    };
}

/// Declares a mutation's payload: the changed objects, then the event the
/// change appended; and its construction from what the service returns,
/// `(models…, event)` in field order.
macro_rules! payload {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        payload!($(#[$m])* $name { $($(#[$fm])* $f: $t),* } event "The event this change appended to the log.");
    };
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? } event $doc:literal) => {
        $(#[$m])*
        #[derive(async_graphql::SimpleObject)]
        pub struct $name {
            $($(#[$fm])* pub $f: $t,)*
            #[doc = $doc]
            pub event: $crate::graphql::types::Event,
        }

        impl From<($(<$t as $crate::graphql::types::Wraps>::Model,)* $crate::entity::event::Model)> for $name {
            fn from(
                ($($f,)* event): ($(<$t as $crate::graphql::types::Wraps>::Model,)* $crate::entity::event::Model),
            ) -> Self {
                Self {
                    $($f: $crate::graphql::types::Wraps::wrap($f),)*
                    event: $crate::graphql::types::Event(event.into()),
                }
            }
        }
    };
}

/// Declares a GraphQL type and its resolvers, with the shapes every noun
/// repeats written one line each (their signatures, argument descriptions,
/// guards and page costs are said here once). The header names the type:
/// `object Name;` (a root, merged in `schema.rs`), `subscription Name;` (a
/// subscription root) or `children Name;` (an output type's child pages:
/// it holds the parent's id, and the output type flattens it in with
/// `#[graphql(flatten)]`, so the fields appear as its own). Then, each after
/// its doc comment (the field's description):
///
/// - `by_id name(Kind) -> T = |ctx, id| lookup;` one `T` by its global id
///   (decoded as a `Kind` id before `lookup`), or null.
/// - `mutation GUARD name(ctx, input: Input) -> Payload { body }` a mutation
///   guarded by `GUARD` taking `input`.
/// - `verbs(Input) -> Payload = run { GUARD name(VERB); … }` lifecycle
///   verbs sharing their input and payload: each runs `run(ctx, input, VERB)`.
/// - `verb GUARD name(Input) -> Payload = run(args…);` one lifecycle verb
///   whose `input` goes to `run(ctx, input, args…)`.
/// - `list name(Filter) -> T = method;` the tenant's `T`s, a filtered page
///   read by `Services::method`.
/// - `updates name(EVENTS) -> T;` a project's events of the types `EVENTS`,
///   paged: the query twin of the subscription of the same events.
/// - `children name -> T = loader(Rel);` the parent's `T`s, a page batched
///   through the DataLoader `loader` under `Rel`.
/// - `stream name(EVENTS) -> T;` a project's events of the types `EVENTS`,
///   live from a cursor.
/// - any other resolver, written out (`async fn …`).
///
/// The page arguments (`first`, `after`) and their descriptions are the
/// same as on every other list, and each page costs `page_cost` in the
/// complexity limit.
macro_rules! fields {
    // The attribute that derives the type and the name `child_complexity`
    // (which the derive binds and `page_cost` reads) are made here, in one
    // expansion, so that hygiene lets the one see the other.
    ($(#[$m:meta])* object $name:ident; $($items:tt)*) => {
        fields!(@munch [
            [$(#[$m])* #[derive(Default)] pub struct $name;]
            [#[async_graphql::Object]] $name child_complexity
        ] [] $($items)*);
    };
    ($(#[$m:meta])* children $name:ident; $($items:tt)*) => {
        fields!(@munch [
            [$(#[$m])* pub struct $name(pub uuid::Uuid);]
            [#[async_graphql::Object]] $name child_complexity
        ] [] $($items)*);
    };
    ($(#[$m:meta])* subscription $name:ident; $($items:tt)*) => {
        fields!(@munch [
            [$(#[$m])* #[derive(Default)] pub struct $name;]
            [#[async_graphql::Subscription]] $name child_complexity
        ] [] $($items)*);
    };

    // Verbs become mutations, and the lists pages (`@page`), so that each
    // signature is written once.
    (@munch $h:tt $acc:tt
        verbs($input:ty) -> $payload:ty = $run:ident {
            $($(#[$m:meta])* $guard:ident $f:ident($verb:expr);)*
        }
        $($rest:tt)*
    ) => {
        fields!(@munch $h $acc
            $($(#[$m])* verb $guard $f($input) -> $payload = $run($verb);)*
            $($rest)*
        );
    };

    (@munch $h:tt $acc:tt
        $(#[$m:meta])* verb $guard:ident $f:ident($input:ty) -> $payload:ty
            = $run:ident($($arg:expr),*);
        $($rest:tt)*
    ) => {
        fields!(@munch $h $acc
            $(#[$m])* mutation $guard $f(ctx, input: $input) -> $payload {
                $run(ctx, input, $($arg),*).await
            }
            $($rest)*
        );
    };

    (@munch $h:tt [$($acc:tt)*]
        $(#[$m:meta])* mutation $guard:ident
            $f:ident($ctx:ident, $input:ident: $in:ty) -> $payload:ty
        $body:block
        $($rest:tt)*
    ) => {
        fields!(@munch $h [$($acc)*
            $(#[$m])*
            #[graphql(guard = $guard)]
            async fn $f(
                &self,
                $ctx: &async_graphql::Context<'_>,
                #[graphql(desc = "What to do; each field is described on the input type.")]
                $input: $in,
            ) -> async_graphql::Result<$payload> $body
        ] $($rest)*);
    };

    (@munch $h:tt [$($acc:tt)*]
        $(#[$m:meta])* by_id $f:ident($kind:ident) -> $t:ty = |$ctx:ident, $id:ident| $e:expr;
        $($rest:tt)*
    ) => {
        fields!(@munch $h [$($acc)*
            $(#[$m])*
            async fn $f(
                &self,
                $ctx: &async_graphql::Context<'_>,
                #[graphql(desc = "Its global id (as `Node.id`).")] $id: async_graphql::ID,
            ) -> async_graphql::Result<Option<$t>> {
                let $id = $crate::ids::decode($crate::ids::Kind::$kind, &$id)?;
                $e
            }
        ] $($rest)*);
    };

    (@munch $h:tt [$($acc:tt)*]
        $(#[$m:meta])* async fn $f:ident($($args:tt)*) -> $ret:ty $body:block
        $($rest:tt)*
    ) => {
        fields!(@munch $h [$($acc)* $(#[$m])* async fn $f($($args)*) -> $ret $body] $($rest)*);
    };

    (@munch $h:tt $acc:tt
        $(#[$m:meta])* list $f:ident($filter:ty) -> $t:ident = $svc:ident;
        $($rest:tt)*
    ) => {
        fields!(@page $h $acc [$(#[$m])*] $f(self, ctx, first, after) []
            "Cursor of the last edge already seen."
            [#[graphql(desc = "What to include.")] filter: Option<$filter>,] -> $t {
                let at = $crate::graphql::types::page_at(first, after)?;
                let f = filter.unwrap_or_default().try_into()?;
                let p = $crate::graphql::principal(ctx);
                let pg = $crate::graphql::services(ctx).$svc(p, f, at).await?;
                Ok($crate::graphql::types::id_connection(pg, at, $t))
            }
            $($rest)*
        );
    };

    (@munch $h:tt $acc:tt
        $(#[$m:meta])* updates $f:ident($events:expr) -> $t:ident;
        $($rest:tt)*
    ) => {
        fields!(@page $h $acc [$(#[$m])*] $f(self, ctx, first, after)
            [#[graphql(desc = "A `Project` id.")] project_id: async_graphql::ID,]
            "Cursor of the last item already seen; omit to start at the beginning."
            [] -> $t {
                let events = $events.to_vec();
                let f = $crate::graphql::event::twin_filter(ctx, &project_id, events, None)?;
                $crate::graphql::event::event_page(ctx, f, first, after, $t).await
            }
            $($rest)*
        );
    };

    (@munch $h:tt $acc:tt
        $(#[$m:meta])* children $f:ident -> $t:ident = $loader:ident($rel:ident);
        $($rest:tt)*
    ) => {
        fields!(@page $h $acc [$(#[$m])*] $f(self, ctx, first, after) []
            "Cursor of the last edge already seen."
            [] -> $t {
                $crate::graphql::types::child_page(
                    &$crate::graphql::loaders(ctx).$loader,
                    ($crate::graphql::loaders::Rel::$rel, self.0, first, after),
                    $crate::graphql::loaders::Columns::ALL,
                    |m| m.id.to_string(),
                    $t,
                )
                .await
            }
            $($rest)*
        );
    };

    (@page [$decl:tt $attr:tt $n:ident $cc:ident] [$($acc:tt)*] [$($m:tt)*]
        $f:ident($self_:ident, $ctx:ident, $first:ident, $after:ident)
        [$($pre:tt)*] $after_desc:literal [$($post:tt)*]
        -> $t:ident $body:block
        $($rest:tt)*
    ) => {
        fields!(@munch [$decl $attr $n $cc] [$($acc)*
            $($m)*
            #[graphql(complexity = crate::graphql::page_cost($first, $cc))]
            async fn $f(
                &$self_,
                $ctx: &async_graphql::Context<'_>,
                $($pre)*
                #[graphql(desc = "Page size, 0–100; default 20.")] $first: Option<i32>,
                #[graphql(desc = $after_desc)] $after: Option<String>,
                $($post)*
            ) -> async_graphql::Result<$crate::graphql::types::Conn<$t>> $body
        ] $($rest)*);
    };

    (@munch $h:tt [$($acc:tt)*]
        $(#[$m:meta])* stream $f:ident($events:expr) -> $t:ident;
        $($rest:tt)*
    ) => {
        fields!(@munch $h [$($acc)*
            $(#[$m])*
            async fn $f(
                &self,
                ctx: &async_graphql::Context<'_>,
                #[graphql(desc = "A `Project` id.")] project_id: async_graphql::ID,
                #[graphql(desc = "Cursor of the last event already seen, or `HEAD`.")]
                after: Option<String>,
            ) -> async_graphql::Result<
                impl futures::Stream<Item = async_graphql::Result<$t>>,
            > {
                let types = $events.to_vec();
                let s = $crate::graphql::subscription::events_of(
                    ctx, Some(project_id), types, after, None,
                )
                .await?;
                Ok($crate::graphql::subscription::items(s, $t))
            }
        ] $($rest)*);
    };

    (@munch [[$($decl:tt)*] [$($attr:tt)*] $name:ident $cc:ident] [$($acc:tt)*]) => {
        $($decl)*

        $($attr)*
        impl $name {
            $($acc)*
        }
    };
}
