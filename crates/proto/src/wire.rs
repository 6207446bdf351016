//! Wire types (JSON, binary fields as base64) and their canonical byte forms.
//!
//! Fields are public plain data: nothing here is trusted until a handshake step or
//! [`Session::open`](crate::Session::open) has verified it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::encoding::{b64_bytes, b64_list, Canon};
use crate::error::{malformed, Result};

/// The protocol version every message carries as `v`.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest JSON message we parse.
pub const MAX_WIRE_LEN: usize = 64 * 1024;

macro_rules! json_codec {
    ($name:ident) => {
        impl $name {
            /// Serializes to JSON bytes.
            pub fn to_json(&self) -> Result<Vec<u8>> {
                serde_json::to_vec(self).map_err(|e| malformed(e.to_string()))
            }

            /// Parses JSON bytes (at most [`MAX_WIRE_LEN`]); unknown fields are refused.
            pub fn from_json(bytes: &[u8]) -> Result<Self> {
                if bytes.len() > MAX_WIRE_LEN {
                    return Err(malformed(concat!(stringify!($name), " too large")));
                }
                serde_json::from_slice(bytes).map_err(|e| malformed(format!(concat!(stringify!($name), ": {}"), e)))
            }
        }
    };
}

/// Step 1, A → B: who asks, with A's certificate chain and signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// Protocol version, 1.
    pub v: u32,
    /// Random UUID v4 naming this handshake.
    pub request_id: Uuid,
    /// The initiator's username.
    pub from: String,
    /// The responder's username.
    pub to: String,
    /// When A sent it, Unix seconds.
    pub sent_at: u64,
    /// A's certificate chain, DER, leaf first.
    #[serde(with = "b64_list")]
    pub cert_chain: Vec<Vec<u8>>,
    /// RSA-PSS signature by A over [`ChatRequest::signed_bytes`].
    #[serde(with = "b64_bytes")]
    pub signature: Vec<u8>,
}
json_codec!(ChatRequest);

impl ChatRequest {
    /// The canonical bytes A signs: every field but the signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut c = Canon::new("magpie v1 ChatRequest");
        c.u32(self.v)
            .bytes(self.request_id.as_bytes())
            .str(&self.from)
            .str(&self.to)
            .u64(self.sent_at)
            .list(&self.cert_chain);
        c.finish()
    }

    /// The canonical bytes of the whole message (signed bytes, then the signature).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = self.signed_bytes();
        append_lp(&mut out, &self.signature);
        out
    }
}

/// Step 2, B → A: B's ephemeral X25519 key, signed over the transcript.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatAccept {
    /// Protocol version, 1.
    pub v: u32,
    /// The request being accepted.
    pub request_id: Uuid,
    /// The responder's username.
    pub from: String,
    /// The initiator's username.
    pub to: String,
    /// `eB`, B's ephemeral X25519 public key (32 bytes).
    #[serde(with = "b64_bytes")]
    pub ephemeral: Vec<u8>,
    /// RSA-PSS signature by B over the transcript hash.
    #[serde(with = "b64_bytes")]
    pub signature: Vec<u8>,
}
json_codec!(ChatAccept);

impl ChatAccept {
    /// The canonical bytes that enter the transcript before B signs.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut c = Canon::new("magpie v1 ChatAccept");
        c.u32(self.v)
            .bytes(self.request_id.as_bytes())
            .str(&self.from)
            .str(&self.to)
            .bytes(&self.ephemeral);
        c.finish()
    }
}

/// Step 2 (alternative), B → A: a signed refusal; the request is closed on both sides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatDecline {
    /// Protocol version, 1.
    pub v: u32,
    /// The request being declined.
    pub request_id: Uuid,
    /// The responder's username.
    pub from: String,
    /// The initiator's username.
    pub to: String,
    /// RSA-PSS signature by B over the transcript hash.
    #[serde(with = "b64_bytes")]
    pub signature: Vec<u8>,
}
json_codec!(ChatDecline);

impl ChatDecline {
    /// The canonical bytes that enter the transcript before B signs.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut c = Canon::new("magpie v1 ChatDecline");
        c.u32(self.v)
            .bytes(self.request_id.as_bytes())
            .str(&self.from)
            .str(&self.to);
        c.finish()
    }
}

/// Steps 4–5, A → B: `K` wrapped for B with RSA-OAEP, A's ephemeral key, A's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyTransfer {
    /// Protocol version, 1.
    pub v: u32,
    /// The handshake.
    pub request_id: Uuid,
    /// The initiator's username.
    pub from: String,
    /// The responder's username.
    pub to: String,
    /// RSA-OAEP-SHA256 ciphertext of the 32-byte session secret `K` (384 bytes for RSA-3072).
    #[serde(with = "b64_bytes")]
    pub wrapped_key: Vec<u8>,
    /// `eA`, A's ephemeral X25519 public key (32 bytes).
    #[serde(with = "b64_bytes")]
    pub ephemeral: Vec<u8>,
    /// RSA-PSS signature by A over the transcript hash.
    #[serde(with = "b64_bytes")]
    pub signature: Vec<u8>,
}
json_codec!(KeyTransfer);

impl KeyTransfer {
    /// The canonical bytes that enter the transcript before A signs.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut c = Canon::new("magpie v1 KeyTransfer");
        c.u32(self.v)
            .bytes(self.request_id.as_bytes())
            .str(&self.from)
            .str(&self.to)
            .bytes(&self.wrapped_key)
            .bytes(&self.ephemeral);
        c.finish()
    }
}

/// Step 6, B → A: proof that B derived the same keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfirm {
    /// Protocol version, 1.
    pub v: u32,
    /// The handshake.
    pub request_id: Uuid,
    /// The responder's username.
    pub from: String,
    /// The initiator's username.
    pub to: String,
    /// HMAC-SHA256(confirm key, "confirm" ‖ T), 32 bytes.
    #[serde(with = "b64_bytes")]
    pub mac: Vec<u8>,
}
json_codec!(KeyConfirm);

/// An encrypted chat message (the `body` of a relay envelope of kind `message`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedMessage {
    /// Protocol version, 1.
    pub v: u32,
    /// The session (16 bytes).
    #[serde(with = "b64_bytes")]
    pub session_id: Vec<u8>,
    /// The sender's username.
    pub from: String,
    /// The message number in the sender's chain.
    pub n: u64,
    /// AES-256-GCM ciphertext ‖ 16-byte tag.
    #[serde(with = "b64_bytes")]
    pub ciphertext: Vec<u8>,
}
json_codec!(SealedMessage);

/// What a relay envelope carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvelopeKind {
    /// A [`ChatRequest`].
    ChatRequest,
    /// A [`ChatAccept`].
    ChatAccept,
    /// A [`ChatDecline`].
    ChatDecline,
    /// A [`KeyTransfer`].
    KeyTransfer,
    /// A [`KeyConfirm`].
    KeyConfirm,
    /// A [`SealedMessage`].
    Message,
}

/// The relay's opaque routing envelope: the relay reads only `id`, `from`, `to` and `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Envelope id (UUID v4); receivers de-duplicate on it.
    pub id: Uuid,
    /// Sender username.
    pub from: String,
    /// Recipient username.
    pub to: String,
    /// What `body` holds.
    pub kind: EnvelopeKind,
    /// The JSON of the inner message.
    #[serde(with = "b64_bytes")]
    pub body: Vec<u8>,
}
json_codec!(Envelope);

fn append_lp(out: &mut Vec<u8>, b: &[u8]) {
    let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
}

/// A random UUID v4 from OpenSSL's generator.
pub(crate) fn random_uuid() -> Result<Uuid> {
    let bytes: [u8; 16] = crate::crypto::random_array()?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_strictness() {
        let m = KeyConfirm {
            v: 1,
            request_id: Uuid::nil(),
            from: "bob".into(),
            to: "alice".into(),
            mac: vec![1, 2],
        };
        let json = m.to_json().unwrap();
        assert_eq!(
            String::from_utf8(json.clone()).unwrap(),
            r#"{"v":1,"request_id":"00000000-0000-0000-0000-000000000000","from":"bob","to":"alice","mac":"AQI="}"#
        );
        assert_eq!(KeyConfirm::from_json(&json).unwrap(), m);
        let extra = br#"{"v":1,"request_id":"00000000-0000-0000-0000-000000000000","from":"bob","to":"alice","mac":"AQI=","x":1}"#;
        assert!(KeyConfirm::from_json(extra).is_err());
        assert!(KeyConfirm::from_json(&vec![b' '; MAX_WIRE_LEN + 1]).is_err());
        assert_eq!(random_uuid().unwrap().get_version_num(), 4);
    }
}
