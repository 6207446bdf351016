//! A relay that lies, for end-to-end tests of key-change warnings and security notices: a real magpie-relay whose
//! directory, while the file given by `--swap-file` exists, answers a lookup of `--victim` with a certificate its
//! own CA issued for another key, and which, while the file given by `--tamper-file` exists, flips a bit in every
//! message it stores (what a compromised or coerced operator could do).
//!
//! `cargo run -p magpie-relay --example lying_relay -- --data DIR --listen 127.0.0.1:PORT --victim erin \
//!  --swap-file /tmp/swap --tamper-file /tmp/tamper`
#![allow(
    clippy::print_stdout,
    reason = "a test tool: its one line of output is how tests know it is up"
)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use base64::Engine as _;
use magpie_proto::{EnvelopeKind, Identity, SealedMessage, Username};
use magpie_relay::config::Config;
use magpie_relay::server::RunningRelay;
use magpie_relay::store::{Intercept, SledStore, UserRecord};
use magpie_relay::AppState;

/// A sealed message (base64 of its JSON) with one bit of its ciphertext flipped; `None` if it is not one.
fn tampered(body_b64: &str) -> Option<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let mut sealed = SealedMessage::from_json(&engine.decode(body_b64).ok()?).ok()?;
    *sealed.ciphertext.first_mut()? ^= 0x01;
    Some(engine.encode(sealed.to_json().ok()?))
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
    let tamper_file = PathBuf::from(argument(&args, "--tamper-file")?);

    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let ca = magpie_relay::ca::load_or_create(&data).map_err(|e| e.to_string())?;
    // The impostor's key, certified under the victim's name by the relay's own CA.
    let name = Username::parse(&victim).map_err(|e| e.to_string())?;
    let impostor = Identity::generate(name).map_err(|e| e.to_string())?;
    let csr = impostor.csr().map_err(|e| e.to_string())?;
    let forged = ca.authority.issue(&csr, SystemTime::now()).map_err(|e| e.to_string())?;
    let forged_pem = String::from_utf8(forged.to_pem().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let real = SledStore::open(&data.join("store"), Default::default()).map_err(|e| e.to_string())?;
    let store = Arc::new(
        Intercept::new(Arc::new(real))
            .on_user(move |real, username| {
                let record = real.user(username)?;
                if username == victim && swap_file.exists() {
                    return Ok(record.map(|record| UserRecord {
                        cert_pem: forged_pem.clone(),
                        ..record
                    }));
                }
                Ok(record)
            })
            .on_insert(move |real, mut envelope| {
                if envelope.kind == EnvelopeKind::Message && tamper_file.exists() {
                    envelope.body_b64 = tampered(&envelope.body_b64).unwrap_or(envelope.body_b64);
                }
                real.insert_envelope(envelope)
            }),
    );
    let fingerprint = ca.fingerprint_hex();
    let state = AppState::new(store, ca, Config::with_data_dir(&data)).map_err(|e| e.to_string())?;
    let relay = RunningRelay::start_at(state, listen).await.map_err(|e| e.to_string())?;
    // Tests read this line to know the relay is up and which CA to confirm.
    println!("lying relay listening on {} ca {fingerprint}", relay.url(""));
    let _ = tokio::signal::ctrl_c().await;
    relay.stop().await.map_err(|e| e.to_string())
}
