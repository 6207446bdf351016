//! The relay's HTTP API as a test drives it, typed with magpie-api's bodies: one client for the relay's tests, the
//! stories and the load generator. Every call returns the relay's answer (`Ok`) or its refusal with status and
//! error body (`Err`), so a test can assert on either. Login is written here once: ask for a challenge, sign its
//! nonce with the key the relay certified (bound to the relay's CA), trade the signature for a bearer token.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use magpie_api::{
    paths, AckRequest, AckResponse, ApiError, ChallengeRequest, ChallengeResponse, DirectoryEntry, FetchResponse,
    LoginRequest, LoginResponse, RegisterRequest, RegisterResponse, SendRequest, SendResponse,
};
use magpie_proto::Identity;
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

/// What `identity` asks for first.
pub fn challenge_request(identity: &Identity) -> ChallengeRequest {
    ChallengeRequest {
        username: identity.username().clone(),
    }
}

/// What `identity` answers `challenge` with, for the relay whose CA has `ca_fingerprint`.
pub fn login_request(identity: &Identity, ca_fingerprint: &[u8; 32], challenge: &ChallengeResponse) -> LoginRequest {
    let nonce = STANDARD.decode(&challenge.nonce).unwrap();
    LoginRequest {
        username: identity.username().clone(),
        nonce: challenge.nonce.clone(),
        signature: STANDARD.encode(identity.sign_login(ca_fingerprint, &nonce).unwrap()),
    }
}

/// A refusal: the status and the relay's error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub error: ApiError,
}

/// One user's view of a relay over HTTP.
#[derive(Debug, Clone)]
pub struct RelayApi {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl RelayApi {
    /// A client of the relay at `base` (its URL without a path), not logged in.
    pub fn new(http: &reqwest::Client, base: &str) -> Self {
        Self {
            http: http.clone(),
            base: base.trim_end_matches('/').to_owned(),
            token: None,
        }
    }

    /// The bearer token of the last login.
    pub fn token(&self) -> &str {
        self.token.as_deref().expect("logged in")
    }

    /// Uses `token` for the calls that need one.
    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// `POST /v1/register` with `identity`'s CSR.
    pub async fn register(&self, identity: &Identity) -> Result<RegisterResponse, Refused> {
        let csr = String::from_utf8(identity.csr().unwrap().to_pem().unwrap()).unwrap();
        self.post(paths::REGISTER, &RegisterRequest { csr }).await
    }

    /// Challenge, signature, token: logs `identity` in and keeps the token.
    pub async fn login(&mut self, identity: &Identity, ca_fingerprint: &[u8; 32]) -> Result<LoginResponse, Refused> {
        let challenge: ChallengeResponse = self.post(paths::LOGIN_CHALLENGE, &challenge_request(identity)).await?;
        let request = login_request(identity, ca_fingerprint, &challenge);
        let answer: LoginResponse = self.post(paths::LOGIN, &request).await?;
        self.token = Some(answer.token.clone());
        Ok(answer)
    }

    /// `GET /v1/directory/{username}`.
    pub async fn lookup(&self, username: &str) -> Result<DirectoryEntry, Refused> {
        self.get(&paths::directory(username)).await
    }

    /// `POST /v1/envelopes`.
    pub async fn send(&self, envelope: &SendRequest) -> Result<SendResponse, Refused> {
        self.post(paths::ENVELOPES, envelope).await
    }

    /// `GET /v1/envelopes?after=…&limit=…`.
    pub async fn fetch(&self, after: u64, limit: Option<usize>) -> Result<FetchResponse<'static>, Refused> {
        let limit = limit.map(|l| format!("&limit={l}")).unwrap_or_default();
        self.get(&format!("{}?after={after}{limit}", paths::ENVELOPES)).await
    }

    /// `POST /v1/envelopes/ack`.
    pub async fn ack(&self, ids: &[Uuid]) -> Result<AckResponse, Refused> {
        self.post(paths::ACK, &AckRequest { ids: ids.to_vec() }).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, Refused> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.call(request).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Refused> {
        self.call(self.http.get(format!("{}{path}", self.base))).await
    }

    async fn call<T: DeserializeOwned>(&self, mut request: reqwest::RequestBuilder) -> Result<T, Refused> {
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        if (200..300).contains(&status) {
            Ok(serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{status}: {e}: {body:?}")))
        } else {
            let error = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{status}: {e}: {body:?}"));
            Err(Refused { status, error })
        }
    }
}

/// Logs `identity` in over HTTP at `base` (the relay's URL without a path); the bearer token.
pub async fn http_login(http: &reqwest::Client, base: &str, identity: &Identity, ca_fingerprint: &[u8; 32]) -> String {
    let mut api = RelayApi::new(http, base);
    api.login(identity, ca_fingerprint).await.unwrap().token
}
