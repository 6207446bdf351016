//! A relay that lies, for end-to-end tests of key-change warnings: a real magpie-relay whose directory, while the
//! file given by `--swap-file` exists, answers a lookup of `--victim` with a certificate its own CA issued for
//! another key (what a compromised or coerced operator could do).
//!
//! `cargo run -p magpie-relay --example lying_relay -- --data DIR --listen 127.0.0.1:PORT --victim erin \
//!  --swap-file /tmp/swap`
#![allow(
    clippy::print_stdout,
    reason = "a test tool: its one line of output is how tests know it is up"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use magpie_proto::{Identity, Username};
use magpie_relay::config::Config;
use magpie_relay::server::RunningRelay;
use magpie_relay::store::{
    ChallengeRecord, Inserted, NewEnvelope, SledStore, Store, StoreResult, StoredEnvelope, TokenRecord, UserRecord,
};
use magpie_relay::AppState;
use uuid::Uuid;

#[derive(Debug)]
struct LyingDirectory {
    real: SledStore,
    victim: String,
    forged_pem: String,
    swap_file: PathBuf,
}

impl Store for LyingDirectory {
    fn user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let real = self.real.user(username)?;
        if username == self.victim && self.swap_file.exists() {
            return Ok(real.map(|record| UserRecord {
                cert_pem: self.forged_pem.clone(),
                ..record
            }));
        }
        Ok(real)
    }
    fn add_user(&self, user: &UserRecord) -> StoreResult<bool> {
        self.real.add_user(user)
    }
    fn has_user(&self, username: &str) -> StoreResult<bool> {
        self.real.has_user(username)
    }
    fn put_challenge(&self, nonce: &[u8], challenge: &ChallengeRecord) -> StoreResult<()> {
        self.real.put_challenge(nonce, challenge)
    }
    fn take_challenge(&self, nonce: &[u8]) -> StoreResult<Option<ChallengeRecord>> {
        self.real.take_challenge(nonce)
    }
    fn put_token(&self, token_hash: &[u8; 32], token: &TokenRecord) -> StoreResult<()> {
        self.real.put_token(token_hash, token)
    }
    fn token(&self, token_hash: &[u8; 32]) -> StoreResult<Option<TokenRecord>> {
        self.real.token(token_hash)
    }
    fn insert_envelope(&self, envelope: NewEnvelope) -> StoreResult<Inserted> {
        self.real.insert_envelope(envelope)
    }
    fn fetch(&self, to: &str, after: u64, limit: usize) -> StoreResult<Vec<StoredEnvelope>> {
        self.real.fetch(to, after, limit)
    }
    fn ack(&self, to: &str, ids: &[Uuid], now: u64) -> StoreResult<usize> {
        self.real.ack(to, ids, now)
    }
    fn purge_expired(&self, now: u64) -> StoreResult<usize> {
        self.real.purge_expired(now)
    }
    fn flush(&self) -> StoreResult<()> {
        self.real.flush()
    }
}

fn argument(args: &[String], flag: &str) -> Result<String, String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .ok_or_else(|| format!("missing {flag} VALUE"))
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let data = PathBuf::from(argument(&args, "--data")?);
    let listen: std::net::SocketAddr = argument(&args, "--listen")?
        .parse()
        .map_err(|e| format!("--listen: {e}"))?;
    let victim = argument(&args, "--victim")?;
    let swap_file = PathBuf::from(argument(&args, "--swap-file")?);

    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let ca = magpie_relay::ca::load_or_create(&data).map_err(|e| e.to_string())?;
    // The impostor's key, certified under the victim's name by the relay's own CA.
    let name = Username::parse(&victim).map_err(|e| e.to_string())?;
    let impostor = Identity::generate(name).map_err(|e| e.to_string())?;
    let csr = impostor.csr().map_err(|e| e.to_string())?;
    let forged = ca.authority.issue(&csr, SystemTime::now()).map_err(|e| e.to_string())?;
    let forged_pem = String::from_utf8(forged.to_pem().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let real = SledStore::open(&data.join("store"), Default::default()).map_err(|e| e.to_string())?;
    let store = Arc::new(LyingDirectory {
        real,
        victim,
        forged_pem,
        swap_file,
    });
    let fingerprint = ca.fingerprint_hex();
    let state = AppState::new(store, ca, Config::with_data_dir(&data)).map_err(|e| e.to_string())?;
    let relay = RunningRelay::start_at(state, listen).await.map_err(|e| e.to_string())?;
    // Tests read this line to know the relay is up and which CA to confirm.
    println!("lying relay listening on {} ca {fingerprint}", relay.url(""));
    let _ = tokio::signal::ctrl_c().await;
    relay.stop().await.map_err(|e| e.to_string())
}
