//! The HTTP contract between a Magpie client and its relay, written once: every route's path and every request,
//! response, push frame and error body. The relay serves these types and derives its OpenAPI document
//! (`GET /v1/openapi.json`) from them with the `openapi` feature; the client sends and reads the same types.
//! `docs/PROTOCOL.md`, "Relay API", says what each route does with them.
//!
//! Conventions of the wire: JSON; binary data is standard base64 with padding; UUIDs are lowercase and
//! hyphenated; times are Unix seconds; request bodies refuse unknown fields.

mod blobs;
mod bodies;
mod push;

pub use blobs::*;
pub use bodies::*;
pub use magpie_proto::{EnvelopeKind, Username};
pub use push::{ClientFrame, RelayFrame};

/// The routes, as the relay's router and the client both spell them.
pub mod paths {
    /// `GET`: liveness, version and the CA fingerprint.
    pub const HEALTH: &str = "/v1/health";
    /// `GET`: the CA root certificate, PEM.
    pub const CA: &str = "/v1/ca";
    /// `GET`: the OpenAPI document of this contract.
    pub const OPENAPI: &str = "/v1/openapi.json";
    /// `GET`: Prometheus metrics (this machine, or with the metrics token).
    pub const METRICS: &str = "/metrics";
    /// `POST`: register a name with a CSR.
    pub const REGISTER: &str = "/v1/register";
    /// `POST`: a login nonce to sign.
    pub const LOGIN_CHALLENGE: &str = "/v1/login/challenge";
    /// `POST`: a signed nonce for a bearer token.
    pub const LOGIN: &str = "/v1/login";
    /// `GET`: a user's certificate chain; the name follows the slash.
    pub const DIRECTORY: &str = "/v1/directory/";
    /// `POST` to send, `GET` to fetch the caller's mailbox.
    pub const ENVELOPES: &str = "/v1/envelopes";
    /// `POST`: delete fetched envelopes from the caller's mailbox.
    pub const ACK: &str = "/v1/envelopes/ack";
    /// `GET`: the push WebSocket.
    pub const PUSH: &str = "/v1/push";
    /// `POST`: create a blob.
    pub const BLOBS: &str = "/v1/blobs";

    /// The directory entry of `username`.
    pub fn directory(username: &str) -> String {
        format!("{DIRECTORY}{username}")
    }

    /// The blob `id`: `PATCH` a part, `HEAD` its progress, `GET` it, `DELETE` (release) it.
    pub fn blob(id: impl std::fmt::Display) -> String {
        format!("{BLOBS}/{id}")
    }
}

/// Most envelopes one fetch returns, and most ids one ack takes.
pub const MAX_BATCH: usize = 1000;
/// Envelopes a fetch returns when it names no `limit`.
pub const DEFAULT_FETCH: usize = 100;
