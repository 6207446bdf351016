//! Registration (CSR → certificate), key-signed login (challenge, signature → bearer token), and the
//! [`AuthUser`] extractor. Tokens are 32 random bytes; only their SHA-256 is stored.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use magpie_api::{
    paths, ApiError, ChallengeRequest, ChallengeResponse, LoginRequest, LoginResponse, RegisterRequest,
    RegisterResponse,
};
use magpie_proto::Csr;

use super::client::ClientAddr;
use super::{now_secs, ApiJson, AppState};
use crate::error::{Error, Result};
use crate::ratelimit::RateLimiter;
use crate::store::{ChallengeRecord, TokenRecord, UserRecord};

const TOKEN_BYTES: usize = 32;
const NONCE_BYTES: usize = 32;

/// Registers a name: the CA certifies the CSR's key for its CN.
#[utoipa::path(post, path = paths::REGISTER, tag = "identity",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "issued", body = RegisterResponse),
        (status = 400, description = "bad JSON, or a CSR refused (self-signature, key, name)", body = ApiError),
        (status = 409, description = "`name_taken`", body = ApiError),
        (status = 413, description = "body over 64 KiB", body = ApiError),
        (status = 429, description = "over --register-per-hour from this client address", body = ApiError),
    ))]
pub(crate) async fn register(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>)> {
    check_limit(&state, &state.register_limit, &client)?;
    let csr = Csr::from_pem(req.csr.as_bytes()).map_err(|e| Error::BadCsr(e.to_string()))?;
    let username = csr.verify().map_err(|e| Error::BadCsr(e.to_string()))?;
    if state.store.user(username.as_str()).await?.is_some() {
        return Err(Error::NameTaken(username.to_string()));
    }
    // RSA signing takes milliseconds: keep it off the async workers.
    let authority = state.ca.authority.clone();
    let cert = tokio::task::spawn_blocking(move || authority.issue(&csr, std::time::SystemTime::now()))
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::BadCsr(e.to_string()))?;
    let pem = cert.to_pem().map_err(|e| Error::Internal(e.to_string()))?;
    let cert_pem = String::from_utf8(pem).map_err(|e| Error::Internal(e.to_string()))?;
    let record = UserRecord {
        username: username.to_string(),
        cert_pem: cert_pem.clone(),
        created_at: now_secs(),
    };
    if !state.store.add_user(&record).await? {
        return Err(Error::NameTaken(username.to_string()));
    }
    state.store.durable().await?;
    tracing::info!(user = %username, "registered");
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            username: username.to_string(),
            certificate: cert_pem,
            ca: state.ca.pem.clone(),
        }),
    ))
}

/// A client on this machine (no key) is not limited.
fn check_limit(state: &AppState, limit: &RateLimiter, client: &ClientAddr) -> Result<()> {
    match &client.0 {
        Some(key) => state.rate_limit(limit, key),
        None => Ok(()),
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut bytes = [0u8; N];
    openssl::rand::rand_bytes(&mut bytes).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(bytes)
}

/// A single-use nonce to sign for a login.
#[utoipa::path(post, path = paths::LOGIN_CHALLENGE, tag = "identity",
    request_body = ChallengeRequest,
    responses(
        (status = 200, description = "the nonce", body = ChallengeResponse),
        (status = 400, description = "bad JSON or name", body = ApiError),
        (status = 404, description = "no such user", body = ApiError),
        (status = 429, description = "over --login-per-minute from this client address", body = ApiError),
    ))]
pub(crate) async fn challenge(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(req): ApiJson<ChallengeRequest>,
) -> Result<Json<ChallengeResponse>> {
    check_limit(&state, &state.login_limit, &client)?;
    if state.store.user(req.username.as_str()).await?.is_none() {
        return Err(Error::NotFound(format!("no user {:?}", req.username.as_str())));
    }
    let nonce: [u8; NONCE_BYTES] = random_bytes()?;
    let expires_at = now_secs().saturating_add(state.config.challenge_ttl_secs);
    let record = ChallengeRecord {
        username: req.username.to_string(),
        expires_at,
    };
    state.store.put_challenge(&nonce, &record).await?;
    Ok(Json(ChallengeResponse {
        nonce: STANDARD.encode(nonce),
        expires_at,
    }))
}

/// Trades a signed challenge for a bearer token.
#[utoipa::path(post, path = paths::LOGIN, tag = "identity",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "the token", body = LoginResponse),
        (status = 400, description = "bad JSON, or nonce or signature not base64", body = ApiError),
        (status = 401, description = "unknown, used or expired nonce, or a bad signature", body = ApiError),
        (status = 429, description = "over --login-per-minute from this client address", body = ApiError),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    client: ClientAddr,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>> {
    const FAILED: Error = Error::Unauthorized("login failed");
    let username = req.username.as_str();
    check_limit(&state, &state.login_limit, &client)?;
    let nonce = STANDARD
        .decode(&req.nonce)
        .map_err(|_| Error::BadRequest("nonce is not base64".into()))?;
    let signature = STANDARD
        .decode(&req.signature)
        .map_err(|_| Error::BadRequest("signature is not base64".into()))?;
    // Taken before checking anything else: a nonce is good for one attempt.
    let challenge = state.store.take_challenge(&nonce).await?.ok_or(FAILED)?;
    if challenge.username != username || challenge.expires_at <= now_secs() {
        return Err(FAILED);
    }
    let user = state.store.user(username).await?.ok_or(FAILED)?;
    let cert = magpie_proto::Certificate::from_pem(user.cert_pem.as_bytes())
        .map_err(|e| Error::Internal(format!("stored certificate of {username}: {e}")))?;
    if cert
        .verify_login(&state.ca.fingerprint, username, &nonce, &signature)
        .is_err()
    {
        tracing::info!(user = %username, "login signature refused");
        return Err(FAILED);
    }
    let token_bytes: [u8; TOKEN_BYTES] = random_bytes()?;
    let token = URL_SAFE_NO_PAD.encode(token_bytes);
    let expires_at = now_secs().saturating_add(state.config.token_ttl_secs);
    let record = TokenRecord {
        username: username.to_owned(),
        expires_at,
    };
    state.store.put_token(&hash_token(&token), &record).await?;
    // Durable so a token handed out survives a restart.
    state.store.durable().await?;
    state.metrics.logins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(user = %username, "logged in");
    Ok(Json(LoginResponse { token, expires_at }))
}

/// SHA-256 of a bearer token: the only form the store sees.
pub fn hash_token(token: &str) -> [u8; 32] {
    openssl::sha::sha256(token.as_bytes())
}

/// The user a valid bearer token belongs to.
#[derive(Debug, Clone)]
pub struct AuthUser(pub String);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or(Error::Unauthorized("missing bearer token"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Error::Unauthorized("malformed Authorization header"))?;
        let record = state
            .store
            .token(&hash_token(token))
            .await?
            .ok_or(Error::Unauthorized("unknown token"))?;
        if record.expires_at <= now_secs() {
            return Err(Error::Unauthorized("expired token"));
        }
        Ok(Self(record.username))
    }
}
