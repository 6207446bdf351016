//! An established session: per-direction hash ratchets, sealing and opening, replay and window checks,
//! the re-key signal, and state export/import.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::chain::Chain;
use crate::crypto::TAG_LEN;
use crate::error::{malformed, Error, Result};
use crate::handshake::HandshakeReport;
use crate::identity::Username;
use crate::keys::{open_in_place, ratchet_step, SessionKeys};
use crate::plaintext::Plaintext;
use crate::secret::{ChainKey, KeyIn, MessageKey, SecretB64, SecretBytes};
use crate::verify::{unix_secs, Fingerprint};
use crate::wire::{SealedMessage, PROTOCOL_VERSION};

/// How far ahead a message may be, and how many skipped keys are kept.
pub const MAX_SKIP: u64 = 1_000;
/// Messages (sent + received) after which [`Session::needs_rekey`] says yes.
pub const REKEY_AFTER_MESSAGES: u64 = 1_000;
/// Session age after which [`Session::needs_rekey`] says yes.
pub const REKEY_AFTER_SECS: u64 = 7 * 24 * 3600;
/// Messages (sent + received) after which a session seals no more texts ([`Session::exhausted`]): twice the
/// re-key point, room for a re-key to finish.
pub const SESSION_MAX_MESSAGES: u64 = 2 * REKEY_AFTER_MESSAGES;
/// Session age after which it seals no more texts.
pub const SESSION_MAX_SECS: u64 = 2 * REKEY_AFTER_SECS;
/// Largest exported session state we import.
pub const MAX_STATE_LEN: usize = 512 * 1024;

/// Which side of the handshake this party was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sent the ChatRequest.
    Initiator,
    /// Accepted it.
    Responder,
}

/// An established end-to-end session with one peer.
///
/// `Clone` gives a copy to advance and commit only if what follows succeeds (every copy's keys are wiped on drop).
#[derive(Clone)]
pub struct Session {
    session_id: [u8; 16],
    me: Username,
    peer: Username,
    role: Role,
    peer_fingerprint: Fingerprint,
    /// `None` once replaced ([`Session::into_receive_only`]): it opens late messages and seals nothing.
    send_chain: Option<Chain>,
    send_n: u64,
    recv_chain: Chain,
    recv_next: u64,
    skipped: BTreeMap<u64, MessageKey>,
    established_at: u64,
    sent: u64,
    received: u64,
    report: Option<HandshakeReport>,
}

impl Session {
    pub(crate) fn new(
        keys: &SessionKeys,
        role: Role,
        me: Username,
        peer: Username,
        peer_fingerprint: Fingerprint,
        now: SystemTime,
        report: HandshakeReport,
    ) -> Self {
        let (send_chain, recv_chain) = match role {
            Role::Initiator => (keys.initiator_chain.clone(), keys.responder_chain.clone()),
            Role::Responder => (keys.responder_chain.clone(), keys.initiator_chain.clone()),
        };
        Self {
            session_id: keys.session_id,
            me,
            peer,
            role,
            peer_fingerprint,
            send_chain: Some(Chain::new(send_chain)),
            send_n: 0,
            recv_chain: Chain::new(recv_chain),
            recv_next: 0,
            skipped: BTreeMap::new(),
            established_at: unix_secs(now),
            sent: 0,
            received: 0,
            report: Some(report),
        }
    }

    /// The public session id.
    pub fn session_id(&self) -> &[u8; 16] {
        &self.session_id
    }

    /// Our username.
    pub fn me(&self) -> &Username {
        &self.me
    }

    /// The peer's username.
    pub fn peer(&self) -> &Username {
        &self.peer
    }

    /// Our role in the handshake.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The SPKI fingerprint the peer authenticated with.
    pub fn peer_fingerprint(&self) -> Fingerprint {
        self.peer_fingerprint
    }

    /// When the handshake finished, Unix seconds.
    pub fn established_at(&self) -> u64 {
        self.established_at
    }

    /// Messages sealed so far.
    pub fn sent_count(&self) -> u64 {
        self.sent
    }

    /// Messages opened so far.
    pub fn received_count(&self) -> u64 {
        self.received
    }

    /// Skipped message keys currently held (at most [`MAX_SKIP`]).
    pub fn skipped_keys(&self) -> usize {
        self.skipped.len()
    }

    /// The public record of the handshake that made this session (absent after [`Session::import`]).
    pub fn handshake_report(&self) -> Option<&HandshakeReport> {
        self.report.as_ref()
    }

    /// True after [`REKEY_AFTER_MESSAGES`] messages or [`REKEY_AFTER_SECS`]: the client should start a
    /// fresh handshake (post-compromise recovery).
    pub fn needs_rekey(&self, now: SystemTime) -> bool {
        let age = unix_secs(now).saturating_sub(self.established_at);
        self.sent.saturating_add(self.received) >= REKEY_AFTER_MESSAGES || age >= REKEY_AFTER_SECS
    }

    /// True after [`SESSION_MAX_MESSAGES`] messages or [`SESSION_MAX_SECS`]: the re-key [`Session::needs_rekey`]
    /// asked for has not happened, and texts should wait for it rather than be sealed with this session.
    pub fn exhausted(&self, now: SystemTime) -> bool {
        let age = unix_secs(now).saturating_sub(self.established_at);
        self.sent.saturating_add(self.received) >= SESSION_MAX_MESSAGES || age >= SESSION_MAX_SECS
    }

    /// The counter the next sealed message will carry.
    pub fn next_send_counter(&self) -> u64 {
        self.send_n
    }

    /// Moves our chain on to counter `n` without sealing anything, so no key below `n` is ever used from this
    /// state. For a client that may have sealed with those counters before losing its latest state in a crash:
    /// sealing with one again would reuse its key and nonce. The peer keeps the keys passed over as it does for
    /// messages lost in transit; a jump beyond [`MAX_SKIP`] is refused, as the peer would refuse what follows it.
    pub fn skip_sends_to(&mut self, n: u64) -> Result<()> {
        let Some(gap) = n.checked_sub(self.send_n) else {
            return Err(malformed("cannot move the send counter back"));
        };
        if gap > MAX_SKIP {
            return Err(Error::TooFarAhead);
        }
        let Some(send_chain) = self.send_chain.as_mut() else {
            // Nothing is ever sealed from a receive-only state.
            self.send_n = n;
            return Ok(());
        };
        let mut chain = send_chain.key().clone();
        for _ in 0..gap {
            chain = ratchet_step(&chain)?.1;
        }
        send_chain.reset(chain);
        self.send_n = n;
        Ok(())
    }

    /// The session as a replaced one keeps it: its sending chain is dropped (and wiped), so it can only open late
    /// messages from the peer; [`Session::seal`] then fails with [`Error::ReceiveOnly`].
    pub fn into_receive_only(mut self) -> Self {
        self.send_chain = None;
        self
    }

    /// Whether this session can still seal ([`Session::into_receive_only`] makes it unable to).
    pub fn can_send(&self) -> bool {
        self.send_chain.is_some()
    }

    /// Encrypts the next message of our chain; its key is used once and dropped.
    pub fn seal(&mut self, plaintext: &Plaintext) -> Result<SealedMessage> {
        let bytes = plaintext.encode_with_room(TAG_LEN)?;
        let n = self.send_n;
        let next_n = n.checked_add(1).ok_or_else(|| malformed("send counter exhausted"))?;
        let send_chain = self.send_chain.as_mut().ok_or(Error::ReceiveOnly)?;
        let ciphertext = send_chain.seal(&self.session_id, self.me.as_str(), n, bytes)?;
        self.send_n = next_n;
        self.sent = self.sent.saturating_add(1);
        Ok(SealedMessage {
            v: PROTOCOL_VERSION,
            session_id: self.session_id.to_vec(),
            from: self.me.as_str().to_owned(),
            n,
            ciphertext,
        })
    }

    /// Decrypts a message from the peer. State changes only if the message authenticates, so a forged or
    /// replayed message leaves the session as it was.
    pub fn open(&mut self, msg: &SealedMessage) -> Result<Plaintext> {
        if msg.v != PROTOCOL_VERSION {
            return Err(Error::UnsupportedVersion(msg.v));
        }
        if msg.session_id.as_slice() != self.session_id.as_slice() {
            return Err(Error::WrongSession);
        }
        if msg.from != self.peer.as_str() {
            // Includes our own messages reflected back at us.
            return Err(Error::WrongPeer);
        }
        let n = msg.n;
        let plain = if n < self.recv_next {
            let mk = match self.skipped.get(&n) {
                Some(mk) => mk,
                None if n < self.window_floor() => return Err(Error::OutOfOrder),
                None => return Err(Error::Replay),
            };
            let plain = open_in_place(mk, &self.session_id, &msg.from, n, msg.ciphertext.clone())?;
            self.skipped.remove(&n);
            plain
        } else if n == self.recv_next {
            let plain = self
                .recv_chain
                .open(&self.session_id, &msg.from, n, msg.ciphertext.clone())?;
            self.recv_next = n.saturating_add(1);
            self.drop_keys_below_the_window();
            plain
        } else {
            let gap = n - self.recv_next;
            if gap > MAX_SKIP {
                return Err(Error::TooFarAhead);
            }
            // Advance a copy of the chain; commit only after the tag verifies.
            let mut chain = self.recv_chain.key().clone();
            let mut new_skipped = Vec::new();
            for i in self.recv_next..n {
                let (mk, next) = ratchet_step(&chain)?;
                new_skipped.push((i, mk));
                chain = next;
            }
            let (mk, next) = ratchet_step(&chain)?;
            let plain = open_in_place(&mk, &self.session_id, &msg.from, n, msg.ciphertext.clone())?;
            self.skipped.extend(new_skipped);
            self.recv_chain.reset(next);
            self.recv_next = n.saturating_add(1);
            self.drop_keys_below_the_window();
            plain
        };
        self.received = self.received.saturating_add(1);
        Plaintext::decode_owned(plain)
    }

    fn drop_keys_below_the_window(&mut self) {
        let floor = self.window_floor();
        while self.skipped.first_key_value().is_some_and(|(first, _)| *first < floor) {
            self.skipped.pop_first();
        }
    }

    /// Keys are kept for messages at most [`MAX_SKIP`] behind the newest one received (`recv_next - 1`),
    /// so at most `MAX_SKIP` of them exist; anything older is `OutOfOrder`.
    fn window_floor(&self) -> u64 {
        self.recv_next.saturating_sub(MAX_SKIP + 1)
    }

    /// Serializes the whole state (chain keys included) for the client to store encrypted. The bytes are
    /// secret: they are returned in wiped memory.
    pub fn export(&self) -> Result<SecretBytes> {
        let state = StateRef {
            v: PROTOCOL_VERSION,
            session_id: crate::encoding::b64(&self.session_id),
            me: &self.me,
            peer: &self.peer,
            role: self.role,
            peer_fingerprint: self.peer_fingerprint,
            send_chain: self
                .send_chain
                .as_ref()
                .map(|chain| SecretB64(chain.key().expose_secret())),
            send_n: self.send_n,
            recv_chain: SecretB64(self.recv_chain.key().expose_secret()),
            recv_next: self.recv_next,
            skipped: self
                .skipped
                .iter()
                .map(|(n, mk)| (*n, SecretB64(mk.expose_secret())))
                .collect(),
            established_at: self.established_at,
            sent: self.sent,
            received: self.received,
        };
        // Pre-sized so serialization does not reallocate and leave copies behind.
        let mut out = Vec::with_capacity(1024 + 64 * self.skipped.len());
        serde_json::to_writer(&mut out, &state).map_err(|e| malformed(e.to_string()))?;
        Ok(SecretBytes::new(out))
    }

    /// Restores a state made by [`Session::export`], checking its invariants.
    pub fn import(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_STATE_LEN {
            return Err(malformed("session state too large"));
        }
        let s: StateOwned = serde_json::from_slice(bytes).map_err(|_| malformed("session state"))?;
        if s.v != PROTOCOL_VERSION {
            return Err(Error::UnsupportedVersion(s.v));
        }
        let id = crate::encoding::b64_decode(&s.session_id).ok_or_else(|| malformed("session id"))?;
        let session_id: [u8; 16] = id.try_into().map_err(|_| malformed("session id must be 16 bytes"))?;
        let floor = s.recv_next.saturating_sub(MAX_SKIP + 1);
        let mut skipped = BTreeMap::new();
        for (n, key) in s.skipped {
            if n < floor || n >= s.recv_next || skipped.insert(n, key.0).is_some() {
                return Err(malformed("skipped key outside the window"));
            }
        }
        if s.me == s.peer {
            return Err(malformed("session with oneself"));
        }
        Ok(Self {
            session_id,
            me: s.me,
            peer: s.peer,
            role: s.role,
            peer_fingerprint: s.peer_fingerprint,
            send_chain: s
                .send_chain
                .map(|key| Chain::new(ChainKey::from_bytes(*key.0.expose_secret()))),
            send_n: s.send_n,
            recv_chain: Chain::new(ChainKey::from_bytes(*s.recv_chain.0.expose_secret())),
            recv_next: s.recv_next,
            skipped,
            established_at: s.established_at,
            sent: s.sent,
            received: s.received,
            report: None,
        })
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("session_id", &crate::encoding::hex(&self.session_id))
            .field("me", &self.me)
            .field("peer", &self.peer)
            .field("role", &self.role)
            .field("peer_fingerprint", &self.peer_fingerprint)
            .field("send_chain", &self.send_chain.as_ref().map(Chain::key))
            .field("send_n", &self.send_n)
            .field("recv_chain", self.recv_chain.key())
            .field("recv_next", &self.recv_next)
            .field("skipped_keys", &self.skipped.len())
            .field("established_at", &self.established_at)
            .finish()
    }
}

#[derive(Serialize)]
struct StateRef<'a> {
    v: u32,
    session_id: String,
    me: &'a Username,
    peer: &'a Username,
    role: Role,
    peer_fingerprint: Fingerprint,
    send_chain: Option<SecretB64<'a>>,
    send_n: u64,
    recv_chain: SecretB64<'a>,
    recv_next: u64,
    skipped: Vec<(u64, SecretB64<'a>)>,
    established_at: u64,
    sent: u64,
    received: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateOwned {
    v: u32,
    session_id: String,
    me: Username,
    peer: Username,
    role: Role,
    peer_fingerprint: Fingerprint,
    send_chain: Option<KeyIn<ChainKey>>,
    send_n: u64,
    recv_chain: KeyIn<ChainKey>,
    recv_next: u64,
    skipped: Vec<(u64, KeyIn<MessageKey>)>,
    established_at: u64,
    sent: u64,
    received: u64,
}
