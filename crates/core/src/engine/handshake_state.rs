//! Handshakes in progress, kept (sealed) in the history so they survive a restart between steps: a CLI user may
//! request today and the peer accept tomorrow.

use magpie_proto::{AwaitingAccept, AwaitingConfirm, AwaitingKeyTransfer, Credential, IncomingRequest, Username};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::history::RequestSummary;
use crate::store::Handshakes;

/// The tag of a stored incoming request (the first byte of its value).
const INCOMING: u8 = 2;

/// One handshake in progress, by step.
#[derive(Debug)]
pub enum HandshakeState {
    /// We asked; waiting for accept or decline.
    AwaitingAccept(AwaitingAccept),
    /// They asked; waiting for our user.
    Incoming(IncomingRequest),
    /// We accepted; waiting for their KeyTransfer.
    AwaitingKeyTransfer(AwaitingKeyTransfer),
    /// We sent the KeyTransfer; waiting for their KeyConfirm.
    AwaitingConfirm(AwaitingConfirm),
}

impl HandshakeState {
    fn tag(&self) -> u8 {
        match self {
            Self::AwaitingAccept(_) => 1,
            Self::Incoming(_) => INCOMING,
            Self::AwaitingKeyTransfer(_) => 3,
            Self::AwaitingConfirm(_) => 4,
        }
    }

    /// The other party.
    pub fn peer(&self) -> &Username {
        match self {
            Self::AwaitingAccept(s) => s.peer(),
            Self::Incoming(s) => s.from(),
            Self::AwaitingKeyTransfer(s) => &s.report().initiator,
            Self::AwaitingConfirm(s) => s.peer().username(),
        }
    }

    /// The handshake's request id.
    pub fn request_id(&self) -> Uuid {
        match self {
            Self::AwaitingAccept(s) => s.request_id(),
            Self::Incoming(s) => s.request_id(),
            Self::AwaitingKeyTransfer(s) => s.report().request_id,
            Self::AwaitingConfirm(s) => s.report().request_id,
        }
    }

    /// Seals it into the history under its request id, replacing the previous step; an incoming request gets
    /// its summary for the requests view too, which goes once it is accepted.
    pub fn save(&self, history: &impl Handshakes) -> Result<()> {
        match self {
            Self::Incoming(request) => history.put_request(&RequestSummary {
                request_id: request.request_id(),
                peer: request.from().clone(),
                fingerprint: request.peer().fingerprint(),
                sent_at: request.sent_at(),
            })?,
            // The step after an accepted request: it no longer waits for the user.
            Self::AwaitingKeyTransfer(_) => {
                history.remove_request(self.request_id())?;
            }
            Self::AwaitingAccept(_) | Self::AwaitingConfirm(_) => {}
        }
        let exported = match self {
            Self::AwaitingAccept(s) => s.export()?,
            Self::Incoming(s) => s.export()?,
            Self::AwaitingKeyTransfer(s) => s.export()?,
            Self::AwaitingConfirm(s) => s.export()?,
        };
        let mut bytes = Zeroizing::new(Vec::with_capacity(1 + exported.expose_secret().len()));
        bytes.push(self.tag());
        bytes.extend_from_slice(exported.expose_secret());
        history.save_handshake(&self.request_id().to_string(), &bytes)
    }

    /// The handshake stored under `request_id`, if any.
    pub fn load(history: &impl Handshakes, me: &Credential, request_id: Uuid) -> Result<Option<Self>> {
        match history.load_handshake(&request_id.to_string())? {
            Some(bytes) => Ok(Some(Self::decode(me, bytes.expose())?)),
            None => Ok(None),
        }
    }

    /// Every stored handshake. One that no longer imports (a damaged value) is reported, not skipped silently.
    pub fn all(history: &impl Handshakes, me: &Credential) -> Result<Vec<Self>> {
        Self::stored(history, me, true)
    }

    /// Every stored handshake but the incoming requests waiting for the user (which may be many, and which the
    /// requests view lists from their summaries): the ones under way.
    pub fn under_way(history: &impl Handshakes, me: &Credential) -> Result<Vec<Self>> {
        Self::stored(history, me, false)
    }

    fn stored(history: &impl Handshakes, me: &Credential, incoming: bool) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for (id, bytes) in history.handshakes()? {
            let Ok(request_id) = Uuid::parse_str(&id) else {
                return Err(Error::HistoryCorrupt { tree: "handshakes" });
            };
            if !incoming && bytes.expose().first() == Some(&INCOMING) {
                continue;
            }
            let pending = Self::decode(me, bytes.expose())?;
            if pending.request_id() != request_id {
                return Err(Error::HistoryCorrupt { tree: "handshakes" });
            }
            out.push(pending);
        }
        Ok(out)
    }

    /// Forgets the handshake stored under `request_id`.
    pub fn remove(history: &impl Handshakes, request_id: Uuid) -> Result<()> {
        history.remove_handshake(&request_id.to_string())?;
        history.remove_request(request_id)?;
        Ok(())
    }

    /// Forgets the handshake `request_id` and remembers that it ended: a second copy of its request (pushed, then
    /// fetched again by a catch-up) is dropped instead of starting it over.
    pub fn finish(history: &impl Handshakes, request_id: Uuid) -> Result<()> {
        let id = request_id.to_string();
        history.remove_handshake(&id)?;
        history.remove_request(request_id)?;
        let now = crate::engine::now_secs();
        let kept = magpie_proto::REQUEST_MAX_AGE_SECS + magpie_proto::MAX_CLOCK_SKEW_SECS;
        history.finish_handshake(&id, now, now.saturating_sub(kept))
    }

    /// Whether the handshake `request_id` ended already.
    pub fn finished(history: &impl Handshakes, request_id: Uuid) -> Result<bool> {
        history.handshake_finished(&request_id.to_string())
    }

    fn decode(me: &Credential, bytes: &[u8]) -> Result<Self> {
        let (tag, state) = bytes
            .split_first()
            .ok_or(Error::HistoryCorrupt { tree: "handshakes" })?;
        let me = me.clone();
        Ok(match tag {
            1 => Self::AwaitingAccept(AwaitingAccept::import(me, state)?),
            &INCOMING => Self::Incoming(IncomingRequest::import(me, state)?),
            3 => Self::AwaitingKeyTransfer(AwaitingKeyTransfer::import(me, state)?),
            4 => Self::AwaitingConfirm(AwaitingConfirm::import(me, state)?),
            _ => return Err(Error::HistoryCorrupt { tree: "handshakes" }),
        })
    }
}
