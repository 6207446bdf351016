//! Restoring a backup into a new profile directory: built beside it under a temporary name and renamed into place
//! once whole, so a wrong passphrase, a damaged file or a cancel leaves nothing behind (the half-made profile and
//! its credential-store entries are deleted).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use magpie_proto::backup::{BackupHeader, BackupKey, HeaderProblem, BACKUP_HEADER_LEN};
use magpie_proto::{Identity, MessageKind, Username};
use zeroize::Zeroizing;

use super::stream::SealedReader;
use super::{damaged, io, Progress, Record};
use crate::error::{Error, Result};
use crate::history::{Appended, Delivery, FileRecord, FileState, History, Message, REKEY_MARKS};
use crate::keystore::Keystore;
use crate::profile::{Profile, PROFILE_FILE};

/// Messages per history write: fewer, larger steps (a step costs about the same whatever its size).
const WRITE_BATCH: usize = 500;
/// The page cache while a restore writes: the id index's buckets are written in no order, and with the usual
/// 16 MiB most of those writes first read their page back (`benches/backup.rs`, 1M messages: 22.6 s with 16 MiB,
/// 20.1 s with 64, 15.4 s with 128; the peak RSS stays scrypt's 134 MB). The profile is opened again with the
/// usual bound afterwards.
const RESTORE_CACHE: u64 = 128 << 20;
/// Contacts a backup may hold: far more than anyone has, few enough that their names fit in memory.
const MAX_CONTACTS: usize = 100_000;
/// Why a restored file message has no file.
const FILE_NOT_CARRIED: &str = "Its contents are not in backups: save files you want to keep before moving.";

/// Restores the backup at `backup` into `dir` (which must not hold a profile) and opens it. Its identity key and
/// a new history key go into `keystore`; every contact is due a fresh handshake. Blocks: scrypt, then the whole
/// history is written.
pub fn restore(
    backup: &Path,
    passphrase: &str,
    dir: &Path,
    keystore: Arc<dyn Keystore>,
    cancelled: &AtomicBool,
    progress: &mut dyn FnMut(Progress),
) -> Result<Profile> {
    check_target(dir)?;
    let file = File::open(backup).map_err(|e| io("open", &e))?;
    let total = file.metadata().map_err(|e| io("read", &e))?.len();
    let mut input = BufReader::with_capacity(1 << 20, file);
    let header = read_header(&mut input)?;
    let key = BackupKey::derive(passphrase, &header.kdf)?;
    if !header.accepts(&key)? {
        return Err(Error::BackupWrongPassphrase);
    }
    let mut reader = SealedReader::new(input, header, key);

    let staging = staging_dir(dir)?;
    let made = read_into(&mut reader, &staging, keystore.clone(), cancelled, &mut |read| {
        progress(Progress { done: read, total })
    })
    .and_then(|profile| {
        drop(profile);
        if dir.exists() {
            // An empty folder the user chose: the restored one takes its place.
            std::fs::remove_dir(dir).map_err(|e| io("replace", &e))?;
        }
        std::fs::rename(&staging, dir).map_err(|e| io("move", &e))
    });
    if let Err(error) = made {
        discard(&staging, keystore.as_ref());
        return Err(error);
    }
    progress(Progress { done: total, total });
    Profile::open(dir, keystore)
}

/// Deletes a half-made restore: its credential-store entries, then its folder. Should the store refuse, the folder
/// stays (it names the entries), and [`sweep_unfinished`] tries again at the next start.
pub(super) fn discard(staging: &Path, keystore: &dyn Keystore) {
    let forgotten = match staging.join(PROFILE_FILE).exists() {
        true => Profile::remove(staging, keystore).map_err(|e| e.to_string()),
        false => Ok(()),
    };
    match forgotten {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(staging);
        }
        Err(error) => {
            tracing::warn!(dir = %staging.display(), %error, "a half-made restore stays until its keys can go")
        }
    }
}

/// Whether `name` is a folder a restore was making (see [`staging_dir`]): never a profile to list.
pub fn is_unfinished_restore(name: &str) -> bool {
    name.starts_with('.') && name.contains(".restoring-")
}

/// Deletes the restores a crash or a quit left unfinished in `parent` (with their credential-store entries).
pub fn sweep_unfinished(parent: &Path, keystore: &dyn Keystore) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        if is_unfinished_restore(&entry.file_name().to_string_lossy()) {
            discard(&entry.path(), keystore);
        }
    }
}

/// A restore goes into a folder that does not exist, or an empty one: never over anything.
fn check_target(dir: &Path) -> Result<()> {
    if dir.join(PROFILE_FILE).exists() {
        return Err(Error::ProfileExists(dir.to_owned()));
    }
    let empty = match std::fs::read_dir(dir) {
        Err(error) => error.kind() == std::io::ErrorKind::NotFound,
        Ok(mut entries) => entries.next().is_none(),
    };
    match empty {
        true => Ok(()),
        false => Err(Error::BackupIo {
            action: "restore into",
            reason: format!("{} is not an empty folder", dir.display()),
        }),
    }
}

/// The header, or why the file is not one to restore.
fn read_header<R: Read>(input: &mut R) -> Result<BackupHeader> {
    let mut header = Vec::with_capacity(BACKUP_HEADER_LEN);
    input
        .take(BACKUP_HEADER_LEN as u64)
        .read_to_end(&mut header)
        .map_err(|e| io("read", &e))?;
    if header.len() < BACKUP_HEADER_LEN && header.starts_with(&magpie_proto::backup::BACKUP_MAGIC[..]) {
        return Err(damaged("the file ends early: it was cut short"));
    }
    BackupHeader::decode(&header).map_err(|problem| match problem {
        HeaderProblem::NotABackup => Error::NotABackup,
        HeaderProblem::NewerFormat(version) => Error::BackupNewerFormat(version),
        HeaderProblem::Malformed(what) => Error::BackupDamaged(what),
    })
}

/// A new directory beside `dir` for the profile while it is made.
fn staging_dir(dir: &Path) -> Result<PathBuf> {
    let name = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| Error::BackupIo {
            action: "use",
            reason: format!("{} names no folder", dir.display()),
        })?;
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io("create", &e))?;
    Ok(parent.join(format!(".{name}.restoring-{}", uuid::Uuid::new_v4())))
}

/// Per chat, what the read mark and re-key dividers were, to be moved onto the restored messages' positions.
#[derive(Default)]
struct Marks {
    read_up_to: Option<u64>,
    new_read_up_to: Option<u64>,
    /// Old positions, ascending, not yet placed.
    rekeys: std::collections::VecDeque<u64>,
    new_rekeys: Vec<u64>,
}

fn read_into<R: Read>(
    reader: &mut SealedReader<R>,
    staging: &Path,
    keystore: Arc<dyn Keystore>,
    cancelled: &AtomicBool,
    progress: &mut dyn FnMut(u64),
) -> Result<Profile> {
    let Record::Profile {
        username,
        relay_url,
        registration,
        identity_key,
        ..
    } = reader.record()?
    else {
        return Err(damaged("it does not start with its profile"));
    };
    let der = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(identity_key.as_bytes())
            .map_err(|_| damaged("its identity key does not decode"))?,
    );
    let identity = Identity::from_pkcs8_der(username, &der)?;
    let mut profile = Profile::create_with_cache(staging, identity, keystore, RESTORE_CACHE)?;
    profile.set_relay_url(relay_url)?;
    let history = profile.history();
    if let Some(registration) = registration {
        history.set_registration(&registration)?;
    }

    let mut contacts: HashSet<Username> = HashSet::new();
    let mut marks: HashMap<Username, Marks> = HashMap::new();
    let mut messages = 0u64;
    // Messages with their old places, written a few records at a time.
    let mut pending: Vec<(Message, u64)> = Vec::with_capacity(WRITE_BATCH);
    loop {
        if cancelled.load(Ordering::Relaxed) {
            return Err(Error::BackupCancelled);
        }
        match reader.record()? {
            Record::Contact(_) if messages > 0 => return Err(damaged("a contact after the messages")),
            Record::Contact(_) if contacts.len() >= MAX_CONTACTS => {
                return Err(damaged("more contacts than any Magpie backs up"))
            }
            Record::Contact(contact) => {
                let mut contact = *contact;
                if !contacts.insert(contact.username.clone()) {
                    return Err(damaged("a contact in it twice"));
                }
                let mut rekeys = std::mem::take(&mut contact.rekeys);
                rekeys.drain(..rekeys.len().saturating_sub(REKEY_MARKS));
                if contact.read_up_to.is_some() || !rekeys.is_empty() {
                    let mark = Marks {
                        read_up_to: contact.read_up_to,
                        rekeys: rekeys.into(),
                        ..Marks::default()
                    };
                    marks.insert(contact.username.clone(), mark);
                }
                // No session comes back: a new handshake before anything is sealed for this contact. Its read mark
                // and dividers are set once the messages have their new places.
                contact.read_up_to = None;
                contact.rehandshake = true;
                history.put_contact(&contact)?;
            }
            Record::Messages {
                messages: batch,
                cursors,
            } => {
                if batch.len() != cursors.len() {
                    return Err(damaged("a batch of messages without their places"));
                }
                messages += batch.len() as u64;
                pending.extend(batch.into_iter().zip(cursors));
                if pending.len() >= WRITE_BATCH {
                    restore_batch(history, std::mem::take(&mut pending), &mut marks)?;
                    progress(reader.read);
                }
            }
            Record::End {
                contacts: contact_count,
                messages: message_count,
            } => {
                if contact_count != contacts.len() as u64 || message_count != messages || !reader.at_end()? {
                    return Err(damaged("it does not hold what its end says"));
                }
                restore_batch(history, std::mem::take(&mut pending), &mut marks)?;
                break;
            }
            Record::Profile { .. } => return Err(damaged("it holds two profiles")),
        }
    }
    for (peer, mark) in marks {
        let mut rekeys = mark.new_rekeys;
        // Dividers after the last message restored go after it.
        for _ in mark.rekeys {
            rekeys.push(history.mark_position()?);
        }
        history.update_contact(&peer, |slot| {
            if let Some(contact) = slot {
                contact.read_up_to = mark.new_read_up_to;
                contact.rekeys = rekeys;
            }
            Ok(())
        })?;
    }
    history.flush()?;
    Ok(profile)
}

fn restore_batch(history: &History, pending: Vec<(Message, u64)>, marks: &mut HashMap<Username, Marks>) -> Result<()> {
    let (mut batch, cursors): (Vec<Message>, Vec<u64>) = pending.into_iter().unzip();
    for message in &mut batch {
        // Their envelopes are not carried: what had not gone out is shown as not sent (texts can be sent again).
        if matches!(
            message.delivery,
            Delivery::Sending | Delivery::Waiting | Delivery::Uploading
        ) {
            message.delivery = Delivery::Failed;
        }
    }
    let appended = history.append_messages(&batch)?;
    for ((message, &old), outcome) in batch.iter().zip(&cursors).zip(appended) {
        let Appended::New(new) = outcome else {
            return Err(damaged("a message in it twice"));
        };
        if let Some(mark) = marks.get_mut(&message.peer) {
            let new = new.value();
            if mark.read_up_to.is_some_and(|read| old <= read) {
                mark.new_read_up_to = Some(new);
            }
            // A divider sits before every message at or after its position.
            while mark.rekeys.front().is_some_and(|&position| position <= old) {
                mark.rekeys.pop_front();
                mark.new_rekeys.push(new);
            }
        }
        if message.kind == MessageKind::File {
            history.put_file_record(&FileRecord {
                message_id: message.id,
                peer: message.peer.clone(),
                direction: message.direction,
                blob: magpie_proto::file::FileDescriptor::from_body(&message.body)?.blob,
                state: FileState::Failed(FILE_NOT_CARRIED.to_owned()),
            })?;
        }
    }
    Ok(())
}
