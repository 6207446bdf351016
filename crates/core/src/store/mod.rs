//! What the engine keeps, behind small traits (in the manner of libsignal's `SessionStore` and
//! `IdentityKeyStore`): the engine reads and writes only through them. [`History`] keeps everything sealed in sled
//! on disk and whole across a crash (see `history/step.rs`); [`MemoryStore`] keeps it in memory, for the engine's
//! unit tests (no sled, no credential store). Both keep the promises written on each method.

mod memory;

/// The traits, to bring their methods into scope where the engine calls them.
pub mod prelude {
    pub use super::{
        Contacts, Durable, FileRecords, Handshakes, Home, Messages, Outbox, RatchetSteps, RelayFacts, Sessions, Store,
    };
}

use std::future::Future;
use std::sync::atomic::AtomicBool;

use magpie_proto::{Session, Username};
use uuid::Uuid;

pub use memory::{MemoryHome, MemoryStore};

use crate::error::Result;
use crate::history::{
    Appended, Contact, Cursor, Delivery, Entry, FileRecord, History, Message, OutboxItem, OutboxKey,
    RegistrationRecord, RequestSummary, SessionSlot,
};
use crate::keystore::SecretBytes;
use crate::profile::Profile;
use crate::search::{ChatMatches, Query};

/// The ratchet sessions with each peer.
pub trait Sessions {
    /// The session in use with `peer`, moved past any send counter an earlier run may have used.
    fn load_session(&self, peer: &Username) -> Result<Option<Session>>;
    /// Stores the session with its peer, replacing the one in use.
    fn save_session(&self, session: &Session) -> Result<()>;
    /// Forgets the session with `peer`; `false` if there was none.
    fn remove_session(&self, peer: &Username) -> Result<bool>;
    /// A session a re-key replaced (for messages sealed before it), if still kept.
    fn load_previous_session(&self, peer: &Username, session_id: &[u8]) -> Result<Option<Session>>;
    /// Keeps a replaced session; the newest [`crate::history::PREVIOUS_SESSIONS`] per peer are kept.
    fn save_previous_session(&self, session: &Session) -> Result<()>;
    /// Returns once `session` may seal its next counter: never one a crash could make it seal twice.
    fn reserve_send(&self, session: &Session) -> Result<()>;
}

/// The messages of each chat, in arrival order.
pub trait Messages {
    /// A position after every message stored so far and before every later one.
    fn mark_position(&self) -> Result<u64>;
    /// Stores a message unless one with its id is stored.
    fn append_message(&self, message: &Message) -> Result<Appended>;
    /// The message with this id, if stored.
    fn get_message(&self, id: Uuid) -> Result<Option<Entry>>;
    /// Removes a message; `false` if unknown.
    fn remove_message(&self, id: Uuid) -> Result<bool>;
    /// Removes every message of the chat with `peer`; how many.
    fn clear_chat(&self, peer: &Username) -> Result<usize>;
    /// Moves messages on to `update` ("delivered" is never undone): the state each ends in, `None` if unknown.
    fn update_deliveries(&self, ids: &[Uuid], update: Delivery) -> Result<Vec<Option<Delivery>>>;
    /// The last `n` messages with `peer`, oldest first.
    fn last_messages(&self, peer: &Username, n: usize) -> Result<Vec<Entry>>;
    /// Up to `n` messages with `peer` older than `before`, oldest first.
    fn messages_before(&self, peer: &Username, before: Cursor, n: usize) -> Result<Vec<Entry>>;
    /// Up to `n` messages with `peer` newer than `after` (from the start if `None`), oldest first.
    fn messages_after(&self, peer: &Username, after: Option<Cursor>, n: usize) -> Result<Vec<Entry>>;
    /// Messages with `peer` older than `before` (all if `None`) matching `query`, newest first: up to `limit`
    /// with highlights, and the count of all; [`crate::Error::SearchCancelled`] once `cancelled` is set.
    fn search_chat(
        &self,
        peer: &Username,
        query: &Query,
        before: Option<Cursor>,
        limit: usize,
        cancelled: &AtomicBool,
    ) -> Result<ChatMatches>;

    /// [`Messages::update_deliveries`] for one message.
    fn update_delivery(&self, id: Uuid, update: Delivery) -> Result<Option<Delivery>> {
        Ok(self.update_deliveries(&[id], update)?.pop().flatten())
    }
}

/// A ratchet step stored whole: the session after it, the messages it sealed or opened, the envelope it queued, and
/// the deliveries its receipts reported, all or nothing.
pub trait RatchetSteps {
    /// Stores a run of steps of one session: the session (where `slot` says), every message (one [`Appended`]
    /// each; one whose id is stored is a duplicate and not written), one envelope, and `delivered` moved to
    /// "delivered" (the state each ends in).
    fn record_steps_delivering(
        &self,
        session: &Session,
        slot: SessionSlot,
        messages: &[Message],
        outgoing: Option<&OutboxItem>,
        delivered: &[Uuid],
    ) -> Result<(Vec<Appended>, Vec<Option<Delivery>>)>;
    /// Stores the step that sealed `outgoing` for a text that waited for the session, moving it to "sending".
    fn record_waiting_sealed(&self, session: &Session, outgoing: &OutboxItem, message_id: Uuid) -> Result<()>;

    /// One step with at most one message.
    fn record_step(
        &self,
        session: &Session,
        message: Option<&Message>,
        outgoing: Option<&OutboxItem>,
    ) -> Result<Option<Appended>> {
        let messages = message.map(std::slice::from_ref).unwrap_or_default();
        let (appended, _) = self.record_steps_delivering(session, SessionSlot::Current, messages, outgoing, &[])?;
        Ok(appended.into_iter().next())
    }
}

/// Envelopes waiting for the relay's 202, oldest first.
pub trait Outbox {
    /// Queues an envelope that advances no session (handshake steps).
    fn queue_envelope(&self, item: &OutboxItem) -> Result<()>;
    /// What waits after `after` (everything when `None`), oldest first.
    fn outbox_after(&self, after: Option<OutboxKey>) -> Result<Vec<(OutboxKey, OutboxItem)>>;
    /// Drops an item (the relay accepted it, or it can never be sent).
    fn remove_outbox(&self, key: OutboxKey) -> Result<()>;

    /// Everything waiting, oldest first.
    fn outbox(&self) -> Result<Vec<(OutboxKey, OutboxItem)>> {
        self.outbox_after(None)
    }
}

/// What is known of each peer: the pinned key and what the user decided.
pub trait Contacts {
    /// The contact `peer`, if known.
    fn contact(&self, peer: &Username) -> Result<Option<Contact>>;
    /// Every contact, by username.
    fn contacts(&self) -> Result<Vec<Contact>>;
    /// Reads `peer`'s contact, lets `change` edit, create or remove it, and stores the result, with no other
    /// contact write in between; nothing is stored when `change` fails.
    fn update_contact<T>(&self, peer: &Username, change: impl FnOnce(&mut Option<Contact>) -> Result<T>) -> Result<T>;
    /// Whether `peer`'s key changed and sending waits for the user (asked on every send).
    fn key_changed(&self, peer: &Username) -> Result<bool>;
}

/// Handshakes in progress (opaque sealed state), the ones that ended, and incoming requests' summaries.
pub trait Handshakes {
    fn save_handshake(&self, request_id: &str, state: &[u8]) -> Result<()>;
    fn load_handshake(&self, request_id: &str) -> Result<Option<SecretBytes>>;
    /// Every stored handshake: request id and state.
    fn handshakes(&self) -> Result<Vec<(String, SecretBytes)>>;
    fn remove_handshake(&self, request_id: &str) -> Result<bool>;
    /// Remembers that `request_id` ended at `now`; forgets those that ended before `forget_before`.
    fn finish_handshake(&self, request_id: &str, now: u64, forget_before: u64) -> Result<()>;
    fn handshake_finished(&self, request_id: &str) -> Result<bool>;
    fn put_request(&self, summary: &RequestSummary) -> Result<()>;
    fn remove_request(&self, request_id: Uuid) -> Result<bool>;
    fn requests(&self) -> Result<Vec<RequestSummary>>;
    /// Whether every stored incoming request has its summary.
    fn requests_indexed(&self) -> Result<bool>;
    fn mark_requests_indexed(&self) -> Result<()>;
}

/// What registration and login left: the relay, its CA pin, our certificate, the bearer token.
pub trait RelayFacts {
    fn registration(&self) -> Result<Option<RegistrationRecord>>;
    /// Stores the registration, durably.
    fn set_registration(&self, record: &RegistrationRecord) -> Result<()>;
    /// The relay's token from the last login and its expiry (Unix seconds).
    fn relay_login(&self) -> Result<Option<(zeroize::Zeroizing<String>, u64)>>;
    fn set_relay_login(&self, token: &str, expires_at: u64) -> Result<()>;
}

/// Where each file message's transfer stands.
pub trait FileRecords {
    /// Stores a file's record, replacing the one with its message id.
    fn put_file_record(&self, record: &FileRecord) -> Result<()>;
    /// The record of the file message `message_id`, if it is one.
    fn file_record(&self, message_id: Uuid) -> Result<Option<FileRecord>>;
    /// Every file's record.
    fn file_records(&self) -> Result<Vec<FileRecord>>;
    /// Forgets a file's record; `false` if there was none.
    fn remove_file_record(&self, message_id: Uuid) -> Result<bool>;
}

/// Making what was written durable.
pub trait Durable {
    /// Everything written so far is on disk when this returns; the bytes written.
    fn flush(&self) -> Result<usize>;
    /// [`Durable::flush`] without blocking the async worker: what the engine awaits before anything that
    /// depends on a write leaves the process.
    fn flush_async(&self) -> impl Future<Output = Result<usize>> + Send;
}

/// Everything the engine keeps.
pub trait Store:
    Sessions
    + Messages
    + RatchetSteps
    + Outbox
    + Contacts
    + Handshakes
    + FileRecords
    + RelayFacts
    + Durable
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: Sessions
        + Messages
        + RatchetSteps
        + Outbox
        + Contacts
        + Handshakes
        + FileRecords
        + RelayFacts
        + Durable
        + Send
        + Sync
        + 'static
{
}

/// Where a client lives: who it is and what it keeps. A [`Profile`] on disk, or a [`MemoryHome`] for tests.
pub trait Home: std::fmt::Debug + Send + Sync + 'static {
    type Store: Store;
    fn username(&self) -> &Username;
    fn store(&self) -> &Self::Store;
    /// Where files' blobs are kept; `None` where files are not sent or received (the engine's unit tests).
    fn files_dir(&self) -> Option<std::path::PathBuf> {
        None
    }
}

impl Home for Profile {
    type Store = History;

    fn username(&self) -> &Username {
        Profile::username(self)
    }

    fn store(&self) -> &History {
        self.history()
    }

    fn files_dir(&self) -> Option<std::path::PathBuf> {
        Some(self.dir().join("files"))
    }
}

// The sled history keeps each promise with its own method of the same name (see `crate::history`).

impl Sessions for History {
    fn load_session(&self, peer: &Username) -> Result<Option<Session>> {
        History::load_session(self, peer)
    }
    fn save_session(&self, session: &Session) -> Result<()> {
        History::save_session(self, session)
    }
    fn remove_session(&self, peer: &Username) -> Result<bool> {
        History::remove_session(self, peer)
    }
    fn load_previous_session(&self, peer: &Username, session_id: &[u8]) -> Result<Option<Session>> {
        History::load_previous_session(self, peer, session_id)
    }
    fn save_previous_session(&self, session: &Session) -> Result<()> {
        History::save_previous_session(self, session)
    }
    fn reserve_send(&self, session: &Session) -> Result<()> {
        History::reserve_send(self, session)
    }
}

impl Messages for History {
    fn mark_position(&self) -> Result<u64> {
        History::mark_position(self)
    }
    fn append_message(&self, message: &Message) -> Result<Appended> {
        History::append_message(self, message)
    }
    fn get_message(&self, id: Uuid) -> Result<Option<Entry>> {
        History::get_message(self, id)
    }
    fn remove_message(&self, id: Uuid) -> Result<bool> {
        History::remove_message(self, id)
    }
    fn clear_chat(&self, peer: &Username) -> Result<usize> {
        History::clear_chat(self, peer)
    }
    fn update_deliveries(&self, ids: &[Uuid], update: Delivery) -> Result<Vec<Option<Delivery>>> {
        History::update_deliveries(self, ids, update)
    }
    fn last_messages(&self, peer: &Username, n: usize) -> Result<Vec<Entry>> {
        History::last_messages(self, peer, n)
    }
    fn messages_before(&self, peer: &Username, before: Cursor, n: usize) -> Result<Vec<Entry>> {
        History::messages_before(self, peer, before, n)
    }
    fn messages_after(&self, peer: &Username, after: Option<Cursor>, n: usize) -> Result<Vec<Entry>> {
        History::messages_after(self, peer, after, n)
    }
    fn search_chat(
        &self,
        peer: &Username,
        query: &Query,
        before: Option<Cursor>,
        limit: usize,
        cancelled: &AtomicBool,
    ) -> Result<ChatMatches> {
        History::search_chat(self, peer, query, before, limit, cancelled)
    }
}

impl RatchetSteps for History {
    fn record_steps_delivering(
        &self,
        session: &Session,
        slot: SessionSlot,
        messages: &[Message],
        outgoing: Option<&OutboxItem>,
        delivered: &[Uuid],
    ) -> Result<(Vec<Appended>, Vec<Option<Delivery>>)> {
        History::record_steps_delivering(self, session, slot, messages, outgoing, delivered)
    }
    fn record_waiting_sealed(&self, session: &Session, outgoing: &OutboxItem, message_id: Uuid) -> Result<()> {
        History::record_waiting_sealed(self, session, outgoing, message_id)
    }
}

impl Outbox for History {
    fn queue_envelope(&self, item: &OutboxItem) -> Result<()> {
        History::queue_envelope(self, item)
    }
    fn outbox_after(&self, after: Option<OutboxKey>) -> Result<Vec<(OutboxKey, OutboxItem)>> {
        History::outbox_after(self, after)
    }
    fn remove_outbox(&self, key: OutboxKey) -> Result<()> {
        History::remove_outbox(self, key)
    }
}

impl Contacts for History {
    fn contact(&self, peer: &Username) -> Result<Option<Contact>> {
        History::contact(self, peer)
    }
    fn contacts(&self) -> Result<Vec<Contact>> {
        History::contacts(self)
    }
    fn update_contact<T>(&self, peer: &Username, change: impl FnOnce(&mut Option<Contact>) -> Result<T>) -> Result<T> {
        History::update_contact(self, peer, change)
    }
    fn key_changed(&self, peer: &Username) -> Result<bool> {
        History::key_changed(self, peer)
    }
}

impl Handshakes for History {
    fn save_handshake(&self, request_id: &str, state: &[u8]) -> Result<()> {
        History::save_handshake(self, request_id, state)
    }
    fn load_handshake(&self, request_id: &str) -> Result<Option<SecretBytes>> {
        History::load_handshake(self, request_id)
    }
    fn handshakes(&self) -> Result<Vec<(String, SecretBytes)>> {
        History::handshakes(self)
    }
    fn remove_handshake(&self, request_id: &str) -> Result<bool> {
        History::remove_handshake(self, request_id)
    }
    fn finish_handshake(&self, request_id: &str, now: u64, forget_before: u64) -> Result<()> {
        History::finish_handshake(self, request_id, now, forget_before)
    }
    fn handshake_finished(&self, request_id: &str) -> Result<bool> {
        History::handshake_finished(self, request_id)
    }
    fn put_request(&self, summary: &RequestSummary) -> Result<()> {
        History::put_request(self, summary)
    }
    fn remove_request(&self, request_id: Uuid) -> Result<bool> {
        History::remove_request(self, request_id)
    }
    fn requests(&self) -> Result<Vec<RequestSummary>> {
        History::requests(self)
    }
    fn requests_indexed(&self) -> Result<bool> {
        History::requests_indexed(self)
    }
    fn mark_requests_indexed(&self) -> Result<()> {
        History::mark_requests_indexed(self)
    }
}

impl FileRecords for History {
    fn put_file_record(&self, record: &FileRecord) -> Result<()> {
        History::put_file_record(self, record)
    }
    fn file_record(&self, message_id: Uuid) -> Result<Option<FileRecord>> {
        History::file_record(self, message_id)
    }
    fn file_records(&self) -> Result<Vec<FileRecord>> {
        History::file_records(self)
    }
    fn remove_file_record(&self, message_id: Uuid) -> Result<bool> {
        History::remove_file_record(self, message_id)
    }
}

impl RelayFacts for History {
    fn registration(&self) -> Result<Option<RegistrationRecord>> {
        History::registration(self)
    }
    fn set_registration(&self, record: &RegistrationRecord) -> Result<()> {
        History::set_registration(self, record)
    }
    fn relay_login(&self) -> Result<Option<(zeroize::Zeroizing<String>, u64)>> {
        History::relay_login(self)
    }
    fn set_relay_login(&self, token: &str, expires_at: u64) -> Result<()> {
        History::set_relay_login(self, token, expires_at)
    }
}

impl Durable for History {
    fn flush(&self) -> Result<usize> {
        History::flush(self)
    }
    fn flush_async(&self) -> impl Future<Output = Result<usize>> + Send {
        History::flush_async(self)
    }
}
