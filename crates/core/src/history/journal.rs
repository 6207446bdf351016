//! What the engine writes in one step: a session advanced together with the message it sealed or opened and the
//! envelope queued to go out (our message, or the receipt for theirs), in one sled transaction, so a crash never
//! leaves a ratchet ahead of its history or a stored message without its receipt.
//! Also the outbox (envelopes not yet accepted by the relay) and the relay facts of the profile.

use magpie_proto::{Envelope, Session, Username};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, Transactional};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::messages::{flatten, insert_row};
use super::{Appended, History, Message, META, OUTBOX, SESSIONS};
use crate::error::{Error, Result};

const REGISTRATION: &[u8] = b"registration";
const RELAY_CURSOR: &[u8] = b"relay-cursor";
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
    /// Commits one ratchet step in one transaction: the advanced session, the message it sealed or opened (if
    /// one to keep), and the envelope to post (if any: our message, or the receipt for theirs). A message whose
    /// id is already stored is not written again ([`Appended::Duplicate`]); the rest still is.
    pub fn record_step(
        &self,
        session: &Session,
        message: Option<&Message>,
        outgoing: Option<&OutboxItem>,
    ) -> Result<Option<Appended>> {
        let session_key = self.chat_id(session.peer())?;
        let exported = session.export()?;
        let sealed_session = self.sealer.seal(SESSIONS, &session_key, exported.expose_secret())?;
        let row = message.map(|m| self.prepare_row(m)).transpose()?;
        let queued = outgoing.map(|item| self.prepare_outbox(item)).transpose()?;
        let result = (&self.sessions, &self.messages, &self.message_ids, &self.outbox).transaction(
            |(sessions, messages, ids, outbox)| {
                sessions.insert(session_key.as_slice(), sealed_session.as_slice())?;
                if let Some((key, sealed)) = &queued {
                    outbox.insert(key.as_slice(), sealed.as_slice())?;
                }
                match &row {
                    Some(row) => Ok(Some(insert_row(messages, ids, row)?)),
                    None => Ok::<_, ConflictableTransactionError<Error>>(None),
                }
            },
        );
        flatten(result)
    }

    /// Queues an envelope that advances no session (handshake steps).
    pub fn queue_envelope(&self, item: &OutboxItem) -> Result<()> {
        let (key, sealed) = self.prepare_outbox(item)?;
        self.outbox.insert(key, sealed)?;
        Ok(())
    }

    /// Everything waiting to go out, oldest first.
    pub fn outbox(&self) -> Result<Vec<(OutboxKey, OutboxItem)>> {
        let mut out = Vec::new();
        for item in &self.outbox {
            let (key, sealed) = item?;
            let key_bytes: [u8; 8] = key
                .as_ref()
                .try_into()
                .map_err(|_| Error::HistoryCorrupt { tree: OUTBOX })?;
            let plain = self.sealer.open(OUTBOX, &key, &sealed)?;
            let item = serde_json::from_slice(&plain).map_err(|_| Error::HistoryCorrupt { tree: OUTBOX })?;
            out.push((OutboxKey(key_bytes), item));
        }
        Ok(out)
    }

    /// Drops an outbox item (the relay accepted it, or it can never be sent).
    pub fn remove_outbox(&self, key: OutboxKey) -> Result<()> {
        self.outbox.remove(key.0)?;
        Ok(())
    }

    fn prepare_outbox(&self, item: &OutboxItem) -> Result<([u8; 8], Vec<u8>)> {
        let key = self.db.generate_id()?.to_be_bytes();
        let plain = Zeroizing::new(serde_json::to_vec(item).map_err(|_| Error::Crypto("encoding failed"))?);
        Ok((key, self.sealer.seal(OUTBOX, &key, &plain)?))
    }

    /// Keeps a session a re-key replaced, so messages the peer sealed with it before switching still open (they
    /// may sit in a mailbox across several re-keys). The newest [`PREVIOUS_SESSIONS`] per peer are kept.
    pub fn save_previous_session(&self, session: &Session) -> Result<()> {
        let prefix = self.previous_prefix(session.peer())?;
        let mut key = prefix.clone();
        key.extend_from_slice(&session.established_at().to_be_bytes());
        key.extend_from_slice(session.session_id());
        let exported = session.export()?;
        self.sessions.insert(
            key.as_slice(),
            self.sealer.seal(SESSIONS, &key, exported.expose_secret())?,
        )?;
        // Keys sort by establishment time: drop the oldest beyond the limit.
        let keys: Vec<_> = self.sessions.scan_prefix(&prefix).keys().collect::<Result<_, _>>()?;
        for old in keys.iter().take(keys.len().saturating_sub(PREVIOUS_SESSIONS)) {
            self.sessions.remove(old)?;
        }
        Ok(())
    }

    /// The replaced session with `peer` whose id is `session_id`, if still kept.
    pub fn load_previous_session(&self, peer: &Username, session_id: &[u8]) -> Result<Option<Session>> {
        let prefix = self.previous_prefix(peer)?;
        for item in self.sessions.scan_prefix(&prefix) {
            let (key, sealed) = item?;
            if key.ends_with(session_id) && key.len() == prefix.len() + 8 + session_id.len() {
                let bytes = self.sealer.open(SESSIONS, &key, &sealed)?;
                return Ok(Some(Session::import(&bytes)?));
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

    /// The relay mailbox position read so far (0 at first).
    pub fn relay_cursor(&self) -> Result<u64> {
        match self.get_meta(RELAY_CURSOR)? {
            None => Ok(0),
            Some(plain) => {
                let bytes: [u8; 8] = plain
                    .as_slice()
                    .try_into()
                    .map_err(|_| Error::HistoryCorrupt { tree: META })?;
                Ok(u64::from_be_bytes(bytes))
            }
        }
    }

    /// Moves the mailbox position forward.
    pub fn set_relay_cursor(&self, cursor: u64) -> Result<()> {
        self.put_meta(RELAY_CURSOR, &cursor.to_be_bytes())
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
