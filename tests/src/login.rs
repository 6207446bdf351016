//! The relay's login as a client does it, typed: ask for a challenge, sign its nonce with the key the relay
//! certified (bound to the relay's CA), trade the signature for a bearer token. What goes over the wire is the
//! JSON of these types, whether a test calls the router in process or the relay over HTTP.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use magpie_proto::Identity;
use serde::{Deserialize, Serialize};

/// `POST /v1/login/challenge`.
#[derive(Debug, Serialize)]
pub struct ChallengeRequest<'a> {
    pub username: &'a str,
}

/// Its answer.
#[derive(Debug, Deserialize)]
pub struct Challenge {
    /// Base64.
    pub nonce: String,
}

/// `POST /v1/login`.
#[derive(Debug, Serialize)]
pub struct LoginRequest<'a> {
    pub username: &'a str,
    pub nonce: &'a str,
    /// Base64 of the signature over the nonce and the CA fingerprint.
    pub signature: String,
}

/// Its answer.
#[derive(Debug, Deserialize)]
pub struct LoginAnswer {
    pub token: String,
}

/// What `identity` asks for first.
pub fn challenge_request(identity: &Identity) -> ChallengeRequest<'_> {
    ChallengeRequest {
        username: identity.username().as_str(),
    }
}

/// What `identity` answers `challenge` with, for the relay whose CA has `ca_fingerprint`.
pub fn login_request<'a>(
    identity: &'a Identity,
    ca_fingerprint: &[u8; 32],
    challenge: &'a Challenge,
) -> LoginRequest<'a> {
    let nonce = STANDARD.decode(&challenge.nonce).unwrap();
    LoginRequest {
        username: identity.username().as_str(),
        nonce: &challenge.nonce,
        signature: STANDARD.encode(identity.sign_login(ca_fingerprint, &nonce).unwrap()),
    }
}

/// Logs `identity` in over HTTP at `base` (the relay's URL without a path); the bearer token.
pub async fn http_login(http: &reqwest::Client, base: &str, identity: &Identity, ca_fingerprint: &[u8; 32]) -> String {
    let challenge: Challenge = post(
        http,
        &format!("{base}/v1/login/challenge"),
        &challenge_request(identity),
    )
    .await;
    let request = login_request(identity, ca_fingerprint, &challenge);
    let answer: LoginAnswer = post(http, &format!("{base}/v1/login"), &request).await;
    answer.token
}

/// POSTs `body` as JSON and reads the answer, which must be a success.
async fn post<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str, body: &impl Serialize) -> T {
    let response = http.post(url).json(body).send().await.unwrap();
    response.error_for_status().unwrap().json().await.unwrap()
}
