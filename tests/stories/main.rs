//! Alice and Bob stories: the client engine against a real relay on loopback and the real credential store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests say what must hold by panicking"
)]

mod backup;
mod binaries;
mod chat;
mod cli;
mod common;
mod crash;
mod failover;
mod faults;
mod files;
mod login;
mod malicious;
mod offline;
mod scale;
mod screens;
mod trust;
