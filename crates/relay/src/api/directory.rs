//! Reads: health and the CA root (public), and the certificate directory (logged-in users, rate-limited, so that
//! nobody can list who uses the relay by asking for names).

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use magpie_proto::Username;
use serde::Serialize;

use super::{AppState, AuthUser};
use crate::error::{Error, Result};

#[derive(Debug, Serialize)]
pub(crate) struct Health {
    status: &'static str,
    version: &'static str,
    /// SHA-256 of the CA root certificate, hex.
    ca_fingerprint: String,
}

pub(crate) async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        ca_fingerprint: state.ca.fingerprint_hex(),
    })
}

/// The CA root as PEM, what a client pins at first registration.
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

#[derive(Debug, Serialize)]
pub(crate) struct DirectoryEntry {
    username: String,
    /// PEM certificates, leaf first, ending with the CA root.
    chain: Vec<String>,
}

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
        .user(username.as_str())?
        .ok_or_else(|| Error::NotFound(format!("no user {:?}", username.as_str())))?;
    Ok(Json(DirectoryEntry {
        username: user.username,
        chain: vec![user.cert_pem, state.ca.pem.clone()],
    }))
}
