//! Request and response bodies of the HTTP routes, and the error body of every route.

use std::borrow::Cow;
use std::fmt;

use magpie_proto::{Envelope, EnvelopeKind, Username};
use serde::{Deserialize, Serialize};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;
use uuid::Uuid;

/// A username on the wire: `[a-z0-9._-]{3,32}`, already lower-case (the relay refuses any other spelling).
#[cfg(feature = "openapi")]
fn username_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some("^[a-z0-9._-]{3,32}$"))
        .build()
}

/// What an envelope's body holds, as the relay routes it (it never reads the body).
#[cfg(feature = "openapi")]
fn kind_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some([
            "chat_request",
            "chat_accept",
            "chat_decline",
            "key_transfer",
            "key_confirm",
            "message",
        ]))
        .build()
}

/// The body of every error answer, HTTP or push. A client acts on `code`; `message` is the relay's own words
/// and is never shown as the client's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiError {
    /// Stable and machine-readable.
    pub code: ErrorCode,
    /// For people and logs.
    pub message: String,
}

/// Why a request failed, with the HTTP status that carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: a body, query or name that does not parse or validate.
    BadRequest,
    /// 400: a CSR refused (self-signature, key or name).
    BadCsr,
    /// 401: no token, an unknown or expired one, or a failed login: log in again.
    Unauthorized,
    /// 403: acting as someone else, or `/metrics` from elsewhere without its token.
    Forbidden,
    /// 404: no such user or route.
    NotFound,
    /// 405.
    MethodNotAllowed,
    /// 409: the name is registered.
    NameTaken,
    /// 409: the envelope id was used by another sender.
    IdTaken,
    /// 413: a body or an envelope over its limit.
    PayloadTooLarge,
    /// 415: not JSON.
    UnsupportedMediaType,
    /// 429: over a rate (`Retry-After` says for how long).
    RateLimited,
    /// 503: the relay's storage failed; retry later.
    StorageUnavailable,
    /// 500: anything else on the relay's side; retry later.
    Internal,
    /// 507: the recipient's mailbox holds its quota; it empties as the recipient reads.
    MailboxFull,
    /// 409: a blob part that does not start where the blob ends (`upload-offset` says where).
    OffsetMismatch,
    /// 409: a blob still being uploaded.
    BlobIncomplete,
    /// 416: a `Range` that is not one span inside the blob.
    RangeNotSatisfiable,
    /// 507: the caller's blobs waiting on the relay hold its quota; they go as their recipients fetch them.
    FileQuotaFull,
    /// A code this client does not know (a newer relay).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// As the wire spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::BadCsr => "bad_csr",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NameTaken => "name_taken",
            Self::IdTaken => "id_taken",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RateLimited => "rate_limited",
            Self::StorageUnavailable => "storage_unavailable",
            Self::Internal => "internal",
            Self::MailboxFull => "mailbox_full",
            Self::OffsetMismatch => "offset_mismatch",
            Self::BlobIncomplete => "blob_incomplete",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::FileQuotaFull => "file_quota_full",
            Self::Unknown => "unknown",
        }
    }

    /// Whether the same request may succeed later unchanged (after a wait, or a new login).
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Self::RateLimited | Self::StorageUnavailable | Self::Internal | Self::Unauthorized
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `GET /v1/health`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// `"ok"`, or `"storage_unavailable"` (with 503) while the relay's store does not answer.
    pub status: String,
    /// The relay's version.
    pub version: String,
    /// SHA-256 of the CA root certificate's DER, lowercase hex.
    pub ca_fingerprint: String,
}

/// `POST /v1/register`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// PKCS#10, PEM; its subject CN is the username, signed by the key to certify.
    pub csr: String,
}

/// `201` to [`RegisterRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RegisterResponse {
    /// The registered name.
    pub username: String,
    /// The issued certificate, PEM.
    pub certificate: String,
    /// The CA root, PEM (pin it).
    pub ca: String,
}

/// `POST /v1/login/challenge`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChallengeRequest {
    /// Who logs in.
    #[cfg_attr(feature = "openapi", schema(schema_with = username_schema))]
    pub username: Username,
}

/// `200` to [`ChallengeRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ChallengeResponse {
    /// 32 random bytes, base64; good for one login attempt.
    pub nonce: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// `POST /v1/login`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Who logs in.
    #[cfg_attr(feature = "openapi", schema(schema_with = username_schema))]
    pub username: Username,
    /// The challenge's nonce, base64, as received.
    pub nonce: String,
    /// RSA-PSS (SHA-256, MGF1-SHA256, salt 32) over lp("magpie v1 login") ‖ lp(CA fingerprint) ‖ lp(username) ‖
    /// lp(nonce), lp(x) = u32be(len x) ‖ x, base64 (PROTOCOL.md, "Login to the relay").
    pub signature: String,
}

/// `200` to [`LoginRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// `200` to `GET /v1/directory/{username}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DirectoryEntry {
    /// The name looked up.
    pub username: String,
    /// PEM certificates, leaf first, ending with the CA root.
    pub chain: Vec<String>,
}

/// An envelope as the relay takes and delivers it. The relay reads only `id`, `from`, `to` and `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WireEnvelope<'a> {
    /// UUID v4, chosen by the sender; the relay stores one envelope per id.
    pub id: Uuid,
    /// The sender. In a send it is optional and, when present, must be the caller; the relay sets it from the
    /// token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = username_schema))]
    pub from: Option<Cow<'a, str>>,
    /// The recipient.
    #[cfg_attr(feature = "openapi", schema(schema_with = username_schema))]
    pub to: Cow<'a, str>,
    /// What the body holds.
    #[cfg_attr(feature = "openapi", schema(schema_with = kind_schema))]
    pub kind: EnvelopeKind,
    /// Opaque bytes, standard base64.
    pub body: Cow<'a, str>,
}

/// `POST /v1/envelopes`, and the socket's `send` frame.
pub type SendRequest = WireEnvelope<'static>;

impl WireEnvelope<'static> {
    /// `envelope` as it goes to the relay.
    pub fn from_envelope(envelope: &Envelope) -> Self {
        use base64::Engine as _;
        Self {
            id: envelope.id,
            from: Some(Cow::Owned(envelope.from.clone())),
            to: Cow::Owned(envelope.to.clone()),
            kind: envelope.kind,
            body: Cow::Owned(base64::engine::general_purpose::STANDARD.encode(&envelope.body)),
        }
    }
}

impl WireEnvelope<'_> {
    /// The envelope with its body decoded; `None` when the relay left out the sender or the body is not base64.
    pub fn into_envelope(self) -> Option<Envelope> {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD
            .decode(self.body.as_bytes())
            .ok()?;
        Some(Envelope {
            id: self.id,
            from: self.from?.into_owned(),
            to: self.to.into_owned(),
            kind: self.kind,
            body,
        })
    }
}

/// `202` to a send (and the socket's `accepted` frame).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SendResponse {
    /// The envelope's id.
    pub id: Uuid,
    /// Its position in the recipient's mailbox.
    pub cursor: u64,
    /// False when this was a retry of an envelope already stored (then `cursor` is the first copy's).
    pub created: bool,
}

/// The query of `GET /v1/envelopes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema, utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct FetchQuery {
    /// Envelopes with a position above this (default 0: from the start).
    #[serde(default)]
    pub after: u64,
    /// At most this many (default 100, at most 1,000); the relay also stops at its page budget of bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// `200` to a fetch: the caller's waiting envelopes, oldest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FetchResponse<'a> {
    /// Every one has `from`.
    pub envelopes: Vec<WireEnvelope<'a>>,
    /// Pass as `after` for the next page; a page is empty when nothing more waits.
    pub cursor: u64,
}

/// `POST /v1/envelopes/ack`, and the socket's `ack` frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// Envelopes of the caller's mailbox to delete (at most 1,000); unknown ids are ignored.
    pub ids: Vec<Uuid>,
}

/// `200` to an ack (and the socket's `acked` frame).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AckResponse {
    /// How many of the ids were waiting and are now deleted.
    pub acked: usize,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests say what must hold by panicking")]
    use super::*;

    #[test]
    fn a_wire_envelope_is_the_json_of_the_protocols_envelope_both_ways() {
        let envelope = Envelope {
            id: Uuid::new_v4(),
            from: "alice".into(),
            to: "bob".into(),
            kind: EnvelopeKind::KeyTransfer,
            body: vec![0, 1, 2, 250, 251],
        };
        let wire = WireEnvelope::from_envelope(&envelope);
        assert_eq!(
            serde_json::to_value(&wire).unwrap(),
            serde_json::to_value(&envelope).unwrap()
        );
        let read: WireEnvelope<'_> = serde_json::from_str(&serde_json::to_string(&envelope).unwrap()).unwrap();
        assert_eq!(read.into_envelope().unwrap(), envelope);
        let mut unsigned = WireEnvelope::from_envelope(&envelope);
        unsigned.from = None;
        assert_eq!(unsigned.into_envelope(), None, "a delivered envelope names its sender");
    }

    #[test]
    fn error_codes_are_spelled_as_the_wire_spells_them_and_unknown_ones_are_kept_readable() {
        for code in [
            ErrorCode::BadCsr,
            ErrorCode::MailboxFull,
            ErrorCode::RateLimited,
            ErrorCode::IdTaken,
            ErrorCode::OffsetMismatch,
            ErrorCode::BlobIncomplete,
            ErrorCode::RangeNotSatisfiable,
            ErrorCode::FileQuotaFull,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
        let newer: ApiError = serde_json::from_str(r#"{"code": "quota_for_blobs", "message": "m"}"#).unwrap();
        assert_eq!(newer.code, ErrorCode::Unknown);
        assert!(!newer.code.is_transient());
    }
}
