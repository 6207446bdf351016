//! What the fuzz targets share with the seed generator (`examples/seeds.rs`): the relay the relay targets drive,
//! and the text form of a `relay_request` input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod relay;
