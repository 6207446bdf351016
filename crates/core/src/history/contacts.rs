//! Contacts: the pinned key of each peer and what the user decided about it.

use magpie_proto::{Fingerprint, Username};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{History, CONTACTS};
use crate::error::{Error, Result};

/// A peer we have a chat with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Their username.
    pub username: Username,
    /// The SPKI fingerprint pinned at the first handshake.
    pub fingerprint: Fingerprint,
    /// Their certificate as verified at pinning, PEM (for the safety number and the identity details).
    #[serde(default)]
    pub certificate_pem: Option<String>,
    /// The user compared safety numbers.
    pub verified: bool,
    /// The directory now shows another key: the chat is blocked until the user accepts it or verifies again.
    pub key_changed: bool,
    /// The new key the directory or a request presented, while `key_changed` is set.
    #[serde(default)]
    pub pending_fingerprint: Option<Fingerprint>,
    /// The certificate of that new key, PEM, when it was seen.
    #[serde(default)]
    pub pending_certificate_pem: Option<String>,
    /// Last message or handshake, Unix seconds.
    pub last_activity: Option<u64>,
    /// The cursor of the last message the user has seen in this chat.
    #[serde(default)]
    pub read_up_to: Option<u64>,
    /// Where re-keys installed new session keys, oldest first: each a position from [`History::mark_position`],
    /// after every message before it and before every message after it. The newest [`REKEY_MARKS`] are kept.
    #[serde(default)]
    pub rekeys: Vec<u64>,
    /// What was discarded from this peer because it did not verify, since the user last dismissed the notice.
    #[serde(default)]
    pub discarded: Option<Discarded>,
    /// The session was set aside because this history is a restored older copy: a new handshake is due before
    /// anything is sealed for this peer again ([`History::set_sessions_aside`]).
    #[serde(default)]
    pub rehandshake: bool,
}

/// Envelopes from a peer that were discarded because they did not verify: counted for the chat's security notice,
/// never kept (so a flood of forgeries costs one small record, and no forged content is ever shown).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discarded {
    /// Messages (texts, receipts) that did not open.
    pub messages: u64,
    /// Handshake steps that did not verify, or that answered a handshake we never had.
    pub steps: u64,
    /// When the first of them was discarded, Unix seconds.
    pub since: u64,
    /// When the last was.
    pub last: u64,
}

/// How many re-key positions a contact keeps (one per 1,000 messages or 7 days: years of a busy chat).
pub const REKEY_MARKS: usize = 256;

impl Contact {
    /// A newly pinned, unverified contact.
    pub fn new(username: Username, fingerprint: Fingerprint) -> Self {
        Self {
            username,
            fingerprint,
            certificate_pem: None,
            verified: false,
            key_changed: false,
            pending_fingerprint: None,
            pending_certificate_pem: None,
            last_activity: None,
            read_up_to: None,
            rekeys: Vec::new(),
            discarded: None,
            rehandshake: false,
        }
    }

    /// The key that verifying this contact now would pin: during a key change the new one, else the pinned one.
    /// `None` during a key change whose new key is unknown.
    pub fn key_to_verify(&self) -> Option<Fingerprint> {
        match self.key_changed {
            true => self.pending_fingerprint,
            false => Some(self.fingerprint),
        }
    }

    /// Pins the key of the key change under way (the user accepted or verified it) and ends the change; `false`
    /// if there is none.
    pub fn adopt_pending_key(&mut self, verified: bool) -> bool {
        let Some(new) = self.pending_fingerprint.take() else {
            return false;
        };
        self.fingerprint = new;
        self.certificate_pem = self.pending_certificate_pem.take();
        self.key_changed = false;
        self.verified = verified;
        true
    }

    /// Records a re-key at `position`, dropping the oldest beyond [`REKEY_MARKS`].
    pub fn mark_rekey(&mut self, position: u64) {
        self.rekeys.push(position);
        let excess = self.rekeys.len().saturating_sub(REKEY_MARKS);
        self.rekeys.drain(..excess);
    }
}

impl History {
    /// The contact `peer`, if known.
    pub fn contact(&self, peer: &Username) -> Result<Option<Contact>> {
        let key = self.chat_id(peer)?;
        self.contacts
            .get(key)?
            .map(|sealed| self.open_contact(&key, &sealed))
            .transpose()
    }

    /// Stores a contact, replacing what was known about that username.
    pub fn put_contact(&self, contact: &Contact) -> Result<()> {
        let mut cache = self.key_changed_cache()?;
        self.store_contact(&mut cache, contact)
    }

    /// Reads `peer`'s contact (`None` for a stranger), lets `change` edit, create or keep it, and stores what it
    /// left if that differs, all under the contacts' lock: two writers (a key change flagged while a text moves
    /// the last activity, say) never lose each other's change, and a check made in `change` still holds when
    /// its result is stored. Nothing is stored when `change` fails.
    pub fn update_contact<T>(
        &self,
        peer: &Username,
        change: impl FnOnce(&mut Option<Contact>) -> Result<T>,
    ) -> Result<T> {
        let mut cache = self.key_changed_cache()?;
        let before = self.contact(peer)?;
        let mut after = before.clone();
        let out = change(&mut after)?;
        match after {
            Some(contact) if Some(&contact) != before.as_ref() => {
                if &contact.username != peer {
                    return Err(Error::HistoryCorrupt { tree: CONTACTS });
                }
                self.store_contact(&mut cache, &contact)?;
            }
            Some(_) => {}
            None if before.is_some() => {
                self.contacts.remove(self.chat_id(peer)?)?;
                cache.remove(&self.chat_id(peer)?);
            }
            None => {}
        }
        Ok(out)
    }

    fn store_contact(&self, cache: &mut std::collections::HashMap<[u8; 32], bool>, contact: &Contact) -> Result<()> {
        let key = self.chat_id(&contact.username)?;
        let plain = Zeroizing::new(serde_json::to_vec(contact).map_err(|_| Error::Crypto("encoding failed"))?);
        self.contacts.insert(key, self.sealer.seal(CONTACTS, &key, &plain)?)?;
        // Under the lock `key_changed` reads through: it never keeps a value older than this.
        cache.insert(key, contact.key_changed);
        Ok(())
    }

    /// Whether `peer`'s key changed and sending to them waits for the user (false for strangers). Asked on every
    /// send, so kept in memory beside the contacts.
    pub fn key_changed(&self, peer: &Username) -> Result<bool> {
        let key = self.chat_id(peer)?;
        let mut cache = self.key_changed_cache()?;
        if let Some(changed) = cache.get(&key) {
            return Ok(*changed);
        }
        let changed = self.contact(peer)?.is_some_and(|c| c.key_changed);
        cache.insert(key, changed);
        Ok(changed)
    }

    /// Every contact, by username.
    pub fn contacts(&self) -> Result<Vec<Contact>> {
        let mut out = Vec::new();
        for item in &self.contacts {
            let (key, sealed) = item?;
            out.push(self.open_contact(&key, &sealed)?);
        }
        out.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(out)
    }

    /// Forgets a contact (not its messages); `false` if unknown.
    pub fn remove_contact(&self, peer: &Username) -> Result<bool> {
        let key = self.chat_id(peer)?;
        let mut cache = self.key_changed_cache()?;
        let removed = self.contacts.remove(key)?.is_some();
        cache.remove(&key);
        Ok(removed)
    }

    /// For a history that is an older copy (a backup or snapshot put back): every current session becomes a
    /// replaced one, which opens late messages and seals nothing, and its contact is marked for a new handshake.
    /// The newer copy may have sealed with counters this one's sessions would use next; a new session shares none.
    /// Idempotent. Returns how many sessions were set aside.
    pub fn set_sessions_aside(&self) -> Result<usize> {
        let mut set_aside = 0;
        for contact in self.contacts()? {
            let peer = &contact.username;
            let Some(session) = self.load_session(peer)? else {
                continue;
            };
            // The mark first: a crash after it leaves the session to set aside again at the next open.
            self.update_contact(peer, |slot| {
                if let Some(contact) = slot {
                    contact.rehandshake = true;
                }
                Ok(())
            })?;
            self.save_previous_session(&session.into_receive_only())?;
            self.remove_session(peer)?;
            set_aside += 1;
        }
        self.flush()?;
        Ok(set_aside)
    }

    fn key_changed_cache(&self) -> Result<crate::lock_order::Guard<'_, std::collections::HashMap<[u8; 32], bool>>> {
        self.key_changed.lock().map_err(|_| Error::Poisoned)
    }

    fn open_contact(&self, key: &[u8], sealed: &[u8]) -> Result<Contact> {
        let plain = self.sealer.open(CONTACTS, key, sealed)?;
        let contact: Contact = serde_json::from_slice(&plain).map_err(|_| Error::HistoryCorrupt { tree: CONTACTS })?;
        // A value sealed for one key cannot be moved, but check the name anyway: it is what the key was made of.
        if self.chat_id(&contact.username)?.as_slice() != key {
            return Err(Error::HistoryCorrupt { tree: CONTACTS });
        }
        Ok(contact)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests say what must hold by panicking")]
    use super::*;

    /// Contacts stored before `blocked` was dropped (it was never set nor enforced) still open.
    #[test]
    fn a_contact_stored_with_the_old_blocked_field_still_opens() {
        let mut stored = serde_json::to_value(Contact::new(
            Username::canonical("bob").unwrap(),
            Fingerprint::from_bytes([1; 32]),
        ))
        .unwrap();
        stored["blocked"] = serde_json::Value::Bool(false);
        let contact: Contact = serde_json::from_value(stored).unwrap();
        assert_eq!(contact.username.as_str(), "bob");
        assert_eq!(contact.discarded, None);
    }
}
