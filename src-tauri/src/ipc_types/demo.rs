//! The handshake demo: what really happened between two throwaway profiles, step by step.

use serde::Serialize;
use ts_rs::TS;

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
    /// The relay flipped a bit in it (tamper switch).
    pub tampered: bool,
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
    pub tampered: bool,
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
    /// How long the real run took, milliseconds (key generation included).
    pub elapsed_ms: u32,
}
