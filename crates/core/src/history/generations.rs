//! What pending records hold that readers must see before it is in the trees (see [`super::ahead`]), in two
//! generations: the records a settle is applying, and those written since. A settle that a flush starts applies
//! its generation without holding the pending lock, so steps go on being written ahead meanwhile; they wait only
//! while its transaction holds sled's process-wide lock.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::Delivery;

/// What one generation's records hold.
#[derive(Default)]
pub(super) struct Generation {
    pub(super) records: usize,
    /// Outbox items they queue (and do not drop again), sealed, by key.
    pub(super) outbox: BTreeMap<[u8; 8], Vec<u8>>,
    /// Items an older generation queued, or the trees hold, that they drop.
    pub(super) dropped: HashSet<[u8; 8]>,
    /// Id hashes of the messages they store.
    pub(super) message_ids: HashSet<[u8; 32]>,
    /// Delivery states of the messages they store or update, as of the last record.
    pub(super) deliveries: HashMap<[u8; 32], Delivery>,
}

impl Generation {
    /// `self` and then `newer`, as one generation: a settle that failed gives its generation back.
    fn followed_by(mut self, newer: Self) -> Self {
        self.records += newer.records;
        for key in newer.dropped {
            if self.outbox.remove(&key).is_none() {
                self.dropped.insert(key);
            }
        }
        self.outbox.extend(newer.outbox);
        self.message_ids.extend(newer.message_ids);
        self.deliveries.extend(newer.deliveries);
        self
    }
}

/// The pending records' state, behind the pending lock.
#[derive(Default)]
pub(super) struct Pending {
    /// Records written since the last settle began.
    pub(super) current: Generation,
    /// The records a settle is applying, until they are in the trees.
    applying: Option<Generation>,
    /// The watermark: the newest applied record's key.
    pub(super) applied_through: Option<[u8; 8]>,
    /// How far applied records have been removed.
    pub(super) removed_through: Option<[u8; 8]>,
    /// The newest record's key.
    pub(super) newest: Option<[u8; 8]>,
}

impl Pending {
    /// Newest first.
    fn generations(&self) -> impl Iterator<Item = &Generation> {
        [Some(&self.current), self.applying.as_ref()].into_iter().flatten()
    }

    pub(super) fn has_message(&self, id_hash: &[u8; 32]) -> bool {
        self.generations().any(|g| g.message_ids.contains(id_hash))
    }

    /// The delivery state the newest record that has one gives the message.
    pub(super) fn delivery(&self, id_hash: &[u8; 32]) -> Option<Delivery> {
        self.generations().find_map(|g| g.deliveries.get(id_hash).copied())
    }

    /// Whether outbox item `key` is queued by a record that is still pending (and not dropped by a later one).
    pub(super) fn queues(&self, key: &[u8; 8]) -> bool {
        self.current.outbox.contains_key(key)
            || (!self.current.dropped.contains(key)
                && self.applying.as_ref().is_some_and(|g| g.outbox.contains_key(key)))
    }

    /// Whether a pending record drops outbox item `key` (which the trees may still hold).
    pub(super) fn drops(&self, key: &[u8; 8]) -> bool {
        self.generations().any(|g| g.dropped.contains(key))
    }

    /// Outbox items pending records queue, from key `start` on, in key order.
    pub(super) fn outbox_from(&self, start: [u8; 8]) -> BTreeMap<[u8; 8], &[u8]> {
        let mut items: BTreeMap<[u8; 8], &[u8]> = BTreeMap::new();
        if let Some(applying) = &self.applying {
            let kept = applying
                .outbox
                .range(start..)
                .filter(|(key, _)| !self.current.dropped.contains(*key));
            items.extend(kept.map(|(key, sealed)| (*key, sealed.as_slice())));
        }
        items.extend(
            self.current
                .outbox
                .range(start..)
                .map(|(key, sealed)| (*key, sealed.as_slice())),
        );
        items
    }

    /// Makes the records written so far the generation being applied; the keys they span, `(after, through]`, or
    /// `None` when none is pending. Only one settle at a time: `applying` is empty here.
    pub(super) fn begin_apply(&mut self) -> Option<(Option<[u8; 8]>, [u8; 8])> {
        if self.current.records == 0 {
            return None;
        }
        let through = self.newest?;
        self.applying = Some(std::mem::take(&mut self.current));
        Some((self.applied_through, through))
    }

    /// Ends what [`Pending::begin_apply`] began: on success the watermark moves to `through`; on failure the
    /// generation is pending again, before what was written since.
    pub(super) fn end_apply(&mut self, through: [u8; 8], applied: bool) {
        let Some(generation) = self.applying.take() else {
            return;
        };
        if applied {
            self.applied_through = Some(through);
        } else {
            self.current = generation.followed_by(std::mem::take(&mut self.current));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queuing(key: u8) -> Generation {
        let mut generation = Generation {
            records: 1,
            ..Generation::default()
        };
        generation.outbox.insert([key; 8], vec![key]);
        generation
    }

    /// One pending record, key `[9; 8]`, queuing item `[key; 8]`.
    fn one_record_queuing(key: u8) -> Pending {
        Pending {
            current: queuing(key),
            newest: Some([9; 8]),
            ..Pending::default()
        }
    }

    /// An item the applying generation queues and a newer record drops is hidden at once, and stays dropped if the
    /// settle fails and the two generations become one again.
    #[test]
    fn a_drop_in_the_newer_generation_hides_an_item_of_the_applying_one() {
        let mut pending = one_record_queuing(1);
        assert_eq!(pending.begin_apply(), Some((None, [9; 8])));
        assert!(pending.queues(&[1; 8]));
        pending.current.records = 1;
        pending.current.dropped.insert([1; 8]);
        assert!(!pending.queues(&[1; 8]));
        assert!(pending.outbox_from([0; 8]).is_empty());
        assert!(pending.drops(&[1; 8]));

        pending.end_apply([9; 8], false);
        assert_eq!(pending.current.records, 2);
        assert!(!pending.queues(&[1; 8]));
        assert!(
            pending.current.dropped.is_empty(),
            "queued and dropped within one generation"
        );
        assert_eq!(pending.applied_through, None);
    }

    /// After a settle succeeds the watermark moves and the applied generation's items are left to the trees.
    #[test]
    fn a_settle_that_succeeds_moves_the_watermark() {
        let mut pending = one_record_queuing(1);
        let (_, through) = pending.begin_apply().unwrap();
        pending.current = queuing(2);
        assert_eq!(pending.outbox_from([0; 8]).len(), 2);
        pending.end_apply(through, true);
        assert_eq!(pending.applied_through, Some([9; 8]));
        assert_eq!(pending.outbox_from([0; 8]).keys().collect::<Vec<_>>(), [&[2; 8]]);
        assert_eq!(pending.begin_apply().map(|(after, _)| after), Some(Some([9; 8])));
    }
}
