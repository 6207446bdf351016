//! magpie-relay: the Magpie server. It runs the CA and the certificate directory, logs users in by a
//! signature with their certificate's key, and routes opaque end-to-end encrypted envelopes through
//! durable mailboxes with real-time push. It never sees a plaintext or a session key.
//!
//! # API (JSON over HTTP; the full description is served at `GET /v1/openapi.json`)
//! | route | answer |
//! |---|---|
//! | `GET /v1/health` | 200 `{status, version, ca_fingerprint}` |
//! | `GET /v1/ca` | 200 the CA root, PEM |
//! | `GET /metrics` | 200 Prometheus text |
//! | `POST /v1/register {csr}` | 201 `{username, certificate, ca}`; 400 bad CSR; 409 name taken |
//! | `POST /v1/login/challenge {username}` | 200 `{nonce, expires_at}`; 404; 429 |
//! | `POST /v1/login {username, nonce, signature}` | 200 `{token, expires_at}`; 401; 429 |
//! | `GET /v1/directory/{username}` | 200 `{username, chain: [leaf PEM, CA PEM]}`; 400; 404 |
//! | `POST /v1/envelopes {id, to, kind, body, from?}` | 202 once durable, idempotent on `id`; 401/403/404/409/413/429 |
//! | `GET /v1/envelopes?after=&limit=` | 200 `{envelopes, cursor}` oldest first; 401 |
//! | `POST /v1/envelopes/ack {ids}` | 200 `{acked}`; only the caller's own envelopes are touched |
//! | `GET /v1/push` (WebSocket) | one text frame `{type:"envelope", cursor, envelope}` per new envelope; takes `{type:"send", …}` and `{type:"ack", ids}` frames too ([`api::push`]) |
//!
//! Every error is JSON `{code, message}`; bad input is 4xx, never 500. Delivered envelopes have exactly
//! the fields of `magpie_proto::Envelope`.
//!
//! # Login
//! No passwords: `POST /v1/login/challenge` returns a 32-byte single-use nonce (60 s); the client signs
//! `lp("magpie v1 login") ‖ lp(CA fingerprint) ‖ lp(username) ‖ lp(nonce)`, `lp(x) = u32be(len x) ‖ x` (see
//! [`magpie_proto::login`]) with RSA-PSS and its private key; the relay verifies with the certificate it issued. The bearer token is 32 random bytes; the store
//! keeps only its SHA-256 and expiry (24 h by default).
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
