//! The outbox: envelopes not yet accepted by the relay, oldest first.

use magpie_proto::Envelope;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::step::{Step, Tree};
use super::{History, OUTBOX};
use crate::error::{Error, Result};

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

impl OutboxKey {
    pub(crate) fn from_seq(seq: u64) -> Self {
        Self(seq.to_be_bytes())
    }

    pub(crate) fn seq(self) -> u64 {
        u64::from_be_bytes(self.0)
    }
}

impl History {
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
        let start = after.map_or(0, |k| k.seq().saturating_add(1)).to_be_bytes();
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
}

pub(super) fn encode_outbox(item: &OutboxItem) -> Result<Zeroizing<Vec<u8>>> {
    serde_json::to_vec(item)
        .map(Zeroizing::new)
        .map_err(|_| Error::Crypto("encoding failed"))
}

/// Queues an encoded item under a new outbox key, drawn in the step: items appear in key order, which the outbox
/// reads on in.
pub(super) fn queue_in(step: &Step<'_>, plain: &[u8]) -> Result<()> {
    let key = step.next_id()?.to_be_bytes();
    step.seal_put(Tree::Outbox, &key, plain)
}
