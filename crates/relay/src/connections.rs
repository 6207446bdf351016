//! Serving connections with limits a hostile client cannot get around: a request's headers must arrive within
//! `--header-read-timeout` (also on an idle kept-alive connection, which is how it ends), and connections are
//! capped in all and per client address. `axum::serve` sets no timer, so hyper's header timeout never ran and a
//! half-sent request line held its socket forever; this is the same hyper connection with the timer set.
//!
//! A connection counts until its socket closes, also after it became a push socket (the count rides on the
//! socket, not on the HTTP exchange). Per-address caps skip this machine's clients (the embedded relay's own
//! profiles), and do not apply behind a proxy (`--client-ip-header`), where every connection comes from it.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tower::ServiceExt as _;

use crate::api::PeerAddr;
use crate::config::Config;

/// How long a graceful shutdown waits for requests in flight.
const DRAIN: Duration = Duration::from_secs(30);

/// Who may open another connection.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    /// `None` behind a proxy: every connection comes from it.
    max_per_ip: Option<usize>,
    open: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Connections closed at once because a cap was reached.
    pub refused: AtomicU64,
}

impl Admission {
    pub fn new(config: &Config) -> Arc<Self> {
        Arc::new(Self {
            max_total: config.max_connections,
            max_per_ip: config
                .client_ip_header
                .is_none()
                .then_some(config.max_connections_per_ip),
            open: AtomicUsize::new(0),
            per_ip: Mutex::default(),
            refused: AtomicU64::new(0),
        })
    }

    /// A place for a connection from `ip`, held until the returned ticket drops; `None` over a cap.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        if self.open.fetch_add(1, Relaxed) >= self.max_total {
            self.open.fetch_sub(1, Relaxed);
            self.refused.fetch_add(1, Relaxed);
            return None;
        }
        let counted_ip = match self.max_per_ip {
            Some(max) if !ip.is_loopback() => {
                let mut per_ip = self.per_ip.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let open = per_ip.entry(ip).or_insert(0);
                if *open >= max {
                    drop(per_ip);
                    self.open.fetch_sub(1, Relaxed);
                    self.refused.fetch_add(1, Relaxed);
                    return None;
                }
                *open += 1;
                Some(ip)
            }
            _ => None,
        };
        Some(Ticket {
            admission: Arc::clone(self),
            ip: counted_ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Relaxed)
    }
}

/// A connection's place; given back when the socket closes.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.open.fetch_sub(1, Relaxed);
        if let Some(ip) = self.ip {
            let mut per_ip = self
                .admission
                .per_ip
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(open) = per_ip.get_mut(&ip) {
                *open -= 1;
                if *open == 0 {
                    per_ip.remove(&ip);
                }
            }
        }
    }
}

/// A socket that holds its connection's [`Ticket`] for as long as it lives (through an upgrade to push too).
struct Counted<T> {
    io: T,
    _ticket: Ticket,
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then stops accepting and waits (at most [`DRAIN`])
/// for requests in flight. Push sockets are closed by the caller's own signal.
pub async fn serve<L>(
    mut listener: L,
    router: Router,
    admission: Arc<Admission>,
    header_read_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send,
) where
    L: Listener<Addr = SocketAddr>,
    L::Io: Unpin,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    // HTTP/2 WebSockets need the CONNECT protocol (as axum::serve enables).
    builder.http2().timer(TokioTimer::new()).enable_connect_protocol();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let Some(ticket) = admission.admit(peer.ip()) else {
            tracing::debug!(%peer, "connection refused: too many open");
            continue;
        };
        let service = router
            .clone()
            .map_request(move |mut request: axum::http::Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(PeerAddr(peer)));
                request.map(Body::new)
            });
        let io = TokioIo::new(Counted { io, _ticket: ticket });
        let connection = builder
            .serve_connection_with_upgrades(io, TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(%peer, %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {DRAIN:?}: stopping anyway");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_total: usize, max_per_ip: usize, proxy: bool) -> Arc<Admission> {
        let mut config = Config::with_data_dir("/nonexistent-unused");
        config.max_connections = max_total;
        config.max_connections_per_ip = max_per_ip;
        config.client_ip_header = proxy.then(|| "x-forwarded-for".to_owned());
        Admission::new(&config)
    }

    #[test]
    fn each_address_gets_its_share_and_tickets_give_places_back() {
        let caps = admission(100, 2, false);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = caps.admit(a).unwrap();
        let _second = caps.admit(a).unwrap();
        assert!(caps.admit(a).is_none(), "a third from one address");
        assert!(caps.admit(b).is_some(), "another address is not held up");
        drop(first);
        assert!(caps.admit(a).is_some(), "a closed connection frees its place");
        assert_eq!(caps.refused.load(Relaxed), 1);
    }

    #[test]
    fn the_total_caps_everyone_and_this_machine_has_no_share_limit() {
        let caps = admission(3, 1, false);
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..3).map(|_| caps.admit(local).unwrap()).collect();
        assert!(caps.admit(local).is_none(), "over the total");
        assert!(caps.admit("192.0.2.1".parse().unwrap()).is_none());
        drop(held);
        assert_eq!(caps.open(), 0);
    }

    #[test]
    fn behind_a_proxy_only_the_total_applies() {
        let caps = admission(10, 1, true);
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let held: Vec<_> = (0..10).map(|_| caps.admit(proxy).unwrap()).collect();
        assert!(caps.admit(proxy).is_none());
        assert_eq!(held.len(), 10);
    }
}
