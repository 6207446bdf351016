//! The relay client: registration, key-signed login, the certificate directory, mailboxes and the push socket.
//!
//! Every call is one HTTP request (reqwest, one pooled keep-alive connection per relay). Errors are typed:
//! [`Error::RelayUnreachable`] when the relay cannot be reached at all (retry later),
//! [`Error::Relay`] when it answered with an error, and the few answers the engine acts on by name
//! ([`Error::NameTaken`], [`Error::UnknownUser`]).

mod blobs;
mod push;

use std::sync::RwLock;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use magpie_api::{
    paths, AckRequest, ApiError, ChallengeRequest, ChallengeResponse, DirectoryEntry, ErrorCode, FetchResponse,
    LoginRequest, LoginResponse, RegisterRequest, RegisterResponse, SendResponse, WireEnvelope,
};
use magpie_proto::{Certificate, Envelope, Fingerprint, Identity, Username};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use uuid::Uuid;
use zeroize::Zeroizing;

pub use blobs::{BlobProgress, TRANSFER_PART};
pub use push::{Outgoing, PushConnection, PushEvent, PushReceiver, PushSender};

use crate::error::{Error, Result};

/// How long one request may take before the relay counts as unreachable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Most envelopes one fetch asks for (the relay's own cap is 1,000).
pub const FETCH_LIMIT: usize = 500;

/// What registration gives back.
#[derive(Clone, Debug)]
pub struct Registration {
    /// Our certificate, issued by the relay's CA.
    pub certificate: Certificate,
    /// The relay's CA root, to pin.
    pub ca: Certificate,
}

/// One page of our mailbox.
#[derive(Debug)]
pub struct Mailbox {
    /// Oldest first.
    pub envelopes: Vec<Envelope>,
    /// Pass as `after` for the next page.
    pub cursor: u64,
}

/// A bearer token. `Debug` never shows it.
struct Token(Zeroizing<String>);

/// A client of one relay. Cheap to share; all methods take `&self`.
pub struct RelayClient {
    base: reqwest::Url,
    http: reqwest::Client,
    token: RwLock<Option<Token>>,
}

impl std::fmt::Debug for RelayClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

impl RelayClient {
    /// A client of the relay at `url` (`http://` or `https://`; plain HTTP is for loopback and development).
    pub fn new(url: &str) -> Result<Self> {
        let base = reqwest::Url::parse(url).map_err(|e| Error::BadRelayUrl(format!("{url}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(Error::BadRelayUrl(format!(
                "{url}: use https:// (or http:// for a relay on this computer) and a host name"
            )));
        }
        if base.scheme() == "http" && !is_loopback(&base) {
            return Err(Error::InsecureRelay(url.to_owned()));
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| Error::BadRelayUrl(e.to_string()))?;
        Ok(Self {
            base,
            http,
            token: RwLock::new(None),
        })
    }

    /// The relay's address as given.
    pub fn url(&self) -> &str {
        self.base.as_str()
    }

    /// Whether the relay runs on this computer (nothing to or from it crosses a network).
    pub fn is_local(&self) -> bool {
        is_loopback(&self.base)
    }

    /// The relay's CA certificate, as it serves it now (before registration: show its fingerprint, then pin it).
    pub async fn ca(&self) -> Result<Certificate> {
        let pem = self.text(self.request(Method::GET, paths::CA)?).await?;
        Ok(Certificate::from_pem(pem.as_bytes())?)
    }

    /// Registers `identity`'s name: sends its CSR, returns the issued certificate and the CA.
    pub async fn register(&self, identity: &Identity) -> Result<Registration> {
        let csr = String::from_utf8(identity.csr()?.to_pem()?).map_err(|e| Error::RelayProtocol(e.to_string()))?;
        let request = self
            .request(Method::POST, paths::REGISTER)?
            .json(&RegisterRequest { csr });
        let response: RegisterResponse = match self.json(request).await {
            Err(Error::Relay { status: 409, .. }) => return Err(Error::NameTaken(identity.username().to_string())),
            other => other?,
        };
        Ok(Registration {
            certificate: Certificate::from_pem(response.certificate.as_bytes())?,
            ca: Certificate::from_pem(response.ca.as_bytes())?,
        })
    }

    /// Proves we hold `identity`'s key (signing the relay's challenge) and keeps the bearer token for later calls.
    /// Returns when the token expires (Unix seconds).
    pub async fn login(&self, identity: &Identity, ca_fingerprint: &Fingerprint) -> Result<u64> {
        let username = identity.username().clone();
        let request = self
            .request(Method::POST, paths::LOGIN_CHALLENGE)?
            .json(&ChallengeRequest {
                username: username.clone(),
            });
        let challenge: ChallengeResponse = self.json(request).await?;
        let nonce = STANDARD
            .decode(&challenge.nonce)
            .map_err(|_| Error::RelayProtocol("login nonce is not base64".into()))?;
        let signature = identity.sign_login(ca_fingerprint.as_bytes(), &nonce)?;
        let request = self.request(Method::POST, paths::LOGIN)?.json(&LoginRequest {
            username,
            nonce: challenge.nonce,
            signature: STANDARD.encode(signature),
        });
        let login: LoginResponse = self.json(request).await?;
        *self.token.write().map_err(|_| Error::Poisoned)? = Some(Token(Zeroizing::new(login.token)));
        Ok(login.expires_at)
    }

    /// Uses a token an earlier login handed out.
    pub fn resume(&self, token: Zeroizing<String>) {
        if let Ok(mut slot) = self.token.write() {
            *slot = Some(Token(token));
        }
    }

    /// The current bearer token, to keep for a later run.
    pub fn token(&self) -> Option<Zeroizing<String>> {
        let token = self.token.read().ok()?;
        token.as_ref().map(|t| t.0.clone())
    }

    /// Whether a login succeeded (the token may still have expired since).
    pub fn is_logged_in(&self) -> bool {
        self.token.read().map(|t| t.is_some()).unwrap_or(false)
    }

    /// The certificate chain the directory holds for `username` (leaf first), unverified.
    pub async fn directory(&self, username: &Username) -> Result<Vec<Certificate>> {
        let path = paths::directory(username.as_str());
        let entry: DirectoryEntry = match self.json(self.authorized(Method::GET, &path)?).await {
            Err(Error::Relay { status: 404, .. }) => return Err(Error::UnknownUser(username.to_string())),
            other => other?,
        };
        entry
            .chain
            .iter()
            .map(|pem| Certificate::from_pem(pem.as_bytes()).map_err(Error::from))
            .collect()
    }

    /// Posts an envelope; returns once the relay stored it durably. Retrying with the same id never duplicates.
    pub async fn send(&self, envelope: &Envelope) -> Result<()> {
        let request = self
            .authorized(Method::POST, paths::ENVELOPES)?
            .json(&WireEnvelope::from_envelope(envelope));
        match self.json::<SendResponse>(request).await {
            Err(Error::Relay { status: 404, .. }) => Err(Error::UnknownUser(envelope.to.clone())),
            other => other.map(drop),
        }
    }

    /// Our pending envelopes after `after`, oldest first.
    pub async fn fetch(&self, after: u64) -> Result<Mailbox> {
        let path = format!("{}?after={after}&limit={FETCH_LIMIT}", paths::ENVELOPES);
        let page: FetchResponse<'static> = self.json(self.authorized(Method::GET, &path)?).await?;
        let envelopes = page
            .envelopes
            .into_iter()
            .map(|e| {
                e.into_envelope()
                    .ok_or_else(|| Error::RelayProtocol("an envelope without a sender, or a body not base64".into()))
            })
            .collect::<Result<_>>()?;
        Ok(Mailbox {
            envelopes,
            cursor: page.cursor,
        })
    }

    /// Deletes delivered envelopes from our mailbox.
    pub async fn ack(&self, ids: &[Uuid]) -> Result<()> {
        for chunk in ids.chunks(FETCH_LIMIT) {
            let request = self
                .authorized(Method::POST, paths::ACK)?
                .json(&AckRequest { ids: chunk.to_vec() });
            self.json::<magpie_api::AckResponse>(request).await?;
        }
        Ok(())
    }

    /// Opens the push socket (needs a login).
    pub async fn push(&self) -> Result<PushConnection> {
        let mut url = self.endpoint(paths::PUSH)?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme)
            .map_err(|()| Error::BadRelayUrl(self.base.to_string()))?;
        let token = self.bearer()?;
        PushConnection::connect(url.as_str(), &token).await
    }

    fn endpoint(&self, path: &str) -> Result<reqwest::Url> {
        self.base
            .join(path)
            .map_err(|e| Error::BadRelayUrl(format!("{}: {e}", self.base)))
    }

    fn request(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        Ok(self.http.request(method, self.endpoint(path)?))
    }

    fn bearer(&self) -> Result<Zeroizing<String>> {
        let token = self.token.read().map_err(|_| Error::Poisoned)?;
        let token = token.as_ref().ok_or(Error::NotLoggedIn)?;
        Ok(Zeroizing::new(format!("Bearer {}", token.0.as_str())))
    }

    fn authorized(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        let bearer = self.bearer()?;
        Ok(self
            .request(method, path)?
            .header(reqwest::header::AUTHORIZATION, bearer.as_str()))
    }

    async fn execute(&self, request: RequestBuilder) -> Result<Response> {
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        self.success(response).await
    }

    /// The response if it is a success, else the relay's error.
    async fn success(&self, response: Response) -> Result<Response> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(match serde_json::from_slice::<ApiError>(&body) {
            Ok(e) => Error::Relay {
                status: status.as_u16(),
                code: e.code,
                message: e.message,
            },
            Err(_) => Error::Relay {
                status: status.as_u16(),
                code: ErrorCode::Unknown,
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            },
        })
    }

    async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        self.json_of(request.send().await.map_err(|e| self.unreachable(&e))?)
            .await
    }

    async fn json_of<T: DeserializeOwned>(&self, response: Response) -> Result<T> {
        let response = self.success(response).await?;
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&body).map_err(|e| Error::RelayProtocol(e.to_string()))
    }

    async fn text(&self, request: RequestBuilder) -> Result<String> {
        self.execute(request)
            .await?
            .text()
            .await
            .map_err(|e| self.unreachable(&e))
    }

    fn unreachable(&self, error: &reqwest::Error) -> Error {
        // reqwest's Display omits the cause ("error sending request"); the source says what happened.
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        Error::RelayUnreachable {
            url: self.base.to_string(),
            reason,
        }
    }
}

impl Error {
    /// Whether trying again later may succeed (the relay was down, busy or rate-limiting).
    pub fn is_transient(&self) -> bool {
        match self {
            // Logging in (again) fixes it.
            Error::RelayUnreachable { .. } | Error::NotLoggedIn => true,
            // 507: the recipient's mailbox is full. Not retried here: the outbox would wait on it for everyone.
            Error::Relay { status, .. } if *status == StatusCode::INSUFFICIENT_STORAGE.as_u16() => false,
            Error::Relay { status, .. } => {
                *status == StatusCode::TOO_MANY_REQUESTS.as_u16() || *status >= 500 || *status == 401
            }
            _ => false,
        }
    }

    /// Whether the relay refused our token (log in again).
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Error::Relay { status: 401, .. } | Error::NotLoggedIn)
    }
}

/// Whether `url` names this computer: a loopback address, or `localhost`.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests say what must hold by panicking")]
    use super::*;

    #[test]
    fn a_remote_relay_must_be_https_and_plain_http_is_for_this_computer_only() {
        for remote in [
            "http://relay.example.org",
            "http://10.0.0.2:8787",
            "http://[2001:db8::1]/",
        ] {
            let refused = RelayClient::new(remote);
            assert!(matches!(refused, Err(Error::InsecureRelay(_))), "{remote}: {refused:?}");
        }
        let sentence = Error::InsecureRelay("http://relay.example.org".into()).to_string();
        assert!(sentence.contains("Use https://"), "{sentence}");
        for local in [
            "http://127.0.0.1:8787",
            "http://127.3.2.1",
            "http://[::1]:9/",
            "http://LocalHost:1",
        ] {
            assert!(RelayClient::new(local).unwrap().is_local(), "{local}");
        }
        let remote = RelayClient::new("https://relay.example.org").unwrap();
        assert!(!remote.is_local());
        assert!(matches!(
            RelayClient::new("ftp://relay.example.org"),
            Err(Error::BadRelayUrl(_))
        ));
    }
}
