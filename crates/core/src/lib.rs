//! Magpie's client engine. The desktop shell and the CLI are thin faces over it.

pub mod error;
pub mod keystore;

pub use error::{Error, Result};
