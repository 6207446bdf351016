//! The plaintext inside a sealed message, and its byte format: padded, so that the size on the wire tells a short
//! text from a receipt or from a longer text only by bucket.
//!
//! ```text
//! plaintext = 0x02 ‖ kind (1 text, 2 receipt, 3 typing, 4 file) ‖ id (16 bytes) ‖ u64be(sent_at) ‖ u32be(len)
//!             ‖ body (len bytes of UTF-8) ‖ zero bytes up to the bucket: the smallest of 256, 512, 1024, … 32768
//!             bytes that holds it, or else the largest plaintext (HEADER_LEN + MAX_BODY_LEN = 32798 bytes)
//! ```
//!
//! [`Plaintext::decode`] still reads the formats sealed before: `0x01 ‖ kind ‖ id ‖ u64be(sent_at) ‖ body (the rest)`
//! (unpadded), and the JSON of [`Plaintext`] (first byte `{`), so envelopes waiting at the relay across an upgrade
//! still open.

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
/// First byte of the binary plaintext format (padded).
pub const PLAINTEXT_FORMAT: u8 = 2;
/// First byte of the unpadded format sealed before padding; still read.
const UNPADDED_FORMAT: u8 = 1;
/// Bytes before the body of the unpadded format: format, kind, id, sent_at.
const UNPADDED_HEADER_LEN: usize = 1 + 1 + 16 + 8;
/// Bytes before the body: format, kind, id, sent_at, body length.
pub const HEADER_LEN: usize = UNPADDED_HEADER_LEN + 4;
/// The smallest padded plaintext.
pub const MIN_PADDED_LEN: usize = 256;
/// The largest padded plaintext: a full body (bucket sizes double from [`MIN_PADDED_LEN`] until this).
pub const MAX_PADDED_LEN: usize = HEADER_LEN + MAX_BODY_LEN;

/// The bucket a plaintext of `len` bytes is padded to.
pub fn padded_len(len: usize) -> usize {
    len.max(MIN_PADDED_LEN).next_power_of_two().min(MAX_PADDED_LEN).max(len)
}

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
    /// A file: `body` is the JSON of a [`crate::file::FileDescriptor`] (its blob, key, digest, name, type).
    File,
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
        let padded = padded_len(HEADER_LEN + self.body.len());
        let body_len = u32::try_from(self.body.len()).map_err(|_| malformed("message body too large"))?;
        let mut out = Zeroizing::new(Vec::with_capacity(padded + room));
        out.push(PLAINTEXT_FORMAT);
        out.push(self.kind.code());
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.sent_at.to_be_bytes());
        out.extend_from_slice(&body_len.to_be_bytes());
        out.extend_from_slice(self.body.as_bytes());
        out.resize(padded, 0);
        Ok(out)
    }

    /// Reads [`Plaintext::encode`]'s bytes, or the formats of messages sealed before it (unpadded, JSON).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        Self::decode_owned(Zeroizing::new(bytes.to_vec()))
    }

    /// [`Plaintext::decode`] that keeps the buffer as the body's (no copy, and nothing left to wipe).
    pub(crate) fn decode_owned(mut bytes: Zeroizing<Vec<u8>>) -> Result<Self> {
        let plaintext = match bytes.first() {
            Some(&PLAINTEXT_FORMAT) => {
                let header = bytes.get(..HEADER_LEN).ok_or_else(|| malformed("plaintext"))?;
                let len: [u8; 4] = header[UNPADDED_HEADER_LEN..]
                    .try_into()
                    .map_err(|_| malformed("plaintext"))?;
                let end = usize::try_from(u32::from_be_bytes(len))
                    .ok()
                    .and_then(|len| HEADER_LEN.checked_add(len))
                    .filter(|end| *end <= bytes.len())
                    .ok_or_else(|| malformed("plaintext length"))?;
                if bytes[end..].iter().any(|b| *b != 0) {
                    return Err(malformed("plaintext padding"));
                }
                bytes.truncate(end);
                read_body(bytes, HEADER_LEN)?
            }
            Some(&UNPADDED_FORMAT) => read_body(bytes, UNPADDED_HEADER_LEN)?,
            Some(b'{') => serde_json::from_slice(&bytes).map_err(|_| malformed("plaintext"))?,
            _ => return Err(malformed("plaintext")),
        };
        if plaintext.body.len() > MAX_BODY_LEN {
            return Err(malformed("message body too large"));
        }
        Ok(plaintext)
    }
}

/// The plaintext in `bytes` (a binary format whose header is `header_len` long and whose body is the rest).
fn read_body(mut bytes: Zeroizing<Vec<u8>>, header_len: usize) -> Result<Plaintext> {
    let header = bytes.get(..header_len).ok_or_else(|| malformed("plaintext"))?;
    let id: [u8; 16] = header[2..18].try_into().map_err(|_| malformed("plaintext"))?;
    let sent_at: [u8; 8] = header[18..26].try_into().map_err(|_| malformed("plaintext"))?;
    let kind = MessageKind::from_code(header[1])?;
    let mut body = std::mem::take(&mut *bytes);
    body.drain(..header_len);
    let body = String::from_utf8(body).map_err(|e| {
        drop(Zeroizing::new(e.into_bytes()));
        malformed("plaintext body is not UTF-8")
    })?;
    Ok(Plaintext {
        id: Uuid::from_bytes(id),
        kind,
        body,
        sent_at: u64::from_be_bytes(sent_at),
    })
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
            MessageKind::File => 4,
        }
    }

    fn from_code(code: u8) -> Result<Self> {
        match code {
            1 => Ok(MessageKind::Text),
            2 => Ok(MessageKind::Receipt),
            3 => Ok(MessageKind::Typing),
            4 => Ok(MessageKind::File),
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
        for kind in [
            MessageKind::Text,
            MessageKind::Receipt,
            MessageKind::Typing,
            MessageKind::File,
        ] {
            for body in ["", "hello", "naïve \"quoted\" {json} \u{1F426}"] {
                let p = sample(kind, body);
                let bytes = p.encode().unwrap();
                assert_eq!(bytes.len(), MIN_PADDED_LEN);
                assert_eq!(Plaintext::decode(&bytes).unwrap(), p);
            }
        }
    }

    #[test]
    fn short_texts_and_receipts_have_one_size_and_longer_ones_go_by_bucket() {
        let one_id = "7f1c2b3a-4d5e-4f60-8172-8394a5b6c7d8";
        let sizes = |body: &str, kind| sample(kind, body).encode().unwrap().len();
        assert_eq!(sizes("a", MessageKind::Text), 256);
        assert_eq!(sizes(&"a".repeat(200), MessageKind::Text), 256);
        assert_eq!(sizes(one_id, MessageKind::Receipt), 256);
        assert_eq!(sizes(&"a".repeat(MIN_PADDED_LEN - HEADER_LEN), MessageKind::Text), 256);
        assert_eq!(
            sizes(&"a".repeat(MIN_PADDED_LEN - HEADER_LEN + 1), MessageKind::Text),
            512
        );
        assert_eq!(sizes(&"a".repeat(5000), MessageKind::Text), 8192);
        assert_eq!(sizes(&"a".repeat(20_000), MessageKind::Text), 32768);
        assert_eq!(
            sizes(&"a".repeat(32768 - HEADER_LEN + 1), MessageKind::Text),
            MAX_PADDED_LEN
        );
        assert_eq!(sizes(&"a".repeat(MAX_BODY_LEN), MessageKind::Text), MAX_PADDED_LEN);
    }

    #[test]
    fn messages_sealed_before_padding_still_read() {
        let p = sample(MessageKind::Text, "hello bob");
        let mut unpadded = vec![UNPADDED_FORMAT, 1];
        unpadded.extend_from_slice(p.id.as_bytes());
        unpadded.extend_from_slice(&p.sent_at.to_be_bytes());
        unpadded.extend_from_slice(b"hello bob");
        assert_eq!(Plaintext::decode(&unpadded).unwrap(), p);
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
        let mut bad_kind = good.to_vec();
        bad_kind[1] = 9;
        let mut bad_utf8 = good.to_vec();
        bad_utf8[HEADER_LEN] = 0xff;
        let mut bad_padding = good.to_vec();
        bad_padding[MIN_PADDED_LEN - 1] = 1;
        let mut too_long = good.to_vec();
        too_long[HEADER_LEN - 4..HEADER_LEN].copy_from_slice(&(MIN_PADDED_LEN as u32).to_be_bytes());
        let mut big = vec![UNPADDED_FORMAT, 1];
        big.resize(UNPADDED_HEADER_LEN + MAX_BODY_LEN + 1, b'a');
        for bytes in [
            &[][..],
            &[3][..],
            &good[..HEADER_LEN - 1],
            &bad_kind,
            &bad_utf8,
            &bad_padding,
            &too_long,
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
