//! magpie-relay: the Magpie server. It runs the CA and the certificate directory, logs users in by a
//! signature with their certificate's key, and routes opaque end-to-end encrypted envelopes through
//! durable mailboxes with real-time push. It never sees a plaintext or a session key.
//!
//! # API
//! JSON over HTTP and one WebSocket. The contract is written once: the bodies are `magpie_api`'s types (which the
//! client uses too), the routes are [`api::api`], and the OpenAPI document generated from both is served at
//! `GET /v1/openapi.json` and committed as `docs/openapi.json`; `docs/PROTOCOL.md` ("Relay API") specifies
//! each route. Every error is JSON `{code, message}`; bad input is 4xx, never 500.
//!
//! # Login
//! No passwords: `POST /v1/login/challenge` returns a 32-byte single-use nonce (60 s); the client signs
//! `lp("magpie v1 login") ‖ lp(CA fingerprint) ‖ lp(username) ‖ lp(nonce)`, `lp(x) = u32be(len x) ‖ x` (see
//! [`magpie_proto::login`]) with RSA-PSS and its private key; the relay verifies with the certificate it issued.
//! The bearer token is 32 random bytes; the store keeps only its SHA-256 and expiry (24 h by default).
//!
//! # Push: WebSocket, not SSE
//! Both would do for a hint channel. WebSocket was chosen because (1) the load goal is set against a raw
//! axum WebSocket echo, so the same transport makes the comparison direct; (2) one upgraded connection per
//! client carries frames with 2–6 bytes of framing and no HTTP/1.1 per-event overhead, and leaves room for
//! sending over the same socket later; (3) axum, tokio-tungstenite and browsers all speak it. Push is
//! never the delivery guarantee: a client opens the socket first, then catches up with
//! `GET /v1/envelopes`, and acks what it has stored; anything pushed twice is de-duplicated by id.
//!
//! # Durability
//! Handlers reach the store through the async [`store::Backend`], so that a networked backend never blocks the
//! runtime; an embedded [`store::Store`] is paired with its group commit by [`store::Embedded`].
//! `POST /v1/envelopes` answers 202 only after the envelope is flushed. Flushes are group-committed
//! ([`store::GroupCommit`]): all requests waiting at a moment share one flush. Mailboxes live in an append-only
//! log ([`store::LogStore`]) that each flush writes and `fdatasync`s, which survives power loss on honest
//! hardware. Users, challenges and tokens live in sled: what sled 0.34's flush (`sync_file_range`) does and does
//! not protect against is in [`store::SledStore`]'s module docs; run with `--sync fsync` to make those survive
//! power loss as well.
//!
//! # Load
//! `examples/load.rs` drives N authenticated sender→receiver pairs against the real binary and prints
//! `relay_msgs_per_s=… p50_ms=… p99_ms=… rss_mb=…`; see its docs for the flags.
//!
//! # TLS
//! With `--tls-cert chain.pem --tls-key key.pem` the relay serves HTTPS and WSS itself (OpenSSL, TLS 1.2+,
//! Mozilla "intermediate" ciphers). Without them it serves plain HTTP: keep that on loopback, or put a
//! TLS-terminating reverse proxy in front (Caddy, nginx, HAProxy) that forwards WebSocket upgrades for
//! `/v1/push` (nginx: `proxy_http_version 1.1` and the `Upgrade`/`Connection` headers, a long
//! `proxy_read_timeout`) and allows bodies of at least the envelope limit (`client_max_body_size 400k`).
//! Clients trust the relay's *CA* by pinning it, independently of the TLS certificate.
//!
//! # Rate limits
//! Sending is limited per user (a token bucket: `--send-per-second`, `--send-burst`). Login (challenge and login)
//! and registration are limited per client address (`--login-per-minute`, `--register-per-hour`; IPv6 per /64),
//! not per username: a per-name limit let anyone lock a user out by spending that name's allowance, and a
//! signature login cannot be guessed anyway. Clients on the relay's own machine are not limited. Behind a reverse
//! proxy every peer is the proxy, so name the header it writes the client's address into:
//! `--client-ip-header X-Forwarded-For` (nginx: `proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for`);
//! the last address in it is used. A refused request gets 429 with `Retry-After`.
//!
//! # Exit codes
//! 0 after a graceful shutdown (SIGTERM, Ctrl-C), 2 bad flags, 69 listen address unusable (e.g. in use),
//! 71 other start failure, 73 data directory or database not writable, 78 CA or TLS files invalid.

pub mod api;
pub mod ca;
pub mod config;
pub mod connections;
pub mod error;
#[cfg(feature = "postgres")]
pub mod fanout;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod server;
pub mod store;
pub mod tls;

pub use api::{router, AppState};
pub use config::Config;
pub use error::{Error, Result};
