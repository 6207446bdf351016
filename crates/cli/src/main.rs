//! `magpie`: the headless face of Magpie's client engine.
//!
//! Every command that talks to the relay first catches up on the mailbox (handling handshake steps that arrived
//! meanwhile) and, before exiting, posts what it queued. Errors go to stderr as sentences, exit code 1
//! (2 for bad usage, from clap).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command line talks on stdout and stderr"
)]

mod commands;
mod confirm;
mod output;
mod passphrase;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// End-to-end encrypted chat from the terminal.
#[derive(Debug, Parser)]
#[command(name = "magpie", version, about)]
pub struct Cli {
    /// The profile directory (one per person; created by `register`).
    #[arg(long, env = "MAGPIE_PROFILE", global = true, default_value = "magpie-profile")]
    pub profile: PathBuf,
    /// The relay's URL (for `register`; later commands use the relay the profile registered with).
    #[arg(long, env = "MAGPIE_RELAY", global = true)]
    pub relay: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Creates the profile (an RSA-3072 key in the credential store) and registers NAME with the relay.
    /// A relay on another computer must be https://; its CA fingerprint is shown and must be confirmed (typed on
    /// a terminal, or given with --ca-fingerprint), like an SSH host key.
    Register {
        /// The username: 3–32 of a-z 0-9 . _ -
        name: String,
        /// The relay CA's fingerprint as its operator publishes it: pinned without asking, refused if it differs.
        #[arg(long, value_name = "HEX")]
        ca_fingerprint: Option<String>,
    },
    /// Shows who this profile is: name, key fingerprint, certificate, relay.
    Whoami,
    /// Asks PEER for an encrypted chat.
    Request {
        /// Who.
        peer: String,
    },
    /// Lists chat requests waiting for you (and yours waiting for others).
    Requests {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Accepts PEER's chat request (the only one from PEER, or the one named by --request).
    Accept {
        /// Who.
        peer: String,
        /// Which request, when PEER sent several (the ids `magpie requests` lists).
        #[arg(long, value_name = "ID")]
        request: Option<uuid::Uuid>,
        /// The key fingerprint you expect the request to carry (as `magpie requests` showed it); refused if not.
        #[arg(long, value_name = "HEX")]
        fingerprint: Option<String>,
    },
    /// Declines PEER's chat request (the only one from PEER, or the one named by --request).
    Decline {
        /// Who.
        peer: String,
        /// Which request, when PEER sent several.
        #[arg(long, value_name = "ID")]
        request: Option<uuid::Uuid>,
    },
    /// Sends TEXT to PEER.
    Send {
        /// To whom.
        peer: String,
        /// The message.
        text: String,
    },
    /// Sends the file at PATH to PEER, end to end encrypted: sealed, uploaded (resuming an upload a stopped run
    /// left), then announced to PEER in a message.
    SendFile {
        /// To whom.
        peer: String,
        /// The file.
        path: std::path::PathBuf,
    },
    /// Saves the file of message MESSAGE_ID in the chat with PEER to PATH (downloading it first if need be).
    SaveFile {
        /// The chat.
        peer: String,
        /// The file message's id (`history --json` shows it).
        message_id: uuid::Uuid,
        /// Where to write it; refused if something is there already.
        path: std::path::PathBuf,
    },
    /// Prints the chat with PEER from the local history (no network).
    History {
        /// With whom.
        peer: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// How many of the latest messages.
        #[arg(long, default_value_t = 50)]
        last: usize,
    },
    /// Writes an encrypted backup of this profile (identity key, contacts, messages) to FILE, sealed with a
    /// passphrase typed twice (or read from the file named by MAGPIE_PASSPHRASE_FILE).
    Backup {
        /// Where to write it (replaced only once the new backup is whole).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Restores a backup into --profile DIR (which must not hold a profile): the identity key goes into the
    /// credential store, the history comes back, and every contact gets a fresh handshake at the next sync.
    Restore {
        /// The backup file.
        file: PathBuf,
    },
    /// Locks this profile with a passphrase, or changes it: its keys are then kept in the credential store
    /// wrapped with a key derived from it (scrypt), and every command asks for it (or reads the first line of the
    /// file named by MAGPIE_PASSPHRASE_FILE). The new passphrase is typed twice, or read from the file named by
    /// MAGPIE_NEW_PASSPHRASE_FILE. Nobody can recover it: keep a backup.
    Lock {
        /// Removes the lock instead.
        #[arg(long)]
        off: bool,
    },
    /// Searches the local history (no network): messages holding every word of QUERY, as words or their
    /// beginnings, case and accents ignored; newest first, grouped by chat.
    Search {
        /// The words to find.
        query: String,
        /// Only the chat with this peer.
        #[arg(long)]
        peer: Option<String>,
        /// How many messages per chat.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// One JSON object per chat and line.
        #[arg(long)]
        json: bool,
    },
    /// Shows the safety number with PEER, to compare in person or on a call.
    SafetyNumber {
        /// With whom.
        peer: String,
    },
    /// Marks PEER verified after comparing safety numbers: prints the number and the key it is made of, then asks
    /// for that key's fingerprint (or takes --fingerprint), so that a key that changed meanwhile is not verified.
    Verify {
        /// Who.
        peer: String,
        /// The key fingerprint `magpie safety-number PEER` printed.
        #[arg(long, value_name = "HEX")]
        fingerprint: Option<String>,
    },
    /// Accepts PEER's new key after a key change (unverified), and starts a fresh handshake. Prints the new key's
    /// number and fingerprint, then asks for the fingerprint (or takes --fingerprint).
    AcceptKey {
        /// Whose.
        peer: String,
        /// The new key's fingerprint, as `magpie safety-number PEER` printed it.
        #[arg(long, value_name = "HEX")]
        fingerprint: Option<String>,
    },
    /// Catches up on the mailbox and posts the outbox, then exits.
    Sync,
    /// Stays connected and prints incoming messages (and events) as they arrive.
    Listen {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// An interactive chat with PEER: type a line and press Enter to send.
    Chat {
        /// With whom.
        peer: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("MAGPIE_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("magpie: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(commands::Failure::Usage(e)) => {
            eprintln!("magpie: {e}");
            ExitCode::from(2)
        }
        Err(commands::Failure::Engine(e)) => {
            eprintln!("magpie: {e}");
            ExitCode::FAILURE
        }
    }
}
