//! The demo relay's store: it records every envelope as the relay holds it (the "wire" column), keeps a copy of
//! each (what a replaying relay needs), and plays the chosen attack: a flipped bit, a dropped confirmation, a
//! certificate of its own in the directory.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use magpie_proto::{EnvelopeKind, KeyConfirm, KeyTransfer, SealedMessage};
use magpie_relay::store::{Inserted, Intercept, NewEnvelope, Store, StoreResult, UserRecord};
use uuid::Uuid;

use crate::ipc_types::{DemoActor, DemoAttack, WireAction, WireEnvelope};

/// Body bytes shown in the wire column.
const PREVIEW_BYTES: usize = 24;

/// What the relay saw, in order; shared by the demo's relays and its runner.
pub type WireLog = Arc<Mutex<Vec<WireEnvelope>>>;

/// The attack as one relay plays it.
pub struct Tap {
    log: WireLog,
    attack: DemoAttack,
    /// Whose relay this is, when a man in the middle shows each side its own: the other's name is its impostor's.
    face: Option<DemoActor>,
    /// Every envelope stored, as sent.
    kept: Mutex<Vec<NewEnvelope>>,
    /// Ids of the copies the relay injects itself.
    replays: Mutex<HashSet<Uuid>>,
    /// A certificate (PEM) the directory presents for a name instead of the registered one.
    substitute: Mutex<Option<(String, String)>>,
}

impl Tap {
    pub fn new(log: WireLog, attack: DemoAttack, face: Option<DemoActor>) -> Arc<Self> {
        Arc::new(Self {
            log,
            attack,
            face,
            kept: Mutex::default(),
            replays: Mutex::default(),
            substitute: Mutex::default(),
        })
    }

    /// The store the relay runs on: `inner`, through this tap.
    pub fn store(self: &Arc<Self>, inner: Arc<dyn Store>) -> Intercept {
        let (inserts, users) = (Arc::clone(self), Arc::clone(self));
        Intercept::new(inner)
            .on_insert(move |inner, envelope| inserts.insert(inner, envelope))
            .on_user(move |inner, username| users.user(inner, username))
    }

    /// From now on the directory answers `username` with `cert_pem`.
    pub fn substitute(&self, username: &str, cert_pem: String) {
        if let Ok(mut substitute) = self.substitute.lock() {
            *substitute = Some((username.to_owned(), cert_pem));
        }
    }

    /// The first envelope of `kind` from `from` the relay stored, as it was sent.
    pub fn kept(&self, from: &str, kind: EnvelopeKind) -> Option<NewEnvelope> {
        let kept = self.kept.lock().ok()?;
        kept.iter().find(|e| e.from == from && e.kind == kind).cloned()
    }

    /// [`Tap::kept`]'s body.
    pub fn kept_body(&self, from: &str, kind: EnvelopeKind) -> Option<Vec<u8>> {
        let envelope = self.kept(from, kind)?;
        base64::engine::general_purpose::STANDARD.decode(envelope.body_b64).ok()
    }

    /// Marks `id` as a copy the relay makes itself (before it is inserted).
    pub fn mark_replay(&self, id: Uuid) {
        if let Ok(mut replays) = self.replays.lock() {
            replays.insert(id);
        }
    }

    fn user(&self, inner: &dyn Store, username: &str) -> StoreResult<Option<UserRecord>> {
        let record = inner.user(username)?;
        let substitute = self.substitute.lock().ok().and_then(|s| s.clone());
        Ok(match (record, substitute) {
            (Some(record), Some((name, cert_pem))) if name == username => Some(UserRecord { cert_pem, ..record }),
            (record, _) => record,
        })
    }

    fn insert(&self, inner: &dyn Store, mut envelope: NewEnvelope) -> StoreResult<Inserted> {
        let replayed = self.replays.lock().is_ok_and(|replays| replays.contains(&envelope.id));
        let sent = envelope.clone();
        let action = match (self.attack, envelope.kind) {
            _ if replayed => WireAction::Replayed,
            (DemoAttack::FlipWrappedKey, EnvelopeKind::KeyTransfer) => tamper(&mut envelope, flip_wrapped_key_bit),
            (DemoAttack::ForgeKeyConfirm, EnvelopeKind::KeyConfirm) => tamper(&mut envelope, flip_confirm_mac_bit),
            (DemoAttack::DropKeyConfirm, EnvelopeKind::KeyConfirm) => WireAction::Dropped,
            _ if self.is_impostor(&envelope) => WireAction::Diverted,
            _ => WireAction::Carried,
        };
        let entry = WireEnvelope {
            face: self.face,
            ..record(&envelope, action)
        };
        let inserted = match action {
            // Bob hears "stored" (as for a retry) and the envelope goes nowhere.
            WireAction::Dropped => Inserted::Duplicate { seq: 0 },
            _ => inner.insert_envelope(envelope)?,
        };
        if action == WireAction::Dropped || matches!(inserted, Inserted::Stored(_)) {
            if let Ok(mut log) = self.log.lock() {
                log.push(entry);
            }
            if let Ok(mut kept) = self.kept.lock() {
                kept.push(sent);
            }
        }
        Ok(inserted)
    }

    fn is_impostor(&self, envelope: &NewEnvelope) -> bool {
        let impostor = match self.face {
            Some(DemoActor::Alice) => "bob",
            Some(DemoActor::Bob) => "alice",
            None => return false,
        };
        envelope.from == impostor || envelope.to == impostor
    }
}

/// The envelope kind as the protocol names it on the wire (`key_transfer`).
pub fn kind_name(kind: EnvelopeKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn tamper(envelope: &mut NewEnvelope, change: fn(&[u8]) -> Option<Vec<u8>>) -> WireAction {
    let engine = base64::engine::general_purpose::STANDARD;
    match engine.decode(&envelope.body_b64).ok().as_deref().and_then(change) {
        Some(changed) => {
            envelope.body_b64 = engine.encode(changed);
            WireAction::Tampered
        }
        None => WireAction::Carried,
    }
}

/// Flips the lowest bit of the wrapped key's first byte.
fn flip_wrapped_key_bit(body: &[u8]) -> Option<Vec<u8>> {
    let mut transfer = KeyTransfer::from_json(body).ok()?;
    *transfer.wrapped_key.first_mut()? ^= 1;
    transfer.to_json().ok()
}

/// Flips the lowest bit of the confirmation MAC's first byte.
fn flip_confirm_mac_bit(body: &[u8]) -> Option<Vec<u8>> {
    let mut confirm = KeyConfirm::from_json(body).ok()?;
    *confirm.mac.first_mut()? ^= 1;
    confirm.to_json().ok()
}

fn record(envelope: &NewEnvelope, action: WireAction) -> WireEnvelope {
    let body = base64::engine::general_purpose::STANDARD
        .decode(&envelope.body_b64)
        .unwrap_or_default();
    WireEnvelope {
        from: envelope.from.clone(),
        to: envelope.to.clone(),
        kind: kind_name(envelope.kind),
        bytes: u32::try_from(body.len()).unwrap_or(u32::MAX),
        preview_hex: preview(envelope.kind, &body),
        action,
        face: None,
    }
}

/// The first bytes of what the envelope hides or what the attacks change: a message's AES-GCM ciphertext, a key
/// transfer's wrapped key, a key confirmation's MAC; the (public) JSON of other handshake messages.
fn preview(kind: EnvelopeKind, body: &[u8]) -> String {
    let secret = match kind {
        EnvelopeKind::Message => SealedMessage::from_json(body).ok().map(|sealed| sealed.ciphertext),
        EnvelopeKind::KeyTransfer => KeyTransfer::from_json(body).ok().map(|transfer| transfer.wrapped_key),
        EnvelopeKind::KeyConfirm => KeyConfirm::from_json(body).ok().map(|confirm| confirm.mac),
        _ => None,
    };
    let bytes = secret.as_deref().unwrap_or(body);
    magpie_proto::encoding::hex(&bytes[..bytes.len().min(PREVIEW_BYTES)])
}
