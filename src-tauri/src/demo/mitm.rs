//! The man in the middle a relay can be on a first contact: it shows each of them its own world (two relays with
//! the one CA, so both trust what they see), in which its impostor holds the other's name with the relay's key.
//! Alice's handshake is with the impostor "bob", Bob's with the impostor "alice"; the relay reads and forwards.

use std::path::Path;
use std::sync::{Arc, Mutex};

use magpie_core::{Client, Event};
use magpie_proto::{Identity, Username};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
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
        let heard = (as_bob.events(), as_alice.events());
        let tasks = vec![
            tokio::spawn(bridge(as_bob.clone(), as_alice.clone(), heard, Arc::clone(&read))),
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

/// A run that ends early (an error on the way) leaves no impostor retrying a relay that is gone.
impl Drop for Mallory {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Alice's request to "bob" is accepted by the impostor, which asks Bob in Alice's name; what Alice says is read
/// and, once the impostor "alice" holds a session with Bob, said again to him.
async fn bridge(
    as_bob: Client,
    as_alice: Client,
    (mut from_alice, mut from_bob): (Receiver<Event>, Receiver<Event>),
    read: Arc<Mutex<Vec<String>>>,
) {
    let (Ok(alice), Ok(bob)) = (name("alice"), name("bob")) else {
        return;
    };
    let mut session_with_bob = false;
    let mut to_pass_on = Vec::new();
    loop {
        let done = tokio::select! {
            event = from_alice.recv() => match event {
                Ok(Event::RequestReceived { peer, .. }) if peer == alice.as_str() => {
                    answer_and_ask(&as_bob, &as_alice, &alice, &bob).await
                }
                Ok(Event::MessageReceived { message }) => {
                    if let Ok(mut read) = read.lock() {
                        read.push(message.body.clone());
                    }
                    to_pass_on.push(message.body);
                    Ok(())
                }
                Ok(_) | Err(RecvError::Lagged(_)) => Ok(()),
                Err(RecvError::Closed) => return,
            },
            event = from_bob.recv() => match event {
                Ok(Event::SessionEstablished { peer, .. }) if peer == bob.as_str() => {
                    session_with_bob = true;
                    Ok(())
                }
                Ok(_) | Err(RecvError::Lagged(_)) => Ok(()),
                Err(RecvError::Closed) => return,
            },
        };
        let passed_on = match session_with_bob {
            true => std::mem::take(&mut to_pass_on)
                .iter()
                .try_for_each(|text| as_alice.send_text(&bob, text).map(drop)),
            false => Ok(()),
        };
        if let Err(error) = done.and(passed_on) {
            tracing::warn!(%error, "the demo's man in the middle stopped");
            return;
        }
    }
}

/// The impostor "bob" accepts Alice's request; the impostor "alice" asks Bob.
async fn answer_and_ask(
    as_bob: &Client,
    as_alice: &Client,
    alice: &Username,
    bob: &Username,
) -> magpie_core::Result<()> {
    let request = as_bob.sole_request_from(alice)?;
    as_bob.accept(request.request_id, &request.fingerprint).await?;
    as_alice.request(bob).await.map(drop)
}
