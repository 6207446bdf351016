//! A relay of the demo's own, on 127.0.0.1, whose store is a [`Tap`]: it can also deliver copies it kept, as a
//! relay that replays does.

use std::path::Path;
use std::sync::Arc;

use magpie_proto::CertificateAuthority;
use magpie_relay::api::PushEvent;
use magpie_relay::ca::CaInfo;
use magpie_relay::config::Config;
use magpie_relay::server::RunningRelay;
use magpie_relay::store::{Inserted, MemoryStore, NewEnvelope};
use magpie_relay::AppState as RelayState;
use uuid::Uuid;

use super::wire::Tap;
use super::{failed, now_secs};
use crate::error::IpcError;

pub struct DemoRelay {
    running: RunningRelay,
    state: RelayState,
    pub tap: Arc<Tap>,
    pub url: String,
}

impl DemoRelay {
    pub async fn start(ca: CertificateAuthority, tap: Arc<Tap>, dir: &Path) -> Result<Self, IpcError> {
        let store = tap.store(Arc::new(MemoryStore::new()));
        let state = RelayState::new(Arc::new(store), CaInfo::new(ca)?, Config::with_data_dir(dir))
            .map_err(|e| failed(format!("the demo relay did not start: {e}")))?;
        let running = RunningRelay::start(state.clone())
            .await
            .map_err(|e| failed(format!("the demo relay could not listen: {e}")))?;
        let url = running.url("");
        Ok(Self {
            running,
            state,
            tap,
            url,
        })
    }

    /// Stores a copy of `envelope` under a new id and pushes it to its recipient; the new id.
    pub async fn replay(&self, envelope: NewEnvelope) -> Result<Uuid, String> {
        let copy = NewEnvelope {
            id: Uuid::new_v4(),
            received_at: now_secs(),
            ..envelope
        };
        let id = copy.id;
        self.tap.mark_replay(id);
        match self.state.store.insert_envelope(copy).await {
            Ok(Inserted::Stored(stored)) => {
                self.state.hub.publish(&stored.to, &PushEvent::envelope(&stored));
                Ok(id)
            }
            Ok(other) => Err(format!("the demo relay did not store its copy: {other:?}")),
            Err(e) => Err(format!("the demo relay did not store its copy: {e}")),
        }
    }

    pub async fn stop(self) {
        let _ = self.running.stop().await;
    }
}
