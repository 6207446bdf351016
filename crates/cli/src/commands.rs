//! What each command does, over magpie-core's [`Client`].

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use magpie_core::engine::MessageView;
use magpie_core::keystore::{Keystore, PlatformKeystore};
use magpie_core::search::Query;
use magpie_core::{Client, Error, Profile, Result};
use magpie_proto::{Identity, Username};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use zeroize::Zeroizing;

use crate::{confirm, output, passphrase};
use crate::{Cli, Command};

/// Why a command failed: the engine's error (exit 1), or a command line that cannot be carried out (exit 2).
#[derive(Debug)]
pub enum Failure {
    Engine(Error),
    Usage(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Engine(e)
    }
}

pub async fn run(cli: Cli) -> std::result::Result<(), Failure> {
    let keystore: Arc<dyn Keystore> = Arc::new(PlatformKeystore::new());
    if let Command::Register { name, ca_fingerprint } = &cli.command {
        return register(
            &cli.profile,
            cli.relay.as_deref(),
            name,
            ca_fingerprint.as_deref(),
            keystore,
        )
        .await;
    }
    if let Command::Restore { file } = &cli.command {
        return restore(&cli.profile, file, keystore).await;
    }
    if let Command::Lock { off } = &cli.command {
        return lock(&cli.profile, *off, keystore).await;
    }
    let client = open(&cli.profile, cli.relay.as_deref(), keystore).await?;
    // What this command's catch-ups discard is warned of when it ends (`listen` and `chat` warn as it happens).
    let live = matches!(cli.command, Command::Listen { .. } | Command::Chat { .. });
    let mut watched = client.events();
    let outcome = command(&client, cli.command, &mut watched).await;
    if !live {
        output::discarded(&mut watched);
    }
    outcome
}

async fn command(
    client: &Client,
    command: Command,
    watched: &mut tokio::sync::broadcast::Receiver<magpie_core::engine::Event>,
) -> std::result::Result<(), Failure> {
    match command {
        Command::Register { .. } | Command::Restore { .. } | Command::Lock { .. } => Ok(()),
        Command::Backup { out } => {
            let passphrase = passphrase::read(true)?;
            magpie_core::backup::check_passphrase(&passphrase)?;
            eprintln!("Deriving the key from the passphrase (a second or two)...");
            let client = client.clone();
            let target = out.clone();
            let summary = blocking(move || {
                let never = AtomicBool::new(false);
                let mut shown = Percent::default();
                let profile = client.profile();
                magpie_core::backup::write_backup(profile, &target, &passphrase, &never, &mut |p| shown.show(p))
            })
            .await?;
            println!(
                "Backed up {} contacts and {} messages to {} ({} bytes).",
                summary.contacts,
                summary.messages,
                out.display(),
                summary.bytes
            );
            println!("Keep the passphrase: without it the backup cannot be opened, by anyone.");
            Ok(())
        }
        Command::Whoami => Ok(whoami(client)?),
        Command::Request { peer } => {
            let peer = username(&peer)?;
            client.sync().await?;
            let id = client.request(&peer).await?;
            client.flush_outbox().await?;
            println!("Chat request sent to {peer} ({id}). It completes when {peer} accepts and you sync again.");
            Ok(())
        }
        Command::Requests { json } => {
            client.sync().await?;
            output::requests(&client.incoming_requests()?, &client.outgoing_requests()?, json);
            Ok(())
        }
        Command::Accept {
            peer,
            request,
            fingerprint,
        } => {
            let peer = username(&peer)?;
            client.sync().await?;
            let chosen = confirm::request(client, &peer, request)?;
            let shown = match fingerprint {
                Some(hex) => confirm::parse(&hex)?,
                None => chosen.fingerprint,
            };
            client.accept(chosen.request_id, &shown).await?;
            client.flush_outbox().await?;
            println!(
                "Accepted {peer}'s request {} (key {}); the session is ready once {peer} syncs and you sync again.",
                chosen.request_id, chosen.fingerprint
            );
            Ok(())
        }
        Command::Decline { peer, request } => {
            let peer = username(&peer)?;
            client.sync().await?;
            let chosen = confirm::request(client, &peer, request)?;
            client.decline(chosen.request_id).await?;
            client.flush_outbox().await?;
            println!("Declined {peer}'s request {}.", chosen.request_id);
            Ok(())
        }
        Command::Send { peer, text } => {
            let peer = username(&peer)?;
            client.sync().await?;
            client.check_key(&peer).await?;
            let message = client.send_text(&peer, &text)?;
            client.flush_outbox().await?;
            match message.delivery {
                magpie_core::history::Delivery::Waiting => println!(
                    "Queued {} for {peer}: it is sealed and sent once the secure session with {peer} is set up \
                     (a later sync, after {peer} answers).",
                    message.id
                ),
                _ => println!("Sent {} to {peer}.", message.id),
            }
            Ok(())
        }
        Command::SendFile { peer, path } => {
            let peer = username(&peer)?;
            client.sync().await?;
            client.check_key(&peer).await?;
            let message = client.send_file(&peer, &path, None).await?;
            client.finish_transfers().await?;
            println!("Sent {} ({}) to {peer}.", path.display(), message.id);
            Ok(())
        }
        Command::SaveFile { peer, message_id, path } => {
            let peer = username(&peer)?;
            if path.exists() {
                return Err(Failure::Usage(format!(
                    "{} exists already: choose another path",
                    path.display()
                )));
            }
            let record = client.file_state(message_id)?;
            if record.as_ref().is_none_or(|r| r.peer != peer) {
                return Err(Failure::Usage(format!(
                    "There is no file {message_id} in the chat with {peer}."
                )));
            }
            client.save_file(message_id, &path).await?;
            println!("Saved {} from {peer}.", path.display());
            Ok(())
        }
        Command::History { peer, json, last } => {
            let peer = username(&peer)?;
            for entry in client.last_messages(&peer, last)? {
                output::message(&MessageView::from(&entry), json);
            }
            if let Some(discarded) = client.contact(&peer)?.and_then(|c| c.discarded) {
                eprintln!(
                    "magpie: note: {} messages and {} key exchange steps from {peer} could not be verified and were \
                     discarded (the last at {}).",
                    discarded.messages,
                    discarded.steps,
                    output::time(discarded.last)
                );
            }
            Ok(())
        }
        Command::Search {
            query,
            peer,
            limit,
            json,
        } => {
            let parsed =
                Query::parse(&query).ok_or_else(|| Failure::Usage(format!("{query:?} holds no word to search for")))?;
            let never = AtomicBool::new(false);
            let total = match peer {
                Some(peer) => {
                    let results = client.search_chat(&username(&peer)?, &parsed, None, limit, &never)?;
                    let total = results.total;
                    output::search_results(&results, json);
                    total
                }
                None => client.search(&parsed, limit, &never, |results| output::search_results(&results, json))?,
            };
            if total == 0 && !json {
                eprintln!("magpie: no message matches {query:?}.");
            }
            Ok(())
        }
        Command::SafetyNumber { peer } => {
            let peer = username(&peer)?;
            let check = client.safety_number(&peer)?;
            confirm::print_number(client, &peer, &check)?;
            println!("QR payload: {}", check.number.qr_payload());
            println!(
                "Compare it with {peer} in person or on a call; then run `magpie verify {peer} --fingerprint {}`.",
                check.fingerprint.to_hex()
            );
            Ok(())
        }
        Command::Verify { peer, fingerprint } => {
            let peer = username(&peer)?;
            let shown = confirm::fingerprint(client, &peer, fingerprint, "verify").await?;
            let contact = client.mark_verified(&peer, &shown).await?;
            client.flush_outbox().await?;
            println!(
                "{} is marked verified (key {}).",
                contact.username,
                contact.fingerprint.to_hex()
            );
            Ok(())
        }
        Command::AcceptKey { peer, fingerprint } => {
            let peer = username(&peer)?;
            client.sync().await?;
            let shown = confirm::fingerprint(client, &peer, fingerprint, "accept").await?;
            match client.accept_new_key(&peer, &shown).await? {
                Some(id) => println!("Accepted {peer}'s new key; a new chat request is on its way ({id})."),
                None => println!("Accepted {peer}'s new key; accept their pending request to continue."),
            }
            client.flush_outbox().await?;
            Ok(())
        }
        Command::Sync => {
            let synced = client.sync().await?;
            let discarded = output::discarded(watched);
            println!(
                "{} envelopes handled ({discarded} discarded as unverifiable), {} left for later.",
                synced.handled, synced.deferred
            );
            Ok(())
        }
        Command::Listen { json } => Ok(listen(client, json, None).await?),
        Command::Chat { peer } => Ok(chat(client, &username(&peer)?).await?),
    }
}

async fn register(
    dir: &Path,
    relay: Option<&str>,
    name: &str,
    ca_fingerprint: Option<&str>,
    keystore: Arc<dyn Keystore>,
) -> std::result::Result<(), Failure> {
    let relay = relay.ok_or_else(|| Error::BadRelayUrl("(none): pass --relay URL to register".into()))?;
    let name = username(name)?;
    // The relay's CA before anything is made: a relay the user does not confirm leaves nothing behind.
    let expected_ca = confirm::relay_ca(relay, ca_fingerprint).await?;
    let (profile, created) = if dir.join(magpie_core::profile::PROFILE_FILE).exists() {
        let profile = open_profile(dir, keystore.clone()).await?;
        if profile.username() != &name {
            return Err(Error::ProfileExists(dir.to_owned()).into());
        }
        (profile, false)
    } else {
        eprintln!("Generating an RSA-3072 key for {name} (a second or two)...");
        let dir = dir.to_owned();
        let keys = keystore.clone();
        let profile = blocking(move || {
            let identity = Identity::generate(name)?;
            Profile::create_with_identity(&dir, identity, keys)
        })
        .await?;
        (profile, true)
    };
    let profile_dir = profile.dir().to_owned();
    match Client::register(profile, relay, expected_ca.as_ref()).await {
        Ok(client) => {
            println!("Registered {} with {}.", client.username(), client.relay_url());
            println!("Your key's fingerprint: {}", client.fingerprint().to_hex());
            println!(
                "Relay CA fingerprint (pinned): {}",
                client.relay_ca_fingerprint()?.to_hex()
            );
            println!(
                "Your private key is in the {} (entry \"{}\").",
                magpie_core::keystore::backend_name(),
                magpie_core::profile::identity_account(client.profile().id())
            );
            Ok(())
        }
        Err(e) => {
            // A name someone else holds: do not leave a profile behind that can never register.
            if created && matches!(e, Error::NameTaken(_) | Error::RelayCaChanged { .. }) {
                let keys = keystore.clone();
                blocking(move || Profile::remove(&profile_dir, keys.as_ref())).await?;
            }
            Err(e.into())
        }
    }
}

async fn restore(dir: &Path, file: &Path, keystore: Arc<dyn Keystore>) -> std::result::Result<(), Failure> {
    let passphrase = passphrase::read(false)?;
    eprintln!("Deriving the key from the passphrase (a second or two)...");
    let (dir, file) = (dir.to_owned(), file.to_owned());
    let profile = blocking(move || {
        let never = AtomicBool::new(false);
        let mut shown = Percent::default();
        magpie_core::backup::restore(&file, &passphrase, &dir, keystore, &never, &mut |p| shown.show(p))
    })
    .await?;
    let contacts = profile.history().contacts()?.len();
    println!(
        "Restored {} into {} with {contacts} contacts.",
        profile.username(),
        profile.dir().display()
    );
    println!("The next `magpie sync` starts a fresh handshake with each contact; messages wait until it completes.");
    Ok(())
}

/// Progress on stderr, a line per tenth when not on a terminal.
#[derive(Default)]
struct Percent(Option<u64>);

impl Percent {
    fn show(&mut self, progress: magpie_core::backup::Progress) {
        let percent = (progress.done * 100).checked_div(progress.total).unwrap_or(100);
        let step = if std::io::stderr().is_terminal() {
            percent
        } else {
            percent / 10 * 10
        };
        if self.0 != Some(step) {
            self.0 = Some(step);
            eprint!("{step}%{}", if std::io::stderr().is_terminal() { "\r" } else { "\n" });
        }
    }
}

async fn open(dir: &Path, relay: Option<&str>, keystore: Arc<dyn Keystore>) -> std::result::Result<Client, Failure> {
    let profile = open_profile(dir, keystore).await?;
    let client = Client::open(profile)?;
    if let Some(relay) = relay {
        let given = magpie_core::relay::RelayClient::new(relay)?;
        if given.url() != client.relay_url() {
            return Err(Error::BadRelayUrl(format!(
                "{relay}: this profile is registered with {}",
                client.relay_url()
            ))
            .into());
        }
    }
    Ok(client)
}

async fn open_profile(dir: &Path, keystore: Arc<dyn Keystore>) -> std::result::Result<Profile, Failure> {
    Ok(unlocked(dir, keystore).await?.0)
}

/// The profile in `dir`, unlocked with its passphrase (returned) when it is locked.
async fn unlocked(
    dir: &Path,
    keystore: Arc<dyn Keystore>,
) -> std::result::Result<(Profile, Option<Zeroizing<String>>), Failure> {
    let dir = dir.to_owned();
    let keys = keystore.clone();
    let at = dir.clone();
    if !blocking(move || Profile::is_locked(&at, keys.as_ref())).await? {
        return Ok((blocking(move || Profile::open(&dir, keystore)).await?, None));
    }
    let passphrase = passphrase::unlock()?;
    let given = passphrase.clone();
    let profile = blocking(move || Profile::unlock(&dir, keystore, &given)).await?;
    Ok((profile, Some(passphrase)))
}

/// Turns the lock on, changes its passphrase, or (`off`) turns it off.
async fn lock(dir: &Path, off: bool, keystore: Arc<dyn Keystore>) -> std::result::Result<(), Failure> {
    let (profile, current) = unlocked(dir, keystore).await?;
    match (off, current) {
        (true, None) => Err(Failure::Usage("this profile is not locked".into())),
        (true, Some(current)) => {
            blocking(move || profile.remove_passphrase(&current)).await?;
            println!("The lock is off: the profile's keys are in the credential store unwrapped again.");
            Ok(())
        }
        (false, current) => {
            let new = passphrase::new_lock()?;
            let changed = current.is_some();
            blocking(move || profile.set_passphrase(current.as_deref().map(String::as_str), &new)).await?;
            match changed {
                true => println!("The passphrase is changed."),
                false => println!(
                    "Locked: the profile's keys are kept wrapped with the passphrase, and every command asks for \
                     it. Nobody can recover it: without it, only a backup brings this profile back."
                ),
            }
            Ok(())
        }
    }
}

/// The credential store and key generation block: keep them off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Error::Crypto(if e.is_panic() {
            "worker panicked"
        } else {
            "worker cancelled"
        })
    })?
}

fn username(s: &str) -> Result<Username> {
    Ok(Username::canonical(s)?)
}

fn whoami(client: &Client) -> Result<()> {
    let cert = client.certificate();
    let (not_before, not_after) = cert.validity_unix()?;
    println!("Username:     {}", client.username());
    println!("Fingerprint:  {}", client.fingerprint().to_hex());
    println!("Certificate:  serial {}", cert.serial_hex()?);
    println!(
        "Valid:        {} to {}",
        output::time(u64::try_from(not_before).unwrap_or(0)),
        output::time(u64::try_from(not_after).unwrap_or(0))
    );
    println!("Relay:        {}", client.relay_url());
    println!("Relay CA:     {}", client.relay_ca_fingerprint()?.to_hex());
    println!("Profile:      {}", client.profile().dir().display());
    Ok(())
}

/// Prints events until interrupted (or, with `only`, messages of one chat).
async fn listen(client: &Client, json: bool, only: Option<&Username>) -> Result<()> {
    let mut events = client.events();
    let runner = client.clone();
    let mut running = tokio::spawn(async move { runner.run().await });
    loop {
        tokio::select! {
            ended = &mut running => {
                return match ended {
                    Ok(result) => result,
                    Err(_) => Err(Error::Crypto("the connection task stopped")),
                };
            }
            event = events.recv() => match event {
                Ok(event) => output::event(&event, json, only),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!("magpie: {n} events skipped (run `magpie history` to see every message)");
                }
                Err(_) => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

async fn chat(client: &Client, peer: &Username) -> Result<()> {
    for entry in client.last_messages(peer, 20)? {
        output::message(&MessageView::from(&entry), false);
    }
    eprintln!("Chatting with {peer}. Type and press Enter to send; Ctrl-D to leave.");
    let listener = {
        let client = client.clone();
        let peer = peer.clone();
        tokio::spawn(async move { listen(&client, false, Some(&peer)).await })
    };
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let text = line.trim_end();
        if text.is_empty() {
            continue;
        }
        if let Err(e) = client.send_text(peer, text) {
            eprintln!("magpie: {e}");
        }
    }
    // Post what is still queued before leaving; what cannot go now stays in the outbox for next time.
    match client.drain_outbox(std::time::Duration::from_secs(10)).await {
        Ok(0) => {}
        Ok(waiting) => eprintln!("magpie: {waiting} messages wait in the outbox; they go with the next command"),
        Err(e) => eprintln!("magpie: {e}"),
    }
    listener.abort();
    Ok(())
}
