//! What each attack comes to: the relay's move once the chat is open (a replay, a certificate of its own), and
//! for every attack the verdict: which check stopped it and why, with the values it compared.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use magpie_core::engine::{utc_minute, HandshakeStep};
use magpie_core::{Client, Event};
use magpie_proto::{
    CertificateAuthority, Credential, EnvelopeKind, Identity, Initiator, KeyConfirm, KeyTransfer, SafetyNumber,
    SealedMessage,
};
use magpie_relay::store::NewEnvelope;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::mitm::Mallory;
use super::relay::DemoRelay;
use super::steps::{field, hex_field};
use super::wire::WireLog;
use super::{name, now_secs, wait, Recorded, DEMO_MESSAGE};
use crate::error::IpcError;
use crate::ipc_types::{DemoActor, DemoAttack, DemoField, DemoVerdict, VerdictKind, WireAction};

/// How old the replayed request is: past the seven days Bob accepts.
const OLD_REQUEST_AGE: Duration = Duration::from_secs(8 * 24 * 3600);
/// Bytes of a key or MAC shown side by side.
const COMPARED_BYTES: usize = 24;

/// Everything an attack after the handshake works with.
pub struct Stage<'a> {
    pub attack: DemoAttack,
    pub alice: &'a Client,
    pub bob: &'a Client,
    /// Alice's relay (the only one, unless a man in the middle shows Bob another).
    pub relay: &'a DemoRelay,
    /// Alice's key, which signed a request long ago in the replayed-request attack.
    pub alice_identity: &'a Identity,
    /// The certificate (PEM) the relay's CA issued for bob with its own key.
    pub substitute: Option<&'a str>,
    pub mallory: Option<&'a Mallory>,
}

/// Has `ca` issue a certificate for `username` with `key`, as a relay that lies can; its PEM.
pub fn certificate_for(ca: &CertificateAuthority, username: &str, key: &Identity) -> Result<String, IpcError> {
    let impostor = Identity::from_pkcs8_der(name(username)?, key.to_pkcs8_der()?.expose_secret())?;
    let certificate = ca.issue(&impostor.csr()?, SystemTime::now())?;
    Ok(String::from_utf8_lossy(&certificate.to_pem()?).into_owned())
}

/// Plays the attacks that come after a handshake that completed; their verdict. `Err` is why the demo stopped.
pub async fn after_handshake(
    stage: &Stage<'_>,
    events: &mut mpsc::UnboundedReceiver<Recorded>,
    recorded: &mut Vec<Recorded>,
) -> Result<Option<DemoVerdict>, String> {
    match stage.attack {
        DemoAttack::ReplayMessage => replay_message(stage, events, recorded).await.map(Some),
        DemoAttack::ReplayOldRequest => replay_old_request(stage, events, recorded).await.map(Some),
        DemoAttack::SubstituteKnownContact => substitute_known(stage, events, recorded).await.map(Some),
        DemoAttack::SubstituteFirstContact => man_in_the_middle(stage).map(Some),
        _ => Ok(None),
    }
}

/// The verdict on an attack inside the handshake, which ended with `reason`: `None` unless the relay's move and the
/// check that answered it are both on record (a run that failed for another reason is shown as it failed).
pub fn in_handshake(stage: &Stage<'_>, recorded: &[Recorded], log: &WireLog, reason: &str) -> Option<DemoVerdict> {
    let wire = log.lock().ok()?;
    let action = |kind: &str| {
        wire.iter()
            .find(|e| e.kind == kind)
            .map(|e| (e.action, e.preview_hex.clone()))
    };
    let failed = |actor: DemoActor| {
        recorded
            .iter()
            .any(|(who, event)| *who == actor && matches!(event, Event::HandshakeFailed { .. }))
    };
    let tap = &stage.relay.tap;
    let bob_mac = tap
        .kept_body("bob", EnvelopeKind::KeyConfirm)
        .and_then(|body| KeyConfirm::from_json(&body).ok())
        .map(|confirm| magpie_proto::encoding::hex(&confirm.mac));
    match (stage.attack, action("key_transfer"), action("key_confirm")) {
        (DemoAttack::FlipWrappedKey, Some((WireAction::Tampered, delivered)), _) if failed(DemoActor::Bob) => {
            let sent = tap
                .kept_body("alice", EnvelopeKind::KeyTransfer)
                .and_then(|body| KeyTransfer::from_json(&body).ok())?;
            let signed = recorded.iter().find_map(|(who, event)| match event {
                Event::Handshake {
                    step: HandshakeStep::KeyTransferSent,
                    data,
                    ..
                } if *who == DemoActor::Alice => data.transcript_hash.clone(),
                _ => None,
            });
            Some(DemoVerdict {
                kind: VerdictKind::Caught,
                relay_did: "The relay flipped one bit of the wrapped session secret K in Alice's key transfer.".into(),
                caught_by: Some(DemoActor::Bob),
                step: Some(6),
                check: "Alice's signature over the transcript".into(),
                why: "Alice signed the hash of the whole handshake, the wrapped K included, with her private key. \
                      One changed bit changes the hash, and no one without her key can sign the new one."
                    .into(),
                fields: vec![
                    compared(
                        "Wrapped K as Alice sent it",
                        &magpie_proto::encoding::hex(&sent.wrapped_key),
                    ),
                    preview("Wrapped K as the relay delivered it", &delivered),
                    hex_field("Transcript hash Alice signed", signed.as_deref().unwrap_or_default()),
                    field("Bob's engine", reason.to_owned()),
                ],
                outcome:
                    "Bob refused the key transfer and kept nothing of it: no session, no chat, nothing to decrypt."
                        .into(),
            })
        }
        (DemoAttack::ForgeKeyConfirm, _, Some((WireAction::Tampered, delivered))) if failed(DemoActor::Alice) => {
            Some(DemoVerdict {
                kind: VerdictKind::Caught,
                relay_did: "The relay flipped one bit of the MAC in Bob's key confirmation.".into(),
                caught_by: Some(DemoActor::Alice),
                step: Some(7),
                check: "Bob's key confirmation MAC".into(),
                why: "The MAC is HMAC-SHA256 over the transcript under a key derived from K and the X25519 secret: \
                      only someone holding the session's keys can make it. Alice computes it herself and compares."
                    .into(),
                fields: vec![
                    compared("MAC Bob sent", bob_mac.as_deref().unwrap_or_default()),
                    preview("MAC the relay delivered", &delivered),
                    field("Alice's engine", reason.to_owned()),
                    field("Messages Alice sealed", sealed_by(&wire, "alice")),
                ],
                outcome: "Alice installed no session and sealed nothing: her message was never encrypted.".into(),
            })
        }
        (DemoAttack::DropKeyConfirm, _, Some((WireAction::Dropped, _))) if !failed(DemoActor::Alice) => {
            let waiting = stage
                .alice
                .outgoing_requests()
                .is_ok_and(|under_way| under_way.iter().any(|(peer, _)| peer == stage.bob.username()));
            Some(DemoVerdict {
                kind: VerdictKind::Stalled,
                relay_did: "The relay told Bob it stored his key confirmation, then threw it away.".into(),
                caught_by: None,
                step: Some(7),
                check: "A chat opens only on a verified key confirmation".into(),
                why: "Alice installs her session only after checking Bob's confirmation MAC, so without it she \
                      seals nothing. Dropping envelopes is the one thing a relay can always do: it can stall a chat, \
                      never open one on keys that were not agreed."
                    .into(),
                fields: vec![
                    compared("MAC Bob sent", bob_mac.as_deref().unwrap_or_default()),
                    field("Delivered to Alice", "nothing".into()),
                    field(
                        "Alice's handshake with bob",
                        match waiting {
                            true => "under way, waiting for his confirmation",
                            false => "not under way",
                        }
                        .into(),
                    ),
                    field("Messages Alice sealed", sealed_by(&wire, "alice")),
                ],
                outcome: "Alice's chat never opened, so she sealed nothing. Bob installed his keys at step 6; what he \
                          seals with them only Alice could open, once her side has his confirmation."
                    .into(),
            })
        }
        _ => None,
    }
}

/// The verdict when no check was seen to stop an attack made after the handshake: `reason` says what happened.
pub fn missed(reason: &str) -> DemoVerdict {
    DemoVerdict {
        kind: VerdictKind::Missed,
        relay_did: "The relay attacked the chat after the handshake.".into(),
        caught_by: None,
        step: None,
        check: "None was seen".into(),
        why: reason.to_owned(),
        fields: Vec::new(),
        outcome: "This run did not show the attack stopped.".into(),
    }
}

/// How many messages `from` sealed, as the relay's log has them.
fn sealed_by(wire: &[crate::ipc_types::WireEnvelope], from: &str) -> String {
    wire.iter()
        .filter(|e| e.kind == "message" && e.from == from)
        .count()
        .to_string()
}

async fn replay_message(
    stage: &Stage<'_>,
    events: &mut mpsc::UnboundedReceiver<Recorded>,
    recorded: &mut Vec<Recorded>,
) -> Result<DemoVerdict, String> {
    let sent = stage
        .relay
        .tap
        .kept("alice", EnvelopeKind::Message)
        .ok_or("The relay kept no message of Alice's to replay.")?;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(&sent.body_b64)
        .ok()
        .and_then(|body| SealedMessage::from_json(&body).ok())
        .ok_or("The relay's copy of Alice's message does not parse.")?;
    let first = sent.id;
    let alice = stage.alice.username();
    let counted_before = discarded_messages(stage.bob, alice);
    let copy = stage.relay.replay(sent).await?;
    let reason = bob_rejects(events, recorded).await?;
    let shown = stage
        .bob
        .last_messages(alice, 10)
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|entry| entry.message.body == DEMO_MESSAGE)
        .count();
    let counted = discarded_messages(stage.bob, alice).saturating_sub(counted_before);
    Ok(DemoVerdict {
        kind: VerdictKind::Caught,
        relay_did: "Once the chat was open, the relay delivered Alice's message to Bob again: a copy it kept, under \
                    a new envelope id."
            .into(),
        caught_by: Some(DemoActor::Bob),
        step: None,
        check: "Bob's ratchet, and the envelope id".into(),
        why: "Each message key opens one message and is deleted once used, so the copy does not open. The relay \
              redelivers only under the id the sender chose (until Bob acknowledges it), and so does a sender that \
              retries, so a copy under a new id is not ordinary delivery: Bob drops it and reports it."
            .into(),
        fields: vec![
            hex_field("Session id", &magpie_proto::encoding::hex(&sealed.session_id)),
            field("Message number in Alice's chain", sealed.n.to_string()),
            field("Envelope it first came in", first.to_string()),
            field("Envelope of the copy", copy.to_string()),
            field("Bob's engine", reason),
            field("Times it shows in Bob's chat", shown.to_string()),
        ],
        outcome: match counted {
            0 => "Bob's chat shows the message once.".into(),
            _ => "Bob's chat shows the message once, and its security notice counts the copy as a discarded message."
                .into(),
        },
    })
}

async fn replay_old_request(
    stage: &Stage<'_>,
    events: &mut mpsc::UnboundedReceiver<Recorded>,
    recorded: &mut Vec<Recorded>,
) -> Result<DemoVerdict, String> {
    let signed_at = SystemTime::now() - OLD_REQUEST_AGE;
    let credential =
        Credential::new(stage.alice_identity.clone(), stage.alice.certificate().clone()).map_err(|e| e.to_string())?;
    let (_, request) = Initiator::request(&credential, stage.bob.username(), signed_at).map_err(|e| e.to_string())?;
    let body = request.to_json().map_err(|e| e.to_string())?;
    stage
        .relay
        .replay(NewEnvelope {
            id: Uuid::nil(),
            from: stage.alice.username().to_string(),
            to: stage.bob.username().to_string(),
            kind: EnvelopeKind::ChatRequest,
            body_b64: base64::engine::general_purpose::STANDARD.encode(body),
            received_at: 0,
        })
        .await?;
    let reason = bob_rejects(events, recorded).await?;
    let max_age_days = magpie_proto::REQUEST_MAX_AGE_SECS / 86_400;
    Ok(DemoVerdict {
        kind: VerdictKind::Caught,
        relay_did: "The relay delivered to Bob a chat request signed with Alice's key and dated eight days ago, as \
                    a relay that kept one since then could. (The demo signs it now, with the date set back.)"
            .into(),
        caught_by: Some(DemoActor::Bob),
        step: None,
        check: "The request's freshness (step 1)".into(),
        why: format!(
            "A request carries the time it was signed, under Alice's signature, so the relay cannot date it \
             anew. Bob refuses requests older than {max_age_days} days; a younger copy is known by its request id, \
             which Bob remembers for those {max_age_days} days once its handshake ends. Between the two, no copy \
             starts a handshake."
        ),
        fields: vec![
            field("Request id", request.request_id.to_string()),
            field("Signed by alice at", utc_minute(request.sent_at)),
            field("Bob's clock", utc_minute(now_secs())),
            field("Oldest request Bob takes", format!("{max_age_days} days")),
            field("Bob's engine", reason),
        ],
        outcome: "Bob was shown no request and no handshake started; only his chat's security notice counts the \
                  attempt."
            .into(),
    })
}

async fn substitute_known(
    stage: &Stage<'_>,
    events: &mut mpsc::UnboundedReceiver<Recorded>,
    recorded: &mut Vec<Recorded>,
) -> Result<DemoVerdict, String> {
    let substitute = stage
        .substitute
        .ok_or("The relay had no certificate of its own to present.")?;
    let bob = stage.bob.username();
    stage.relay.tap.substitute(bob.as_str(), substitute.to_owned());
    // Alice asks again (as for new keys); her engine looks bob up first.
    match stage.alice.request(bob).await {
        Err(magpie_core::Error::KeyChanged(_)) => {}
        Ok(_) => return Err("Alice asked bob with the relay's key: the pin did not hold.".into()),
        Err(e) => return Err(e.to_string()),
    }
    let (_, event) = wait(events, recorded, |(actor, event)| {
        *actor == DemoActor::Alice && matches!(event, Event::KeyChanged { .. })
    })
    .await?;
    let Event::KeyChanged { pinned, presented, .. } = event else {
        return Err("Alice's engine raised no key change.".into());
    };
    Ok(DemoVerdict {
        kind: VerdictKind::Caught,
        relay_did: "Alice and Bob had chatted, so Alice holds bob's key. Then the relay answered her directory \
                    lookup of bob with a certificate its own CA issued for bob, for a key of the relay's."
            .into(),
        caught_by: Some(DemoActor::Alice),
        step: None,
        check: "The pin on bob's key".into(),
        why: "The certificate chains to the relay's CA and names bob, so every certificate check passes: the CA \
              proves only what the relay says. But Alice pinned bob's key when they first spoke, and Magpie never \
              takes another key for a name by itself: it raises a key change and waits for her."
            .into(),
        fields: vec![
            hex_field("Key pinned for bob", &pinned),
            hex_field("Key the directory presented", &presented),
            field(
                "Presented certificate",
                "CN=bob, issued by the relay's CA (chain valid)".into(),
            ),
            field("Alice's request", "not sent".into()),
        ],
        outcome: "Alice sent nothing to the relay's key: her chat with bob shows a key-change banner, and sending \
                  is paused until she compares safety numbers with Bob or knowingly accepts the new key."
            .into(),
    })
}

fn man_in_the_middle(stage: &Stage<'_>) -> Result<DemoVerdict, String> {
    let mallory = stage.mallory.ok_or("The relay had no impostors running.")?;
    let (alice, bob) = (stage.alice.username(), stage.bob.username());
    let number = |client: &Client, peer| client.safety_number(peer).map(|check| check.number.to_string());
    let alice_sees = number(stage.alice, bob).map_err(|e| e.to_string())?;
    let bob_sees = number(stage.bob, alice).map_err(|e| e.to_string())?;
    let honest = SafetyNumber::from_certificates((alice, stage.alice.certificate()), (bob, stage.bob.certificate()))
        .map_err(|e| e.to_string())?;
    let pinned = |client: &Client, peer| {
        client
            .contact(peer)
            .ok()
            .flatten()
            .map(|contact| contact.fingerprint.to_hex())
            .unwrap_or_default()
    };
    let read = mallory
        .read
        .lock()
        .ok()
        .and_then(|read| read.first().cloned())
        .unwrap_or_default();
    Ok(DemoVerdict {
        kind: VerdictKind::Missed,
        relay_did: "Alice and Bob had never spoken. The relay showed each of them a world of its own: to Alice, a \
                    \"bob\" with the relay's key; to Bob, an \"alice\" with the relay's key. Each handshake was with \
                    the relay, which read Alice's message and passed it on."
            .into(),
        caught_by: None,
        step: None,
        check: "Only comparing safety numbers".into(),
        why: "The relay runs the CA, so it can issue a certificate for any name: on a first contact every chain \
              and signature check passes, with the relay's keys. A safety number is computed from both keys as \
              each side holds them, and here the two differ. Compare them in person or on a call before trusting \
              a new contact."
            .into(),
        fields: vec![
            field("Safety number on Alice's screen", alice_sees),
            field("Safety number on Bob's screen", bob_sees),
            field("Both would show, with no one in the middle", honest.to_string()),
            hex_field("bob's key as Alice holds it", &pinned(stage.alice, bob)),
            hex_field("bob's own key", &stage.bob.fingerprint().to_hex()),
            hex_field("alice's key as Bob holds it", &pinned(stage.bob, alice)),
            field("What the relay read", read),
        ],
        outcome: "Both chats opened and the relay read the message. Had Alice and Bob compared numbers they would \
                  have seen them differ. Once a key is pinned, a later substitution is caught without anyone \
                  comparing (try \"substituted certificate, known contact\")."
            .into(),
    })
}

/// Waits for Bob's engine to reject what the relay sent; its reason. Bob taking it is the check failing.
async fn bob_rejects(
    events: &mut mpsc::UnboundedReceiver<Recorded>,
    recorded: &mut Vec<Recorded>,
) -> Result<String, String> {
    let (_, event) = wait(events, recorded, |(actor, event)| {
        *actor == DemoActor::Bob
            && matches!(
                event,
                Event::Rejected { .. } | Event::RequestReceived { .. } | Event::MessageReceived { .. }
            )
    })
    .await?;
    match event {
        Event::Rejected { reason, .. } => Ok(reason),
        _ => Err("Bob's engine took what the relay replayed: the check did not hold.".into()),
    }
}

/// How many messages from `peer` `client` discarded (its chat's security notice).
fn discarded_messages(client: &Client, peer: &magpie_proto::Username) -> u64 {
    client
        .contact(peer)
        .ok()
        .flatten()
        .and_then(|contact| contact.discarded.map(|d| d.messages))
        .unwrap_or(0)
}

/// The first bytes of a hex value, to set two side by side; all of it when that is longer.
fn compared(label: &str, hex: &str) -> DemoField {
    let cut = hex.len() > COMPARED_BYTES * 2;
    DemoField {
        label: label.into(),
        value: match cut {
            true => format!("{}…", &hex[..COMPARED_BYTES * 2]),
            false => hex.to_owned(),
        },
        full: cut.then(|| hex.to_owned()),
    }
}

/// The wire column's first bytes of a longer value, set beside [`compared`]'s.
fn preview(label: &str, hex: &str) -> DemoField {
    DemoField {
        label: label.into(),
        value: format!("{hex}…"),
        full: None,
    }
}
