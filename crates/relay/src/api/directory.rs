//! Reads: health and the CA root (public), and the certificate directory (logged-in users, rate-limited, so that
//! nobody can list who uses the relay by asking for names).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use magpie_api::{paths, ApiError, DirectoryEntry, Health};
use magpie_proto::Username;

use super::{AppState, AuthUser};
use crate::error::{Error, Result};

/// How long the health check waits for the store.
const HEALTH_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Liveness, version and the CA's fingerprint; 503 while the store does not answer (a load balancer then sends
/// clients to another relay).
#[utoipa::path(get, path = paths::HEALTH, tag = "relay",
    responses(
        (status = 200, description = "up: `status` is `ok`", body = Health),
        (status = 503, description = "the store does not answer: `status` is `storage_unavailable`", body = Health),
    ))]
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    let ready = tokio::time::timeout(HEALTH_PATIENCE, state.store.ready()).await;
    let (code, status) = match ready {
        Ok(Ok(())) => (StatusCode::OK, "ok"),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
    };
    let health = Health {
        status: status.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ca_fingerprint: state.ca.fingerprint_hex(),
    };
    (code, Json(health))
}

/// The CA root as PEM, what a client pins at first registration.
/// The CA root certificate: what a client pins at its first registration.
#[utoipa::path(get, path = paths::CA, tag = "relay",
    responses((status = 200, description = "PEM; header `x-magpie-ca-fingerprint` is the hex SHA-256 of its DER",
        content_type = "application/x-pem-file", body = String)))]
pub(crate) async fn ca(State(state): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/x-pem-file".to_owned()),
            (
                header::HeaderName::from_static("x-magpie-ca-fingerprint"),
                state.ca.fingerprint_hex(),
            ),
        ],
        state.ca.pem.clone(),
    )
        .into_response()
}

/// A user's certificate chain, unverified: the client checks it against its pinned CA.
#[utoipa::path(get, path = "/v1/directory/{username}", tag = "identity", security(("bearer" = [])),
    params(("username" = String, Path, description = "canonical (lower-case) username")),
    responses(
        (status = 200, description = "the chain, leaf first, ending with the CA root", body = DirectoryEntry),
        (status = 400, description = "not a canonical username", body = ApiError),
        (status = 401, description = "no or a bad token", body = ApiError),
        (status = 404, description = "no such user", body = ApiError),
        (status = 429, description = "over --lookups-per-minute", body = ApiError),
    ))]
pub(crate) async fn lookup(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    path: std::result::Result<Path<String>, PathRejection>,
) -> Result<Json<DirectoryEntry>> {
    state.rate_limit(&state.lookup_limit, &me)?;
    let Path(name) = path.map_err(|r| Error::BadRequest(r.body_text()))?;
    let username = Username::canonical(&name).map_err(|e| Error::BadRequest(e.to_string()))?;
    let user = state
        .store
        .user(username.as_str())
        .await?
        .ok_or_else(|| Error::NotFound(format!("no user {:?}", username.as_str())))?;
    Ok(Json(DirectoryEntry {
        username: user.username,
        chain: vec![user.cert_pem, state.ca.pem.clone()],
    }))
}
