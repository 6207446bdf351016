//! Shared helpers for Magpie's cross-crate stories. The stories themselves live in `tests/` and `e2e/`.
