//! `magpie-relay --data DIR --listen 127.0.0.1:8787`: see `--help` and the crate docs.

use std::process::ExitCode;

use clap::Parser as _;
use magpie_relay::config::Config;
use magpie_relay::server::{self, StartError};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(71);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "magpie-relay cannot run");
            // Also on stderr without log formatting, for people and scripts.
            eprintln!("magpie-relay: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn run(config: Config) -> Result<(), StartError> {
    let listen = config.listen;
    let data = config.data_dir.clone();
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(
            magpie_relay::tls::acceptor(cert, key)
                .map_err(|e| StartError::Tls(format!("{} / {}: {e}", cert.display(), key.display())))?,
        ),
        _ => None,
    };
    // Bind first: a taken port should fail fast, before a possibly slow CA key generation.
    let listener = server::bind(listen).await?;
    let state = server::open(config).await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        listen = %addr,
        tls = tls.is_some(),
        data = %data.display(),
        ca_fingerprint_sha256 = %state.ca.fingerprint_hex(),
        "magpie-relay listening"
    );
    if tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(
            listen = %addr,
            "plain HTTP on a public address: clients refuse an http:// relay that is not on their own machine, \
             and tokens would cross the network in the clear; serve TLS (--tls-cert) or listen on loopback \
             behind a TLS proxy"
        );
    }
    if let Some(header) = &state.config.client_ip_header {
        tracing::info!(%header, proxies = ?state.config.trusted_proxies, "client addresses from the proxies' header");
    }
    match tls {
        Some(acceptor) => server::serve_tls(listener, acceptor, state, shutdown_signal()).await?,
        None => server::serve(listener, state, shutdown_signal()).await?,
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("Ctrl-C received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
}
