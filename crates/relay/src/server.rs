//! Starting and stopping: open the data directory, bind, serve with TCP_NODELAY, shut down gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use openssl::ssl::SslAcceptor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{now_secs, router, AppState};
use crate::ca::{self, CaError};
use crate::config::Config;
use crate::connections::{self, Admission};
use crate::store::blobs::{FileBlobs, INCOMPLETE_BLOB_SECS};
use crate::store::{LogStore, StoreError};
use crate::tls::TlsListener;

const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Why the relay could not start; each cause has its own exit code.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory cannot be created or written.
    #[error("data directory {path} is not writable: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The database would not open.
    #[error("cannot open the database: {0}")]
    Store(#[from] StoreError),
    /// The CA files are unreadable or inconsistent.
    #[error("cannot load the CA: {0}")]
    Ca(#[from] CaError),
    /// The listen address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What failed (e.g. address in use).
        source: std::io::Error,
    },
    /// The TLS certificate or key would not load.
    #[error("cannot load the TLS certificate or key: {0}")]
    Tls(String),
    /// Other relays on the database run with other settings that clients see.
    #[error("{0}")]
    Settings(String),
    /// Anything else at start (thread spawn).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl StartError {
    /// The process exit code (sysexits.h): 73 data dir or database, 78 CA, TLS files or settings the other relays
    /// do not share, 69 bind, 71 other.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::DataDir { .. } | Self::Store(_) => 73,
            Self::Ca(_) | Self::Tls(_) | Self::Settings(_) => 78,
            Self::Bind { .. } => 69,
            Self::Io(_) => 71,
        }
    }
}

fn ensure_writable(dir: &Path) -> Result<(), StartError> {
    let fail = |source| StartError::DataDir {
        path: dir.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)
}

/// Opens the store and the CA in `config.data_dir` (creating both at first start).
pub fn open_state(config: Config) -> Result<AppState, StartError> {
    ensure_writable(&config.data_dir)?;
    let cache_bytes = config.cache_mb.saturating_mul(1 << 20);
    let segment_bytes = config.segment_kb.saturating_mul(1 << 10);
    let store = LogStore::open_with(&config.data_dir.join("store"), config.sync, cache_bytes, segment_bytes)?;
    let blobs = FileBlobs::open(&config.data_dir.join("blobs"))?;
    let ca = ca::load_or_create(&config.data_dir)?;
    Ok(AppState::embedded(Arc::new(store), Arc::new(blobs), ca, config)?)
}

/// Opens the relay's state as `config` says: the store in the data directory, or the PostgreSQL database of
/// `--database` with the CA kept there (see [`shared_ca`]).
pub async fn open(config: Config) -> Result<AppState, StartError> {
    #[cfg(feature = "postgres")]
    if let Some(url) = config.database.clone() {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let store = Arc::new(crate::store::PgStore::connect(&url, config.database_connections, metrics.clone()).await?);
        let ca = shared_ca(&store, &config.data_dir).await?;
        let changed = store
            .share_settings(&config.shared_settings())
            .await
            .map_err(|e| match e {
                crate::store::SharedSettingsError::Store(e) => StartError::Store(e),
                differ => StartError::Settings(differ.to_string()),
            })?;
        if !changed.is_empty() {
            tracing::warn!(changes = ?changed, "no other relay is connected: this relay's settings are now everyone's");
        }
        let state = AppState::with_backend(store.clone(), store.clone(), metrics, ca, config);
        crate::fanout::spawn(store, state.clone());
        return Ok(state);
    }
    #[cfg(not(feature = "postgres"))]
    if config.database.is_some() {
        return Err(StartError::Io(std::io::Error::other(
            "this magpie-relay was built without PostgreSQL (cargo feature postgres)",
        )));
    }
    tokio::task::spawn_blocking(move || open_state(config))
        .await
        .map_err(std::io::Error::other)?
}

/// The CA of the relays on `store`'s database. The first relay to start stores its own there (the one in its data
/// directory, so a relay moving to PostgreSQL keeps the CA its users pinned, or a new one); every other relay serves
/// that one, and refuses to start if its data directory holds a different CA, which its users would have pinned.
#[cfg(feature = "postgres")]
pub async fn shared_ca(store: &crate::store::PgStore, data_dir: &Path) -> Result<ca::CaInfo, StartError> {
    let dir = data_dir.to_owned();
    let local = tokio::task::spawn_blocking(move || ca::load(&dir))
        .await
        .map_err(std::io::Error::other)??;
    let invalid = |problem: String| CaError::Invalid {
        dir: data_dir.join("ca"),
        problem,
    };
    let (root, key) = match store.stored_ca().await? {
        Some(stored) => stored,
        None => {
            let offer = match &local {
                Some(info) => info.clone(),
                None => {
                    tokio::task::spawn_blocking(ca::create)
                        .await
                        .map_err(std::io::Error::other)?
                        .map_err(invalid)?
                        .0
                }
            };
            let key = offer.authority.key_to_pkcs8_der().map_err(|e| invalid(e.to_string()))?;
            store.shared_ca(&offer.pem, key.expose_secret()).await?
        }
    };
    let shared = ca::from_parts(root.as_bytes(), key.expose_secret()).map_err(invalid)?;
    if let Some(local) = local.filter(|l| l.fingerprint != shared.fingerprint) {
        return Err(invalid(format!(
            "it holds CA {}, and the database's relays serve CA {}: users of this relay pinned the first. Move \
             its ca/ aside to serve the database's CA",
            local.fingerprint_hex(),
            shared.fingerprint_hex()
        ))
        .into());
    }
    Ok(shared)
}

/// Binds the listen address, with a clear error when it is taken.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

/// Serves plain HTTP until `shutdown` resolves, then stops accepting, closes push connections, lets
/// in-flight requests finish, and flushes the store.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(NoDelayListener(listener), state, shutdown).await
}

/// Plain TCP with TCP_NODELAY on each connection: without it small frames wait up to 40 ms for Nagle and
/// delayed ACK.
#[derive(Debug)]
pub struct NoDelayListener(pub TcpListener);

impl Listener for NoDelayListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (tcp, addr) = Listener::accept(&mut self.0).await;
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "TCP_NODELAY failed");
        }
        (tcp, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Listener::local_addr(&self.0)
    }
}

/// As [`serve`], over TLS (HTTPS and WSS).
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: SslAcceptor,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(TlsListener::new(listener, acceptor)?, state, shutdown).await
}

async fn serve_on<L>(
    listener: L,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
    L::Io: Unpin,
{
    let admission = Admission::new(&state.config);
    let header_read_timeout = Duration::from_secs(state.config.header_read_timeout_secs.max(1));
    let purger = tokio::spawn(purge_loop(state.clone()));
    let signalled = state.clone();
    let shutdown = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing requests");
        signalled.begin_shutdown();
    };
    connections::serve(
        listener,
        router(state.clone()),
        admission,
        header_read_timeout,
        shutdown,
    )
    .await;
    purger.abort();
    let _ = purger.await;
    // Upgraded (push) connections end on the shutdown signal: wait, briefly, for them to close.
    for _ in 0..500 {
        if state
            .metrics
            .push_connections
            .load(std::sync::atomic::Ordering::Relaxed)
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    match state.store.durable().await {
        Ok(()) => tracing::info!("store flushed; stopped"),
        Err(e) => tracing::error!(error = %e, "final flush failed"),
    }
    Ok(())
}

async fn purge_loop(state: AppState) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    loop {
        tick.tick().await;
        sweep(&state).await;
    }
}

/// What the relay does every minute: deletes envelopes unread past `--mailbox-expiry-days` (and blobs as old, and
/// uploads left incomplete for a day), purges expired challenges, tokens and old ids, and forgets idle rate-limit
/// buckets.
pub async fn sweep(state: &AppState) {
    let now = now_secs();
    let expired = match state.config.mailbox_expiry_days {
        0 => Ok(0),
        days => {
            let received_before = now.saturating_sub(days.saturating_mul(86_400));
            state.store.expire_waiting(received_before, now).await
        }
    };
    match expired {
        Ok(0) => {}
        Ok(expired) => {
            tracing::info!(expired, "envelopes unread past --mailbox-expiry-days deleted");
            let expired = u64::try_from(expired).unwrap_or(u64::MAX);
            state
                .metrics
                .envelopes_expired
                .fetch_add(expired, std::sync::atomic::Ordering::Relaxed);
        }
        Err(e) => tracing::warn!(error = %e, "expiry failed"),
    }
    let complete_before = match state.config.mailbox_expiry_days {
        0 => 0,
        days => now.saturating_sub(days.saturating_mul(86_400)),
    };
    match state
        .blobs
        .expire(complete_before, now.saturating_sub(INCOMPLETE_BLOB_SECS))
        .await
    {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "blobs past their expiry or left half-uploaded deleted"),
        Err(e) => tracing::warn!(error = %e, "blob expiry failed"),
    }
    match state.store.purge_expired(now).await {
        Ok(0) => {}
        Ok(purged) => tracing::debug!(purged, "expired records purged"),
        Err(e) => tracing::warn!(error = %e, "purge failed"),
    }
    state.login_limit.forget_idle();
    state.register_limit.forget_idle();
    state.send_limit.forget_idle();
    state.lookup_limit.forget_idle();
    state.fetch_limit.forget_idle();
    state.send_bytes.forget_idle();
    state.fetch_bytes.forget_idle();
    state.file_kib_up.forget_idle();
    state.file_kib_down.forget_idle();
}

/// A relay serving on an ephemeral loopback port inside this process (tests, embedders).
#[derive(Debug)]
pub struct RunningRelay {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state (store, metrics, hub).
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningRelay {
    /// Binds 127.0.0.1:0 and serves `state` over plain HTTP.
    pub async fn start(state: AppState) -> std::io::Result<Self> {
        Self::start_with(state, None).await
    }

    /// As [`RunningRelay::start`], over TLS when given an acceptor.
    pub async fn start_with(state: AppState, tls: Option<SslAcceptor>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::serve_on(listener, state, tls)
    }

    /// Serves plain HTTP on `addr` (an app embedding the relay keeps its port across restarts).
    pub async fn start_at(state: AppState, addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Self::serve_on(listener, state, None)
    }

    fn serve_on(listener: TcpListener, state: AppState, tls: Option<SslAcceptor>) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async move {
            let _ = stopped.await;
        };
        let task = match tls {
            Some(acceptor) => tokio::spawn(serve_tls(listener, acceptor, state.clone(), stopped)),
            None => tokio::spawn(serve(listener, state.clone(), stopped)),
        };
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
            task,
        })
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Graceful shutdown; returns when the server has stopped and flushed.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.map_err(std::io::Error::other)?
    }
}
