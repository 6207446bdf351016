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
    let typed = ask(&format!(
        "Compare the number with {peer}, then type or paste the key fingerprint above to {verb} it (Enter cancels): "
    ))
    .await?;
    parse(&typed)
}

/// The relay CA fingerprint to pin at registration, shown first: `given` (--ca-fingerprint), refused if the relay
/// presents another (and the registration checks it again); for a relay on another computer, what the user types on a
/// terminal after comparing it with the operator's; for one on this computer, none (nothing crosses a network).
pub async fn relay_ca(url: &str, given: Option<&str>) -> Result<Option<Fingerprint>, Failure> {
    let relay = magpie_core::relay::RelayClient::new(url)?;
    let presented = magpie_proto::TrustAnchor::new(relay.ca().await?)
        .and_then(|anchor| anchor.fingerprint())
        .map_err(Error::from)?;
    println!("Relay CA fingerprint: {}", presented.to_hex());
    if let Some(hex) = given {
        let expected = parse(hex)?;
        if expected != presented {
            return Err(Failure::Engine(Error::RelayCaChanged {
                pinned: expected.to_hex(),
                presented: presented.to_hex(),
            }));
        }
        return Ok(Some(expected));
    }
    if relay.is_local() {
        return Ok(None);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(
            "This relay is on another computer: pass --ca-fingerprint HEX with its CA fingerprint as its operator \
             publishes it (there is no terminal to ask on)."
                .into(),
        ));
    }
    let typed = ask(
        "Compare it with the fingerprint the relay's operator publishes, then type or paste it to trust this relay \
         (Enter cancels): ",
    )
    .await?;
    parse(&typed).map(Some)
}

/// Asks on the terminal (stderr); an empty answer cancels.
async fn ask(prompt: &str) -> Result<String, Failure> {
    eprint!("{prompt}");
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
    Ok(line)
}
