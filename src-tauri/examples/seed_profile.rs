//! Makes a data folder for `scripts/perf-app.sh`: a profile "perf" on the embedded relay (key in the real
//! credential store), a real handshake with "bob", then N messages in that chat written straight into its
//! encrypted history. `cargo run --release -p magpie-desktop --example seed_profile -- DATA_DIR N`
#![allow(clippy::print_stdout, reason = "a measuring tool: it reports what it wrote")]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use magpie_core::history::{Delivery, Direction, Message};
use magpie_core::keystore::{MemoryKeystore, PlatformKeystore};
use magpie_core::{Client, Event, Profile};
use magpie_desktop::local_relay::{relay_dir, LocalRelay};
use magpie_desktop::state::{mark_local_relay, AppState};
use magpie_proto::{Identity, MessageKind, Username};

const BATCH: usize = 10_000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(data), Some(count)) = (args.get(1), args.get(2)) else {
        return Err("usage: seed_profile DATA_DIR MESSAGES".into());
    };
    let data = std::path::PathBuf::from(data);
    let count: usize = count.parse()?;
    let state = AppState::new(data.clone());
    let relay = LocalRelay::start(relay_dir(&data)).await.map_err(|e| e.message)?;

    let dir = state.profiles_dir().join(uuid::Uuid::new_v4().to_string());
    let me = Profile::create_with_identity(
        &dir,
        Identity::generate(name("perf")?)?,
        Arc::new(PlatformKeystore::new()),
    )?;
    let id = me.id().to_string();
    let me = Client::register(me, relay.url(), None).await?;
    mark_local_relay(&dir).map_err(|e| e.message)?;
    state.remember_profile(Some(&id));

    let bob_dir = tempfile::tempdir()?;
    let bob = Profile::create_with_identity(
        bob_dir.path(),
        Identity::generate(name("bob")?)?,
        Arc::new(MemoryKeystore::default()),
    )?;
    let bob = Client::register(bob, relay.url(), None).await?;
    handshake(&me, &bob).await?;
    let peer = bob.username().clone();
    drop((me, bob));
    relay.stop().await;

    let profile = Profile::open(&dir, Arc::new(PlatformKeystore::new()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    // Spread over the last ~30 days, so the chat has day dividers.
    let step = (30 * 86_400 / count.max(1)).max(1) as u64;
    let mut written = 0;
    while written < count {
        let batch: Vec<Message> = (written..count.min(written + BATCH))
            .map(|i| message(&peer, i, now - (count - i) as u64 * step))
            .collect();
        profile.history().append_messages(&batch)?;
        written += batch.len();
    }
    profile.history().flush()?;
    println!(
        "seeded profile {id} in {} with {count} messages with {peer}",
        data.display()
    );
    Ok(())
}

fn message(peer: &Username, i: usize, sent_at: u64) -> Message {
    let outgoing = i.is_multiple_of(3);
    let words = [
        "sure",
        "see you at the station",
        "did you get the keys?",
        "ok",
        "the train is late again, 10 more minutes",
    ];
    Message {
        id: uuid::Uuid::new_v4(),
        peer: peer.clone(),
        direction: if outgoing {
            Direction::Outgoing
        } else {
            Direction::Incoming
        },
        kind: MessageKind::Text,
        body: format!("{} (#{i})", words[i % words.len()]),
        sent_at,
        received_at: (!outgoing).then_some(sent_at),
        delivery: if outgoing {
            Delivery::Delivered
        } else {
            Delivery::Received
        },
    }
}

async fn handshake(me: &Client, bob: &Client) -> Result<(), Box<dyn std::error::Error>> {
    let mut my_events = me.events();
    let mut bob_events = bob.events();
    let runners = [me.clone(), bob.clone()].map(|client| tokio::spawn(async move { client.run().await }));
    me.request(bob.username()).await?;
    wait(&mut bob_events, |e| matches!(e, Event::RequestReceived { .. })).await?;
    let request = bob.sole_request_from(me.username())?;
    bob.accept(request.request_id, &request.fingerprint).await?;
    wait(&mut my_events, |e| matches!(e, Event::SessionEstablished { .. })).await?;
    for runner in runners {
        runner.abort();
    }
    Ok(())
}

async fn wait(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    want: impl Fn(&Event) -> bool,
) -> Result<(), Box<dyn std::error::Error>> {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if want(&events.recv().await?) {
                return Ok::<_, tokio::sync::broadcast::error::RecvError>(());
            }
        }
    })
    .await??;
    Ok(())
}

fn name(name: &str) -> Result<Username, magpie_proto::Error> {
    Username::parse(name)
}
