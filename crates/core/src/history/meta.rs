//! What the profile keeps in `meta` besides the key check and format: the registration (relay, CA pin, our
//! certificate), the open count, and the relay's bearer token.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{History, META};
use crate::error::{Error, Result};

const REGISTRATION: &[u8] = b"registration";
const RELAY_LOGIN: &[u8] = b"relay-login";
const GENERATION: &[u8] = b"generation";

/// What registration left with the profile: the pinned relay CA and our certificate (both public; sealed anyway
/// so nobody can swap the pin on disk).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRecord {
    /// The relay registered with.
    pub relay_url: String,
    /// Its CA root, PEM: every peer certificate must chain to it.
    pub ca_pem: String,
    /// Our certificate, PEM.
    pub certificate_pem: String,
}

impl History {
    /// What registration stored, if the profile registered.
    pub fn registration(&self) -> Result<Option<RegistrationRecord>> {
        let Some(plain) = self.get_meta(REGISTRATION)? else {
            return Ok(None);
        };
        serde_json::from_slice(&plain)
            .map(Some)
            .map_err(|_| Error::HistoryCorrupt { tree: META })
    }

    /// Stores the registration (durably: it holds the CA pin).
    pub fn set_registration(&self, record: &RegistrationRecord) -> Result<()> {
        let plain = serde_json::to_vec(record).map_err(|_| Error::Crypto("encoding failed"))?;
        self.put_meta(REGISTRATION, &plain)?;
        self.flush()?;
        Ok(())
    }

    /// How many times this history was opened, as it last recorded (0 before the first count). The credential
    /// store keeps the same count: a history whose count is behind it is an older copy (see `Profile::open`).
    pub fn generation(&self) -> Result<u64> {
        let Some(plain) = self.get_meta(GENERATION)? else {
            return Ok(0);
        };
        let bytes: [u8; 8] = plain
            .as_slice()
            .try_into()
            .map_err(|_| Error::HistoryCorrupt { tree: META })?;
        Ok(u64::from_be_bytes(bytes))
    }

    /// Records the open count, durably (the credential store is moved on only after it).
    pub fn set_generation(&self, generation: u64) -> Result<()> {
        self.put_meta(GENERATION, &generation.to_be_bytes())?;
        self.flush()?;
        Ok(())
    }

    /// The relay's bearer token kept from the last login, and when it expires (Unix seconds).
    pub fn relay_login(&self) -> Result<Option<(Zeroizing<String>, u64)>> {
        let Some(plain) = self.get_meta(RELAY_LOGIN)? else {
            return Ok(None);
        };
        let corrupt = || Error::HistoryCorrupt { tree: META };
        let (expiry, token) = plain.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let token = std::str::from_utf8(token).map_err(|_| corrupt())?;
        Ok(Some((Zeroizing::new(token.to_owned()), u64::from_be_bytes(*expiry))))
    }

    /// Keeps the relay's bearer token (sealed like everything else) for the next run of the profile.
    pub fn set_relay_login(&self, token: &str, expires_at: u64) -> Result<()> {
        let mut plain = Zeroizing::new(Vec::with_capacity(8 + token.len()));
        plain.extend_from_slice(&expires_at.to_be_bytes());
        plain.extend_from_slice(token.as_bytes());
        self.put_meta(RELAY_LOGIN, &plain)?;
        self.flush()?;
        Ok(())
    }

    fn get_meta(&self, key: &[u8]) -> Result<Option<Zeroizing<Vec<u8>>>> {
        match self.meta.get(key)? {
            Some(sealed) => Ok(Some(self.sealer.open(META, key, &sealed)?)),
            None => Ok(None),
        }
    }

    fn put_meta(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.meta.insert(key, self.sealer.seal(META, key, value)?)?;
        Ok(())
    }
}
