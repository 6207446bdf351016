//! The plaintext inside a sealed message, and its byte format.
//!
//! ```text
//! plaintext = 0x01 ‖ kind (1 text, 2 receipt, 3 typing) ‖ id (16 bytes) ‖ u64be(sent_at) ‖ body (UTF-8, the rest)
//! ```
//!
//! Messages sealed before this format held the JSON of [`Plaintext`]; [`Plaintext::decode`] still reads those (their
//! first byte is `{`), so envelopes waiting at the relay across an upgrade still open.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::{malformed, Result};
use crate::verify::unix_secs;
use crate::wire::random_uuid;

/// Largest plaintext body, in bytes.
pub const MAX_BODY_LEN: usize = 32 * 1024;
/// First byte of the binary plaintext format.
pub const PLAINTEXT_FORMAT: u8 = 1;
/// Bytes before the body: format, kind, id, sent_at.
const HEADER_LEN: usize = 1 + 1 + 16 + 8;

/// What a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MessageKind {
    /// A chat text.
    Text,
    /// A delivery receipt; `body` holds the ids of the messages it acknowledges, comma-separated.
    Receipt,
    /// A typing indicator.
    Typing,
}

/// The plaintext inside a [`SealedMessage`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plaintext {
    /// Message id (UUID v4); receivers de-duplicate on it.
    pub id: Uuid,
    /// What it is.
    pub kind: MessageKind,
    /// The text (or, for a receipt, the acknowledged ids).
    pub body: String,
    /// When the sender wrote it, Unix seconds (sender's clock).
    pub sent_at: u64,
}

impl Plaintext {
    /// A new message with a random id.
    pub fn new(kind: MessageKind, body: impl Into<String>, sent_at: SystemTime) -> Result<Self> {
        Ok(Self {
            id: random_uuid()?,
            kind,
            body: body.into(),
            sent_at: unix_secs(sent_at),
        })
    }

    /// A new text message with a random id.
    pub fn text(body: impl Into<String>, sent_at: SystemTime) -> Result<Self> {
        Self::new(MessageKind::Text, body, sent_at)
    }

    /// The bytes that get sealed, in wiped memory.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>> {
        self.encode_with_room(0)
    }

    /// [`Plaintext::encode`] with `room` spare bytes, so that sealing in place can append the tag without moving
    /// the buffer (which would leave an unwiped copy behind).
    pub(crate) fn encode_with_room(&self, room: usize) -> Result<Zeroizing<Vec<u8>>> {
        if self.body.len() > MAX_BODY_LEN {
            return Err(malformed("message body too large"));
        }
        let mut out = Zeroizing::new(Vec::with_capacity(HEADER_LEN + self.body.len() + room));
        out.push(PLAINTEXT_FORMAT);
        out.push(self.kind.code());
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.sent_at.to_be_bytes());
        out.extend_from_slice(self.body.as_bytes());
        Ok(out)
    }

    /// Reads [`Plaintext::encode`]'s bytes, or the JSON plaintext of messages sealed before that format.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Self::decode_owned(Zeroizing::new(bytes.to_vec()))
    }

    /// [`Plaintext::decode`] that keeps the buffer as the body's (no copy, and nothing left to wipe).
    pub(crate) fn decode_owned(mut bytes: Zeroizing<Vec<u8>>) -> Result<Self> {
        let plaintext = match bytes.first() {
            Some(&PLAINTEXT_FORMAT) => {
                let header = bytes.get(..HEADER_LEN).ok_or_else(|| malformed("plaintext"))?;
                let id: [u8; 16] = header[2..18].try_into().map_err(|_| malformed("plaintext"))?;
                let sent_at: [u8; 8] = header[18..].try_into().map_err(|_| malformed("plaintext"))?;
                let kind = MessageKind::from_code(header[1])?;
                let mut body = std::mem::take(&mut *bytes);
                body.drain(..HEADER_LEN);
                let body = String::from_utf8(body).map_err(|e| {
                    drop(Zeroizing::new(e.into_bytes()));
                    malformed("plaintext body is not UTF-8")
                })?;
                Plaintext {
                    id: Uuid::from_bytes(id),
                    kind,
                    body,
                    sent_at: u64::from_be_bytes(sent_at),
                }
            }
            Some(b'{') => serde_json::from_slice(&bytes).map_err(|_| malformed("plaintext"))?,
            _ => return Err(malformed("plaintext")),
        };
        if plaintext.body.len() > MAX_BODY_LEN {
            return Err(malformed("message body too large"));
        }
        Ok(plaintext)
    }
}

impl fmt::Debug for Plaintext {
    // Plaintext is never logged: show its size only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plaintext")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("body_len", &self.body.len())
            .field("sent_at", &self.sent_at)
            .finish()
    }
}

impl MessageKind {
    fn code(self) -> u8 {
        match self {
            MessageKind::Text => 1,
            MessageKind::Receipt => 2,
            MessageKind::Typing => 3,
        }
    }

    fn from_code(code: u8) -> Result<Self> {
        match code {
            1 => Ok(MessageKind::Text),
            2 => Ok(MessageKind::Receipt),
            3 => Ok(MessageKind::Typing),
            _ => Err(malformed("unknown message kind")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: MessageKind, body: &str) -> Plaintext {
        Plaintext {
            id: Uuid::from_bytes([7; 16]),
            kind,
            body: body.into(),
            sent_at: 1_767_225_600,
        }
    }

    #[test]
    fn every_kind_round_trips_through_the_byte_format() {
        for kind in [MessageKind::Text, MessageKind::Receipt, MessageKind::Typing] {
            for body in ["", "hello", "naïve \"quoted\" {json} \u{1F426}"] {
                let p = sample(kind, body);
                let bytes = p.encode().unwrap();
                assert_eq!(bytes.len(), HEADER_LEN + body.len());
                assert_eq!(Plaintext::decode(&bytes).unwrap(), p);
            }
        }
    }

    #[test]
    fn a_json_plaintext_sealed_before_the_byte_format_still_reads() {
        let p = sample(MessageKind::Receipt, "7f1c2b3a-4d5e-4f60-8172-8394a5b6c7d8");
        let json = serde_json::to_vec(&p).unwrap();
        assert_eq!(Plaintext::decode(&json).unwrap(), p);
    }

    #[test]
    fn bad_bytes_are_malformed() {
        let good = sample(MessageKind::Text, "hi").encode().unwrap();
        let mut bad_kind = good.clone();
        bad_kind[1] = 9;
        let mut bad_utf8 = good.to_vec();
        bad_utf8.push(0xff);
        let mut big = sample(MessageKind::Text, "").encode().unwrap().to_vec();
        big.resize(HEADER_LEN + MAX_BODY_LEN + 1, b'a');
        for bytes in [
            &[][..],
            &[2][..],
            &good[..HEADER_LEN - 1],
            &bad_kind,
            &bad_utf8,
            &big,
            b"{\"id\":1}",
        ] {
            assert!(
                matches!(Plaintext::decode(bytes), Err(crate::Error::Malformed(_))),
                "{bytes:?}"
            );
        }
        assert!(sample(MessageKind::Text, &"a".repeat(MAX_BODY_LEN + 1))
            .encode()
            .is_err());
    }
}
