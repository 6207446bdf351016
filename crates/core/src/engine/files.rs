//! Files. Sending one: the relay is asked for a blob of its sealed size (a file over the relay's limit is refused
//! here, before any work), the file is sealed into the profile's `files/` folder, its message is stored as
//! "uploading", the blob is uploaded in parts, and only then is the message (with the file's key) sealed and sent.
//! Receiving one: its message is stored like a text and answered with a receipt; its blob is downloaded in ranges
//! into the profile, each segment and the digest checked, and the relay told it may delete its copy. Each file has
//! a record in the history ([`FileRecord`]); after a restart, a transfer resumes where the relay's copy (upload) or
//! the profile's copy (download) ends. Transfers run one at a time, in the background of [`Client::run`].

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt as _;
use magpie_proto::file::{FileDescriptor, FileLayout, Thumbnail, MAX_NAME_BYTES};
use magpie_proto::{MessageKind, Plaintext, Username};
use uuid::Uuid;

use super::events::{Event, MessageView};
use super::Client;
use crate::error::{Error, Result};
use crate::files;
use crate::history::{Delivery, Direction, FileRecord, FileState, Message};
use crate::relay::TRANSFER_PART;
use crate::store::prelude::*;

/// The reason a cancelled transfer gives.
const CANCELLED: &str = "cancelled";

/// How long the transfer loop waits after a failure that retrying may fix, at most.
const MOST_BACKOFF: Duration = Duration::from_secs(60);

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
        let blob = created.id;
        let sealed = async {
            make_dir(&dir).await?;
            let (source, dest) = (path.to_owned(), dir.join(blob.to_string()));
            tokio::task::spawn_blocking(move || files::seal_into(&source, size, &dest))
                .await
                .map_err(|_| Error::Crypto("the sealing task ended"))?
        };
        let sealed = match sealed.await {
            Ok(sealed) => sealed,
            Err(e) => {
                // The relay's empty blob would count against our quota for a day.
                let _ = relay.release_blob(blob).await;
                return Err(e);
            }
        };
        let descriptor = FileDescriptor {
            blob,
            key: sealed.key,
            sha256: sealed.sha256,
            size,
            name: display_name(path),
            media_type: files::media_type_of(path).to_owned(),
            thumbnail,
        };
        let plaintext = Plaintext::new(MessageKind::File, descriptor.to_body()?, SystemTime::now())?;
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
            blob,
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
    /// segment again. A file still downloading is downloaded first.
    pub async fn save_file(&self, id: Uuid, dest: &Path) -> Result<()> {
        let record = self.store().file_record(id)?.ok_or(Error::NoFile(id))?;
        if record.state == FileState::Downloading {
            self.transfer(record).await?;
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

    /// Stops the transfer of file message `id`. Ours: the relay's copy is deleted and the message fails (send
    /// the file again to retry). Theirs: the download stops and can be resumed with [`Client::retry_file`].
    pub async fn cancel_file(&self, id: Uuid) -> Result<()> {
        let record = self.store().file_record(id)?.ok_or(Error::NoFile(id))?;
        if !record.state.pending() {
            return Ok(());
        }
        let _running = self.inner.transfers_running.lock().await;
        if record.direction == Direction::Outgoing {
            let _ = self.inner.relay.release_blob(record.blob).await;
        }
        self.fail_file(&record, CANCELLED.into())
    }

    /// Downloads again a received file whose download was cancelled or failed on the way (a tampered or lost
    /// blob fails again, with its reason).
    pub fn retry_file(&self, id: Uuid) -> Result<()> {
        let record = self.store().file_record(id)?.ok_or(Error::NoFile(id))?;
        if record.direction != Direction::Incoming || !matches!(record.state, FileState::Failed(_)) {
            return Ok(());
        }
        self.set_file_state(&record, FileState::Downloading)?;
        self.inner.transfers_wake.notify_one();
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
        Ok((self.files_dir()?.join(record.blob.to_string()), descriptor))
    }

    /// The record of file message `id`: where its transfer stands.
    pub fn file_state(&self, id: Uuid) -> Result<Option<FileRecord>> {
        self.store().file_record(id)
    }

    /// Runs every pending transfer to its end (what a one-shot command does before it exits); stops at the first
    /// that fails in a way a retry may fix.
    pub async fn finish_transfers(&self) -> Result<()> {
        for record in self.store().file_records()? {
            if record.state.pending() {
                self.transfer(record).await?;
            }
        }
        self.flush_outbox().await.map(drop)
    }

    /// Works on pending transfers whenever one is added, retrying with a backoff after transient failures. Part of
    /// [`Client::run`].
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

    /// Takes one transfer as far as it goes. Failures that retrying cannot fix (a tampered or lost blob) fail the
    /// file and are not returned: the other transfers go on.
    async fn transfer(&self, record: FileRecord) -> Result<()> {
        let id = record.message_id;
        // One at a time; another pass may have moved this one on meanwhile.
        let _running = self.inner.transfers_running.lock().await;
        let Some(record) = self.store().file_record(id)? else {
            return Ok(());
        };
        let Some(descriptor) = self.descriptor(id)? else {
            // Stored before its message, and the message never was (a crash in between), or the chat was cleared.
            self.forget_file(&record).await;
            return Ok(());
        };
        let outcome = match record.state {
            FileState::Uploading => self.upload(&record, &descriptor).await,
            FileState::Uploaded => self.send_file_message(&record).await,
            FileState::Downloading => self.download(&record, &descriptor).await,
            FileState::Downloaded => self.release(&record).await,
            FileState::Kept | FileState::Failed(_) => Ok(()),
        };
        match outcome {
            Err(Error::FileTampered(reason)) => {
                self.fail_file(&record, format!("failed its integrity check: {reason}"))
            }
            Err(Error::FileLost(_)) => self.fail_file(&record, "the relay no longer has it".into()),
            other => other,
        }
    }

    async fn upload(&self, record: &FileRecord, descriptor: &FileDescriptor) -> Result<()> {
        let path = self.files_dir()?.join(record.blob.to_string());
        let total = FileLayout::new(descriptor.size).sealed_len();
        let relay = &self.inner.relay;
        let mut held = match self.logged_in(|| relay.blob_progress(record.blob)).await {
            Err(Error::Relay { status: 404, .. }) => return Err(Error::FileLost(record.peer.to_string())),
            other => other?.held,
        };
        // Sealed without a sync (see `files::seal_into`): a crash may have cut it short.
        let prepared = tokio::fs::metadata(&path).await.map(|m| m.len()).unwrap_or(0);
        if prepared != total {
            return self.fail_file(
                record,
                "its sealed copy was lost when the computer stopped while it was prepared; send it again".into(),
            );
        }
        // On disk before it is announced (the sender's copy is what "Open" and "Save as" read): synced while the
        // parts go.
        let synced = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || files::sync_file(&path))
        };
        while held < total {
            let want = usize::try_from(total - held)
                .unwrap_or(TRANSFER_PART)
                .min(TRANSFER_PART);
            let from = path.clone();
            let part = tokio::task::spawn_blocking(move || files::read_part(&from, held, want))
                .await
                .map_err(|_| Error::Crypto("the reading task ended"))??;
            held = match relay.upload_part(record.blob, held, part).await {
                Err(Error::Relay { status: 409, .. }) => relay.blob_progress(record.blob).await?.held,
                Err(e) if e.is_unauthorized() => {
                    self.login().await?;
                    continue;
                }
                other => other?,
            };
            self.emit(Event::FileProgress {
                peer: record.peer.to_string(),
                id: record.message_id,
                done: held,
                total,
            });
        }
        synced.await.map_err(|_| Error::Crypto("the syncing task ended"))??;
        self.set_file_state(record, FileState::Uploaded)?;
        self.send_file_message(record).await
    }

    /// Seals and queues the message of a file the relay holds whole, with the session in use now; without a usable
    /// one it stays "uploaded" and is sent by a later pass.
    async fn send_file_message(&self, record: &FileRecord) -> Result<()> {
        let Some(entry) = self.store().get_message(record.message_id)? else {
            return Ok(());
        };
        let message = entry.message;
        if message.delivery == Delivery::Uploading {
            let sealed = self.seal_stored(&message)?;
            if !sealed {
                self.maybe_rekey(&record.peer);
                return Err(Error::NoSession(record.peer.to_string()));
            }
            self.emit(Event::DeliveryChanged {
                peer: record.peer.to_string(),
                id: message.id,
                delivery: Delivery::Sending,
            });
            self.inner.outbox_wake.notify_one();
        }
        self.set_file_state(record, FileState::Kept)
    }

    async fn download(&self, record: &FileRecord, descriptor: &FileDescriptor) -> Result<()> {
        let dir = self.files_dir()?;
        make_dir(&dir).await?;
        let kept = dir.join(record.blob.to_string());
        let part = files::part_path(&kept);
        let total = FileLayout::new(descriptor.size).sealed_len();
        // What an earlier run downloaded is checked again; if it does not pass, the download starts over.
        let (check, held) = {
            let (descriptor, part) = (descriptor.clone(), part.clone());
            tokio::task::spawn_blocking(move || {
                let mut check = files::BlobCheck::new(descriptor.clone());
                match part.exists().then(|| files::check_file(&mut check, &part)) {
                    Some(Ok(held)) => (check, held),
                    _ => (files::BlobCheck::new(descriptor), 0),
                }
            })
            .await
            .map_err(|_| Error::Crypto("the checking task ended"))?
        };
        let writer = files::BlobWriter::start(part.clone(), held, check);
        let fetched = self.fetch_into(record, &writer, held, total).await;
        // The writer's word first: a failed check explains a network read cut short by it.
        let (check, written) = writer.finish().await?;
        fetched?;
        if written != total {
            return Err(Error::FileTampered("the relay sent less than was asked".into()));
        }
        check.finish()?;
        tokio::fs::rename(&part, &kept)
            .await
            .map_err(|source| Error::FileWrite {
                path: kept.clone(),
                source,
            })?;
        self.set_file_state(record, FileState::Downloaded)?;
        self.release(record).await
    }

    /// Reads the blob of `record` from byte `held` to `total` in ranges into `writer`, reporting progress; stops
    /// early (without an error) when the writer stops taking bytes.
    async fn fetch_into(
        &self,
        record: &FileRecord,
        writer: &files::BlobWriter,
        mut held: u64,
        total: u64,
    ) -> Result<()> {
        let relay = &self.inner.relay;
        while held < total {
            let end = held.saturating_add(TRANSFER_PART as u64).min(total);
            let pieces = match self.logged_in(|| relay.download_range(record.blob, held, end)).await {
                // Gone, or no longer whole: the sender's message is only sent once it was.
                Err(Error::Relay { status: 404 | 409, .. }) => return Err(Error::FileLost(record.peer.to_string())),
                other => other?,
            };
            futures_util::pin_mut!(pieces);
            while let Some(piece) = pieces.next().await {
                let piece = piece?;
                if held.saturating_add(piece.len() as u64) > end {
                    return Err(Error::FileTampered("the relay sent more than was asked".into()));
                }
                held += piece.len() as u64;
                if !writer.send(piece).await {
                    return Ok(());
                }
            }
            if held < end {
                return Err(Error::FileTampered("the relay sent less than was asked".into()));
            }
            self.emit(Event::FileProgress {
                peer: record.peer.to_string(),
                id: record.message_id,
                done: held,
                total,
            });
        }
        Ok(())
    }

    /// Tells the relay it may delete its copy of a file we keep.
    async fn release(&self, record: &FileRecord) -> Result<()> {
        let relay = &self.inner.relay;
        self.logged_in(|| relay.release_blob(record.blob)).await?;
        self.set_file_state(record, FileState::Kept)
    }

    fn fail_file(&self, record: &FileRecord, reason: String) -> Result<()> {
        tracing::warn!(peer = %record.peer, id = %record.message_id, %reason, "file transfer failed");
        if let Ok(dir) = self.files_dir() {
            let kept = dir.join(record.blob.to_string());
            let _ = std::fs::remove_file(files::part_path(&kept));
            if record.direction == Direction::Incoming {
                let _ = std::fs::remove_file(&kept);
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

    /// Drops a record whose message is gone, with its kept copy and the relay's (if ours).
    async fn forget_file(&self, record: &FileRecord) {
        if let Ok(dir) = self.files_dir() {
            let kept = dir.join(record.blob.to_string());
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
