//! How every change reaches the history's sessions, messages and outbox: a step.
//!
//! A step is what one event changes (a text sealed and queued; a run of texts opened with their receipt; a delivery
//! state; a session saved; an item leaving the outbox). Under the history's one write lock it is worked out first:
//! its writes are staged in memory (reads see them), messages going into their blocks and index buckets there, so
//! each key ends with one final value or a removal, sealed as the tree stores it. [`Step::commit`] then writes that
//! list as one record in `steps` (one sled insert, so atomic), makes each write to its tree, and removes the
//! record. Readers read the trees: there is nothing else to consult.
//!
//! Durable: a step is on disk once a flush that started after it returns ([`History::flush`]); the engine awaits
//! one before anything that depends on the step leaves the process (an ack, a receipt, a handshake step), except a
//! sealed text, whose send counter was reserved durably ahead (see [`super::reserve`]).
//!
//! A crash: sled recovers its log in order up to where the crash cut it, so what a crash leaves of a step is a
//! prefix of record, writes, removal: nothing; the record and some of the writes; or the whole step. Opening the
//! history makes the writes of a record still there (each sets a key or removes it: making it again changes
//! nothing), then removes it.

use std::cell::RefCell;
use std::collections::BTreeMap;

use sled::IVec;

use super::{History, MESSAGE_BLOCKS, MESSAGE_INDEX, OUTBOX, SESSIONS, STEPS};
use crate::error::{Error, Result};

/// Layout of a record (see [`encode`]).
const RECORD_FORMAT: u8 = 1;

/// The trees a step writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Tree {
    Sessions,
    Blocks,
    Index,
    Outbox,
    Files,
}

impl Tree {
    const ALL: [Self; 5] = [Self::Sessions, Self::Blocks, Self::Index, Self::Outbox, Self::Files];

    /// The tree's name: also the first part of its values' additional data (see [`super::crypt`]).
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Sessions => SESSIONS,
            Self::Blocks => MESSAGE_BLOCKS,
            Self::Index => MESSAGE_INDEX,
            Self::Outbox => OUTBOX,
            Self::Files => super::files::FILES,
        }
    }

    fn code(self) -> u8 {
        match self {
            Self::Sessions => 1,
            Self::Blocks => 2,
            Self::Index => 3,
            Self::Outbox => 4,
            Self::Files => 5,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|tree| tree.code() == code)
    }
}

/// The last write of each key: a sealed value, or `None` for a removal.
type Writes = BTreeMap<(Tree, Vec<u8>), Option<Vec<u8>>>;

/// One write as a record holds it: tree, key, sealed value or `None` for a removal.
type Write<'a> = (Tree, &'a [u8], Option<&'a [u8]>);

/// A step being worked out; it holds the write lock until committed or dropped (dropped, it writes nothing).
pub(super) struct Step<'h> {
    history: &'h History,
    _one_writer: crate::lock_order::Guard<'h, ()>,
    writes: RefCell<Writes>,
}

impl<'h> Step<'h> {
    /// The value of `key` as this step leaves it so far.
    pub(super) fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<IVec>> {
        if let Some(written) = self.writes.borrow().get(&(tree, key.to_vec())) {
            return Ok(written.as_deref().map(IVec::from));
        }
        Ok(self.history.tree(tree).get(key)?)
    }

    /// Sets `key` to `sealed` (a value sealed for `tree` and `key`).
    pub(super) fn put(&self, tree: Tree, key: &[u8], sealed: Vec<u8>) {
        self.writes.borrow_mut().insert((tree, key.to_vec()), Some(sealed));
    }

    /// Seals `plain` for `tree` and `key` and sets it.
    pub(super) fn seal_put(&self, tree: Tree, key: &[u8], plain: &[u8]) -> Result<()> {
        let sealed = self.history.sealer.seal(tree.name(), key, plain)?;
        self.put(tree, key, sealed);
        Ok(())
    }

    pub(super) fn remove(&self, tree: Tree, key: &[u8]) {
        self.writes.borrow_mut().insert((tree, key.to_vec()), None);
    }

    /// A number larger than every one drawn before (message seqs, outbox keys): drawn under the write lock, so
    /// steps commit in the order of what they drew.
    pub(super) fn next_id(&self) -> Result<u64> {
        Ok(self.history.db.generate_id()?)
    }

    /// Writes the step's record, makes its writes, and removes the record (see the module).
    pub(super) fn commit(self) -> Result<()> {
        let writes = self.writes.into_inner();
        if writes.is_empty() {
            return Ok(());
        }
        let key = self.history.db.generate_id()?.to_be_bytes();
        self.history.steps.insert(key, encode(&writes)?)?;
        let made = writes
            .iter()
            .map(|((tree, key), value)| (*tree, key.as_slice(), value.as_deref()));
        self.history.make(made)?;
        self.history.steps.remove(key)?;
        Ok(())
    }
}

impl History {
    /// Starts a step, waiting for the one under way to commit.
    pub(super) fn step(&self) -> Result<Step<'_>> {
        Ok(Step {
            history: self,
            _one_writer: self.writing.lock().map_err(|_| Error::Poisoned)?,
            writes: RefCell::default(),
        })
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        match tree {
            Tree::Sessions => &self.sessions,
            Tree::Blocks => &self.blocks,
            Tree::Index => &self.message_index,
            Tree::Outbox => &self.outbox,
            Tree::Files => &self.files,
        }
    }

    fn make<'a>(&self, writes: impl Iterator<Item = Write<'a>>) -> Result<()> {
        for (tree, key, value) in writes {
            match value {
                Some(value) => self.tree(tree).insert(key, value)?,
                None => self.tree(tree).remove(key)?,
            };
        }
        Ok(())
    }

    /// At open: makes the steps whose records a crash left (see the module), oldest first, then removes them.
    pub(super) fn make_left_steps(&self) -> Result<()> {
        let mut made = 0;
        for item in self.steps.iter() {
            let (key, record) = item?;
            let writes = decode(&record).map_err(|()| Error::HistoryCorrupt { tree: STEPS })?;
            self.make(writes.into_iter())?;
            self.steps.remove(key)?;
            made += 1;
        }
        if made > 0 {
            tracing::info!(steps = made, "made the steps a crash left half-written");
        }
        Ok(())
    }
}

/// `RECORD_FORMAT`, then each write: its tree's code, its key, and a flag and the sealed value (flag 0: removed).
/// Keys and values are u32 BE length-prefixed. Nothing here is plaintext: keys are keyed hashes or counters and
/// values are sealed as their trees keep them.
fn encode(writes: &Writes) -> Result<Vec<u8>> {
    let size = writes
        .iter()
        .map(|((_, k), v)| 10 + k.len() + v.as_ref().map_or(0, Vec::len))
        .sum::<usize>();
    let mut out = Vec::with_capacity(1 + size);
    out.push(RECORD_FORMAT);
    for ((tree, key), value) in writes {
        out.push(tree.code());
        put(&mut out, key)?;
        match value {
            Some(value) => {
                out.push(1);
                put(&mut out, value)?;
            }
            None => out.push(0),
        }
    }
    Ok(out)
}

/// Reads what [`encode`] wrote; `Err(())` when it is not such a record.
fn decode(record: &[u8]) -> std::result::Result<Vec<Write<'_>>, ()> {
    let (&format, mut rest) = record.split_first().ok_or(())?;
    if format != RECORD_FORMAT {
        return Err(());
    }
    let mut writes = Vec::new();
    while let Some((&code, after)) = rest.split_first() {
        let tree = Tree::from_code(code).ok_or(())?;
        let (key, after) = take(after)?;
        let (value, after) = match after.split_first().ok_or(())? {
            (1, after) => {
                let (value, after) = take(after)?;
                (Some(value), after)
            }
            (0, after) => (None, after),
            _ => return Err(()),
        };
        writes.push((tree, key, value));
        rest = after;
    }
    Ok(writes)
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| Error::Crypto("step too large"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// A length-prefixed byte string and what follows it.
fn take(bytes: &[u8]) -> std::result::Result<(&[u8], &[u8]), ()> {
    let (len, rest) = bytes.split_first_chunk::<4>().ok_or(())?;
    let len = usize::try_from(u32::from_be_bytes(*len)).map_err(|_| ())?;
    (rest.len() >= len).then(|| rest.split_at(len)).ok_or(())
}

#[cfg(test)]
impl Step<'_> {
    /// Commits as a process that died after making the first `made` of its writes would leave it (the record
    /// stays); how many writes the step has.
    pub(super) fn commit_cut_after(self, made: usize) -> Result<usize> {
        let writes = self.writes.into_inner();
        let key = self.history.db.generate_id()?.to_be_bytes();
        self.history.steps.insert(key, encode(&writes)?)?;
        let all = writes
            .iter()
            .map(|((tree, key), value)| (*tree, key.as_slice(), value.as_deref()));
        self.history.make(all.take(made))?;
        Ok(writes.len())
    }
}
