//! The transfers themselves: an upload in parts that goes on from where the relay's copy ends, then the file's
//! message; a download in ranges, checked as it comes, that goes on from the profile's checked copy, then the
//! relay's release. Both stop between two parts when the user cancels.

use futures_util::StreamExt as _;
use magpie_proto::file::{FileDescriptor, FileLayout};

use super::{make_dir, Client};
use crate::engine::events::Event;
use crate::error::{Error, Result};
use crate::files;
use crate::history::{Delivery, FileRecord, FileState};
use crate::relay::TRANSFER_PART;
use crate::store::prelude::*;

/// Rounds an upload may make without the relay's copy growing before the relay is taken to be lying.
const MOST_STALLED_PARTS: u32 = 3;

impl<H: Home> Client<H> {
    pub(super) async fn upload(&self, record: &FileRecord, descriptor: &FileDescriptor) -> Result<()> {
        let path = self.kept_path(record.message_id)?;
        let total = FileLayout::new(descriptor.size).sealed_len();
        let relay = &self.inner.relay;
        let progress = match self.logged_in(|| relay.blob_progress(record.blob)).await {
            Err(Error::Relay { status: 404, .. }) => return Err(Error::FileLost(record.peer.to_string())),
            other => other?,
        };
        if progress.size != total {
            return Err(Error::RelayProtocol(
                "the relay's blob is not the size it was made".into(),
            ));
        }
        // Sealed without a sync (see `files::seal_into`): after a crash, the copy must be the one its message names.
        if !self.sealed_here(record.message_id)? {
            let (copy, sha256) = (path.clone(), descriptor.sha256);
            let whole = tokio::task::spawn_blocking(move || files::sha256_of(&copy).map(|d| d == sha256))
                .await
                .map_err(|_| Error::Crypto("the checking task ended"))?;
            if !whole.unwrap_or(false) {
                let _ = relay.release_blob(record.blob).await;
                return self.fail_file(
                    record,
                    "its sealed copy was damaged when the computer stopped while it was prepared; send it again".into(),
                );
            }
        }
        // On disk before it is announced (the sender's copy is what "Open" and "Save as" read): synced while the
        // parts go.
        let synced = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || files::sync_file(&path))
        };
        let (mut held, mut stalled) = (progress.held, 0);
        while held < total {
            if self.is_cancelled(record.message_id)? {
                return Err(Error::TransferCancelled);
            }
            let want = usize::try_from(total - held)
                .unwrap_or(TRANSFER_PART)
                .min(TRANSFER_PART);
            let from = path.clone();
            let part = tokio::task::spawn_blocking(move || files::read_part(&from, held, want))
                .await
                .map_err(|_| Error::Crypto("the reading task ended"))??;
            let now = match relay.upload_part(record.blob, held, part).await {
                Err(Error::Relay { status: 409, .. }) => relay.blob_progress(record.blob).await?.held,
                Err(e) if e.is_unauthorized() => {
                    self.login().await?;
                    continue;
                }
                other => other?,
            };
            // A relay that keeps answering with no progress (or with more than the blob holds) would keep us
            // sending forever.
            stalled = if now > held { 0 } else { stalled + 1 };
            if now > total || stalled > MOST_STALLED_PARTS {
                return Err(Error::RelayProtocol(
                    "the relay's copy does not grow with the parts sent".into(),
                ));
            }
            held = now;
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

    /// Seals and queues the message of a file the relay holds whole, with the session in use now. Without a usable
    /// session it stays "uploaded", and a new session wakes the transfers again; if the peer's key changed, the
    /// file is not sent (as waiting texts are not): nothing is sealed for a new key unasked.
    pub(super) async fn send_file_message(&self, record: &FileRecord) -> Result<()> {
        let Some(entry) = self.store().get_message(record.message_id)? else {
            return Ok(());
        };
        let message = entry.message;
        if message.delivery == Delivery::Uploading {
            if self.store().key_changed(&record.peer)? {
                let _ = self.inner.relay.release_blob(record.blob).await;
                return self.fail_file(record, format!("not sent: {}'s key changed", record.peer));
            }
            if !self.seal_stored(&message)? {
                self.maybe_rekey(&record.peer);
                return Ok(());
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

    pub(super) async fn download(&self, record: &FileRecord, descriptor: &FileDescriptor) -> Result<()> {
        make_dir(&self.files_dir()?).await?;
        let kept = self.kept_path(record.message_id)?;
        let part = files::part_path(&kept);
        let total = FileLayout::new(descriptor.size).sealed_len();
        // What an earlier run downloaded is checked again: a whole copy (it stopped between the rename and the
        // record) goes straight on to the release; a part that does not pass is fetched again from the start.
        let (check, held, whole) = {
            let (descriptor, kept, part) = (descriptor.clone(), kept.clone(), part.clone());
            tokio::task::spawn_blocking(move || {
                let mut check = files::BlobCheck::new(descriptor.clone());
                if kept.exists() && files::check_file(&mut check, &kept).is_ok() {
                    if check.finish().is_ok() {
                        return (files::BlobCheck::new(descriptor), total, true);
                    }
                    check = files::BlobCheck::new(descriptor.clone());
                }
                match part.exists().then(|| files::check_file(&mut check, &part)) {
                    Some(Ok(held)) => (check, held, false),
                    _ => (files::BlobCheck::new(descriptor), 0, false),
                }
            })
            .await
            .map_err(|_| Error::Crypto("the checking task ended"))?
        };
        if !whole {
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
        }
        self.set_file_state(record, FileState::Downloaded)?;
        self.release(record).await
    }

    /// Reads the blob of `record` from byte `held` to `total` in ranges into `writer`, reporting progress; stops
    /// early (without an error) when the writer stops taking bytes, and between two ranges when cancelled.
    async fn fetch_into(
        &self,
        record: &FileRecord,
        writer: &files::BlobWriter,
        mut held: u64,
        total: u64,
    ) -> Result<()> {
        let relay = &self.inner.relay;
        while held < total {
            if self.is_cancelled(record.message_id)? {
                return Err(Error::TransferCancelled);
            }
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

    /// Tells the relay it may delete its copy of a file we keep, once our copy's record is on disk: the release
    /// cannot be taken back.
    pub(super) async fn release(&self, record: &FileRecord) -> Result<()> {
        self.store().flush_async().await?;
        let relay = &self.inner.relay;
        self.logged_in(|| relay.release_blob(record.blob)).await?;
        self.set_file_state(record, FileState::Kept)
    }
}
