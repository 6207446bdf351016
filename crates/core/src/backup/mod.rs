//! Encrypted backups of a profile: its identity key and its history in one file, sealed under a passphrase
//! (PROTOCOL.md, "Backup file"), and their restore into a new profile directory.
//!
//! The payload is a sequence of records: first the profile (username, relay, registration, identity key), then
//! every contact, then the messages in batches, chat by chat, and last an end record with the counts. Sessions,
//! handshakes under way, the outbox and relay tokens are not carried: a restored profile starts a fresh handshake
//! with every contact before anything is sealed (the contacts are marked `rehandshake`), so no send counter of
//! the old sessions is ever used again. Received files' contents are not carried either (their messages are).

mod restore;
mod stream;

use std::io::BufWriter;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use magpie_proto::backup::{BackupHeader, BackupKey, KdfParams, BACKUP_SEGMENT_BYTES};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

pub use restore::{is_unfinished_restore, restore, sweep_unfinished};

use crate::error::{Error, Result};
use crate::history::{Contact, Message, RegistrationRecord};
use crate::profile::Profile;
use stream::SealedWriter;

/// A passphrase shorter than this is refused.
pub const MIN_PASSPHRASE_CHARS: usize = 8;
/// Messages per record, at most...
const BATCH: usize = 500;
/// ...and about this much JSON at most (a text's JSON is at most six bytes per byte of text, plus its fields).
const BATCH_BYTES: usize = 4 << 20;
const MESSAGE_FIELDS_BYTES: usize = 512;

/// How far a backup or a restore has come: `done` of `total` (blocks written, or bytes read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Work done.
    pub done: u64,
    /// All the work.
    pub total: u64,
}

/// What a backup held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    /// Contacts written.
    pub contacts: u64,
    /// Messages written.
    pub messages: u64,
    /// The file's size, bytes.
    pub bytes: u64,
}

/// One record of the payload.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Record {
    /// Whose profile: always first.
    Profile {
        username: magpie_proto::Username,
        relay_url: Option<String>,
        created_at: u64,
        registration: Option<RegistrationRecord>,
        /// The identity private key, PKCS#8 DER, base64.
        identity_key: Zeroizing<String>,
    },
    Contact(Box<Contact>),
    /// Messages with their places in their chats (to move read marks and re-key dividers onto the restored ones).
    Messages {
        messages: Vec<Message>,
        cursors: Vec<u64>,
    },
    /// Always last: what came before, to tell a whole backup from a cut one.
    End {
        contacts: u64,
        messages: u64,
    },
}

/// Writes a backup of `profile` to `out`: through a temporary file beside it, renamed into place once whole and
/// synced, so `out` is the whole backup or untouched. `cancelled` stops it (nothing is left). Blocks: scrypt takes
/// about a second, then the history is read through.
pub fn write_backup(
    profile: &Profile,
    out: &Path,
    passphrase: &str,
    cancelled: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<BackupSummary> {
    let kdf = KdfParams::recommended()?;
    write_backup_with(
        profile,
        out,
        passphrase,
        (kdf, BACKUP_SEGMENT_BYTES),
        cancelled,
        progress,
    )
}

/// [`write_backup`] with chosen scrypt parameters and segment size: for tests, which cannot wait a second per
/// backup and want many segments from a small history.
#[doc(hidden)]
pub fn write_backup_with(
    profile: &Profile,
    out: &Path,
    passphrase: &str,
    (kdf, segment_bytes): (KdfParams, u32),
    cancelled: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<BackupSummary> {
    check_passphrase(passphrase)?;
    let key = BackupKey::derive(passphrase, &kdf)?;
    let mut header = BackupHeader::new(kdf, &key)?;
    header.segment_bytes = segment_bytes;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = tempfile::Builder::new()
        .prefix(".magpie-backup-")
        .tempfile_in(dir)
        .map_err(|e| io("create", &e))?;
    let file = temp.as_file().try_clone().map_err(|e| io("create", &e))?;
    let mut writer = SealedWriter::new(BufWriter::new(file), header, key)?;

    let history = profile.history();
    let info = profile.info();
    let identity = profile.identity().to_pkcs8_der()?;
    writer.record(&Record::Profile {
        username: info.username.clone(),
        relay_url: info.relay_url.clone(),
        created_at: info.created_at,
        registration: history.registration()?,
        identity_key: Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(identity.expose_secret())),
    })?;
    let contacts = history.contacts()?;
    for contact in &contacts {
        writer.record(&Record::Contact(Box::new(contact.clone())))?;
    }

    let total = history.message_block_count()?;
    let mut done = 0;
    let mut messages = 0u64;
    let mut batch: Vec<Message> = Vec::with_capacity(BATCH);
    let mut cursors: Vec<u64> = Vec::with_capacity(BATCH);
    let mut batch_bytes = 0;
    history.for_each_message_block(|entries| {
        if cancelled.load(Ordering::Relaxed) {
            return Err(Error::BackupCancelled);
        }
        for entry in entries {
            cursors.push(entry.cursor.value());
            batch_bytes += entry.message.body.len() * 6 + MESSAGE_FIELDS_BYTES;
            batch.push(entry.message);
            if batch.len() == BATCH || batch_bytes >= BATCH_BYTES {
                batch_bytes = 0;
                messages += batch.len() as u64;
                writer.record(&Record::Messages {
                    messages: std::mem::take(&mut batch),
                    cursors: std::mem::take(&mut cursors),
                })?;
            }
        }
        done += 1;
        if done % 64 == 0 {
            progress(Progress { done, total });
        }
        Ok(())
    })?;
    messages += batch.len() as u64;
    if !batch.is_empty() {
        writer.record(&Record::Messages {
            messages: batch,
            cursors,
        })?;
    }
    let contacts = contacts.len() as u64;
    writer.record(&Record::End { contacts, messages })?;
    let (buffered, _) = writer.finish()?;
    let file = buffered.into_inner().map_err(|e| io("write", e.error()))?;
    file.sync_all().map_err(|e| io("sync", &e))?;
    if cancelled.load(Ordering::Relaxed) {
        return Err(Error::BackupCancelled);
    }
    let bytes = file.metadata().map_err(|e| io("read", &e))?.len();
    temp.persist(out).map_err(|e| io("write", &e.error))?;
    // The rename on disk too (best effort: Windows cannot open a folder to sync it).
    let _ = crate::files::sync_file(dir);
    progress(Progress { done: total, total });
    Ok(BackupSummary {
        contacts,
        messages,
        bytes,
    })
}

/// Refuses a passphrase too short to protect a backup.
pub fn check_passphrase(passphrase: &str) -> Result<()> {
    match passphrase.chars().count() >= MIN_PASSPHRASE_CHARS {
        true => Ok(()),
        false => Err(Error::PassphraseTooShort(MIN_PASSPHRASE_CHARS)),
    }
}

#[cfg(test)]
mod tests;

fn io(action: &'static str, error: &std::io::Error) -> Error {
    Error::BackupIo {
        action,
        reason: error.to_string(),
    }
}

fn damaged(what: &str) -> Error {
    Error::BackupDamaged(what.to_owned())
}
