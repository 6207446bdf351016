//! What the user confirms at the terminal: which request they answer, and which key they compared. The engine
//! refuses a fingerprint that is not the key it would pin now, so a key that changed between the number being
//! printed and the answer is never verified or accepted.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

use magpie_core::engine::{RequestView, SafetyCheck};
use magpie_core::{Client, Error};
use magpie_proto::{Fingerprint, Username};
use uuid::Uuid;

use crate::commands::Failure;

/// The request from `peer` to answer: the one named `id`, or the only one waiting.
pub fn request(client: &Client, peer: &Username, id: Option<Uuid>) -> Result<RequestView, Failure> {
    let Some(id) = id else {
        return client.sole_request_from(peer).map_err(|e| match e {
            Error::SeveralRequests { count, .. } => Failure::Usage(format!(
                "{count} chat requests from {peer} are waiting: choose one with --request ID (`magpie requests` \
                 lists them with their keys)."
            )),
            other => Failure::Engine(other),
        });
    };
    client
        .incoming_requests()?
        .into_iter()
        .find(|r| r.request_id == id && r.peer == peer.as_str())
        .ok_or(Failure::Engine(Error::RequestGone(id)))
}

/// A fingerprint as typed: 64 hex digits, with any spaces or colons.
pub fn parse(typed: &str) -> Result<Fingerprint, Failure> {
    let clean: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    Fingerprint::from_hex(&clean)
        .map_err(|_| Failure::Usage(format!("'{}' is not a key fingerprint (64 hex digits).", typed.trim())))
}

/// Prints the safety number with `peer` and the key it is made of.
pub fn print_number(client: &Client, peer: &Username, check: &SafetyCheck) -> Result<(), Failure> {
    println!("Safety number with {peer}:");
    for row in check.number.groups().chunks(4) {
        println!("  {}", row.join(" "));
    }
    let changed = client.contact(peer)?.is_some_and(|c| c.key_changed);
    let which = if changed { " (the new key: it changed)" } else { "" };
    println!("{peer}'s key fingerprint{which}: {}", check.fingerprint.to_hex());
    Ok(())
}

/// The key the user compared before they `verb` it: `given` (--fingerprint), or, after printing the number and
/// the key, what they type at the terminal.
pub async fn fingerprint(
    client: &Client,
    peer: &Username,
    given: Option<String>,
    verb: &str,
) -> Result<Fingerprint, Failure> {
    if let Some(hex) = given {
        return parse(&hex);
    }
    let check = client.safety_number(peer)?;
    print_number(client, peer, &check)?;
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!(
            "To {verb} {peer}'s key, pass --fingerprint HEX with the key fingerprint printed above (there is no \
             terminal to ask on)."
        )));
    }
    eprint!(
        "Compare the number with {peer}, then type or paste the key fingerprint above to {verb} it (Enter cancels): "
    );
    let _ = std::io::stderr().flush();
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|_| Failure::Usage("Cancelled.".into()))?
    .map_err(|e| Failure::Usage(format!("Could not read the answer: {e}")))?;
    if line.trim().is_empty() {
        return Err(Failure::Usage("Cancelled: nothing was changed.".into()));
    }
    parse(&line)
}
