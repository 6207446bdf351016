//! The order in which the client's locks are taken; debug builds check it.
//!
//! No two threads can each hold what the other waits for if every lock is taken in one order:
//! 1. the async locks (tokio), held across awaits (network I/O, flushes), in this order:
//!    `HandshakeWorker::in_line` (messages handled in line or by the handshake worker, in order),
//!    `Inner::handshakes` (one handshake step at a time), `Inner::outbox_running` (one outbox pass at a time);
//! 2. then the std locks, each only while every std lock the thread holds has a lower [`Rank`].
//!
//! An async lock is never taken while a std lock is held, since no std guard lives across an await (a [`Guard`]
//! is not `Send`, and clippy's `await-holding-invalid-types` in `clippy.toml` names it). The std locks are
//! [`Ranked`]: in debug builds each thread notes the ranks it holds and a lock taken out of order panics before
//! it blocks, so every test run checks the order on the paths it takes.

use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};

/// Every std lock of the engine's shared state (`engine::Inner`), its handshake worker and the history, in the
/// order they may be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rank {
    /// `Inner::socket`: the open socket's writer.
    Socket,
    /// `Inner::in_flight`: envelopes sent on the socket, not yet answered.
    InFlight,
    /// `Inner::pipelined_up_to`: the last outbox item handed to the socket.
    PipelinedUpTo,
    /// `Inner::waiting`: which peers have texts waiting for a session; the order of texts to one peer.
    Waiting,
    /// `Inner::sessions`: the live sessions.
    Sessions,
    /// `HandshakeWorker::waiting`: envelopes handed to the worker, counted per sender.
    WorkerCounts,
    /// `Inner::rekeying`: re-keys under way.
    Rekeying,
    /// `Inner::auto_accepts`: re-keys each contact may still have accepted without asking.
    AutoAccepts,
    /// `Inner::recent_chains`: directory answers kept for a moment.
    RecentChains,
    /// `Inner::activity_noted`: when each chat's last activity was stored.
    ActivityNoted,
    /// `Inner::recently_opened`: the envelope ids of recently opened messages.
    RecentlyOpened,
    /// `Inner::file_flags`: files cancelled and files sealed by this run.
    FileFlags,
    /// `History::key_changed`: each contact's key-change flag; also serializes contact writes.
    KeyChanged,
    /// `History::reservations`: this run's send-counter records.
    Reservations,
    /// `History::writing`: one history step at a time.
    Writing,
}

/// A std mutex with its place in the lock order.
pub(crate) struct Ranked<T> {
    rank: Rank,
    mutex: Mutex<T>,
}

impl<T> Ranked<T> {
    pub(crate) const fn new(rank: Rank, value: T) -> Self {
        Self {
            rank,
            mutex: Mutex::new(value),
        }
    }

    /// Takes the lock; in debug builds, panics first if the thread holds a lock ranked at or after this one.
    pub(crate) fn lock(&self) -> Result<Guard<'_, T>> {
        held::take(self.rank);
        match self.mutex.lock() {
            Ok(guard) => Ok(Guard { guard, rank: self.rank }),
            Err(_) => {
                held::release(self.rank);
                Err(Error::Poisoned)
            }
        }
    }
}

impl<T: Default> Ranked<T> {
    pub(crate) fn with_default(rank: Rank) -> Self {
        Self::new(rank, T::default())
    }
}

impl<T> std::fmt::Debug for Ranked<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ranked")
            .field("rank", &self.rank)
            .finish_non_exhaustive()
    }
}

/// A held [`Ranked`] lock.
pub(crate) struct Guard<'a, T> {
    guard: MutexGuard<'a, T>,
    rank: Rank,
}

impl<T> Deref for Guard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for Guard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        held::release(self.rank);
    }
}

/// The ranks the current thread holds, in debug builds; nothing in release builds.
#[cfg(debug_assertions)]
mod held {
    use std::cell::RefCell;

    use super::Rank;

    thread_local! {
        static HELD: RefCell<Vec<Rank>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn take(rank: Rank) {
        HELD.with_borrow_mut(|held| {
            let after = held.iter().find(|held| **held >= rank);
            debug_assert!(
                after.is_none(),
                "lock order: {rank:?} taken while holding {after:?} (see lock_order.rs)"
            );
            held.push(rank);
        });
    }

    pub(super) fn release(rank: Rank) {
        HELD.with_borrow_mut(|held| {
            if let Some(at) = held.iter().rposition(|held| *held == rank) {
                held.remove(at);
            }
        });
    }
}

#[cfg(not(debug_assertions))]
mod held {
    use super::Rank;

    pub(super) fn take(_: Rank) {}

    pub(super) fn release(_: Rank) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_taken_in_order_and_released_in_any_order_are_fine() {
        let (sessions, writing) = (Ranked::new(Rank::Sessions, 1), Ranked::new(Rank::Writing, 2));
        let first = sessions.lock().unwrap();
        let second = writing.lock().unwrap();
        drop(first);
        drop(second);
        // Both released: the order starts afresh.
        let again = writing.lock().unwrap();
        drop(again);
        assert_eq!(*sessions.lock().unwrap(), 1);
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "lock order: Sessions taken while holding Some(Writing)")]
    fn a_lock_taken_out_of_order_panics_in_debug_builds() {
        let (sessions, writing) = (Ranked::new(Rank::Sessions, ()), Ranked::new(Rank::Writing, ()));
        let _writing = writing.lock().unwrap();
        let _sessions = sessions.lock();
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "lock order: Writing taken while holding Some(Writing)")]
    fn a_lock_taken_twice_by_one_thread_panics_rather_than_hangs() {
        let writing = Ranked::new(Rank::Writing, ());
        let _held = writing.lock().unwrap();
        let _again = writing.lock();
    }
}
