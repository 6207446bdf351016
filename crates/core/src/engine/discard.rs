//! Forgeries are visible: what the engine discards because it does not verify is counted on the chat (a security
//! notice) and reported as an [`Event::Rejected`], never shown, and so is a message sent again under a new
//! envelope id (`replays.rs`). Ordinary duplicates from at-least-once delivery (a message seen before under the
//! same envelope id, a step of a handshake that ended) stay silent.

use crate::store::prelude::*;
use magpie_proto::{Envelope, EnvelopeKind, Username};
use uuid::Uuid;

use super::events::{Discard, Event};
use super::handshake_state::HandshakeState;
use super::inbox::Disposition;
use super::{now_secs, Client};
use crate::error::Result;

impl<H: Home> Client<H> {
    /// Drops an envelope that claimed to come from `from` and did not verify: counts it on that contact (strangers
    /// have no chat to show it in, and are not given a record to grow) and tells the faces.
    pub(super) fn discard(&self, from: &str, what: Discard, reason: &str) -> Disposition {
        tracing::info!(%from, ?what, %reason, "envelope discarded");
        if let Ok(peer) = Username::canonical(from) {
            if let Err(e) = self.count_discarded(&peer, what) {
                tracing::warn!(%from, error = %e, "could not count a discarded envelope");
            }
        }
        self.emit(Event::Rejected {
            peer: from.to_owned(),
            what,
            reason: reason.to_owned(),
        });
        Disposition::Done
    }

    /// [`Client::discard`] for an envelope, by its kind.
    pub(super) fn discard_envelope(&self, envelope: &Envelope, reason: &str) -> Disposition {
        let what = match envelope.kind {
            EnvelopeKind::Message => Discard::Message,
            _ => Discard::Step,
        };
        self.discard(&envelope.from, what, reason)
    }

    fn count_discarded(&self, peer: &Username, what: Discard) -> Result<()> {
        let now = now_secs();
        self.store().update_contact(peer, |slot| {
            if let Some(contact) = slot {
                let counts = contact.discarded.get_or_insert_with(|| crate::history::Discarded {
                    since: now,
                    ..Default::default()
                });
                match what {
                    Discard::Message => counts.messages = counts.messages.saturating_add(1),
                    Discard::Step => counts.steps = counts.steps.saturating_add(1),
                }
                counts.last = now;
            }
            Ok(())
        })
    }

    /// The user read the chat's security notice: the counts start again.
    pub fn dismiss_discarded(&self, peer: &Username) -> Result<()> {
        self.store().update_contact(peer, |slot| {
            if let Some(contact) = slot {
                contact.discarded = None;
            }
            Ok(())
        })
    }

    /// A handshake step for `request_id`, which is not waiting for it: a second copy of a step we handled (the
    /// handshake is under way or ended) is dropped silently; one for a handshake we never had is discarded.
    pub(super) fn step_without_handshake(&self, envelope: &Envelope, request_id: Uuid) -> Result<Disposition> {
        let known = HandshakeState::load(self.store(), &self.inner.credential, request_id)?.is_some()
            || HandshakeState::finished(self.store(), request_id)?;
        if known {
            tracing::debug!(from = %envelope.from, %request_id, "handshake step seen already");
            return Ok(Disposition::Done);
        }
        Ok(self.discard_envelope(envelope, "a key exchange step for a handshake that was never started"))
    }
}
