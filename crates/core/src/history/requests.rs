//! Chat requests waiting for the user, as the requests view lists them: a small sealed summary per request, beside
//! its full state in `handshakes`, so that listing them decodes no certificate and costs a few microseconds each.

use magpie_proto::{Fingerprint, Username};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::History;
use crate::error::{Error, Result};

pub(super) const REQUESTS: &str = "requests";
/// Set in `meta` once every incoming request stored before the summaries existed has one.
const INDEXED: &[u8] = b"requests-indexed";

/// What the requests view shows of one incoming request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestSummary {
    /// The request.
    pub request_id: Uuid,
    /// Who asks.
    pub peer: Username,
    /// Their key, verified to the relay's CA.
    pub fingerprint: Fingerprint,
    /// When they sent it, Unix seconds (their clock).
    pub sent_at: u64,
}

impl History {
    /// Stores the summary of an incoming request (replacing one with the same id).
    pub fn put_request(&self, summary: &RequestSummary) -> Result<()> {
        let key = self.request_key(summary.request_id)?;
        let plain = Zeroizing::new(serde_json::to_vec(summary).map_err(|_| Error::Crypto("encoding failed"))?);
        self.requests.insert(key, self.sealer.seal(REQUESTS, &key, &plain)?)?;
        Ok(())
    }

    /// Forgets a request's summary; `false` if there was none.
    pub fn remove_request(&self, request_id: Uuid) -> Result<bool> {
        Ok(self.requests.remove(self.request_key(request_id)?)?.is_some())
    }

    /// Every stored request summary, in no particular order.
    pub fn requests(&self) -> Result<Vec<RequestSummary>> {
        let mut out = Vec::new();
        for item in &self.requests {
            let (key, sealed) = item?;
            let plain = self.sealer.open(REQUESTS, &key, &sealed)?;
            let summary: RequestSummary =
                serde_json::from_slice(&plain).map_err(|_| Error::HistoryCorrupt { tree: REQUESTS })?;
            if self.request_key(summary.request_id)?.as_slice() != key.as_ref() {
                return Err(Error::HistoryCorrupt { tree: REQUESTS });
            }
            out.push(summary);
        }
        Ok(out)
    }

    /// Whether the summaries cover the requests stored before they existed ([`History::mark_requests_indexed`]).
    pub fn requests_indexed(&self) -> Result<bool> {
        Ok(self.meta.contains_key(INDEXED)?)
    }

    /// Notes that every stored incoming request has its summary.
    pub fn mark_requests_indexed(&self) -> Result<()> {
        self.meta.insert(INDEXED, &[1])?;
        Ok(())
    }

    fn request_key(&self, request_id: Uuid) -> Result<[u8; 32]> {
        self.sealer.index(b"request", request_id.as_bytes())
    }
}
