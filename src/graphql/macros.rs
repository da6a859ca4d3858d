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
