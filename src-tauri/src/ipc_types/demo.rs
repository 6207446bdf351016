//! The handshake demo: what really happened between two throwaway profiles, step by step.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// What the demo's relay does to the handshake (or the chat after it), as a relay that lies could.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum DemoAttack {
    /// Nothing: an honest relay.
    None,
    /// Flips a bit of the wrapped key in the key transfer.
    FlipWrappedKey,
    /// Answers Alice's directory lookup, after a first chat, with a certificate for "bob" its CA issued for
    /// another key.
    SubstituteKnownContact,
    /// The same on a first contact, as a full man in the middle: another key for each of them, two handshakes.
    SubstituteFirstContact,
    /// Delivers to Bob a chat request Alice signed eight days ago.
    ReplayOldRequest,
    /// Flips a bit of Bob's key confirmation MAC.
    ForgeKeyConfirm,
    /// Takes Bob's key confirmation and never delivers it.
    DropKeyConfirm,
    /// Delivers Alice's message to Bob a second time, under a new envelope id.
    ReplayMessage,
}

/// What the relay did to an envelope it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum WireAction {
    /// Stored and delivered as sent.
    Carried,
    /// Changed on the way.
    Tampered,
    /// Taken and never delivered (the sender was told it was stored).
    Dropped,
    /// A copy the relay made and delivered again.
    Replayed,
    /// Routed to or from the relay's own impostor instead of the named person.
    Diverted,
}

/// How an attack ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// A check refused what the relay did.
    Caught,
    /// Nothing could be checked (an envelope never came): the chat did not open.
    Stalled,
    /// No automatic check saw it.
    Missed,
}

/// How an attack ended: which check stopped it and why, with the values it compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DemoVerdict {
    pub kind: VerdictKind,
    /// What the relay did, one sentence.
    pub relay_did: String,
    /// Who stopped it, when it was caught.
    pub caught_by: Option<DemoActor>,
    /// The step it was stopped at (1–7), when it was stopped inside the handshake.
    pub step: Option<u8>,
    /// The check, named.
    pub check: String,
    /// Why the check holds.
    pub why: String,
    /// The real values the check compared.
    pub fields: Vec<DemoField>,
    /// What the user is left with.
    pub outcome: String,
}

/// One side of the demo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DemoParty {
    pub username: String,
    /// "CN=alice".
    pub certificate_subject: String,
    /// The relay CA that issued it.
    pub certificate_issuer: String,
    pub certificate_serial: String,
    /// SHA-256 of the public key, hex.
    pub fingerprint: String,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum DemoStatus {
    Passed,
    Failed,
    /// An earlier step failed.
    NotReached,
}

/// Which column acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum DemoActor {
    Alice,
    Bob,
}

/// A value computed or checked in a step (hex values are truncated for display; `full` has all of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DemoField {
    pub label: String,
    pub value: String,
    /// The whole value when `value` is shortened.
    pub full: Option<String>,
}

/// An envelope as the relay stored it: only routing data is readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct WireEnvelope {
    pub from: String,
    pub to: String,
    /// chat_request, chat_accept, key_transfer, key_confirm, message, ...
    pub kind: String,
    /// Bytes of body the relay carried.
    pub bytes: u32,
    /// The first bytes of what it hides (a message's ciphertext, the wrapped key), else of its body, hex.
    pub preview_hex: String,
    /// What the relay did with it.
    pub action: WireAction,
    /// Whose relay carried it, when a man in the middle shows each side a relay of its own; `None` when one relay
    /// carried it for both.
    pub face: Option<DemoActor>,
}

/// One of the seven steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DemoStep {
    /// 1 to 7.
    pub number: u8,
    /// "Request", "Accept", "Directory", "Wrap key", "Sign", "Verify & unwrap", "Encrypted chat".
    pub title: String,
    pub actor: DemoActor,
    pub status: DemoStatus,
    /// One sentence: what happened.
    pub summary: String,
    /// Checks that passed ("Signature verified with alice's certificate") or the one that failed.
    pub checks: Vec<String>,
    pub fields: Vec<DemoField>,
    /// The envelope this step put on the wire, if any.
    pub envelope: Option<WireEnvelope>,
}

/// The message both sides exchanged at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DemoMessage {
    pub plaintext_sent: String,
    /// What Bob's window shows after decrypting.
    pub plaintext_received: String,
    pub ciphertext_bytes: u32,
    /// As the relay stored it, hex (truncated).
    pub ciphertext_preview_hex: String,
}

/// A whole demo run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
pub struct DemoRun {
    pub attack: DemoAttack,
    pub relay_url: String,
    pub relay_ca_fingerprint: String,
    pub alice: DemoParty,
    pub bob: DemoParty,
    /// Always seven, in order.
    pub steps: Vec<DemoStep>,
    pub message: Option<DemoMessage>,
    /// Everything the relay saw, in order.
    pub wire: Vec<WireEnvelope>,
    /// Why the handshake stopped, when it did.
    pub failure: Option<String>,
    /// How the attack ended, when there was one.
    pub verdict: Option<DemoVerdict>,
    /// How long the real run took, milliseconds (key generation included).
    pub elapsed_ms: u32,
}
