//! Blobs: create one for named recipients, upload it in parts that resume where the relay's copy ends, read its
//! state, download it in ranges once complete, release it. Both directions stream: a transfer holds at most
//! [`BLOB_CHUNK`] of the file in the relay's memory.

use std::time::Duration;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use magpie_api::{
    paths, ApiError, BlobCreated, NewBlobRequest, MAX_BLOB_RECIPIENTS, PART_CONTENT_TYPE, UPLOAD_LENGTH, UPLOAD_OFFSET,
};
use magpie_proto::Username;
use uuid::Uuid;

use super::{now_secs, ApiJson, AppState, AuthUser};
use crate::error::{Error, Result};
use crate::store::blobs::{Appended, BlobInfo, Created, NewBlob, Released, BLOB_CHUNK, INCOMPLETE_BLOB_SECS};

/// How long an upload may send nothing before the relay keeps what arrived and ends the request.
const PART_IDLE: Duration = Duration::from_secs(30);

/// The smallest part, but for the one that completes a blob: many tiny parts would cost the store a record each.
pub(crate) const MIN_PART: usize = 64 * 1024;

/// Creates an empty blob of a declared size that the named recipients may read.
#[utoipa::path(post, path = paths::BLOBS, tag = "files", security(("bearer" = [])),
    request_body = NewBlobRequest,
    responses(
        (status = 201, description = "created, empty: upload it with PATCH", body = BlobCreated),
        (status = 400, description = "a size of 0, no or too many recipients, a bad name, the caller among them",
            body = ApiError),
        (status = 401, description = "no or a bad token", body = ApiError),
        (status = 404, description = "no such recipient", body = ApiError),
        (status = 413, description = "larger than --max-file-mb; `upload-max-length` says the limit in bytes",
            body = ApiError),
        (status = 429, description = "over --send-per-second", body = ApiError),
        (status = 507, description = "`file_quota_full`: the caller's blobs hold --file-quota-mb or \
            --file-quota-files", body = ApiError),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<NewBlobRequest>,
) -> Result<(StatusCode, Json<BlobCreated>)> {
    state.rate_limit(&state.send_limit, &me)?;
    let max = state.config.max_file_mb.saturating_mul(1 << 20);
    if req.size == 0 {
        return Err(Error::BadRequest("a blob holds at least one byte".into()));
    }
    if req.size > max {
        return Err(Error::FileTooLarge {
            size: req.size,
            limit: max,
        });
    }
    if req.recipients.is_empty() || req.recipients.len() > MAX_BLOB_RECIPIENTS {
        return Err(Error::BadRequest(format!(
            "a blob names 1 to {MAX_BLOB_RECIPIENTS} recipients"
        )));
    }
    let mut recipients: Vec<String> = Vec::with_capacity(req.recipients.len());
    for name in &req.recipients {
        let name = Username::canonical(name).map_err(|e| Error::BadRequest(format!("recipients: {e}")))?;
        if name.as_str() == me {
            return Err(Error::BadRequest(
                "recipients are the others: the uploader reads its blob anyway".into(),
            ));
        }
        if !state.store.has_user(name.as_str()).await? {
            return Err(Error::NotFound(format!("no user {:?}", name.as_str())));
        }
        if !recipients.iter().any(|r| r == name.as_str()) {
            recipients.push(name.as_str().to_owned());
        }
    }
    let now = now_secs();
    let blob = NewBlob {
        id: Uuid::new_v4(),
        owner: me,
        size: req.size,
        recipients,
        created_at: now,
    };
    let id = blob.id;
    match state.blobs.create(blob, state.blob_quota()).await? {
        Created::Created => Ok((
            StatusCode::CREATED,
            Json(BlobCreated {
                id,
                upload_by: now.saturating_add(INCOMPLETE_BLOB_SECS),
                expires_at: match state.config.mailbox_expiry_days {
                    0 => None,
                    days => Some(now.saturating_add(days.saturating_mul(86_400))),
                },
            }),
        )),
        Created::QuotaFull => Err(Error::FileQuotaFull(format!(
            "your files waiting on this relay hold its quota ({} MiB or {} files): they are deleted as their \
             recipients fetch them",
            state.config.file_quota_mb, state.config.file_quota_files
        ))),
    }
}

/// The blob `id` as `me` may see it: 404 when it does not exist or `me` is not a party to it.
async fn visible(state: &AppState, me: &str, id: Uuid) -> Result<BlobInfo> {
    state
        .blobs
        .blob(id)
        .await?
        .filter(|info| info.readable_by(me))
        .ok_or_else(|| Error::NotFound(format!("no blob {id}")))
}

fn blob_id(path: std::result::Result<Path<Uuid>, PathRejection>) -> Result<Uuid> {
    path.map(|Path(id)| id).map_err(|r| Error::BadRequest(r.body_text()))
}

fn offset_header(value: u64) -> (header::HeaderName, HeaderValue) {
    (header::HeaderName::from_static(UPLOAD_OFFSET), HeaderValue::from(value))
}

/// Appends the request's body to the blob at `Upload-Offset`, which must be what the blob holds. What arrives is
/// kept even when the request ends early, so the uploader asks (HEAD) and resumes from there.
#[utoipa::path(patch, path = "/v1/blobs/{id}", tag = "files", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "the blob"),
        ("upload-offset" = u64, Header, description = "where this part starts: the bytes the blob holds"),
    ),
    request_body(content = Vec<u8>, content_type = "application/offset+octet-stream",
        description = "the next bytes of the blob"),
    responses(
        (status = 204, description = "appended; `upload-offset` says what the blob now holds"),
        (status = 400, description = "no or a bad `upload-offset`, a bad id, a part that ended early, a part under 64 \
            KiB that does not complete the blob", body = ApiError),
        (status = 401, description = "no or a bad token", body = ApiError),
        (status = 403, description = "a recipient, not the uploader", body = ApiError),
        (status = 404, description = "no such blob, or not the caller's", body = ApiError),
        (status = 409, description = "`offset_mismatch`: the blob holds other than `upload-offset` bytes, or \
            another part is being appended; the answer's `upload-offset` says how many it holds", body = ApiError),
        (status = 413, description = "the part passes the blob's declared size", body = ApiError),
        (status = 415, description = "not application/offset+octet-stream", body = ApiError),
        (status = 429, description = "over --send-per-second", body = ApiError),
    ))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    path: std::result::Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    state.rate_limit(&state.send_limit, &me)?;
    let id = blob_id(path)?;
    if headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) != Some(PART_CONTENT_TYPE) {
        return Err(Error::UnsupportedMediaType(format!("a part is {PART_CONTENT_TYPE}")));
    }
    let offset: u64 = headers
        .get(UPLOAD_OFFSET)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::BadRequest(format!("{UPLOAD_OFFSET}: a number of bytes is needed")))?;
    let info = visible(&state, &me, id).await?;
    if info.owner != me {
        return Err(Error::Forbidden("only its uploader appends to a blob"));
    }
    // One part at a time: a second would find the blob's end moving under it.
    let _uploading = Uploading::start(&state, id).ok_or(Error::OffsetMismatch {
        received: info.received,
    })?;
    if offset != info.received {
        return Err(Error::OffsetMismatch {
            received: info.received,
        });
    }
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|length| offset.saturating_add(length) > info.size) {
        return Err(too_long(info.size));
    }
    // What arrives is kept, whatever ends the request. It is synced once the blob is whole, before the answer
    // that lets the uploader announce it; a crash before then may lose an unsynced tail, which the relay then does
    // not count (a blob holds its file's length), and the uploader sends again from where HEAD says.
    let held = append_body(&state, &me, (id, info.size), offset, body).await?;
    if held == info.size {
        state.blobs.sync(id).await?;
    }
    Ok((StatusCode::NO_CONTENT, [offset_header(held)]).into_response())
}

fn too_long(size: u64) -> Error {
    Error::PayloadTooLarge(format!("the part passes the blob's declared size of {size} bytes"))
}

/// Marks a blob's upload as under way while it lives.
struct Uploading<'a>(&'a AppState, Uuid);

impl<'a> Uploading<'a> {
    fn start(state: &'a AppState, id: Uuid) -> Option<Self> {
        let mut uploading = state.uploading.lock().unwrap_or_else(|p| p.into_inner());
        // Lazily: a guard made and dropped here would unmark the upload under way (and wait on this lock).
        uploading.insert(id).then(|| Self(state, id))
    }
}

impl Drop for Uploading<'_> {
    fn drop(&mut self) {
        self.0
            .uploading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.1);
    }
}

/// Appends `body` to blob `id` of `size` bytes in parts of [`BLOB_CHUNK`], paced to `me`'s upload rate; returns
/// what the blob holds after. A request that brings less than [`MIN_PART`] keeps nothing, unless it completes the
/// blob.
async fn append_body(state: &AppState, me: &str, (id, size): (Uuid, u64), start: u64, body: Body) -> Result<u64> {
    let mut frames = body.into_data_stream();
    let mut pending = BytesMut::new();
    let mut offset = start;
    let keep_rest = |offset: u64, pending: &BytesMut| {
        offset > start || pending.len() >= MIN_PART || offset + pending.len() as u64 == size
    };
    loop {
        let cut_short = match tokio::time::timeout(PART_IDLE, frames.next()).await {
            Ok(Some(Ok(mut frame))) => {
                while !frame.is_empty() {
                    let room = BLOB_CHUNK - pending.len();
                    pending.extend_from_slice(&frame.split_to(room.min(frame.len())));
                    if pending.len() == BLOB_CHUNK {
                        append(state, me, id, &mut offset, pending.split().freeze()).await?;
                    }
                }
                continue;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => format!("the part ended early: {e}"),
            Err(_) => format!("the part sent nothing for {} s", PART_IDLE.as_secs()),
        };
        if keep_rest(offset, &pending) {
            append(state, me, id, &mut offset, pending.split().freeze()).await?;
        }
        return Err(Error::BadRequest(cut_short));
    }
    if !keep_rest(offset, &pending) {
        return Err(Error::BadRequest(format!(
            "a part holds at least {} KiB, but for the one that completes the blob",
            MIN_PART / 1024
        )));
    }
    append(state, me, id, &mut offset, pending.freeze()).await?;
    Ok(offset)
}

async fn append(state: &AppState, me: &str, id: Uuid, offset: &mut u64, part: Bytes) -> Result<()> {
    if part.is_empty() {
        return Ok(());
    }
    state
        .pace_cost(&state.file_kib_up, me, part.len() as f64 / 1024.0)
        .await;
    match state.blobs.append(id, *offset, part).await? {
        Appended::At(held) => {
            *offset = held;
            Ok(())
        }
        Appended::Mismatch { received } => Err(Error::OffsetMismatch { received }),
        Appended::TooLong { size } => Err(too_long(size)),
        Appended::Missing => Err(Error::NotFound(format!("no blob {id}"))),
    }
}

/// How much of the blob the relay holds: where an upload resumes.
#[utoipa::path(head, path = "/v1/blobs/{id}", tag = "files", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the blob")),
    responses(
        (status = 200, description = "`upload-offset`: the bytes held; `upload-length`: the declared size"),
        (status = 400, description = "a bad id"),
        (status = 401, description = "no or a bad token"),
        (status = 404, description = "no such blob, or not the caller's"),
        (status = 429, description = "over --fetches-per-minute"),
    ))]
pub(crate) async fn status(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    path: std::result::Result<Path<Uuid>, PathRejection>,
) -> Result<Response> {
    state.rate_limit(&state.fetch_limit, &me)?;
    let info = visible(&state, &me, blob_id(path)?).await?;
    Ok((
        StatusCode::OK,
        [
            offset_header(info.received),
            (
                header::HeaderName::from_static(UPLOAD_LENGTH),
                HeaderValue::from(info.size),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response())
}

/// The complete blob's bytes, or those of one `Range`.
#[utoipa::path(get, path = "/v1/blobs/{id}", tag = "files", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "the blob"),
        ("range" = Option<String>, Header, description = "one range: `bytes=a-b`, `bytes=a-` or `bytes=-n`"),
    ),
    responses(
        (status = 200, description = "the whole blob", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "the range asked for; `content-range` says which",
            content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "a bad id", body = ApiError),
        (status = 401, description = "no or a bad token", body = ApiError),
        (status = 404, description = "no such blob, or not the caller's", body = ApiError),
        (status = 409, description = "`blob_incomplete`: still being uploaded", body = ApiError),
        (status = 416, description = "`range_not_satisfiable`: not one range within the blob", body = ApiError),
        (status = 429, description = "over --fetches-per-minute", body = ApiError),
    ))]
pub(crate) async fn download(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    path: std::result::Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    state.rate_limit(&state.fetch_limit, &me)?;
    let id = blob_id(path)?;
    let info = visible(&state, &me, id).await?;
    if !info.complete() {
        return Err(Error::BlobIncomplete(format!(
            "the blob is still being uploaded: {} of {} bytes",
            info.received, info.size
        )));
    }
    let range = match headers.get(header::RANGE) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| byte_range(v, info.size))
                .ok_or(Error::RangeNotSatisfiable { size: info.size })?,
        ),
    };
    let (start, end) = range.unwrap_or((0, info.size));
    let pieces = state
        .blobs
        .read(id, start, end)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no blob {id}")))?;
    let paced = state.clone();
    let body = Body::from_stream(pieces.then(move |piece| {
        let (state, me) = (paced.clone(), me.clone());
        async move {
            let piece = piece.map_err(|e| {
                tracing::error!(error = %e, "blob read failed mid-download");
                std::io::Error::other("blob read failed")
            })?;
            state
                .pace_cost(&state.file_kib_down, &me, piece.len() as f64 / 1024.0)
                .await;
            Ok::<_, std::io::Error>(piece)
        }
    }));
    let mut response = Response::new(body);
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        let content_range = format!("bytes {start}-{}/{}", end - 1, info.size);
        if let Ok(value) = HeaderValue::from_str(&content_range) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    Ok(response)
}

/// One `Range` of a blob of `size` bytes as `[start, end)`: `bytes=a-b`, `bytes=a-` or `bytes=-n`. `None` for
/// several ranges, another unit, or one outside the blob.
pub(crate) fn byte_range(value: &str, size: u64) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let (start, end) = if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        (size.saturating_sub(suffix), size)
    } else {
        let start: u64 = first.parse().ok()?;
        let end = if last.is_empty() {
            size
        } else {
            last.parse::<u64>().ok()?.saturating_add(1).min(size)
        };
        (start, end)
    };
    (start < end).then_some((start, end))
}

/// Lets go of a blob: a recipient that has it (the last one's release deletes it), or its uploader cancelling.
#[utoipa::path(delete, path = "/v1/blobs/{id}", tag = "files", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "the blob")),
    responses(
        (status = 204, description = "released (and deleted if no recipient holds it any more)"),
        (status = 400, description = "a bad id", body = ApiError),
        (status = 401, description = "no or a bad token", body = ApiError),
        (status = 404, description = "no such blob, or not the caller's", body = ApiError),
        (status = 409, description = "`blob_incomplete`: a recipient's release of a blob still being uploaded",
            body = ApiError),
        (status = 429, description = "over --send-per-second", body = ApiError),
    ))]
pub(crate) async fn release(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    path: std::result::Result<Path<Uuid>, PathRejection>,
) -> Result<StatusCode> {
    state.rate_limit(&state.send_limit, &me)?;
    let id = blob_id(path)?;
    let info = visible(&state, &me, id).await?;
    if info.owner != me && !info.complete() {
        return Err(Error::BlobIncomplete(
            "a recipient releases a blob it has: this one is still being uploaded".into(),
        ));
    }
    match state.blobs.release(id, &me).await? {
        Released::Kept | Released::Deleted => Ok(StatusCode::NO_CONTENT),
        Released::NotYours | Released::Missing => Err(Error::NotFound(format!("no blob {id}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::byte_range;

    #[test]
    fn ranges_are_one_span_inside_the_blob() {
        assert_eq!(byte_range("bytes=0-99", 1000), Some((0, 100)));
        assert_eq!(byte_range("bytes=900-", 1000), Some((900, 1000)));
        assert_eq!(byte_range("bytes=-100", 1000), Some((900, 1000)));
        assert_eq!(byte_range("bytes=-5000", 1000), Some((0, 1000)));
        assert_eq!(byte_range("bytes=990-5000", 1000), Some((990, 1000)));
        assert_eq!(byte_range("bytes=1000-", 1000), None);
        assert_eq!(byte_range("bytes=5-4", 1000), None);
        assert_eq!(byte_range("bytes=0-1,5-6", 1000), None);
        assert_eq!(byte_range("items=0-1", 1000), None);
        assert_eq!(byte_range("bytes=-0", 1000), None);
        assert_eq!(byte_range("bytes=x-", 1000), None);
    }
}
