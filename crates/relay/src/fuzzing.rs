//! Thin entry points into private parsing code for the fuzz targets in `fuzz/` (not an API: hidden from the docs
//! and free to change with them). Each calls the code the relay itself runs on bytes from the network or the disk.

pub use crate::api::push::fuzzing::push_frame;
pub use crate::store::log::fuzzing::log_bytes;
