//! Mailboxes: send (202 once durable, idempotent on id), fetch oldest first after a cursor, ack.

use std::borrow::Cow;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use magpie_api::{
    paths, AckRequest, AckResponse, ApiError, FetchQuery, FetchResponse, SendRequest, SendResponse, WireEnvelope,
    DEFAULT_FETCH, MAX_BATCH,
};
use magpie_proto::Username;
use uuid::Uuid;

use super::push::PushEvent;
use super::{now_secs, ApiJson, ApiQuery, AppState, AuthUser};
use crate::error::{Error, Result};
use crate::store::{Inserted, NewEnvelope, PendingInsert, StoredEnvelope};
use futures_util::FutureExt as _;

/// The envelope as delivered, borrowed from the store.
pub(crate) fn wire(e: &StoredEnvelope) -> WireEnvelope<'_> {
    WireEnvelope {
        id: e.id,
        from: Some(Cow::Borrowed(&e.from)),
        to: Cow::Borrowed(&e.to),
        kind: e.kind,
        body: Cow::Borrowed(&e.body_b64),
    }
}

/// Stores an envelope for its recipient and pushes it to them.
#[utoipa::path(post, path = paths::ENVELOPES, tag = "mailbox", security(("bearer" = [])),
    request_body = SendRequest,
    responses(
        (status = 202, description = "stored durably (or a retry of a stored id)", body = SendResponse),
        (status = 400, description = "bad JSON, body not base64, bad recipient name", body = ApiError),
        (status = 401, description = "no or a bad token", body = ApiError),
        (status = 403, description = "`from` is not the caller", body = ApiError),
        (status = 404, description = "no such recipient", body = ApiError),
        (status = 409, description = "`id_taken`: another sender used this id", body = ApiError),
        (status = 413, description = "body over --max-envelope-bytes", body = ApiError),
        (status = 429, description = "over the send rates", body = ApiError),
        (status = 507, description = "`mailbox_full`: the recipient's mailbox holds its quota", body = ApiError),
    ))]
pub(crate) async fn send(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<SendRequest>,
) -> Result<(StatusCode, Json<SendResponse>)> {
    let id = req.id;
    let inserted = stage(&state, me, req).await?.stored(&state).await?;
    Ok((StatusCode::ACCEPTED, Json(commit(&state, id, inserted).await?)))
}

/// Checks a send, writes it to the store (not yet durable) and pushes it to its recipient. Shared by HTTP and the
/// push socket.
///
/// The push does not wait for the disk: a group commit costs an `fdatasync`, most of a hop's latency. If a
/// crash loses the envelope before it is durable, its sender got no 202 and sends it again, and the recipient,
/// who may have it already, drops the second copy by id. The sender's 202 still waits for durability.
pub(crate) async fn stage(state: &AppState, me: String, req: SendRequest) -> Result<StagedSend> {
    state.rate_limit(&state.send_limit, &me)?;
    state.rate_limit_cost(&state.send_bytes, &me, req.body.len() as f64)?;
    stage_paced(state, me, req).await
}

/// A send staged in order: stored already (an embedded store), or queued for the store's next group
/// (PostgreSQL); either way it is pushed to its recipient once stored.
pub(crate) enum StagedSend {
    /// Stored and pushed.
    Stored(Inserted),
    /// Queued, for this recipient.
    Queued(PendingInsert, String),
}

impl StagedSend {
    /// The store's answer, once it has one (and the envelope is pushed).
    pub(crate) async fn stored(self, state: &AppState) -> Result<Inserted> {
        match self {
            Self::Stored(inserted) => Ok(inserted),
            Self::Queued(pending, to) => settle(state, pending.await?, to),
        }
    }
}

/// [`stage`] for a sender already held to its rates (the push socket waits for tokens instead of refusing).
pub(crate) async fn stage_paced(state: &AppState, me: String, req: SendRequest) -> Result<StagedSend> {
    if req.from.as_deref().is_some_and(|from| from != me) {
        return Err(Error::Forbidden("cannot send as another user"));
    }
    let to = Username::canonical(&req.to).map_err(|e| Error::BadRequest(format!("to: {e}")))?;
    // Decoding checks the alphabet and gives the true size; the bytes themselves are not kept.
    let size = STANDARD
        .decode(req.body.as_bytes())
        .map_err(|_| Error::BadRequest("body is not standard base64".into()))?
        .len();
    if size > state.config.max_envelope_bytes {
        return Err(Error::PayloadTooLarge(format!(
            "envelope body of {size} bytes, limit {}",
            state.config.max_envelope_bytes
        )));
    }
    if !state.store.has_user(to.as_str()).await? {
        return Err(Error::NotFound(format!("no user {:?}", to.as_str())));
    }
    let envelope = NewEnvelope {
        id: req.id,
        from: me,
        to: to.to_string(),
        kind: req.kind,
        body_b64: req.body.into_owned(),
        received_at: now_secs(),
    };
    let to = envelope.to.clone();
    let mut pending = state.store.insert_queued(envelope, state.mailbox_quota()).await?;
    // An embedded store has answered already: push now, before the envelope is durable (see `stage`).
    match (&mut pending).now_or_never() {
        Some(inserted) => Ok(StagedSend::Stored(settle(state, inserted?, to)?)),
        None => Ok(StagedSend::Queued(pending, to)),
    }
}

/// What an insert's answer means for the sender, and the push of what was stored.
fn settle(state: &AppState, inserted: Inserted, to: String) -> Result<Inserted> {
    if inserted == Inserted::MailboxFull {
        return Err(Error::MailboxFull(to));
    }
    // On PostgreSQL every relay pushes what is announced, in commit order (fanout.rs).
    if let (Inserted::Stored(stored), false) = (&inserted, state.store.announces()) {
        let pushed = state.hub.publish(&stored.to, &PushEvent::envelope(stored));
        state.metrics.envelopes_pushed.fetch_add(pushed, Relaxed);
    }
    Ok(inserted)
}

/// Waits until a staged envelope is durable: the sender's acceptance.
pub(crate) async fn commit(state: &AppState, id: Uuid, inserted: Inserted) -> Result<SendResponse> {
    commit_after(state, id, inserted, state.store.durable_later()).await
}

/// [`commit`] with a durability wait registered earlier (the socket registers each frame's as it stages it).
pub(crate) async fn commit_after(
    state: &AppState,
    id: Uuid,
    inserted: Inserted,
    durable: impl std::future::Future<Output = crate::store::StoreResult<()>>,
) -> Result<SendResponse> {
    // A retry also waits: its first copy may not be durable yet.
    durable.await?;
    match inserted {
        Inserted::Stored(stored) => {
            state.metrics.envelopes_stored.fetch_add(1, Relaxed);
            Ok(SendResponse {
                id,
                cursor: stored.seq,
                created: true,
            })
        }
        Inserted::Duplicate { seq } => {
            state.metrics.envelopes_duplicate.fetch_add(1, Relaxed);
            Ok(SendResponse {
                id,
                cursor: seq,
                created: false,
            })
        }
        Inserted::IdTaken => Err(Error::IdTaken),
        Inserted::MailboxFull => Err(Error::MailboxFull(String::new())),
    }
}

/// The caller's waiting envelopes after a cursor, oldest first.
#[utoipa::path(get, path = paths::ENVELOPES, tag = "mailbox", security(("bearer" = [])),
    params(FetchQuery),
    responses(
        (status = 200, description = "a page, at most `limit` envelopes and --fetch-budget-kb of bodies (at least one)",
            body = FetchResponse),
        (status = 400, description = "bad query", body = ApiError),
        (status = 401, description = "no or a bad token", body = ApiError),
        (status = 429, description = "over --fetches-per-minute", body = ApiError),
    ))]
pub(crate) async fn fetch(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiQuery(query): ApiQuery<FetchQuery>,
) -> Result<Response> {
    state.rate_limit(&state.fetch_limit, &me)?;
    // Bytes are known once read: a page may overdraw the budget, and the next fetch waits until it is paid off.
    state.rate_limit_cost(&state.fetch_bytes, &me, 0.0)?;
    let limit = query.limit.unwrap_or(DEFAULT_FETCH).clamp(1, MAX_BATCH);
    let budget = state.config.fetch_budget_kb.saturating_mul(1024);
    // The store cuts the page at the budget.
    let stored = state.store.fetch_within(&me, query.after, limit, budget).await?;
    // Serializing megabytes takes milliseconds: off the async workers, which push for everyone.
    let page = tokio::task::spawn_blocking(move || -> Result<(usize, usize, Response)> {
        let bytes = stored.iter().map(|e| e.body_b64.len()).sum();
        let response = FetchResponse {
            cursor: stored.last().map_or(query.after, |e| e.seq),
            envelopes: stored.iter().map(wire).collect(),
        };
        // Serialized here, while `stored` is still borrowed.
        Ok((stored.len(), bytes, Json(response).into_response()))
    });
    let (count, bytes, response) = page.await.map_err(|e| Error::Internal(e.to_string()))??;
    state.fetch_bytes.charge(&me, bytes as f64);
    state
        .metrics
        .envelopes_fetched
        .fetch_add(u64::try_from(count).unwrap_or(0), Relaxed);
    Ok(response)
}

/// Deletes fetched envelopes from the caller's mailbox.
#[utoipa::path(post, path = paths::ACK, tag = "mailbox", security(("bearer" = [])),
    request_body = AckRequest,
    responses(
        (status = 200, description = "deleted", body = AckResponse),
        (status = 400, description = "bad JSON", body = ApiError),
        (status = 401, description = "no or a bad token", body = ApiError),
        (status = 413, description = "more than 1,000 ids", body = ApiError),
    ))]
pub(crate) async fn ack(
    State(state): State<AppState>,
    AuthUser(me): AuthUser,
    ApiJson(req): ApiJson<AckRequest>,
) -> Result<Json<AckResponse>> {
    let acked = acknowledge(&state, &me, &req).await?;
    Ok(Json(AckResponse { acked }))
}

/// Deletes the acknowledged envelopes from `me`'s mailbox; returns how many were there. Shared by HTTP and the
/// push socket.
pub(crate) async fn acknowledge(state: &AppState, me: &str, req: &AckRequest) -> Result<usize> {
    if req.ids.len() > MAX_BATCH {
        return Err(Error::PayloadTooLarge(format!("at most {MAX_BATCH} ids per ack")));
    }
    let acked = state.store.ack(me, &req.ids, now_secs()).await?;
    state
        .metrics
        .envelopes_acked
        .fetch_add(u64::try_from(acked).unwrap_or(0), Relaxed);
    Ok(acked)
}
