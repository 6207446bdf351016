//! Magpie's client engine. The desktop shell and the CLI are thin faces over it.

pub mod backup;
pub mod engine;
pub mod error;
pub mod files;
pub mod history;
pub mod keystore;
mod lock_order;
pub mod profile;
pub mod relay;
pub mod search;
pub mod store;

pub use engine::{Client, Event};
pub use error::{Error, Result};
pub use history::History;
pub use profile::Profile;
