//! The relay embedded in the app ("Local relay on this computer"): a real magpie-relay on 127.0.0.1, with its CA
//! and mailboxes in the app's data folder, started the first time a profile needs it.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use magpie_relay::config::Config;
use magpie_relay::server::{open_state, RunningRelay};

use crate::error::{IpcError, IpcErrorCode};

/// Forces the embedded relay's port (tests run several apps side by side).
pub const PORT_ENV: &str = "MAGPIE_LOCAL_RELAY_PORT";
/// The port tried first: profiles registered here remember the address, so it should stay the same.
pub const DEFAULT_PORT: u16 = 47_800;

/// A running embedded relay.
#[derive(Debug)]
pub struct LocalRelay {
    running: RunningRelay,
    url: String,
}

impl LocalRelay {
    /// Opens the relay's data in `dir` and serves it on the remembered port (or a free one if that is taken).
    pub async fn start(dir: PathBuf) -> Result<Self, IpcError> {
        let config = Config::with_data_dir(&dir);
        // Opening sled and reading the CA key block: keep it off the async workers.
        let state = tauri::async_runtime::spawn_blocking(move || open_state(config))
            .await
            .map_err(|e| IpcError::new(IpcErrorCode::Internal, format!("The local relay stopped starting: {e}")))?
            .map_err(|e| {
                IpcError::new(
                    IpcErrorCode::DataDirectory,
                    format!("The local relay could not open its data in {}: {e}", dir.display()),
                )
            })?;
        let forced = std::env::var(PORT_ENV).ok().and_then(|port| port.parse::<u16>().ok());
        let wanted = forced.or_else(|| remembered_port(&dir)).unwrap_or(DEFAULT_PORT);
        let running = match RunningRelay::start_at(state.clone(), loopback(wanted)).await {
            Ok(running) => running,
            // Someone else has the port: any free one will do, profiles are re-pointed at it on open.
            Err(error) if forced.is_none() => {
                tracing::info!(port = wanted, %error, "local relay port taken; using another");
                RunningRelay::start_at(state.clone(), loopback(0))
                    .await
                    .map_err(unreachable_relay)?
            }
            Err(error) => return Err(unreachable_relay(error)),
        };
        remember_port(&dir, running.addr.port());
        let url = running.url("");
        tracing::info!(%url, "local relay started");
        Ok(Self { running, url })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops serving and flushes.
    pub async fn stop(self) {
        if let Err(error) = self.running.stop().await {
            tracing::warn!(%error, "local relay did not stop cleanly");
        }
    }
}

/// Where the embedded relay keeps its CA, mailboxes and port, inside the app's data folder.
pub fn relay_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("relay")
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn port_file(dir: &Path) -> PathBuf {
    dir.join("port")
}

fn remembered_port(dir: &Path) -> Option<u16> {
    std::fs::read_to_string(port_file(dir)).ok()?.trim().parse().ok()
}

fn remember_port(dir: &Path, port: u16) {
    if let Err(error) = std::fs::write(port_file(dir), port.to_string()) {
        tracing::warn!(%error, "could not remember the local relay's port");
    }
}

fn unreachable_relay(error: std::io::Error) -> IpcError {
    IpcError::new(
        IpcErrorCode::RelayUnreachable,
        format!("The local relay could not listen on 127.0.0.1: {error}"),
    )
}
