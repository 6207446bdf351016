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
use magpie_relay::store::{Intercept, SledStore, UserRecord};
use magpie_relay::AppState;

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
    let store = Arc::new(Intercept::new(Arc::new(real)).on_user(move |real, username| {
        let record = real.user(username)?;
        if username == victim && swap_file.exists() {
            return Ok(record.map(|record| UserRecord {
                cert_pem: forged_pem.clone(),
                ..record
            }));
        }
        Ok(record)
    }));
    let fingerprint = ca.fingerprint_hex();
    let state = AppState::new(store, ca, Config::with_data_dir(&data)).map_err(|e| e.to_string())?;
    let relay = RunningRelay::start_at(state, listen).await.map_err(|e| e.to_string())?;
    // Tests read this line to know the relay is up and which CA to confirm.
    println!("lying relay listening on {} ca {fingerprint}", relay.url(""));
    let _ = tokio::signal::ctrl_c().await;
    relay.stop().await.map_err(|e| e.to_string())
}
