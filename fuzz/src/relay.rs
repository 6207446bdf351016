//! An in-memory relay with two users who are logged in (fixed tokens) and a login challenge that never expires,
//! so that fuzzed requests get past authentication; and the text form of a fuzzed HTTP request.
//!
//! Its CA is `ca1.pem` of the protocol's test keys with the root in `fuzz/fixtures/ca-root.pem`: a login signature
//! covers the CA's fingerprint, and a fresh root (random serial) would make the login seed's signature wrong.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use magpie_proto::{Certificate, CertificateAuthority, Identity, Username};
use magpie_relay::api::{hash_token, PeerAddr};
use magpie_relay::ca::CaInfo;
use magpie_relay::store::{ChallengeRecord, MemoryStore, Store, TokenRecord, UserRecord};
use magpie_relay::{AppState, Config};

/// The users, each logged in with the token beside it.
pub const USERS: [(&str, &str); 2] = [("alice", "fuzz-token-alice"), ("bob", "fuzz-token-bob")];
/// A login challenge for alice, put back before every request (a login takes it).
pub const NONCE: [u8; 32] = *b"magpie fuzz login nonce, 32 byte";
/// The bearer token that may read `/metrics`.
pub const METRICS_TOKEN: &str = "fuzz-metrics-token";
/// A pseudo-header of a fuzz input: the peer address the request comes from (none: this machine, unlimited).
pub const PEER_HEADER: &str = "x-fuzz-peer";
/// Where the CA root is kept (see the module docs).
pub const CA_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/ca-root.pem");

const CA_KEY: &str = include_str!("../../crates/proto/tests/vectors/keys/ca1.pem");
const ALICE_KEY: &str = include_str!("../../crates/proto/tests/vectors/keys/alice.pem");
const BOB_KEY: &str = include_str!("../../crates/proto/tests/vectors/keys/bob.pem");
/// A key for a user who is not registered yet (the register seed's CSR).
pub const NEW_USER: (&str, &str) = (
    "mallory",
    include_str!("../../crates/proto/tests/vectors/keys/mallory.pem"),
);

/// A test key as an identity named `name`.
pub fn identity(pem: &str, name: &str) -> Identity {
    let der = openssl::pkey::PKey::private_key_from_pem(pem.as_bytes())
        .unwrap()
        .private_key_to_pkcs8()
        .unwrap();
    Identity::from_pkcs8_der(Username::canonical(name).unwrap(), &der).unwrap()
}

/// The relay's identities by name (alice, bob).
pub fn user_identity(name: &str) -> Identity {
    match name {
        "alice" => identity(ALICE_KEY, name),
        "bob" => identity(BOB_KEY, name),
        _ => panic!("no fixture user {name}"),
    }
}

/// A new CA root for `ca1.pem` (what `examples/seeds.rs` writes to [`CA_ROOT`] when it is missing).
pub fn new_ca_root() -> Vec<u8> {
    let ca = CertificateAuthority::create_with_key("Magpie fuzz CA", identity(CA_KEY, "magpie-ca"), SystemTime::now())
        .unwrap();
    ca.certificate().to_pem().unwrap()
}

/// What every fresh relay state starts from: the CA and the users' records (issuing costs RSA signatures).
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The CA.
    pub ca: CaInfo,
    users: Vec<UserRecord>,
}

impl Fixture {
    /// Loads the CA and issues the users' certificates.
    pub fn new() -> Self {
        let root = std::fs::read(CA_ROOT).unwrap_or_else(|e| panic!("{CA_ROOT}: {e}; run `cargo run --example seeds`"));
        let key = identity(CA_KEY, "magpie-ca").to_pkcs8_der().unwrap();
        let authority =
            CertificateAuthority::from_parts(Certificate::from_pem(&root).unwrap(), key.expose_secret()).unwrap();
        let ca = CaInfo::new(authority).unwrap();
        let users = USERS
            .iter()
            .map(|(name, _)| {
                let csr = user_identity(name).csr().unwrap();
                let cert = ca.authority.issue(&csr, SystemTime::now()).unwrap();
                UserRecord {
                    username: (*name).to_owned(),
                    cert_pem: String::from_utf8(cert.to_pem().unwrap()).unwrap(),
                    created_at: 0,
                }
            })
            .collect();
        Self { ca, users }
    }

    /// A fresh relay state: an empty memory store with the users, their tokens and the login challenge.
    pub fn state(&self) -> AppState {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        for (user, (name, token)) in self.users.iter().zip(USERS) {
            store.add_user(user).unwrap();
            let record = TokenRecord {
                username: name.to_owned(),
                expires_at: u64::MAX,
            };
            store.put_token(&hash_token(token), &record).unwrap();
        }
        store.put_challenge(&NONCE, &challenge()).unwrap();
        AppState::new(store, self.ca.clone(), config()).unwrap()
    }
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

fn challenge() -> ChallengeRecord {
    ChallengeRecord {
        username: "alice".into(),
        expires_at: u64::MAX,
    }
}

/// Puts alice's login challenge ([`NONCE`]) back.
pub async fn renew_challenge(state: &AppState) {
    state.store.put_challenge(&NONCE, &challenge()).await.unwrap();
}

/// The relay's defaults, but per-user limits a fuzzer does not exhaust (a limited user's requests would all stop
/// at the limit), small mailboxes (so that "full" is reached), a proxy header (parsed when a peer is given) and a
/// metrics token.
pub fn config() -> Config {
    let mut config = Config::with_data_dir("/nonexistent-magpie-fuzz");
    config.send_per_second = u32::MAX;
    config.send_burst = u32::MAX;
    config.send_kb_per_hour = 1 << 40;
    config.fetches_per_minute = u32::MAX;
    config.fetch_mb_per_hour = 1 << 30;
    config.lookups_per_minute = u32::MAX;
    config.mailbox_max_envelopes = 2000;
    config.mailbox_max_mb = 1;
    config.max_envelope_bytes = 2048;
    config.commit_delay_us = 0;
    config.client_ip_header = Some("x-forwarded-for".into());
    config.metrics_token = Some(METRICS_TOKEN.into());
    config
}

/// A fuzz input as a request. The input is HTTP/1 in spirit: `METHOD URI`, header lines `name: value`, an empty
/// line, the body (`\n` line ends; without an empty line there is no body). Lines that are no header are skipped;
/// [`PEER_HEADER`] sets the peer address. `None` when the method or URI is invalid.
pub fn parse_request(data: &[u8]) -> Option<Request<Body>> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let first = lines.next()?;
    let space = first.iter().position(|&b| b == b' ')?;
    let method = Method::from_bytes(&first[..space]).ok()?;
    let uri = std::str::from_utf8(&first[space + 1..]).ok()?;
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body.to_vec()))
        .ok()?;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].strip_prefix(b" ").unwrap_or(&line[colon + 1..]);
        let Ok(name) = HeaderName::from_bytes(&line[..colon]) else {
            continue;
        };
        if name == PEER_HEADER {
            if let Some(peer) = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<SocketAddr>().ok())
            {
                request.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
            }
        } else if let Ok(value) = HeaderValue::from_bytes(value) {
            request.headers_mut().append(name, value);
        }
    }
    Some(request)
}

/// The fuzz input [`parse_request`] reads as this request.
pub fn write_request(method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {uri}\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    if !body.is_empty() {
        out.push(b'\n');
        out.extend_from_slice(body);
    }
    out
}
