//! Turns what was recorded (engine events, the relay's envelopes) into the seven steps the demo shows.

use magpie_core::engine::{HandshakeData, HandshakeStep};
use magpie_core::Event;

use super::Recorded;
use crate::ipc_types::{DemoActor, DemoAttack, DemoField, DemoMessage, DemoStatus, DemoStep, WireEnvelope};

/// Hex shown before "…"; the full value stays available.
const SHOWN_HEX: usize = 32;

pub struct Built {
    pub steps: Vec<DemoStep>,
    pub message: Option<DemoMessage>,
    pub failure: Option<String>,
}

pub fn build(recorded: &[Recorded], wire: &[WireEnvelope], failure: Option<&str>, attack: DemoAttack) -> Built {
    let find = |actor: DemoActor, step: HandshakeStep| -> Option<&HandshakeData> {
        recorded.iter().find_map(|(who, event)| match event {
            Event::Handshake { step: s, data, .. } if *who == actor && *s == step => Some(data.as_ref()),
            _ => None,
        })
    };
    // The first envelope of `kind` that `actor`'s relay carried (a man in the middle shows each side its own).
    let envelope = |kind: &str, actor: DemoActor| {
        wire.iter()
            .find(|e| e.kind == kind && e.face.is_none_or(|face| face == actor))
            .cloned()
    };
    let in_the_middle = attack == DemoAttack::SubstituteFirstContact;
    let request = find(DemoActor::Alice, HandshakeStep::RequestSent);
    let verified_request = find(DemoActor::Bob, HandshakeStep::RequestVerified);
    let accept = find(DemoActor::Bob, HandshakeStep::AcceptSent);
    let directory = find(DemoActor::Alice, HandshakeStep::DirectoryChecked);
    let transfer = find(DemoActor::Alice, HandshakeStep::KeyTransferSent);
    let unwrapped = find(DemoActor::Bob, HandshakeStep::KeyTransferVerified);
    let confirmed = find(DemoActor::Alice, HandshakeStep::ConfirmVerified);
    let sent = recorded.iter().find_map(|(who, event)| match event {
        Event::MessageSent {
            ciphertext_len,
            ciphertext_preview,
            message,
        } if *who == DemoActor::Alice => Some((message.body.clone(), *ciphertext_len, ciphertext_preview.clone())),
        _ => None,
    });
    let received = recorded.iter().find_map(|(who, event)| match event {
        Event::MessageReceived { message } if *who == DemoActor::Bob => Some(message.body.clone()),
        _ => None,
    });
    let message = match (sent, received) {
        (Some((plaintext_sent, bytes, _)), Some(plaintext_received)) => Some(DemoMessage {
            plaintext_sent,
            plaintext_received,
            ciphertext_bytes: u32::try_from(bytes).unwrap_or(u32::MAX),
            // As the relay stored it: the wire column's record, not the sender's copy.
            ciphertext_preview_hex: envelope("message", DemoActor::Alice)
                .map(|e| e.preview_hex)
                .unwrap_or_default(),
        }),
        _ => None,
    };

    let mut steps = vec![
        step(
            1,
            "Request",
            DemoActor::Alice,
            request.zip(verified_request).map(|(sent, checked)| Card {
                summary: "Alice signs a chat request for bob and sends it through the relay.".into(),
                checks: vec![
                    "Bob verified alice's certificate chain to the relay's CA".into(),
                    "Bob verified the request's RSA-PSS signature with alice's certificate".into(),
                ],
                fields: vec![
                    field("Request id", sent.request_id.to_string()),
                    opt_field(
                        "Alice's key fingerprint (SHA-256)",
                        checked.initiator_fingerprint.as_deref(),
                    ),
                    hex_field("Request signature (RSA-PSS)", &sent.request_signature),
                ],
                envelope: envelope("chat_request", DemoActor::Alice),
            }),
        ),
        step(
            2,
            "Accept",
            DemoActor::Bob,
            accept.map(|data| Card {
                summary: "Bob accepts: he makes an ephemeral X25519 key (eB) and signs his answer.".into(),
                checks: vec!["Bob signed the accept with his private key (RSA-PSS)".into()],
                fields: vec![
                    opt_hex(
                        "Bob's ephemeral X25519 public key (eB)",
                        data.responder_ephemeral.as_deref(),
                    ),
                    opt_hex("Accept signature (RSA-PSS)", data.accept_signature.as_deref()),
                ],
                envelope: envelope("chat_accept", DemoActor::Bob),
            }),
        ),
        step(
            3,
            "Directory",
            DemoActor::Alice,
            directory.map(|data| Card {
                summary: "Alice fetches bob's certificate from the relay's directory and checks it.".into(),
                checks: vec![
                    "Chain verified to the relay's CA".into(),
                    "The certificate names bob".into(),
                    "Key pinned for bob (first contact)".into(),
                    "Bob's accept signature verified with his certificate".into(),
                ],
                fields: vec![opt_field(
                    "Bob's key fingerprint (SHA-256)",
                    data.responder_fingerprint.as_deref(),
                )],
                envelope: None,
            }),
        ),
        step(
            4,
            "Wrap key",
            DemoActor::Alice,
            transfer.map(|data| Card {
                summary: "Alice makes a fresh 32-byte session secret K and wraps it with bob's public RSA key.".into(),
                checks: vec!["K wrapped with RSA-OAEP-SHA256 for bob's key: only bob's private key opens it".into()],
                fields: vec![
                    opt_hex("Wrapped K (RSA-OAEP, 384 bytes)", data.wrapped_key.as_deref()),
                    opt_hex(
                        "Alice's ephemeral X25519 public key (eA)",
                        data.initiator_ephemeral.as_deref(),
                    ),
                ],
                envelope: envelope("key_transfer", DemoActor::Alice),
            }),
        ),
        step(
            5,
            "Sign",
            DemoActor::Alice,
            transfer.map(|data| Card {
                summary: "Alice signs the hash of the whole transcript, so nothing in it can be changed unseen.".into(),
                checks: vec!["Transcript signed with alice's private key (RSA-PSS-SHA256)".into()],
                fields: vec![
                    opt_hex("Transcript hash (SHA-256)", data.transcript_hash.as_deref()),
                    opt_hex(
                        "Key transfer signature (RSA-PSS)",
                        data.key_transfer_signature.as_deref(),
                    ),
                ],
                envelope: None,
            }),
        ),
        step(
            6,
            "Verify & unwrap",
            DemoActor::Bob,
            unwrapped.map(|data| Card {
                summary: "Bob checks alice's signature, unwraps K and derives the session keys.".into(),
                checks: vec![
                    "Signature verified with alice's certificate".into(),
                    "K unwrapped with bob's private key".into(),
                    "Session keys derived from K and the X25519 secret (HKDF)".into(),
                ],
                fields: vec![
                    opt_hex("Session id", data.session_id.as_deref()),
                    opt_hex("Confirm MAC (HMAC-SHA256)", data.confirm_mac.as_deref()),
                ],
                envelope: envelope("key_confirm", DemoActor::Bob),
            }),
        ),
        step(
            7,
            "Encrypted chat",
            DemoActor::Alice,
            confirmed.zip(message.as_ref()).map(|(data, message)| Card {
                summary: "Alice checks bob's confirm MAC; both hold the same keys and the chat is open.".into(),
                checks: match in_the_middle {
                    false => vec![
                        "Bob's confirm MAC verified: both sides derived the same keys".into(),
                        "Message sealed with AES-256-GCM under a key that ratchets forward per message".into(),
                        "Bob decrypted it; the relay saw only ciphertext".into(),
                    ],
                    true => vec![
                        "The confirm MAC verified: Alice and the \"bob\" she reached hold the same keys, and that \
                         \"bob\" is the relay"
                            .into(),
                        "Message sealed with AES-256-GCM for the relay's \"bob\", which opened it".into(),
                        "Bob decrypted a copy the relay sealed again for him".into(),
                    ],
                },
                fields: vec![
                    opt_hex("Confirm MAC", data.confirm_mac.as_deref()),
                    field("Ciphertext on the relay", format!("{} bytes", message.ciphertext_bytes)),
                ],
                envelope: envelope("message", DemoActor::Alice),
            }),
        ),
    ];
    let failure = mark_failure(&mut steps, failure);
    Built {
        steps,
        message,
        failure,
    }
}

/// The first step that did not happen failed (with the reason); the rest were not reached. Returns the failure as
/// a sentence naming who stopped where.
fn mark_failure(steps: &mut [DemoStep], reason: Option<&str>) -> Option<String> {
    let mut sentence = None;
    for step in steps {
        if step.status == DemoStatus::Passed && sentence.is_none() {
            continue;
        }
        if sentence.is_some() {
            step.status = DemoStatus::NotReached;
            step.summary = "Not reached: an earlier step failed.".into();
            continue;
        }
        let who = match step.actor {
            DemoActor::Alice => "Alice",
            DemoActor::Bob => "Bob",
        };
        let reason = reason.unwrap_or("this step did not happen").trim_end_matches('.');
        step.status = DemoStatus::Failed;
        step.summary = "The handshake stopped here: this step did not complete.".into();
        step.checks = vec![format!("{who} stopped here: {reason}")];
        sentence = Some(format!(
            "{who} stopped the handshake at step {} ({}): {reason}. {who} opened no chat.",
            step.number, step.title
        ));
    }
    sentence
}

struct Card {
    summary: String,
    checks: Vec<String>,
    fields: Vec<DemoField>,
    envelope: Option<WireEnvelope>,
}

fn step(number: u8, title: &str, actor: DemoActor, card: Option<Card>) -> DemoStep {
    let (status, card) = match card {
        Some(card) => (DemoStatus::Passed, card),
        None => (
            DemoStatus::Failed,
            Card {
                summary: String::new(),
                checks: Vec::new(),
                fields: Vec::new(),
                envelope: None,
            },
        ),
    };
    DemoStep {
        number,
        title: title.into(),
        actor,
        status,
        summary: card.summary,
        checks: card.checks,
        fields: card.fields.into_iter().filter(|f| !f.value.is_empty()).collect(),
        envelope: card.envelope,
    }
}

pub(super) fn field(label: &str, value: String) -> DemoField {
    DemoField {
        label: label.into(),
        value,
        full: None,
    }
}

fn opt_field(label: &str, value: Option<&str>) -> DemoField {
    field(label, value.unwrap_or_default().to_owned())
}

pub(super) fn hex_field(label: &str, hex: &str) -> DemoField {
    let shortened = hex.len() > SHOWN_HEX;
    DemoField {
        label: label.into(),
        value: if shortened {
            format!("{}… ({} bytes)", &hex[..SHOWN_HEX], hex.len() / 2)
        } else {
            hex.to_owned()
        },
        full: shortened.then(|| hex.to_owned()),
    }
}

fn opt_hex(label: &str, hex: Option<&str>) -> DemoField {
    hex_field(label, hex.unwrap_or_default())
}
