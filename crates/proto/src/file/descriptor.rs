//! What a file message says about its file: the body of a [`crate::MessageKind::File`] plaintext, as JSON.
//!
//! ```json
//! {"blob":"<uuid>","key":"<base64, 32 bytes>","sha256":"<hex of the blob>","size":123,"name":"photo.jpg",
//!  "media_type":"image/jpeg","thumbnail":{"media_type":"image/jpeg","width":320,"height":240,"data":"<base64>"}}
//! ```
//!
//! `thumbnail` is optional (images only). Fields a later client adds are ignored. Everything here travels inside
//! the sealed message, so the relay sees none of it, only the blob's id and length when it is uploaded.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{malformed, Result};
use crate::plaintext::MAX_BODY_LEN;
use crate::secret::{FileKey, KeyIn, SecretB64};

/// Longest file name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Longest media type, in bytes (RFC 6838 allows 127 on each side of the slash).
pub const MAX_MEDIA_TYPE_BYTES: usize = 255;
/// Largest thumbnail, in bytes, so that a descriptor with the longest name still fits one message.
pub const MAX_THUMBNAIL_BYTES: usize = 20 * 1024;
/// Largest file a message may describe (1 TiB): far above any relay's limit, and a bound on every sum over it.
pub const MAX_FILE_BYTES: u64 = 1 << 40;
/// Largest thumbnail side, in pixels.
pub const MAX_THUMBNAIL_SIDE: u32 = 512;

/// A file as its message describes it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDescriptor {
    /// The relay's id of the sealed blob.
    pub blob: Uuid,
    /// The key its segments are sealed with.
    #[serde(serialize_with = "key_out", deserialize_with = "key_in")]
    pub key: FileKey,
    /// SHA-256 of the whole blob, as uploaded.
    #[serde(with = "hex32")]
    pub sha256: [u8; 32],
    /// The plaintext's length, bytes: it fixes the blob's layout.
    pub size: u64,
    /// The file's name as the sender had it (a suggestion: [`FileDescriptor::safe_name`] is what to save as).
    pub name: String,
    /// Its media type, as the sender guessed it (`application/octet-stream` if unknown).
    pub media_type: String,
    /// A small preview of an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<Thumbnail>,
}

/// A small preview image, carried inside the message.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Thumbnail {
    /// `image/jpeg` or `image/png`.
    pub media_type: String,
    /// Pixels.
    pub width: u32,
    /// Pixels.
    pub height: u32,
    /// The encoded image.
    #[serde(with = "crate::encoding::b64_bytes")]
    pub data: Vec<u8>,
}

impl FileDescriptor {
    /// The message body.
    pub fn to_body(&self) -> Result<String> {
        self.check()?;
        let body = serde_json::to_string(self).map_err(|e| malformed(format!("file descriptor: {e}")))?;
        if body.len() > MAX_BODY_LEN {
            return Err(malformed("file descriptor does not fit one message"));
        }
        Ok(body)
    }

    /// Reads a message body; anything out of bounds is `Malformed`.
    pub fn from_body(body: &str) -> Result<Self> {
        let descriptor: Self = serde_json::from_str(body).map_err(|e| malformed(format!("file descriptor: {e}")))?;
        descriptor.check()?;
        Ok(descriptor)
    }

    fn check(&self) -> Result<()> {
        if self.name.is_empty() || self.name.len() > MAX_NAME_BYTES {
            return Err(malformed("file name must be 1 to 255 bytes"));
        }
        if self.size > MAX_FILE_BYTES {
            return Err(malformed("file size must be at most 2^40 bytes"));
        }
        if self.media_type.len() > MAX_MEDIA_TYPE_BYTES || !self.media_type.contains('/') {
            return Err(malformed("media type must be type/subtype"));
        }
        if let Some(t) = &self.thumbnail {
            let image = t.media_type == "image/jpeg" || t.media_type == "image/png";
            let sides = (1..=MAX_THUMBNAIL_SIDE).contains(&t.width) && (1..=MAX_THUMBNAIL_SIDE).contains(&t.height);
            if !image || !sides || t.data.len() > MAX_THUMBNAIL_BYTES {
                return Err(malformed(
                    "thumbnail must be a JPEG or PNG of at most 512×512 pixels and 20 KiB",
                ));
            }
        }
        Ok(())
    }

    /// The name to save the file as: see [`safe_file_name`].
    pub fn safe_name(&self) -> String {
        safe_file_name(&self.name)
    }
}

/// The name to save a file as: the last path component of the sender's name, without control characters, path
/// separators or a leading dot (so it can neither climb out of a folder nor hide), never empty.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    // Control characters, and the invisible ones that reorder or hide text (an "invoice\u{202e}fdp.exe" reads
    // as invoiceexe.pdf), are no part of a name anyone meant to read.
    let cleaned: String = last
        .chars()
        .filter(|c| !is_invisible(*c))
        .map(|c| if c.is_control() || c == ':' { '_' } else { c })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "file".to_owned()
    } else {
        cleaned
    }
}

/// Unicode format characters that change how a name reads without being seen: bidirectional controls, zero-width
/// characters, the byte-order mark.
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Shows sizes and types only: the name is the user's content, the key a secret.
impl fmt::Debug for FileDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileDescriptor")
            .field("blob", &self.blob)
            .field("key", &self.key)
            .field("size", &self.size)
            .field("name_len", &self.name.len())
            .field("media_type", &self.media_type)
            .field("thumbnail_len", &self.thumbnail.as_ref().map(|t| t.data.len()))
            .finish()
    }
}

impl fmt::Debug for Thumbnail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Thumbnail")
            .field("media_type", &self.media_type)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("data_len", &self.data.len())
            .finish()
    }
}

fn key_out<S: serde::Serializer>(key: &FileKey, s: S) -> std::result::Result<S::Ok, S::Error> {
    SecretB64(key.expose_secret()).serialize(s)
}

fn key_in<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<FileKey, D::Error> {
    KeyIn::<FileKey>::deserialize(d).map(|k| k.0)
}

mod hex32 {
    use crate::encoding::{hex, unhex};

    pub(super) fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex(v))
    }

    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
        unhex(&text)
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| serde::de::Error::custom("sha256 must be 64 hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> FileDescriptor {
        FileDescriptor {
            blob: Uuid::from_bytes([1; 16]),
            key: FileKey::from_bytes([0xAB; 32]),
            sha256: [2; 32],
            size: 70_000,
            name: "holiday photo.jpg".into(),
            media_type: "image/jpeg".into(),
            thumbnail: Some(Thumbnail {
                media_type: "image/jpeg".into(),
                width: 320,
                height: 240,
                data: vec![9; 1000],
            }),
        }
    }

    #[test]
    fn a_descriptor_round_trips_and_tolerates_fields_it_does_not_know() {
        let d = sample();
        let body = d.to_body().unwrap();
        assert_eq!(FileDescriptor::from_body(&body).unwrap(), d);
        let mut value: serde_json::Value = serde_json::from_str(&body).unwrap();
        value["duration_ms"] = 1200.into();
        assert_eq!(FileDescriptor::from_body(&value.to_string()).unwrap(), d);
    }

    #[test]
    fn the_largest_descriptor_fits_one_message() {
        let mut d = sample();
        d.name = "n".repeat(MAX_NAME_BYTES);
        d.media_type = format!("application/{}", "x".repeat(MAX_MEDIA_TYPE_BYTES - 12));
        d.thumbnail.as_mut().unwrap().data = vec![0xFF; MAX_THUMBNAIL_BYTES];
        assert!(d.to_body().unwrap().len() <= MAX_BODY_LEN);
    }

    #[test]
    fn out_of_bounds_descriptors_are_malformed() {
        let cases: [fn(&mut FileDescriptor); 6] = [
            |d| d.name.clear(),
            |d| d.size = MAX_FILE_BYTES + 1,
            |d| d.name = "x".repeat(256),
            |d| d.media_type = "jpeg".into(),
            |d| d.thumbnail.as_mut().unwrap().width = 4000,
            |d| d.thumbnail.as_mut().unwrap().media_type = "image/svg+xml".into(),
        ];
        for spoil in cases {
            let mut d = sample();
            spoil(&mut d);
            let body = serde_json::to_string(&d).unwrap();
            assert!(matches!(
                FileDescriptor::from_body(&body),
                Err(crate::Error::Malformed(_))
            ));
        }
        let mut value: serde_json::Value = serde_json::from_str(&sample().to_body().unwrap()).unwrap();
        value["key"] = "c2hvcnQ=".into();
        assert!(FileDescriptor::from_body(&value.to_string()).is_err());
    }

    #[test]
    fn a_received_name_cannot_climb_out_of_a_folder_or_hide() {
        let named = |name: &str| FileDescriptor {
            name: name.into(),
            ..sample()
        };
        assert_eq!(named("../../.bashrc").safe_name(), "bashrc");
        assert_eq!(named("C:\\Users\\x\\evil.exe").safe_name(), "evil.exe");
        assert_eq!(named("a\u{0}b\nc.txt").safe_name(), "a_b_c.txt");
        assert_eq!(named("..").safe_name(), "file");
        assert_eq!(named("report.pdf").safe_name(), "report.pdf");
        assert_eq!(
            named("invoice\u{202e}fdp.exe").safe_name(),
            "invoicefdp.exe",
            "the real extension shows"
        );
        assert_eq!(named("\u{200b}\u{feff}.profile").safe_name(), "profile");
    }

    #[test]
    fn debug_shows_neither_the_key_nor_the_name() {
        let shown = format!("{:?}", sample());
        assert!(
            !shown.contains("holiday") && !shown.to_lowercase().contains("abab"),
            "{shown}"
        );
        assert!(shown.contains("FileKey(<redacted>)"), "{shown}");
    }
}
