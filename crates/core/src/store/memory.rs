//! Everything the engine keeps, in memory: what the engine's unit tests run on (no sled, no credential store). It
//! keeps the promises of the store traits; being memory, nothing outlives it, so there is no crash to survive and
//! reserving send counters is free.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use magpie_proto::{Session, Username};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{Contacts, Durable, FileRecords, Handshakes, Home, Messages, Outbox, RatchetSteps, RelayFacts, Sessions};
use crate::error::{Error, Result};
use crate::history::{
    Appended, Contact, Cursor, Delivery, Entry, FileRecord, Message, OutboxItem, OutboxKey, RegistrationRecord,
    RequestSummary, SessionSlot, PREVIOUS_SESSIONS,
};
use crate::keystore::SecretBytes;
use crate::search::{ChatMatches, Query};

/// A [`super::Store`] in memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// Message seqs, outbox keys and positions share one counter, as in the history.
    counter: u64,
    sessions: HashMap<Username, Session>,
    /// Replaced sessions per peer, oldest first.
    previous: HashMap<Username, Vec<Session>>,
    chats: HashMap<Username, BTreeMap<u64, Message>>,
    /// Where each message is: its chat and seq.
    index: HashMap<Uuid, (Username, u64)>,
    outbox: BTreeMap<u64, OutboxItem>,
    contacts: BTreeMap<Username, Contact>,
    handshakes: BTreeMap<String, Zeroizing<Vec<u8>>>,
    finished: HashMap<String, u64>,
    requests: HashMap<Uuid, RequestSummary>,
    requests_indexed: bool,
    files: HashMap<Uuid, FileRecord>,
    registration: Option<RegistrationRecord>,
    relay_login: Option<(Zeroizing<String>, u64)>,
}

impl MemoryStore {
    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| Error::Poisoned)
    }
}

impl State {
    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    fn append(&mut self, message: &Message) -> Appended {
        if self.index.contains_key(&message.id) {
            return Appended::Duplicate;
        }
        let seq = self.next();
        self.index.insert(message.id, (message.peer.clone(), seq));
        self.chats
            .entry(message.peer.clone())
            .or_default()
            .insert(seq, message.clone());
        Appended::New(Cursor::from_value(seq))
    }

    fn message_mut(&mut self, id: &Uuid) -> Option<&mut Message> {
        let (peer, seq) = self.index.get(id)?;
        self.chats.get_mut(peer)?.get_mut(seq)
    }

    fn move_on(&mut self, ids: &[Uuid], update: Delivery) -> Vec<Option<Delivery>> {
        ids.iter()
            .map(|id| {
                let message = self.message_mut(id)?;
                message.delivery = message.delivery.then(update);
                Some(message.delivery)
            })
            .collect()
    }

    fn keep_previous(&mut self, session: &Session) {
        let kept = self.previous.entry(session.peer().clone()).or_default();
        match kept.iter_mut().find(|s| s.session_id() == session.session_id()) {
            Some(slot) => *slot = session.clone(),
            None => kept.push(session.clone()),
        }
        let excess = kept.len().saturating_sub(PREVIOUS_SESSIONS);
        kept.drain(..excess);
    }

    fn entries<'a>(messages: impl Iterator<Item = (&'a u64, &'a Message)>) -> Vec<Entry> {
        messages
            .map(|(seq, message)| Entry {
                cursor: Cursor::from_value(*seq),
                message: message.clone(),
            })
            .collect()
    }

    fn chat(&self, peer: &Username) -> Option<&BTreeMap<u64, Message>> {
        self.chats.get(peer)
    }
}

impl Sessions for MemoryStore {
    fn load_session(&self, peer: &Username) -> Result<Option<Session>> {
        Ok(self.state()?.sessions.get(peer).cloned())
    }
    fn save_session(&self, session: &Session) -> Result<()> {
        self.state()?.sessions.insert(session.peer().clone(), session.clone());
        Ok(())
    }
    fn remove_session(&self, peer: &Username) -> Result<bool> {
        Ok(self.state()?.sessions.remove(peer).is_some())
    }
    fn load_previous_session(&self, peer: &Username, session_id: &[u8]) -> Result<Option<Session>> {
        let state = self.state()?;
        let kept = state.previous.get(peer).into_iter().flatten();
        Ok(kept
            .into_iter()
            .find(|s| s.session_id().as_slice() == session_id)
            .cloned())
    }
    fn save_previous_session(&self, session: &Session) -> Result<()> {
        self.state()?.keep_previous(session);
        Ok(())
    }
    fn reserve_send(&self, _session: &Session) -> Result<()> {
        Ok(())
    }
}

impl Messages for MemoryStore {
    fn mark_position(&self) -> Result<u64> {
        Ok(self.state()?.next())
    }
    fn append_message(&self, message: &Message) -> Result<Appended> {
        Ok(self.state()?.append(message))
    }
    fn get_message(&self, id: Uuid) -> Result<Option<Entry>> {
        let state = self.state()?;
        let Some((peer, seq)) = state.index.get(&id) else {
            return Ok(None);
        };
        let message = state.chat(peer).and_then(|chat| chat.get_key_value(seq));
        Ok(message.map(|m| State::entries(std::iter::once(m)).remove(0)))
    }
    fn remove_message(&self, id: Uuid) -> Result<bool> {
        let mut state = self.state()?;
        let Some((peer, seq)) = state.index.remove(&id) else {
            return Ok(false);
        };
        Ok(state.chats.get_mut(&peer).and_then(|chat| chat.remove(&seq)).is_some())
    }
    fn clear_chat(&self, peer: &Username) -> Result<usize> {
        let mut state = self.state()?;
        let removed = state.chats.remove(peer).unwrap_or_default();
        for message in removed.values() {
            state.index.remove(&message.id);
        }
        Ok(removed.len())
    }
    fn update_deliveries(&self, ids: &[Uuid], update: Delivery) -> Result<Vec<Option<Delivery>>> {
        Ok(self.state()?.move_on(ids, update))
    }
    fn last_messages(&self, peer: &Username, n: usize) -> Result<Vec<Entry>> {
        let state = self.state()?;
        let mut out = State::entries(state.chat(peer).into_iter().flatten().rev().take(n));
        out.reverse();
        Ok(out)
    }
    fn messages_before(&self, peer: &Username, before: Cursor, n: usize) -> Result<Vec<Entry>> {
        let state = self.state()?;
        let older = state.chat(peer).map(|chat| chat.range(..before.value()));
        let mut out = State::entries(older.into_iter().flatten().rev().take(n));
        out.reverse();
        Ok(out)
    }
    fn messages_after(&self, peer: &Username, after: Option<Cursor>, n: usize) -> Result<Vec<Entry>> {
        let state = self.state()?;
        let from = match after {
            Some(cursor) if cursor.value() == u64::MAX => return Ok(Vec::new()),
            Some(cursor) => cursor.value() + 1,
            None => 0,
        };
        let newer = state.chat(peer).map(|chat| chat.range(from..));
        Ok(State::entries(newer.into_iter().flatten().take(n)))
    }
    fn search_chat(
        &self,
        peer: &Username,
        query: &Query,
        before: Option<Cursor>,
        limit: usize,
        cancelled: &AtomicBool,
    ) -> Result<ChatMatches> {
        let state = self.state()?;
        let end = before.map_or(u64::MAX, Cursor::value);
        let mut found = ChatMatches::collect(query, limit);
        for (seq, message) in state.chat(peer).into_iter().flat_map(|chat| chat.range(..end).rev()) {
            if cancelled.load(Ordering::Relaxed) {
                return Err(Error::SearchCancelled);
            }
            let entry = || {
                Ok(Entry {
                    cursor: Cursor::from_value(*seq),
                    message: message.clone(),
                })
            };
            found.consider(message.kind, &message.body, entry)?;
        }
        Ok(found.done())
    }
}

impl RatchetSteps for MemoryStore {
    fn record_steps_delivering(
        &self,
        session: &Session,
        slot: SessionSlot,
        messages: &[Message],
        outgoing: Option<&OutboxItem>,
        delivered: &[Uuid],
    ) -> Result<(Vec<Appended>, Vec<Option<Delivery>>)> {
        let mut state = self.state()?;
        match slot {
            SessionSlot::Current => {
                state.sessions.insert(session.peer().clone(), session.clone());
            }
            SessionSlot::Previous => state.keep_previous(session),
        }
        let appended: Vec<Appended> = messages.iter().map(|m| state.append(m)).collect();
        for (message, appended) in messages.iter().zip(&appended) {
            if !matches!(appended, Appended::New(_)) || state.files.contains_key(&message.id) {
                continue;
            }
            if let Some(record) = crate::history::files::incoming_file_record(message)? {
                state.files.insert(message.id, record);
            }
        }
        if let Some(item) = outgoing {
            let key = state.next();
            state.outbox.insert(key, item.clone());
        }
        Ok((appended, state.move_on(delivered, Delivery::Delivered)))
    }
    fn record_waiting_sealed(&self, session: &Session, outgoing: &OutboxItem, message_id: Uuid) -> Result<()> {
        let mut state = self.state()?;
        state.sessions.insert(session.peer().clone(), session.clone());
        let key = state.next();
        state.outbox.insert(key, outgoing.clone());
        state.move_on(&[message_id], Delivery::Sending);
        Ok(())
    }
}

impl Outbox for MemoryStore {
    fn queue_envelope(&self, item: &OutboxItem) -> Result<()> {
        let mut state = self.state()?;
        let key = state.next();
        state.outbox.insert(key, item.clone());
        Ok(())
    }
    fn outbox_after(&self, after: Option<OutboxKey>) -> Result<Vec<(OutboxKey, OutboxItem)>> {
        let from = after.map_or(0, |key| key.seq().saturating_add(1));
        let state = self.state()?;
        let items = state.outbox.range(from..);
        Ok(items
            .map(|(key, item)| (OutboxKey::from_seq(*key), item.clone()))
            .collect())
    }
    fn remove_outbox(&self, key: OutboxKey) -> Result<()> {
        self.state()?.outbox.remove(&key.seq());
        Ok(())
    }
}

impl Contacts for MemoryStore {
    fn contact(&self, peer: &Username) -> Result<Option<Contact>> {
        Ok(self.state()?.contacts.get(peer).cloned())
    }
    fn contacts(&self) -> Result<Vec<Contact>> {
        Ok(self.state()?.contacts.values().cloned().collect())
    }
    fn update_contact<T>(&self, peer: &Username, change: impl FnOnce(&mut Option<Contact>) -> Result<T>) -> Result<T> {
        let mut state = self.state()?;
        let mut contact = state.contacts.get(peer).cloned();
        let out = change(&mut contact)?;
        match contact {
            Some(contact) if &contact.username != peer => return Err(Error::HistoryCorrupt { tree: "contacts" }),
            Some(contact) => state.contacts.insert(peer.clone(), contact),
            None => state.contacts.remove(peer),
        };
        Ok(out)
    }
    fn key_changed(&self, peer: &Username) -> Result<bool> {
        Ok(self.state()?.contacts.get(peer).is_some_and(|c| c.key_changed))
    }
}

impl Handshakes for MemoryStore {
    fn save_handshake(&self, request_id: &str, state: &[u8]) -> Result<()> {
        let state_bytes = Zeroizing::new(state.to_vec());
        self.state()?.handshakes.insert(request_id.to_owned(), state_bytes);
        Ok(())
    }
    fn load_handshake(&self, request_id: &str) -> Result<Option<SecretBytes>> {
        let state = self.state()?;
        let found = state.handshakes.get(request_id);
        Ok(found.map(|bytes| SecretBytes::new(bytes.clone())))
    }
    fn handshakes(&self) -> Result<Vec<(String, SecretBytes)>> {
        let state = self.state()?;
        let all = state.handshakes.iter();
        Ok(all
            .map(|(id, bytes)| (id.clone(), SecretBytes::new(bytes.clone())))
            .collect())
    }
    fn remove_handshake(&self, request_id: &str) -> Result<bool> {
        Ok(self.state()?.handshakes.remove(request_id).is_some())
    }
    fn finish_handshake(&self, request_id: &str, now: u64, forget_before: u64) -> Result<()> {
        let mut state = self.state()?;
        state.finished.insert(request_id.to_owned(), now);
        state.finished.retain(|_, at| *at >= forget_before);
        Ok(())
    }
    fn handshake_finished(&self, request_id: &str) -> Result<bool> {
        Ok(self.state()?.finished.contains_key(request_id))
    }
    fn put_request(&self, summary: &RequestSummary) -> Result<()> {
        self.state()?.requests.insert(summary.request_id, summary.clone());
        Ok(())
    }
    fn remove_request(&self, request_id: Uuid) -> Result<bool> {
        Ok(self.state()?.requests.remove(&request_id).is_some())
    }
    fn requests(&self) -> Result<Vec<RequestSummary>> {
        Ok(self.state()?.requests.values().cloned().collect())
    }
    fn requests_indexed(&self) -> Result<bool> {
        Ok(self.state()?.requests_indexed)
    }
    fn mark_requests_indexed(&self) -> Result<()> {
        self.state()?.requests_indexed = true;
        Ok(())
    }
}

impl FileRecords for MemoryStore {
    fn put_file_record(&self, record: &FileRecord) -> Result<()> {
        self.state()?.files.insert(record.message_id, record.clone());
        Ok(())
    }
    fn file_record(&self, message_id: Uuid) -> Result<Option<FileRecord>> {
        Ok(self.state()?.files.get(&message_id).cloned())
    }
    fn file_records(&self) -> Result<Vec<FileRecord>> {
        Ok(self.state()?.files.values().cloned().collect())
    }
    fn remove_file_record(&self, message_id: Uuid) -> Result<bool> {
        Ok(self.state()?.files.remove(&message_id).is_some())
    }
}

impl RelayFacts for MemoryStore {
    fn registration(&self) -> Result<Option<RegistrationRecord>> {
        Ok(self.state()?.registration.clone())
    }
    fn set_registration(&self, record: &RegistrationRecord) -> Result<()> {
        self.state()?.registration = Some(record.clone());
        Ok(())
    }
    fn relay_login(&self) -> Result<Option<(Zeroizing<String>, u64)>> {
        let state = self.state()?;
        let login = state.relay_login.as_ref();
        Ok(login.map(|(token, expires)| (token.clone(), *expires)))
    }
    fn set_relay_login(&self, token: &str, expires_at: u64) -> Result<()> {
        self.state()?.relay_login = Some((Zeroizing::new(token.to_owned()), expires_at));
        Ok(())
    }
}

impl Durable for MemoryStore {
    fn flush(&self) -> Result<usize> {
        Ok(0)
    }
    fn flush_async(&self) -> impl Future<Output = Result<usize>> + Send {
        std::future::ready(Ok(0))
    }
}

/// A client's home in memory: its name and a [`MemoryStore`].
#[derive(Debug)]
pub struct MemoryHome {
    username: Username,
    store: MemoryStore,
}

impl MemoryHome {
    pub fn new(username: Username) -> Self {
        Self {
            username,
            store: MemoryStore::default(),
        }
    }
}

impl Home for MemoryHome {
    type Store = MemoryStore;

    fn username(&self) -> &Username {
        &self.username
    }

    fn store(&self) -> &MemoryStore {
        &self.store
    }
}
