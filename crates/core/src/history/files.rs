//! Files sent and received: one small sealed record per file message, saying where its transfer stands. The file
//! message itself (with the file's key) is an ordinary message; its blob is kept in the profile's `files/` folder,
//! sealed with that key.

use magpie_proto::Username;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use magpie_proto::file::FileDescriptor;
use magpie_proto::MessageKind;

use super::step::{Step, Tree};
use super::{Direction, History, Message};
use crate::error::{Error, Result};

/// Received files up to this size are downloaded as they arrive; larger ones when the user asks, so that a contact
/// cannot fill the disk unasked.
pub const AUTO_DOWNLOAD_BYTES: u64 = 25 << 20;

/// The record of a received file message's download to come; `None` for any other message.
pub(crate) fn incoming_file_record(message: &Message) -> Result<Option<FileRecord>> {
    if message.kind != MessageKind::File || message.direction != Direction::Incoming {
        return Ok(None);
    }
    let descriptor = FileDescriptor::from_body(&message.body)?;
    Ok(Some(FileRecord {
        message_id: message.id,
        peer: message.peer.clone(),
        direction: Direction::Incoming,
        blob: descriptor.blob,
        state: match descriptor.size > AUTO_DOWNLOAD_BYTES {
            true => FileState::Offered,
            false => FileState::Downloading,
        },
    }))
}

pub(super) const FILES: &str = "files";

/// Where a file's transfer stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum FileState {
    /// Ours, sealed into the profile, being uploaded.
    Uploading,
    /// Ours, uploaded whole: its message is to be sealed and sent.
    Uploaded,
    /// Theirs, too large to fetch unasked ([`AUTO_DOWNLOAD_BYTES`]): downloaded when the user asks for it.
    Offered,
    /// Theirs, being downloaded.
    Downloading,
    /// Theirs, downloaded and checked: the relay is to be told it may delete its copy.
    Downloaded,
    /// Kept in the profile, whole and checked: ready to save or open.
    Kept,
    /// Given up, for the reason said (a tampered or lost blob, a cancel).
    Failed(String),
}

impl FileState {
    /// Whether the transfer still has work to do.
    pub fn pending(&self) -> bool {
        matches!(
            self,
            Self::Uploading | Self::Uploaded | Self::Downloading | Self::Downloaded
        )
    }
}

/// One file message's transfer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The file message.
    pub message_id: Uuid,
    /// The other party of the chat.
    pub peer: Username,
    /// Ours (an upload) or theirs (a download).
    pub direction: Direction,
    /// The relay's blob.
    pub blob: Uuid,
    /// Where it stands.
    pub state: FileState,
}

impl History {
    /// Stores a file's record, replacing the one with its message id.
    pub fn put_file_record(&self, record: &FileRecord) -> Result<()> {
        let step = self.step()?;
        self.put_file_record_in(&step, record)?;
        step.commit()
    }

    fn put_file_record_in(&self, step: &Step<'_>, record: &FileRecord) -> Result<()> {
        let key = self.file_key(record.message_id)?;
        let plain = Zeroizing::new(serde_json::to_vec(record).map_err(|_| Error::Crypto("encoding failed"))?);
        step.seal_put(Tree::Files, &key, &plain)
    }

    /// In the step that stores `message`, a received file message, the record of its download to come (unless it
    /// has one): stored with the message or not at all, so that no file message is left without its download.
    pub(super) fn record_incoming_file(&self, step: &Step<'_>, message: &Message) -> Result<()> {
        let Some(record) = incoming_file_record(message)? else {
            return Ok(());
        };
        if step.get(Tree::Files, &self.file_key(message.id)?)?.is_some() {
            return Ok(());
        }
        self.put_file_record_in(step, &record)
    }

    /// The record of the file message `message_id`, if it is one.
    pub fn file_record(&self, message_id: Uuid) -> Result<Option<FileRecord>> {
        let key = self.file_key(message_id)?;
        let Some(sealed) = self.files.get(key)? else {
            return Ok(None);
        };
        self.open_file_record(&key, &sealed).map(Some)
    }

    /// Every file's record, in no particular order.
    pub fn file_records(&self) -> Result<Vec<FileRecord>> {
        let mut out = Vec::new();
        for item in &self.files {
            let (key, sealed) = item?;
            out.push(self.open_file_record(&key, &sealed)?);
        }
        Ok(out)
    }

    /// Forgets a file's record; `false` if there was none.
    pub fn remove_file_record(&self, message_id: Uuid) -> Result<bool> {
        let key = self.file_key(message_id)?;
        let step = self.step()?;
        let existed = step.get(Tree::Files, &key)?.is_some();
        step.remove(Tree::Files, &key);
        step.commit()?;
        Ok(existed)
    }

    fn open_file_record(&self, key: &[u8], sealed: &[u8]) -> Result<FileRecord> {
        let plain = self.sealer.open(FILES, key, sealed)?;
        let record: FileRecord = serde_json::from_slice(&plain).map_err(|_| Error::HistoryCorrupt { tree: FILES })?;
        if self.file_key(record.message_id)?.as_slice() != key {
            return Err(Error::HistoryCorrupt { tree: FILES });
        }
        Ok(record)
    }

    fn file_key(&self, message_id: Uuid) -> Result<[u8; 32]> {
        self.sealer.index(b"file", message_id.as_bytes())
    }
}
