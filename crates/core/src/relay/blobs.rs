//! Blobs on the relay: create one for a peer, upload it in parts (each its own request, so a transfer of any size
//! stays within [`super::REQUEST_TIMEOUT`] per request and resumes at a part), download it in ranges, release it.

use magpie_api::{
    paths, BlobCreated, NewBlobRequest, PART_CONTENT_TYPE, UPLOAD_LENGTH, UPLOAD_MAX_LENGTH, UPLOAD_OFFSET,
};
use magpie_proto::Username;
use reqwest::header::{CONTENT_TYPE, RANGE};
use reqwest::Method;
use uuid::Uuid;

use super::RelayClient;
use crate::error::{Error, Result};

/// What one upload request carries, and one download request asks for, at most.
pub const TRANSFER_PART: usize = 4 << 20;

/// How much of a blob the relay holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobProgress {
    /// Bytes held: where an upload goes on.
    pub held: u64,
    /// The declared size.
    pub size: u64,
}

fn number_header(response: &reqwest::Response, name: &str) -> Result<u64> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::RelayProtocol(format!("no {name} in the relay's answer")))
}

impl RelayClient {
    /// Creates an empty blob of `size` bytes that `recipients` may download; [`Error::FileTooLarge`] with the
    /// relay's limit when it takes none this large.
    pub async fn create_blob(&self, size: u64, recipients: &[Username]) -> Result<BlobCreated> {
        let request = self.authorized(Method::POST, paths::BLOBS)?.json(&NewBlobRequest {
            size,
            recipients: recipients.iter().map(|r| r.as_str().to_owned()).collect(),
        });
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        if response.status() == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
            if let Ok(limit) = number_header(&response, UPLOAD_MAX_LENGTH) {
                return Err(Error::FileTooLarge { size, limit });
            }
        }
        self.json_of(response).await
    }

    /// How much of the blob the relay holds (`Error::Relay` 404 when it has none, or not for us).
    pub async fn blob_progress(&self, id: Uuid) -> Result<BlobProgress> {
        let response = self.execute(self.authorized(Method::HEAD, &paths::blob(id))?).await?;
        Ok(BlobProgress {
            held: number_header(&response, UPLOAD_OFFSET)?,
            size: number_header(&response, UPLOAD_LENGTH)?,
        })
    }

    /// Appends `part` to the blob at `offset`; returns the bytes the blob holds after. A relay holding other than
    /// `offset` bytes answers 409 (ask [`RelayClient::blob_progress`] and go on from there).
    pub async fn upload_part(&self, id: Uuid, offset: u64, part: Vec<u8>) -> Result<u64> {
        let request = self
            .authorized(Method::PATCH, &paths::blob(id))?
            .header(CONTENT_TYPE, PART_CONTENT_TYPE)
            .header(UPLOAD_OFFSET, offset)
            .body(part);
        let response = self.execute(request).await?;
        number_header(&response, UPLOAD_OFFSET)
    }

    /// Bytes `start..end` of the complete blob, as they arrive.
    pub async fn download_range(
        &self,
        id: Uuid,
        start: u64,
        end: u64,
    ) -> Result<impl futures_util::Stream<Item = Result<bytes::Bytes>> + '_> {
        use futures_util::StreamExt as _;
        let range = format!("bytes={start}-{}", end.saturating_sub(1));
        let response = self
            .execute(self.authorized(Method::GET, &paths::blob(id))?.header(RANGE, range))
            .await?;
        if response.status() != reqwest::StatusCode::PARTIAL_CONTENT {
            return Err(Error::RelayProtocol(format!(
                "the relay answered a range with {}",
                response.status()
            )));
        }
        Ok(response
            .bytes_stream()
            .map(move |piece| piece.map_err(|e| self.unreachable(&e))))
    }

    /// Lets go of a blob: we have it (a recipient), or we cancel it (its uploader). An unknown blob is no error.
    pub async fn release_blob(&self, id: Uuid) -> Result<()> {
        match self.execute(self.authorized(Method::DELETE, &paths::blob(id))?).await {
            Ok(_) | Err(Error::Relay { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
