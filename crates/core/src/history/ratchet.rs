//! The ratchet's steps (see [`super::step`]): a session advanced together with the message it sealed or opened and
//! the envelope queued to go out (our message, or the receipt for theirs), so a crash never leaves a ratchet ahead
//! of its history or a stored message without its receipt. Also the sessions re-keys replaced, kept for late
//! messages.

use magpie_proto::{Session, Username};
use uuid::Uuid;

use super::messages::change_deliveries;
use super::outbox::{encode_outbox, queue_in, OutboxItem};
use super::step::Tree;
use super::writer::Writer;
use super::{Appended, Delivery, History, Message, SESSIONS};
use crate::error::Result;

const PREVIOUS_SESSION: &[u8] = b"previous";
/// Replaced sessions kept per peer, for messages still in flight across re-keys.
pub const PREVIOUS_SESSIONS: usize = 16;

/// Which stored session a step advances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionSlot {
    /// The session in use with the peer.
    Current,
    /// One a re-key replaced, kept for late messages ([`History::save_previous_session`]).
    Previous,
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
        for (message, appended) in messages.iter().zip(&appended) {
            if matches!(appended, Appended::New(_)) {
                self.record_incoming_file(&step, message)?;
            }
        }
        let states = change_deliveries(&mut writer, &delivered, state)?;
        writer.finish()?;
        step.commit()?;
        if let Some(record) = reservation {
            self.note_reserved(record)?;
        }
        Ok((appended, states))
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
}
