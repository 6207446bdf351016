//! What Magpie's tests share, in one place: fixed keys and names, the Alice/Bob fixture, a typed client of the
//! relay's API with its login, a fresh PostgreSQL database, and looking for bytes on disk. magpie-core and
//! magpie-relay use it in their tests (it depends on neither, so neither depends on the other through it), and so
//! do the stories in `stories/`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers of tests: any error must fail the test loudly"
)]

pub mod disk;
pub mod keys;
pub mod pg;
pub mod relay_api;

pub use disk::{dir_contains, files_under};
pub use keys::{ca, identity, pair, pair_at, username, Pair};
