//! The adversarial suite: every denial-of-service and token gap found by
//! the review of issue 13, run against the real server process the way an
//! attacker would run it. Each attack must be refused with its stable
//! `extensions.code` (or its HTTP status) within a time bound, grow the
//! server's resident memory by no more than a bound, leave `/healthz`
//! answering while it runs, and write nothing.
//!
//! The budgets are constants with a reason each; they are generous (this
//! runs on two loaded cores in CI) and still far below what the unbounded
//! server spent on the same input (see docs/security-tests.md).

mod watch;

// One module per area of the attack surface.
mod body;
mod front_door;
mod inputs;
mod json_inputs;
mod metrics;
mod ws;
