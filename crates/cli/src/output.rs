//! How the CLI prints: plain lines for people, one JSON object per line for scripts.

use std::io::IsTerminal;
use std::time::{Duration, UNIX_EPOCH};

use magpie_core::engine::RequestView;
use magpie_core::engine::{ChatResults, Discard, Event, MessageView, Refusal};
use magpie_core::history::Direction;
use magpie_proto::Username;
use tokio::sync::broadcast::{error::TryRecvError, Receiver};

/// Unix seconds as RFC 3339 UTC.
pub fn time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

pub fn message(m: &MessageView, json: bool) {
    if json {
        println!("{}", serde_json::to_string(m).unwrap_or_default());
        return;
    }
    let who = match m.direction {
        Direction::Outgoing => "me",
        Direction::Incoming => m.peer.as_str(),
    };
    let state = serde_json::to_value(m.delivery).ok();
    let state = state.as_ref().and_then(|v| v.as_str()).unwrap_or("?");
    match &m.file {
        Some(file) => println!(
            "[{}] {who}: file {} ({}, {} bytes, message {})  ({state})",
            time(m.sent_at),
            file.name,
            file.media_type,
            file.size,
            m.id
        ),
        None => println!("[{}] {who}: {}  ({state})", time(m.sent_at), m.body),
    }
}

/// One chat's search results: a heading, then a line per message with the matches in bold on a terminal.
pub fn search_results(results: &ChatResults, json: bool) {
    if json {
        println!("{}", serde_json::to_string(results).unwrap_or_default());
        return;
    }
    let bold = std::io::stdout().is_terminal();
    let more = results.total - results.found.len();
    let plural = if results.total == 1 { "" } else { "es" };
    println!("{} ({} match{plural})", results.peer, results.total);
    for found in &results.found {
        let who = match found.message.direction {
            Direction::Outgoing => "me",
            Direction::Incoming => found.message.peer.as_str(),
        };
        let text: String = found
            .snippet
            .iter()
            .map(|part| match (part.matched, bold) {
                (true, true) => format!("\x1b[1m{}\x1b[0m", part.text),
                _ => part.text.clone(),
            })
            .collect();
        let what = if found.message.file.is_some() { "file " } else { "" };
        println!(
            "  [{}] {who}: {what}{text}  (message {})",
            time(found.message.sent_at),
            found.message.id
        );
    }
    if more > 0 {
        println!("  … and {more} older");
    }
}

pub fn requests(incoming: &[RequestView], outgoing: &[(Username, uuid::Uuid)], json: bool) {
    if json {
        for r in incoming {
            println!("{}", serde_json::to_string(r).unwrap_or_default());
        }
        return;
    }
    if incoming.is_empty() {
        println!("No chat requests waiting for you.");
    }
    for r in incoming {
        let warning = if r.key_changed {
            "  KEY CHANGED: not the key pinned for this name"
        } else {
            ""
        };
        println!(
            "{} asks to chat (request {}, key {}, sent {}){warning}",
            r.peer,
            r.request_id,
            r.fingerprint,
            time(r.sent_at)
        );
    }
    for (peer, id) in outgoing {
        println!("Waiting for {peer} (request {id})");
    }
}

/// Prints one event; with `only`, just the messages of that chat.
pub fn event(event: &Event, json: bool, only: Option<&Username>) {
    if let Some(peer) = only {
        if let Event::MessageReceived { message: m } = event {
            if m.peer == peer.as_str() {
                message(m, false);
            }
        }
        return;
    }
    if let Event::Rejected { peer, what, reason } = event {
        discarded_warning(peer, *what, reason);
    }
    if let Event::SendRefused { peer, reason, .. } = event {
        refused_warning(peer, *reason);
    }
    if json {
        println!("{}", serde_json::to_string(event).unwrap_or_default());
        return;
    }
    match event {
        Event::MessageReceived { message: m } => message(m, false),
        Event::RequestReceived {
            peer,
            fingerprint,
            key_changed: false,
            ..
        } => {
            println!("{peer} asks to chat (key {fingerprint}). `magpie accept {peer}` or `magpie decline {peer}`.");
        }
        Event::RequestReceived { peer, fingerprint, .. } => {
            println!(
                "WARNING: a chat request from {peer} with another key than the one pinned ({fingerprint}). It may \
                 be a reinstall or an impostor: compare safety numbers (`magpie safety-number {peer}`) first."
            );
        }
        Event::SessionEstablished { peer, rekey } => {
            let what = if *rekey {
                "new session keys"
            } else {
                "encrypted session established"
            };
            println!("{peer}: {what}");
        }
        Event::KeyChanged { peer, .. } => println!("WARNING: {peer}'s key changed. Sending to {peer} is blocked."),
        Event::HandshakeFailed { peer, reason, .. } => println!("Handshake with {peer} failed: {reason}"),
        Event::RequestDeclined { peer, .. } => println!("{peer} declined your chat request."),
        Event::Rejected { .. } => {}
        Event::Connection { state } => eprintln!("relay: {state:?}"),
        _ => {}
    }
}

/// A warning on stderr for an envelope that did not verify and was discarded: forgeries are never silent.
fn discarded_warning(peer: &str, what: Discard, reason: &str) {
    let what = match what {
        Discard::Message => "a message",
        Discard::Step => "a key exchange step",
    };
    eprintln!("magpie: warning: {what} from {peer} could not be verified and was discarded ({reason})");
}

/// A warning on stderr for a message the relay would not take (it stays in the history as failed).
fn refused_warning(peer: &str, reason: Refusal) {
    match reason {
        Refusal::MailboxFull => eprintln!(
            "magpie: warning: a message to {peer} was not sent: {peer}'s mailbox on the relay is full (it empties as \
             {peer} reads; send it again later)"
        ),
        _ => eprintln!("magpie: warning: the relay refused a message to {peer}; it was not sent"),
    }
}

/// Warns of every envelope the command's catch-ups discarded (and of messages the relay refused) (events seen since `events` subscribed); returns how
/// many.
pub fn discarded(events: &mut Receiver<Event>) -> usize {
    let mut count = 0;
    loop {
        match events.try_recv() {
            Ok(Event::Rejected { peer, what, reason }) => {
                discarded_warning(&peer, what, &reason);
                count += 1;
            }
            Ok(Event::SendRefused { peer, reason, .. }) => refused_warning(&peer, reason),
            Ok(_) => {}
            Err(TryRecvError::Lagged(_)) => {
                eprintln!("magpie: warning: more envelopes may have been discarded than shown here");
            }
            Err(_) => return count,
        }
    }
}
