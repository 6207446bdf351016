//! The app lock. With a passphrase set, the profile's identity key and history key are kept in the credential store
//! wrapped, so a process that can read the store but does not know the passphrase reads nothing of use.
//!
//! The entries, with the lock on:
//! - `<profile_id>:lock`: `"MGLK" ‖ u8(version = 1) ‖ u8(log2 N) ‖ u8(r) ‖ u8(p) ‖ salt (16) ‖ nonce (12) ‖
//!   AES-256-GCM(KEK, W) (32) ‖ tag (16)`, where KEK = scrypt(passphrase as UTF-8, salt, N = 2^17, r = 8, p = 1)
//!   (128 MiB, about half a second here) and W is a random 256-bit wrapping key; additional data: the account name
//!   and the 24 bytes before the nonce;
//! - `<profile_id>:identity-key`, `<profile_id>:history-key`: `"MGWK" ‖ nonce (12) ‖ AES-256-GCM(W, key) ‖ tag (16)`,
//!   additional data the account name (two entries swapped do not open).
//!
//! Without the lock there is no `:lock` entry and the two hold the raw keys (PKCS#8 DER, which starts with 0x30; 32
//! bytes): a wrapped value is longer than 32 bytes and starts with "MGWK", so each entry says what it holds.
//!
//! The passphrase guards W alone: changing it rewrites only `:lock`, one write. Setting it writes `:lock` first and
//! removing it deletes `:lock` last, and an unlock wraps any entry it finds raw while `:lock` exists: a crash between
//! the writes leaves the lock on and every key readable with the passphrase, never a key lost.
//!
//! Wrong passphrases are counted in the profile's directory (`unlock-attempts`): from the third one in a row each
//! next try waits twice as long (2 s, 4 s, … up to 5 minutes). That slows a person at the keyboard; against someone
//! who copied the entries, scrypt's cost per guess is the defence, and the passphrase's length.

use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use magpie_proto::backup::{passphrase_key, KdfParams};
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keystore::{Keystore, SecretBytes};

const LOCK_MAGIC: &[u8; 4] = b"MGLK";
const WRAPPED_MAGIC: &[u8; 4] = b"MGWK";
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 4 + 4 + 16;
const LOCK_ENTRY_LEN: usize = HEADER_LEN + NONCE_LEN + 32 + TAG_LEN;
/// The file counting wrong passphrases, in the profile's directory.
pub const ATTEMPTS_FILE: &str = "unlock-attempts";
/// Wrong passphrases in a row that cost nothing; each one after waits twice as long as the one before.
const FREE_TRIES: u32 = 2;
const LONGEST_WAIT_SECS: u64 = 300;

/// The credential-store account of a profile's lock (present only with the lock on).
pub fn lock_account(profile_id: Uuid) -> String {
    format!("{profile_id}:lock")
}

/// The parameters a new lock uses: N = 2^17, r = 8, p = 1 (128 MiB; one lane, since it runs at every unlock).
pub fn recommended_kdf() -> Result<KdfParams> {
    let mut salt = [0u8; 16];
    openssl::rand::rand_bytes(&mut salt).map_err(|_| Error::Crypto("could not draw random bytes"))?;
    Ok(KdfParams {
        log2_n: 17,
        r: 8,
        p: 1,
        salt,
    })
}

/// The key that wraps the profile's keys. Wiped when dropped; never printed.
pub(crate) struct WrappingKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for WrappingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WrappingKey(<redacted>)")
    }
}

impl WrappingKey {
    pub(crate) fn generate() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; 32]);
        openssl::rand::rand_bytes(key.as_mut_slice()).map_err(|_| Error::Crypto("could not draw random bytes"))?;
        Ok(Self(key))
    }

    /// The `:lock` entry holding this key under `passphrase`.
    pub(crate) fn lock_entry(&self, account: &str, passphrase: &str, kdf: &KdfParams) -> Result<Vec<u8>> {
        let kek = passphrase_key(passphrase, kdf)?;
        let mut entry = Vec::with_capacity(LOCK_ENTRY_LEN);
        entry.extend_from_slice(LOCK_MAGIC);
        let narrow = |v: u32| u8::try_from(v).map_err(|_| Error::Crypto("scrypt parameter out of range"));
        entry.extend_from_slice(&[VERSION, kdf.log2_n, narrow(kdf.r)?, narrow(kdf.p)?]);
        entry.extend_from_slice(&kdf.salt);
        let ad = [account.as_bytes(), &entry].concat();
        entry.extend_from_slice(&seal(kek.as_slice(), &ad, self.0.as_slice())?);
        Ok(entry)
    }

    /// The key in a `:lock` entry, if `passphrase` opens it; `Ok(None)` when it does not.
    pub(crate) fn from_lock_entry(account: &str, entry: &[u8], passphrase: &str) -> Result<Option<Self>> {
        let malformed = || Error::CredentialStore(format!("the entry {account} is malformed"));
        if entry.len() != LOCK_ENTRY_LEN || !entry.starts_with(LOCK_MAGIC) || entry[4] != VERSION {
            return Err(malformed());
        }
        let (header, sealed) = entry.split_at(HEADER_LEN);
        let mut salt = [0u8; 16];
        salt.copy_from_slice(&header[8..]);
        let kdf = KdfParams {
            log2_n: header[5],
            r: u32::from(header[6]),
            p: u32::from(header[7]),
            salt,
        };
        let kek = passphrase_key(passphrase, &kdf).map_err(|_| malformed())?;
        let ad = [account.as_bytes(), header].concat();
        let Some(opened) = open(kek.as_slice(), &ad, sealed) else {
            return Ok(None);
        };
        if opened.len() != 32 {
            return Err(malformed());
        }
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(&opened);
        Ok(Some(Self(key)))
    }

    /// `secret` wrapped for the entry `account`.
    pub(crate) fn wrap(&self, account: &str, secret: &[u8]) -> Result<Vec<u8>> {
        Ok([
            WRAPPED_MAGIC.as_slice(),
            &seal(self.0.as_slice(), account.as_bytes(), secret)?,
        ]
        .concat())
    }

    /// The secret in the wrapped entry `account`.
    pub(crate) fn unwrap(&self, account: &str, wrapped: &[u8]) -> Result<SecretBytes> {
        let opened = is_wrapped(wrapped)
            .then(|| open(self.0.as_slice(), account.as_bytes(), &wrapped[WRAPPED_MAGIC.len()..]))
            .flatten();
        opened.map(SecretBytes::new).ok_or_else(|| {
            Error::CredentialStore(format!("the entry {account} does not open with this profile's lock"))
        })
    }
}

impl super::Profile {
    /// Whether the app lock is on.
    pub fn lock_on(&self) -> bool {
        self.lock_on.load(Relaxed)
    }

    /// Sets the passphrase: turns the lock on (`current` is `None`), or changes it (`current` must open it, with
    /// the same waits as an unlock). At least [`crate::backup::MIN_PASSPHRASE_CHARS`] characters. Blocks for scrypt.
    pub fn set_passphrase(&self, current: Option<&str>, new: &str) -> Result<()> {
        self.set_passphrase_with(current, new, &recommended_kdf()?)
    }

    pub(crate) fn set_passphrase_with(&self, current: Option<&str>, new: &str, kdf: &KdfParams) -> Result<()> {
        crate::backup::check_passphrase(new)?;
        let account = lock_account(self.id());
        // The entry, not only the flag: a turn-on that failed halfway left one, and a second key made now would
        // leave what the first wrapped unopenable.
        if self.lock_on() || self.keystore.load(&account)?.is_some() {
            // Changing it needs the current one; none given is not a wrong try.
            let current = current.ok_or(Error::ProfileLocked)?;
            let key = open_lock(&self.dir, self.keystore.as_ref(), self.id(), current)?;
            self.lock_on.store(true, Relaxed);
            // One write: the old passphrase opens it until it lands, the new one after.
            self.keystore.store(&account, &key.lock_entry(&account, new, kdf)?)?;
            self.wrap_raw_keys(&key)?;
            tracing::info!(profile = %self.id(), "lock passphrase changed");
            return Ok(());
        }
        let key = WrappingKey::generate()?;
        // The lock entry first: from here the lock is on, and an unlock wraps whatever is still raw.
        self.keystore.store(&account, &key.lock_entry(&account, new, kdf)?)?;
        self.lock_on.store(true, Relaxed);
        self.wrap_raw_keys(&key)?;
        tracing::info!(profile = %self.id(), "lock turned on");
        Ok(())
    }

    /// Wraps with `key` whichever of the two keys is still raw in the credential store.
    fn wrap_raw_keys(&self, key: &WrappingKey) -> Result<()> {
        for account in [super::history_account(self.id()), super::identity_account(self.id())] {
            let value = super::load_required(self.keystore.as_ref(), "key", account.clone())?;
            if !is_wrapped(value.expose()) {
                self.keystore.store(&account, &key.wrap(&account, value.expose())?)?;
            }
        }
        Ok(())
    }

    /// Turns the lock off: the keys go back to the credential store unwrapped. `current` must open it.
    pub fn remove_passphrase(&self, current: &str) -> Result<()> {
        let key = open_lock(&self.dir, self.keystore.as_ref(), self.id(), current)?;
        for account in [super::identity_account(self.id()), super::history_account(self.id())] {
            let value = super::load_required(self.keystore.as_ref(), "key", account.clone())?;
            if is_wrapped(value.expose()) {
                self.keystore
                    .store(&account, key.unwrap(&account, value.expose())?.expose())?;
            }
        }
        // The lock entry last: until it goes, an unlock wraps the keys again.
        self.keystore.delete(&lock_account(self.id()))?;
        self.lock_on.store(false, Relaxed);
        tracing::info!(profile = %self.id(), "lock turned off");
        Ok(())
    }

    /// Checks `passphrase` against the lock, with an unlock's waits: what unlocks the window of an open profile.
    pub fn check_passphrase(&self, passphrase: &str) -> Result<()> {
        open_lock(&self.dir, self.keystore.as_ref(), self.id(), passphrase).map(drop)
    }
}

/// Whether a key entry's value is wrapped (rather than the raw key).
pub(crate) fn is_wrapped(value: &[u8]) -> bool {
    value.len() > 32 && value.starts_with(WRAPPED_MAGIC)
}

fn seal(key: &[u8], ad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    openssl::rand::rand_bytes(&mut nonce).map_err(|_| Error::Crypto("could not draw random bytes"))?;
    let mut tag = [0u8; TAG_LEN];
    let ciphertext = encrypt_aead(Cipher::aes_256_gcm(), key, Some(&nonce), ad, plain, &mut tag)
        .map_err(|_| Error::Crypto("wrapping a key failed"))?;
    Ok([nonce.as_slice(), &ciphertext, &tag].concat())
}

fn open(key: &[u8], ad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    decrypt_aead(Cipher::aes_256_gcm(), key, Some(nonce), ad, ciphertext, tag)
        .ok()
        .map(Zeroizing::new)
}

/// Opens the `:lock` entry of `profile_id` with `passphrase`, counting wrong ones in `dir` and refusing tries
/// while the last wrong one's wait runs.
pub(crate) fn open_lock(
    dir: &Path,
    keystore: &dyn Keystore,
    profile_id: Uuid,
    passphrase: &str,
) -> Result<WrappingKey> {
    let account = lock_account(profile_id);
    let entry = keystore.load(&account)?.ok_or(Error::ProfileKeyMissing {
        what: "lock",
        account: account.clone(),
    })?;
    let mut attempts = Attempts::read(dir);
    let now = now_secs();
    if attempts.next_try_at > now {
        return Err(Error::UnlockWait {
            wait_secs: attempts.next_try_at - now,
        });
    }
    match WrappingKey::from_lock_entry(&account, entry.expose(), passphrase)? {
        Some(key) => {
            Attempts::clear(dir);
            Ok(key)
        }
        None => {
            attempts.failures = attempts.failures.saturating_add(1);
            let wait_secs = wait_after(attempts.failures);
            attempts.next_try_at = now.saturating_add(wait_secs);
            attempts.write(dir);
            tracing::info!(failures = attempts.failures, wait_secs, "wrong passphrase");
            Err(Error::WrongPassphrase { wait_secs })
        }
    }
}

/// Seconds the next try waits after `failures` wrong passphrases in a row.
fn wait_after(failures: u32) -> u64 {
    match failures.checked_sub(FREE_TRIES) {
        None | Some(0) => 0,
        Some(beyond) => 1u64.checked_shl(beyond).unwrap_or(u64::MAX).min(LONGEST_WAIT_SECS),
    }
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Wrong passphrases in a row, and when the next try is taken: `"<failures> <unix seconds>"`.
#[derive(Debug, Default)]
struct Attempts {
    failures: u32,
    next_try_at: u64,
}

impl Attempts {
    fn read(dir: &Path) -> Self {
        let text = std::fs::read_to_string(dir.join(ATTEMPTS_FILE)).unwrap_or_default();
        let mut parts = text.split_whitespace().map(str::parse::<u64>);
        match (parts.next(), parts.next()) {
            (Some(Ok(failures)), Some(Ok(next_try_at))) => Self {
                failures: u32::try_from(failures).unwrap_or(u32::MAX),
                // A clock set back must not make the wait longer than the longest.
                next_try_at: next_try_at.min(now_secs().saturating_add(LONGEST_WAIT_SECS)),
            },
            _ => Self::default(),
        }
    }

    fn write(&self, dir: &Path) {
        let written = std::fs::write(
            dir.join(ATTEMPTS_FILE),
            format!("{} {}\n", self.failures, self.next_try_at),
        );
        if let Err(error) = written {
            tracing::warn!(%error, "could not count a wrong passphrase");
        }
    }

    fn clear(dir: &Path) {
        let _ = std::fs::remove_file(dir.join(ATTEMPTS_FILE));
    }
}

/// scrypt parameters that take a millisecond, for tests.
#[cfg(test)]
pub(crate) fn quick_kdf() -> KdfParams {
    KdfParams {
        log2_n: 10,
        r: 8,
        p: 1,
        salt: [7; 16],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_entry_opens_with_its_passphrase_and_account_only() {
        let key = WrappingKey::generate().unwrap();
        let entry = key.lock_entry("p:lock", "correct horse", &quick_kdf()).unwrap();
        assert_eq!(entry.len(), LOCK_ENTRY_LEN);
        let opened = WrappingKey::from_lock_entry("p:lock", &entry, "correct horse")
            .unwrap()
            .unwrap();
        assert_eq!(opened.0.as_slice(), key.0.as_slice());
        assert!(WrappingKey::from_lock_entry("p:lock", &entry, "wrong horse")
            .unwrap()
            .is_none());
        assert!(WrappingKey::from_lock_entry("q:lock", &entry, "correct horse")
            .unwrap()
            .is_none());
        let mut changed_salt = entry.clone();
        changed_salt[10] ^= 1;
        assert!(WrappingKey::from_lock_entry("p:lock", &changed_salt, "correct horse")
            .unwrap()
            .is_none());
        assert!(WrappingKey::from_lock_entry("p:lock", &entry[1..], "correct horse").is_err());
        let mut greedy = entry;
        greedy[5] = 30; // 2^30 · 1 KiB of scrypt memory
        assert!(WrappingKey::from_lock_entry("p:lock", &greedy, "correct horse").is_err());
    }

    #[test]
    fn wrapped_keys_are_told_from_raw_ones_and_bound_to_their_entry() {
        let key = WrappingKey::generate().unwrap();
        let wrapped = key.wrap("p:history-key", &[9u8; 32]).unwrap();
        assert!(is_wrapped(&wrapped));
        assert!(
            !is_wrapped(b"MGWK0123456789012345678901234567"),
            "32 bytes is a raw history key"
        );
        assert!(!is_wrapped(&[0x30, 0x82, 0x06, 0xfe]));
        assert_eq!(key.unwrap("p:history-key", &wrapped).unwrap().expose(), &[9u8; 32]);
        assert!(key.unwrap("p:identity-key", &wrapped).is_err());
        let other = WrappingKey::generate().unwrap();
        assert!(other.unwrap("p:history-key", &wrapped).is_err());
    }

    #[test]
    fn waits_grow_after_the_free_tries_and_stop_at_five_minutes() {
        let waits: Vec<u64> = (0..=12).map(wait_after).collect();
        assert_eq!(waits, [0, 0, 0, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(wait_after(u32::MAX), 300);
    }

    #[test]
    fn wrong_passphrases_are_counted_in_the_directory_and_make_the_next_try_wait() {
        let dir = tempfile::tempdir().unwrap();
        let keystore = crate::keystore::MemoryKeystore::default();
        let id = Uuid::new_v4();
        let key = WrappingKey::generate().unwrap();
        keystore
            .store(
                &lock_account(id),
                &key.lock_entry(&lock_account(id), "right", &quick_kdf()).unwrap(),
            )
            .unwrap();
        for expected_wait in [0, 0, 2] {
            match open_lock(dir.path(), &keystore, id, "wrong") {
                Err(Error::WrongPassphrase { wait_secs }) => assert_eq!(wait_secs, expected_wait),
                other => panic!("{other:?}"),
            }
        }
        // Even the right passphrase waits its turn.
        assert!(matches!(
            open_lock(dir.path(), &keystore, id, "right"),
            Err(Error::UnlockWait { wait_secs: 1..=2 })
        ));
        Attempts {
            failures: 3,
            next_try_at: 0,
        }
        .write(dir.path());
        open_lock(dir.path(), &keystore, id, "right").unwrap();
        assert!(
            !dir.path().join(ATTEMPTS_FILE).exists(),
            "a right passphrase clears the count"
        );
    }
}
