//! What the engine writes in one step (see [`super::step`]): a session advanced together with the message it sealed
//! or opened and the envelope queued to go out (our message, or the receipt for theirs), so a crash never leaves a
//! ratchet ahead of its history or a stored message without its receipt.
//! Also the outbox (envelopes not yet accepted by the relay) and the relay facts of the profile.

use magpie_proto::{Envelope, Session, Username};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::messages::change_deliveries;
use super::step::{Step, Tree};
use super::writer::Writer;
use super::{Appended, Delivery, History, Message, META, OUTBOX, SESSIONS};
use crate::error::{Error, Result};

const REGISTRATION: &[u8] = b"registration";
const RELAY_LOGIN: &[u8] = b"relay-login";
const GENERATION: &[u8] = b"generation";
const PREVIOUS_SESSION: &[u8] = b"previous";
/// Replaced sessions kept per peer, for messages still in flight across re-keys.
pub const PREVIOUS_SESSIONS: usize = 16;

/// An envelope waiting for the relay's 202.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OutboxItem {
    /// What to post; its id makes retries idempotent.
    pub envelope: Envelope,
    /// The chat message it carries, whose state becomes "sent" on the 202.
    pub message_id: Option<Uuid>,
}

/// Where an outbox item sits (oldest first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutboxKey([u8; 8]);

/// Which stored session a step advances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionSlot {
    /// The session in use with the peer.
    Current,
    /// One a re-key replaced, kept for late messages ([`History::save_previous_session`]).
    Previous,
}

/// What registration left with the profile: the pinned relay CA and our certificate (both public; sealed anyway
/// so nobody can swap the pin on disk).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRecord {
    /// The relay registered with.
    pub relay_url: String,
    /// Its CA root, PEM: every peer certificate must chain to it.
    pub ca_pem: String,
    /// Our certificate, PEM.
    pub certificate_pem: String,
}

impl History {
    /// Commits one ratchet step in one atomic write: the advanced session, the message it sealed or opened (if
    /// one to keep), and the envelope to post (if any: our message, or the receipt for theirs). A message whose
    /// id is already stored is not written again ([`Appended::Duplicate`]); the rest still is.
    pub fn record_step(
        &self,
        session: &Session,
        message: Option<&Message>,
        outgoing: Option<&OutboxItem>,
    ) -> Result<Option<Appended>> {
        let messages = message.map(std::slice::from_ref).unwrap_or_default();
        Ok(self
            .record_steps(session, SessionSlot::Current, messages, outgoing)?
            .into_iter()
            .next())
    }

    /// [`History::record_step`] for a run of steps of one session: the session after the last (kept where `slot`
    /// says), every message the run opened (in order; one [`Appended`] each), and one envelope (the receipt
    /// answering them all).
    pub fn record_steps(
        &self,
        session: &Session,
        slot: SessionSlot,
        messages: &[Message],
        outgoing: Option<&OutboxItem>,
    ) -> Result<Vec<Appended>> {
        Ok(self.record_steps_delivering(session, slot, messages, outgoing, &[])?.0)
    }

    /// [`History::record_steps`] that also marks `delivered` (our messages the run's receipts answered) as
    /// delivered, in the same write: a crash cannot keep the session past a receipt and lose what it said.
    /// Returns the states those end in beside the [`Appended`]s.
    pub fn record_steps_delivering(
        &self,
        session: &Session,
        slot: SessionSlot,
        messages: &[Message],
        outgoing: Option<&OutboxItem>,
        delivered: &[Uuid],
    ) -> Result<(Vec<Appended>, Vec<Option<Delivery>>)> {
        self.record_steps_moving(session, slot, messages, outgoing, (delivered, Delivery::Delivered))
    }

    /// Commits the step that sealed `outgoing` for a message written while the session was set up ("waiting"),
    /// moving that message on to "sending" in the same write.
    pub fn record_waiting_sealed(&self, session: &Session, outgoing: &OutboxItem, message_id: Uuid) -> Result<()> {
        let moved = [message_id];
        self.record_steps_moving(
            session,
            SessionSlot::Current,
            &[],
            Some(outgoing),
            (&moved, Delivery::Sending),
        )?;
        Ok(())
    }

    /// [`History::record_steps`] that also moves the messages `moved.0` on to the state `moved.1`.
    fn record_steps_moving(
        &self,
        session: &Session,
        slot: SessionSlot,
        messages: &[Message],
        outgoing: Option<&OutboxItem>,
        moved: (&[Uuid], Delivery),
    ) -> Result<(Vec<Appended>, Vec<Option<Delivery>>)> {
        let (delivered, state) = moved;
        let delivered = self.message_hashes(delivered)?;
        let exported = session.export()?;
        let rows = messages
            .iter()
            .map(|m| self.prepare_row(m))
            .collect::<Result<Vec<_>>>()?;
        let outgoing = outgoing.map(encode_outbox).transpose()?;
        let reservation = self.record_due(session)?;
        let step = self.step()?;
        let session_key = match slot {
            SessionSlot::Current => self.chat_id(session.peer())?.to_vec(),
            SessionSlot::Previous => self.previous_key(session)?,
        };
        step.seal_put(Tree::Sessions, &session_key, exported.expose_secret())?;
        if let Some(record) = &reservation {
            step.put(Tree::Sessions, &record.key, record.sealed.clone());
        }
        if let Some(plain) = &outgoing {
            queue_in(&step, plain)?;
        }
        let mut writer = Writer::new(&self.sealer, &step);
        let appended = rows
            .iter()
            .map(|row| row.append_to(&mut writer))
            .collect::<Result<Vec<_>>>()?;
        let states = change_deliveries(&mut writer, &delivered, state)?;
        writer.finish()?;
        step.commit()?;
        if let Some(record) = reservation {
            self.note_reserved(record)?;
        }
        Ok((appended, states))
    }

    /// Queues an envelope that advances no session (handshake steps).
    pub fn queue_envelope(&self, item: &OutboxItem) -> Result<()> {
        let plain = encode_outbox(item)?;
        let step = self.step()?;
        queue_in(&step, &plain)?;
        step.commit()
    }

    /// Everything waiting to go out, oldest first.
    pub fn outbox(&self) -> Result<Vec<(OutboxKey, OutboxItem)>> {
        self.outbox_after(None)
    }

    /// What waits to go out after `after` (everything when `None`), oldest first.
    pub fn outbox_after(&self, after: Option<OutboxKey>) -> Result<Vec<(OutboxKey, OutboxItem)>> {
        let start = after
            .map_or(0, |k| u64::from_be_bytes(k.0).saturating_add(1))
            .to_be_bytes();
        self.outbox
            .range(start..)
            .map(|item| {
                let (key, sealed) = item?;
                let key: [u8; 8] = key
                    .as_ref()
                    .try_into()
                    .map_err(|_| Error::HistoryCorrupt { tree: OUTBOX })?;
                let plain = self.sealer.open(OUTBOX, &key, &sealed)?;
                let item = serde_json::from_slice(&plain).map_err(|_| Error::HistoryCorrupt { tree: OUTBOX })?;
                Ok((OutboxKey(key), item))
            })
            .collect()
    }

    /// Drops an outbox item (the relay accepted it, or it can never be sent).
    pub fn remove_outbox(&self, key: OutboxKey) -> Result<()> {
        let step = self.step()?;
        step.remove(Tree::Outbox, &key.0);
        step.commit()
    }

    /// Keeps a session a re-key replaced, so messages the peer sealed with it before switching still open (they
    /// may sit in a mailbox across several re-keys). The newest [`PREVIOUS_SESSIONS`] per peer are kept; saving
    /// one that is kept already (after opening a late message with it) updates it in place.
    pub fn save_previous_session(&self, session: &Session) -> Result<()> {
        let exported = session.export()?;
        let step = self.step()?;
        let prefix = self.previous_prefix(session.peer())?;
        let key = self.previous_key(session)?;
        let mut keys: Vec<Vec<u8>> = self
            .sessions
            .scan_prefix(&prefix)
            .keys()
            .map(|key| key.map(|key| key.to_vec()))
            .collect::<Result<_, _>>()?;
        if !keys.contains(&key) {
            keys.push(key.clone());
        }
        step.seal_put(Tree::Sessions, &key, exported.expose_secret())?;
        for old in keys.iter().take(keys.len().saturating_sub(PREVIOUS_SESSIONS)) {
            step.remove(Tree::Sessions, old);
        }
        step.commit()
    }

    /// The replaced session with `peer` whose id is `session_id`, if still kept.
    pub fn load_previous_session(&self, peer: &Username, session_id: &[u8]) -> Result<Option<Session>> {
        let prefix = self.previous_prefix(peer)?;
        match self.find_previous(&prefix, session_id)? {
            Some((key, sealed)) => {
                let bytes = self.sealer.open(SESSIONS, &key, &sealed)?;
                let mut session = Session::import(&bytes)?;
                self.skip_past_reservation(&mut session, &key)?;
                Ok(Some(session))
            }
            None => Ok(None),
        }
    }

    /// Where the replaced `session` is kept: its key if kept already, else a new one after the others.
    fn previous_key(&self, session: &Session) -> Result<Vec<u8>> {
        let prefix = self.previous_prefix(session.peer())?;
        Ok(match self.find_previous(&prefix, session.session_id())? {
            Some((key, _)) => key.to_vec(),
            None => {
                // Ordered by when it was replaced (a database-wide counter: re-keys can come many per second).
                let mut key = prefix;
                key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
                key.extend_from_slice(session.session_id());
                key
            }
        })
    }

    fn find_previous(&self, prefix: &[u8], session_id: &[u8]) -> Result<Option<(sled::IVec, sled::IVec)>> {
        for item in self.sessions.scan_prefix(prefix) {
            let (key, sealed) = item?;
            if key.len() == prefix.len() + 8 + session_id.len() && key.ends_with(session_id) {
                return Ok(Some((key, sealed)));
            }
        }
        Ok(None)
    }

    fn previous_prefix(&self, peer: &Username) -> Result<Vec<u8>> {
        let mut key = self.chat_id(peer)?.to_vec();
        key.extend_from_slice(PREVIOUS_SESSION);
        Ok(key)
    }

    /// What registration stored, if the profile registered.
    pub fn registration(&self) -> Result<Option<RegistrationRecord>> {
        let Some(plain) = self.get_meta(REGISTRATION)? else {
            return Ok(None);
        };
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|_| Error::HistoryCorrupt { tree: META })
    }

    /// Stores the registration (durably: it holds the CA pin).
    pub fn set_registration(&self, record: &RegistrationRecord) -> Result<()> {
        let plain = serde_json::to_vec(record).map_err(|_| Error::Crypto("encoding failed"))?;
        self.put_meta(REGISTRATION, &plain)?;
        self.flush()?;
        Ok(())
    }

    /// How many times this history was opened, as it last recorded (0 before the first count). The credential
    /// store keeps the same count: a history whose count is behind it is an older copy (see `Profile::open`).
    pub fn generation(&self) -> Result<u64> {
        let Some(plain) = self.get_meta(GENERATION)? else {
            return Ok(0);
        };
        let bytes: [u8; 8] = plain
            .as_slice()
            .try_into()
            .map_err(|_| Error::HistoryCorrupt { tree: META })?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// Records the open count, durably (the credential store is moved on only after it).
    pub fn set_generation(&self, generation: u64) -> Result<()> {
        self.put_meta(GENERATION, &generation.to_be_bytes())?;
        self.flush()?;
        Ok(())
    }

    /// The relay's bearer token kept from the last login, and when it expires (Unix seconds).
    pub fn relay_login(&self) -> Result<Option<(Zeroizing<String>, u64)>> {
        let Some(plain) = self.get_meta(RELAY_LOGIN)? else {
            return Ok(None);
        };
        let corrupt = || Error::HistoryCorrupt { tree: META };
        let (expiry, token) = plain.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let token = std::str::from_utf8(token).map_err(|_| corrupt())?;
        Ok(Some((Zeroizing::new(token.to_owned()), u64::from_be_bytes(*expiry))))
    }

    /// Keeps the relay's bearer token (sealed like everything else) for the next run of the profile.
    pub fn set_relay_login(&self, token: &str, expires_at: u64) -> Result<()> {
        let mut plain = Zeroizing::new(Vec::with_capacity(8 + token.len()));
        plain.extend_from_slice(&expires_at.to_be_bytes());
        plain.extend_from_slice(token.as_bytes());
        self.put_meta(RELAY_LOGIN, &plain)?;
        self.flush()?;
        Ok(())
    }

    fn get_meta(&self, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>> {
        match self.meta.get(key)? {
            Some(sealed) => Ok(Some(self.sealer.open(META, key, &sealed)?)),
            None => Ok(None),
        }
    }

    fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.meta.insert(key, self.sealer.seal(META, key, value)?)?;
        Ok(())
    }
}

fn encode_outbox(item: &OutboxItem) -> Result<Zeroizing<Vec<u8>>> {
    serde_json::to_vec(item)
        .map(Zeroizing::new)
        .map_err(|_| Error::Crypto("encoding failed"))
}

/// Queues an encoded item under a new outbox key, drawn in the step: items appear in key order, which the outbox
/// reads on in.
fn queue_in(step: &Step<'_>, plain: &[u8]) -> Result<()> {
    let key = step.next_id()?.to_be_bytes();
    step.seal_put(Tree::Outbox, &key, plain)
}
