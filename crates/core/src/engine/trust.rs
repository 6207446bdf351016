//! The client's trust policy: pinned keys, key changes, and what the user compared.
//!
//! The relay runs the CA, so a certificate that chains to it proves only what the relay says. What protects the
//! user is the pin (the key first seen for a name) and the safety number compared out of band. The rules:
//! - a key other than the pinned one is never pinned by the engine: it raises a key change (banner, sending
//!   paused) and waits for the user;
//! - the user's "verified" and "accept new key" name the fingerprint that was on screen, and are refused when it is
//!   not the key they would pin now.

use crate::store::prelude::*;
use std::time::SystemTime;

use magpie_proto::{Certificate, Fingerprint, PinCheck, SafetyNumber, Username};
use uuid::Uuid;

use super::events::Event;
use super::Client;
use crate::error::{Error, Result};
use crate::history::Contact;

/// A safety number and the key it was computed with: what the user compares, and what verifying it pins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SafetyCheck {
    /// The number (12 groups of 5 digits).
    pub number: SafetyNumber,
    /// The peer's key in that number: pass it back to [`Client::mark_verified`].
    pub fingerprint: Fingerprint,
}

impl<H: Home> Client<H> {
    /// The safety number with `peer`, from both certificates' keys. During a key change it is the new key's: the
    /// one to compare before accepting it.
    pub fn safety_number(&self, peer: &Username) -> Result<SafetyCheck> {
        let contact = self
            .store()
            .contact(peer)?
            .ok_or_else(|| Error::NoSession(peer.to_string()))?;
        let (pem, fingerprint) = match (
            contact.key_changed,
            contact.pending_certificate_pem,
            contact.pending_fingerprint,
        ) {
            (true, Some(pending), Some(fingerprint)) => (pending, fingerprint),
            _ => (
                contact
                    .certificate_pem
                    .ok_or_else(|| Error::NoSession(peer.to_string()))?,
                contact.fingerprint,
            ),
        };
        let theirs = Certificate::from_pem(pem.as_bytes())?;
        if theirs.spki_fingerprint()? != fingerprint {
            return Err(Error::HistoryCorrupt {
                tree: crate::history::CONTACTS,
            });
        }
        let number =
            SafetyNumber::from_certificates((self.username(), self.inner.credential.certificate()), (peer, &theirs))?;
        Ok(SafetyCheck { number, fingerprint })
    }

    /// The user compared the safety number of the key `shown` with `peer`. During a key change that number is the
    /// new key's, so verifying it also accepts that key. Refused ([`Error::FingerprintMismatch`]) when `shown` is
    /// not the key verifying would pin now (it changed while the number was on screen).
    pub async fn mark_verified(&self, peer: &Username, shown: &Fingerprint) -> Result<Contact> {
        let adopted = self.store().update_contact(peer, |slot| {
            let contact = slot.as_mut().ok_or_else(|| Error::NoSession(peer.to_string()))?;
            check_shown(peer, shown, contact.key_to_verify())?;
            match contact.key_changed {
                true => Ok(contact.adopt_pending_key(true)),
                false => {
                    contact.verified = true;
                    Ok(false)
                }
            }
        })?;
        if adopted {
            self.after_new_key(peer).await?;
        }
        self.store()
            .contact(peer)?
            .ok_or_else(|| Error::NoSession(peer.to_string()))
    }

    /// The user accepts `peer`'s new key `shown` without comparing numbers (the chat becomes unverified): the old
    /// session is dropped and a fresh handshake starts with the new key, unless the peer's own request with that
    /// key waits to be accepted. Returns the new request's id, if one was sent. Refused
    /// ([`Error::FingerprintMismatch`]) when `shown` is not the new key; accepting a key already pinned does
    /// nothing.
    pub async fn accept_new_key(&self, peer: &Username, shown: &Fingerprint) -> Result<Option<Uuid>> {
        let adopted = self.store().update_contact(peer, |slot| {
            let contact = slot.as_mut().ok_or_else(|| Error::NoSession(peer.to_string()))?;
            if !contact.key_changed && &contact.fingerprint == shown {
                return Ok(false);
            }
            check_shown(peer, shown, contact.pending_fingerprint.filter(|_| contact.key_changed))?;
            Ok(contact.adopt_pending_key(false))
        })?;
        match adopted {
            true => self.after_new_key(peer).await,
            false => Ok(None),
        }
    }

    /// After the user took a new key for `peer`: the old session goes; a request that waited on the change (with
    /// that key) can now be accepted, otherwise we ask afresh.
    async fn after_new_key(&self, peer: &Username) -> Result<Option<Uuid>> {
        self.sessions()?.remove(peer);
        self.store().remove_session(peer)?;
        if self
            .incoming_requests()?
            .iter()
            .any(|r| r.peer == peer.as_str() && !r.key_changed)
        {
            return Ok(None);
        }
        self.request(peer).await.map(Some)
    }

    /// Raises a key change for `peer`: the pinned key `old` and the presented `new` (its certificate, when known)
    /// differ. The chat shows a banner and sending waits until the user accepts or verifies the new key. The pin
    /// and `verified` (which is about the pinned key) stay as they are.
    pub(super) fn flag_key_change(
        &self,
        peer: &Username,
        old: Fingerprint,
        new: Fingerprint,
        certificate: Option<&Certificate>,
    ) -> Result<()> {
        let certificate_pem = certificate.map(super::pem_string).transpose()?;
        self.store().update_contact(peer, |slot| {
            if let Some(contact) = slot {
                contact.key_changed = true;
                contact.pending_fingerprint = Some(new);
                contact.pending_certificate_pem = certificate_pem;
            }
            Ok(())
        })?;
        // Texts that waited for a session are never sealed for a key the user has not taken.
        self.fail_all_waiting(peer)?;
        self.emit(Event::KeyChanged {
            peer: peer.to_string(),
            pinned: old.to_hex(),
            presented: new.to_hex(),
        });
        Ok(())
    }

    /// Looks `peer` up in the directory and compares the key with the pin: a different key blocks the chat
    /// ([`Error::KeyChanged`]). Also how a face checks its contacts after connecting.
    pub async fn check_key(&self, peer: &Username) -> Result<()> {
        let chain = self.look_up(peer).await?;
        let verified = self.inner.trust.verify(&chain, peer, SystemTime::now())?;
        self.remember_chain(peer, &chain);
        let presented = verified.fingerprint();
        let Some(contact) = self.store().contact(peer)? else {
            return Ok(());
        };
        match PinCheck::check(Some(&contact.fingerprint), &presented) {
            PinCheck::Changed { old, new } => {
                // A key not seen yet becomes the pending one (what the number and "accept" show).
                if !contact.key_changed || contact.pending_fingerprint != Some(new) {
                    self.flag_key_change(peer, old, new, Some(verified.certificate()))?;
                }
                Err(Error::KeyChanged(peer.to_string()))
            }
            _ if contact.key_changed => Err(Error::KeyChanged(peer.to_string())),
            _ => Ok(()),
        }
    }

    /// Checks every contact's key against the directory (after connecting). Returns who changed.
    pub async fn check_keys(&self) -> Result<Vec<Username>> {
        let mut changed = Vec::new();
        for contact in self.store().contacts()? {
            match self.check_key(&contact.username).await {
                Ok(()) => {}
                Err(Error::KeyChanged(_)) => changed.push(contact.username),
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => tracing::info!(peer = %contact.username, error = %e, "directory check failed"),
            }
        }
        Ok(changed)
    }

    /// The pin `peer`'s contact holds now (`None` for a stranger) compared with `presented`.
    pub(super) fn pin_check(&self, peer: &Username, presented: &Fingerprint) -> Result<PinCheck> {
        let pinned = self.store().contact(peer)?.map(|c| c.fingerprint);
        Ok(PinCheck::check(pinned.as_ref(), presented))
    }
}

/// `Ok` when the key the user saw is the one an action would pin now.
pub(super) fn check_shown(peer: &Username, shown: &Fingerprint, current: Option<Fingerprint>) -> Result<()> {
    if current.as_ref() == Some(shown) {
        return Ok(());
    }
    Err(Error::FingerprintMismatch {
        peer: peer.to_string(),
        shown: short(shown),
        current: current.as_ref().map_or_else(|| "none".to_owned(), short),
    })
}

/// The first 16 hex digits, as a person compares them.
fn short(fingerprint: &Fingerprint) -> String {
    let mut hex = fingerprint.to_hex();
    hex.truncate(16);
    hex
}
