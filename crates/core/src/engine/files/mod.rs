//! Files. Sending one: the relay is asked for a blob of its sealed size (a file over the relay's limit is refused
//! here, before any work), the file is sealed into the profile's `files/` folder, its message is stored as
//! "uploading", the blob is uploaded in parts, and only then is the message (with the file's key) sealed and sent.
//! Receiving one: its message is stored like a text, with the record of its download, and answered with a receipt;
//! its blob is downloaded in ranges into the profile, each segment and the digest checked, and the relay told it may
//! delete its copy (`transfer.rs`). Each file has a record in the history ([`FileRecord`]); after a restart, a
//! transfer resumes where the relay's copy (upload) or the profile's copy (download) ends. Transfers run one at a
//! time, in the background of [`Client::run`]; one that keeps failing does not hold up the others.
//!
//! The profile keeps each file as `files/<message id>`: named by us, never by a peer, so that no message can make
//! the client overwrite or delete another file.

mod transfer;

use std::collections::HashSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use magpie_proto::file::{FileDescriptor, FileLayout, Thumbnail, MAX_NAME_BYTES};
use magpie_proto::{MessageKind, Plaintext, Username};
use uuid::Uuid;

use super::events::{Event, MessageView};
use super::Client;
use crate::error::{Error, Result};
use crate::files;
use crate::history::{Delivery, Direction, FileRecord, FileState, Message};
use crate::store::prelude::*;

/// The reason a cancelled transfer gives.
pub const CANCELLED: &str = "cancelled";

/// How long the transfer loop waits after a failure that retrying may fix, at most.
const MOST_BACKOFF: Duration = Duration::from_secs(60);

/// What this run knows of its files beside their records.
#[derive(Debug, Default)]
pub(super) struct FileFlags {
    /// Transfers the user cancelled, until the transfer loop has stopped them.
    cancelled: HashSet<Uuid>,
    /// Files sealed by this run (their copies need no check before their upload: nothing crashed since).
    sealed_here: HashSet<Uuid>,
}

impl<H: Home> Client<H> {
    /// Sends the file at `path` to `peer`, with `thumbnail` (a small preview the face made of an image) inline.
    /// Returns once the file is sealed into the profile and its message stored as "uploading"; the upload runs in
    /// [`Client::run`] (or [`Client::finish_transfers`]). Refused, before anything is uploaded, when there is no
    /// session with `peer`, when `peer`'s key changed, when the file cannot be read, and when the relay takes no
    /// file this large ([`Error::FileTooLarge`] names its limit).
    pub async fn send_file(&self, peer: &Username, path: &Path, thumbnail: Option<Thumbnail>) -> Result<MessageView> {
        let dir = self.files_dir()?;
        if self.store().key_changed(peer)? {
            return Err(Error::KeyChanged(peer.to_string()));
        }
        if self.with_session(peer, |_| Ok(()))?.is_none() {
            return Err(Error::NoSession(peer.to_string()));
        }
        let size = files::file_size(path)?;
        let sealed_len = FileLayout::new(size).sealed_len();
        let relay = &self.inner.relay;
        let recipients = [peer.clone()];
        let created = self.logged_in(|| relay.create_blob(sealed_len, &recipients)).await?;
        // Its id names the kept copy; its body comes once the file is sealed.
        let mut plaintext = Plaintext::new(MessageKind::File, String::new(), SystemTime::now())?;
        let sealed = async {
            make_dir(&dir).await?;
            let (source, dest) = (path.to_owned(), dir.join(plaintext.id.to_string()));
            tokio::task::spawn_blocking(move || files::seal_into(&source, size, &dest))
                .await
                .map_err(|_| Error::Crypto("the sealing task ended"))?
        };
        let sealed = match sealed.await {
            Ok(sealed) => sealed,
            Err(e) => {
                // The relay's empty blob would count against our quota for a day.
                let _ = relay.release_blob(created.id).await;
                return Err(e);
            }
        };
        self.flags()?.sealed_here.insert(plaintext.id);
        let descriptor = FileDescriptor {
            blob: created.id,
            key: sealed.key,
            sha256: sealed.sha256,
            size,
            name: display_name(path),
            media_type: files::media_type_of(path).to_owned(),
            thumbnail,
        };
        plaintext.body = descriptor.to_body()?;
        let message = Message {
            id: plaintext.id,
            peer: peer.clone(),
            direction: Direction::Outgoing,
            kind: MessageKind::File,
            body: plaintext.body,
            sent_at: plaintext.sent_at,
            received_at: None,
            delivery: Delivery::Uploading,
        };
        // The record first: one whose message is missing after a crash is cleaned up by the transfer loop.
        self.store().put_file_record(&FileRecord {
            message_id: message.id,
            peer: peer.clone(),
            direction: Direction::Outgoing,
            blob: created.id,
            state: FileState::Uploading,
        })?;
        let mut view = MessageView::from(&message);
        if let crate::history::Appended::New(cursor) = self.store().append_message(&message)? {
            view.cursor = Some(cursor.value());
        }
        self.note_activity(peer)?;
        self.emit(Event::MessageWaiting { message: view.clone() });
        self.inner.transfers_wake.notify_one();
        Ok(view)
    }

    /// Writes the received (or sent) file of message `id` to `dest`, whole or not at all, after checking every
    /// segment again. A received file not here yet is downloaded first (the user asked for it).
    pub async fn save_file(&self, id: Uuid, dest: &Path) -> Result<()> {
        let record = self.store().file_record(id)?.ok_or(Error::NoFile(id))?;
        if matches!(record.state, FileState::Offered | FileState::Downloading) {
            self.set_file_state(&record, FileState::Downloading)?;
            self.transfer(id).await?;
        }
        let (blob, descriptor) = self.kept_blob(id)?;
        let dest = dest.to_owned();
        tokio::task::spawn_blocking(move || files::open_to(&blob, &descriptor, &dest))
            .await
            .map_err(|_| Error::Crypto("the opening task ended"))?
    }

    /// The file of message `id` in memory, if it is kept and at most `most` bytes (an image the window shows).
    pub async fn file_bytes(&self, id: Uuid, most: u64) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let (blob, descriptor) = self.kept_blob(id)?;
        tokio::task::spawn_blocking(move || files::open_to_memory(&blob, &descriptor, most))
            .await
            .map_err(|_| Error::Crypto("the opening task ended"))?
    }

    /// Stops the upload or download of file message `id`, between two parts, and returns at once. Ours: the
    /// relay's copy is deleted and the message fails (send the file again to retry). Theirs: what arrived is kept,
    /// and [`Client::download_file`] goes on from there. A file uploaded or downloaded whole is not affected.
    pub fn cancel_file(&self, id: Uuid) -> Result<()> {
        let record = self.store().file_record(id)?.ok_or(Error::NoFile(id))?;
        if matches!(record.state, FileState::Uploading | FileState::Downloading) {
            self.flags()?.cancelled.insert(id);
            self.inner.transfers_wake.notify_one();
        }
        Ok(())
    }

    /// Downloads a received file: one offered (too large to fetch unasked), cancelled, or failed on the way (a
    /// tampered or lost blob fails again, with its reason).
    pub fn download_file(&self, id: Uuid) -> Result<()> {
        let record = self.store().file_record(id)?.ok_or(Error::NoFile(id))?;
        if record.direction != Direction::Incoming || !matches!(record.state, FileState::Failed(_) | FileState::Offered)
        {
            return Ok(());
        }
        self.set_file_state(&record, FileState::Downloading)?;
        self.inner.transfers_wake.notify_one();
        Ok(())
    }

    /// The record of file message `id`: where its transfer stands.
    pub fn file_state(&self, id: Uuid) -> Result<Option<FileRecord>> {
        self.store().file_record(id)
    }

    /// Takes every pending transfer as far as it goes (what a one-shot command does before it exits), each in turn
    /// whatever happens to the others; then posts the outbox. The first failure that retrying may fix is returned.
    pub async fn finish_transfers(&self) -> Result<()> {
        let mut first_failure = None;
        for record in self.store().file_records()? {
            if record.state.pending() {
                if let Err(e) = self.transfer(record.message_id).await {
                    tracing::info!(id = %record.message_id, error = %e, "file transfer waits");
                    first_failure.get_or_insert(e);
                }
            }
        }
        self.flush_outbox().await?;
        first_failure.map_or(Ok(()), Err)
    }

    /// Works on pending transfers whenever one is added (or a session comes), retrying with a backoff after
    /// failures that may pass. Part of [`Client::run`].
    pub(super) async fn transfer_loop(&self) {
        if self.inner.home.files_dir().is_none() {
            return;
        }
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.finish_transfers().await {
                Ok(()) => {
                    backoff = Duration::from_secs(1);
                    self.inner.transfers_wake.notified().await;
                }
                Err(e) => {
                    tracing::info!(error = %e, retry_in = ?backoff, "file transfers waiting");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = self.inner.transfers_wake.notified() => {}
                    }
                    backoff = (backoff * 2).min(MOST_BACKOFF);
                }
            }
        }
    }

    /// Takes the transfer of file message `id` as far as it goes, as its record says now. A cancel is carried out
    /// here; failures that retrying cannot fix (a tampered or lost blob, a refusal) fail the file and are not
    /// returned.
    async fn transfer(&self, id: Uuid) -> Result<()> {
        let _running = self.inner.transfers_running.lock().await;
        let Some(record) = self.store().file_record(id)? else {
            return Ok(());
        };
        let Some(descriptor) = self.descriptor(id)? else {
            // Stored before its message, and the message never was (a crash in between), or the chat was cleared.
            self.forget_file(&record).await;
            return Ok(());
        };
        // A cancel that came too late (the transfer had ended) is forgotten, and the file goes on.
        let cancelled = self.take_cancel(id)?;
        let outcome = match record.state {
            FileState::Uploading | FileState::Downloading if cancelled => Err(Error::TransferCancelled),
            FileState::Uploading => self.upload(&record, &descriptor).await,
            FileState::Uploaded => self.send_file_message(&record).await,
            FileState::Downloading => self.download(&record, &descriptor).await,
            FileState::Downloaded => self.release(&record).await,
            FileState::Offered | FileState::Kept | FileState::Failed(_) => Ok(()),
        };
        match outcome {
            Err(Error::TransferCancelled) => self.cancelled(&record).await,
            Err(Error::FileTampered(reason)) => {
                self.fail_file(&record, format!("failed its integrity check: {reason}"))
            }
            Err(Error::FileLost(_)) => self.fail_file(&record, "the relay no longer has it".into()),
            Err(Error::Relay { status, code, .. }) if refused_for_good(status) => {
                // The relay's own words are not shown as ours.
                self.fail_file(&record, format!("the relay refused it ({status} {code})"))
            }
            Err(Error::RelayProtocol(_)) => self.fail_file(
                &record,
                "the relay answered something Magpie does not understand".into(),
            ),
            other => other,
        }
    }

    /// Carries out a cancel of `record`, if it is still under way.
    async fn cancelled(&self, record: &FileRecord) -> Result<()> {
        self.take_cancel(record.message_id)?;
        match record.state {
            FileState::Uploading => {
                let _ = self.inner.relay.release_blob(record.blob).await;
                self.fail_file(record, CANCELLED.into())
            }
            FileState::Downloading => self.fail_file(record, CANCELLED.into()),
            _ => Ok(()),
        }
    }

    /// Whether the user cancelled file `id` (and forgets that they did).
    fn take_cancel(&self, id: Uuid) -> Result<bool> {
        Ok(self.flags()?.cancelled.remove(&id))
    }

    /// Whether file `id` was cancelled and not yet stopped.
    fn is_cancelled(&self, id: Uuid) -> Result<bool> {
        Ok(self.flags()?.cancelled.contains(&id))
    }

    /// Whether file `id` was sealed by this run.
    fn sealed_here(&self, id: Uuid) -> Result<bool> {
        Ok(self.flags()?.sealed_here.contains(&id))
    }

    fn flags(&self) -> Result<crate::lock_order::Guard<'_, FileFlags>> {
        self.inner.file_flags.lock().map_err(|_| Error::Poisoned)
    }

    /// Gives the file up, for `reason`. A download's checked parts stay for a later try after a cancel, and are
    /// deleted after a failed check; a copy kept whole is never deleted here.
    fn fail_file(&self, record: &FileRecord, reason: String) -> Result<()> {
        tracing::warn!(peer = %record.peer, id = %record.message_id, %reason, "file transfer stopped");
        if reason != CANCELLED {
            if let Ok(kept) = self.kept_path(record.message_id) {
                let _ = std::fs::remove_file(files::part_path(&kept));
            }
        }
        if record.direction == Direction::Outgoing {
            let states = self.store().update_deliveries(&[record.message_id], Delivery::Failed)?;
            if let Some(Some(delivery)) = states.first() {
                self.emit(Event::DeliveryChanged {
                    peer: record.peer.to_string(),
                    id: record.message_id,
                    delivery: *delivery,
                });
            }
        }
        self.set_file_state(record, FileState::Failed(reason))
    }

    /// Drops a record whose message is gone, with its kept copy and the relay's.
    async fn forget_file(&self, record: &FileRecord) {
        if let Ok(kept) = self.kept_path(record.message_id) {
            let _ = tokio::fs::remove_file(files::part_path(&kept)).await;
            let _ = tokio::fs::remove_file(&kept).await;
        }
        let _ = self.inner.relay.release_blob(record.blob).await;
        let _ = self.store().remove_file_record(record.message_id);
    }

    fn set_file_state(&self, record: &FileRecord, state: FileState) -> Result<()> {
        self.store().put_file_record(&FileRecord {
            state: state.clone(),
            ..record.clone()
        })?;
        self.emit(Event::FileStateChanged {
            peer: record.peer.to_string(),
            id: record.message_id,
            state,
        });
        Ok(())
    }

    /// The kept blob of file message `id` and the descriptor that opens it.
    fn kept_blob(&self, id: Uuid) -> Result<(PathBuf, FileDescriptor)> {
        let record = self.store().file_record(id)?.ok_or(Error::NoFile(id))?;
        let kept = matches!(
            record.state,
            FileState::Kept | FileState::Downloaded | FileState::Uploading | FileState::Uploaded
        );
        let descriptor = self.descriptor(id)?.filter(|_| kept).ok_or(Error::NoFile(id))?;
        Ok((self.kept_path(id)?, descriptor))
    }

    /// The descriptor in file message `id`, if it is stored.
    fn descriptor(&self, id: Uuid) -> Result<Option<FileDescriptor>> {
        let Some(entry) = self.store().get_message(id)? else {
            return Ok(None);
        };
        if entry.message.kind != MessageKind::File {
            return Ok(None);
        }
        Ok(Some(FileDescriptor::from_body(&entry.message.body)?))
    }

    fn files_dir(&self) -> Result<PathBuf> {
        self.inner.home.files_dir().ok_or_else(|| Error::FileWrite {
            path: PathBuf::new(),
            source: std::io::Error::other("this client keeps no files"),
        })
    }

    /// Where the file of message `id` is kept.
    fn kept_path(&self, id: Uuid) -> Result<PathBuf> {
        Ok(self.files_dir()?.join(id.to_string()))
    }

    /// Runs `call` logged in: after a login if there is no token yet, and once more after a fresh login if the
    /// relay no longer takes the token.
    async fn logged_in<T, Fut: Future<Output = Result<T>>>(&self, call: impl Fn() -> Fut) -> Result<T> {
        if !self.inner.relay.is_logged_in() {
            self.resume_login().await?;
        }
        match call().await {
            Err(e) if e.is_unauthorized() => {
                self.login().await?;
                call().await
            }
            other => other,
        }
    }
}

/// Whether a relay's refusal will not change if asked again (a 4xx other than a login, a timeout or a rate).
fn refused_for_good(status: u16) -> bool {
    (400..500).contains(&status) && !matches!(status, 401 | 408 | 429)
}

/// Creates the folder `dir` (and those above it) if need be.
async fn make_dir(dir: &Path) -> Result<()> {
    tokio::fs::create_dir_all(dir).await.map_err(|source| Error::FileWrite {
        path: dir.to_owned(),
        source,
    })
}

/// The name a file goes by in its message: its own, cut to the protocol's 255 bytes at a character boundary.
fn display_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "file".to_owned());
    let mut end = name.len().min(MAX_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}
