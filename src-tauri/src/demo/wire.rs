//! The demo relay's store: it records every envelope as the relay holds it (the "wire" column) and, when asked,
//! flips one bit of the wrapped key in the key transfer, as a malicious relay could.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use magpie_proto::{EnvelopeKind, KeyTransfer, SealedMessage};
use magpie_relay::store::{Inserted, Intercept, NewEnvelope, Store, StoreResult};

use crate::ipc_types::WireEnvelope;

/// Body bytes shown in the wire column.
const PREVIEW_BYTES: usize = 24;

/// What the relay saw, in order; shared with the demo runner.
pub type WireLog = Arc<Mutex<Vec<WireEnvelope>>>;

/// The demo relay's store: `inner`, recording into `log` and tampering when asked.
pub fn wire_tap(inner: Arc<dyn Store>, log: WireLog, tamper: bool) -> Intercept {
    Intercept::new(inner).on_insert(move |inner, envelope| tap(inner, envelope, &log, tamper))
}

/// The envelope kind as the protocol names it on the wire (`key_transfer`).
pub fn kind_name(kind: EnvelopeKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Flips the lowest bit of the wrapped key's first byte; `None` if the body is not a key transfer.
fn flip_wrapped_key_bit(body_b64: &str) -> Option<String> {
    let engine = base64::engine::general_purpose::STANDARD;
    let body = engine.decode(body_b64).ok()?;
    let mut transfer = KeyTransfer::from_json(&body).ok()?;
    *transfer.wrapped_key.first_mut()? ^= 1;
    Some(engine.encode(transfer.to_json().ok()?))
}

/// The first bytes of what the envelope hides: a message's AES-GCM ciphertext, a key transfer's wrapped key
/// (where the tamper switch flips a bit); the (public) JSON of other handshake messages.
fn preview(kind: EnvelopeKind, body: &[u8]) -> String {
    let secret = match kind {
        EnvelopeKind::Message => SealedMessage::from_json(body).ok().map(|sealed| sealed.ciphertext),
        EnvelopeKind::KeyTransfer => KeyTransfer::from_json(body).ok().map(|transfer| transfer.wrapped_key),
        _ => None,
    };
    let bytes = secret.as_deref().unwrap_or(body);
    magpie_proto::encoding::hex(&bytes[..bytes.len().min(PREVIEW_BYTES)])
}

fn tap(inner: &dyn Store, mut envelope: NewEnvelope, log: &WireLog, tamper: bool) -> StoreResult<Inserted> {
    let mut tampered = false;
    if tamper && envelope.kind == EnvelopeKind::KeyTransfer {
        if let Some(flipped) = flip_wrapped_key_bit(&envelope.body_b64) {
            envelope.body_b64 = flipped;
            tampered = true;
        }
    }
    let body = base64::engine::general_purpose::STANDARD
        .decode(&envelope.body_b64)
        .unwrap_or_default();
    let entry = WireEnvelope {
        from: envelope.from.clone(),
        to: envelope.to.clone(),
        kind: kind_name(envelope.kind),
        bytes: u32::try_from(body.len()).unwrap_or(u32::MAX),
        preview_hex: preview(envelope.kind, &body),
        tampered,
    };
    let inserted = inner.insert_envelope(envelope)?;
    if matches!(inserted, Inserted::Stored(_)) {
        if let Ok(mut log) = log.lock() {
            log.push(entry);
        }
    }
    Ok(inserted)
}
