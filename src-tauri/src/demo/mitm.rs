//! The man in the middle a relay can be on a first contact: it shows each of them its own world (two relays with
//! the one CA, so both trust what they see), in which its impostor holds the other's name with the relay's key.
//! Alice's handshake is with the impostor "bob", Bob's with the impostor "alice"; the relay reads and forwards.

use std::path::Path;
use std::sync::{Arc, Mutex};

use magpie_core::{Client, Event};
use magpie_proto::Identity;
use tokio::task::JoinHandle;

use super::{name, register, run_client};
use crate::error::IpcError;

pub struct Mallory {
    /// What the impostor "bob" opened from Alice.
    pub read: Arc<Mutex<Vec<String>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Mallory {
    /// Registers the impostors, "bob" on Alice's relay and "alice" on Bob's, both with `key`, and starts them.
    pub async fn start(key: &Identity, alice_side: &str, bob_side: &str, dir: &Path) -> Result<Self, IpcError> {
        let der = key.to_pkcs8_der()?;
        let as_bob = Identity::from_pkcs8_der(name("bob")?, der.expose_secret())?;
        let as_alice = Identity::from_pkcs8_der(name("alice")?, der.expose_secret())?;
        let as_bob = register(as_bob, &dir.join("as-bob"), alice_side).await?;
        let as_alice = register(as_alice, &dir.join("as-alice"), bob_side).await?;
        let read = Arc::new(Mutex::new(Vec::new()));
        let events = as_bob.events();
        let tasks = vec![
            tokio::spawn(bridge(as_bob.clone(), as_alice.clone(), events, Arc::clone(&read))),
            tokio::spawn(run_client(as_bob)),
            tokio::spawn(run_client(as_alice)),
        ];
        Ok(Self { read, tasks })
    }

    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Alice's request to "bob" is accepted by the impostor, which asks Bob in Alice's name; what Alice says is read
/// and said again to Bob.
async fn bridge(
    as_bob: Client,
    as_alice: Client,
    mut events: tokio::sync::broadcast::Receiver<Event>,
    read: Arc<Mutex<Vec<String>>>,
) {
    let (Ok(alice), Ok(bob)) = (name("alice"), name("bob")) else {
        return;
    };
    while let Ok(event) = events.recv().await {
        let done = match event {
            Event::RequestReceived { peer, .. } if peer == alice.as_str() => match as_bob.sole_request_from(&alice) {
                Ok(request) => as_bob
                    .accept(request.request_id, &request.fingerprint)
                    .await
                    .and(as_alice.request(&bob).await.map(drop)),
                Err(e) => Err(e),
            },
            Event::MessageReceived { message } => {
                if let Ok(mut read) = read.lock() {
                    read.push(message.body.clone());
                }
                as_alice.send_text(&bob, &message.body).map(drop)
            }
            _ => Ok(()),
        };
        if let Err(error) = done {
            tracing::warn!(%error, "the demo's man in the middle stopped");
            return;
        }
    }
}
