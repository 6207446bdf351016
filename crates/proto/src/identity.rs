//! Usernames, RSA-3072 identities, and certificate signing requests.

use std::fmt;

use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::Rsa;
use openssl::x509::{X509Name, X509Req, X509ReqBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{malformed, Error, Result};
use crate::secret::SecretBytes;
use crate::verify::Fingerprint;

/// RSA modulus size of every identity and CA key.
pub const RSA_BITS: u32 = 3072;
const RSA_EXPONENT: u32 = 65_537;
/// Upper bound on DER inputs we parse (certificates, CSRs, keys).
pub(crate) const MAX_DER_LEN: usize = 16 * 1024;

/// A validated, lower-case username: `[a-z0-9._-]{3,32}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Lower-cases `input` and validates it (what a person types).
    pub fn parse(input: &str) -> Result<Self> {
        Self::canonical(&input.to_ascii_lowercase()).map_err(|_| Error::InvalidUsername(input.to_owned()))
    }

    /// Accepts only an already canonical name (what the wire and certificates carry): no case folding, so
    /// each name has exactly one encoding under the signatures.
    pub fn canonical(input: &str) -> Result<Self> {
        let ok_len = (3..=32).contains(&input.len());
        let ok_chars = input
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
        if ok_len && ok_chars {
            Ok(Self(input.to_owned()))
        } else {
            Err(Error::InvalidUsername(input.chars().take(64).collect()))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::canonical(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Username({:?})", self.0)
    }
}

/// A user's RSA-3072 key pair and name. The private key is freed (and cleared by OpenSSL) on drop.
#[derive(Clone)]
pub struct Identity {
    username: Username,
    key: PKey<Private>,
}

impl Identity {
    /// Makes a fresh RSA-3072 key pair (e = 65537). Slow: 0.2–2 s.
    pub fn generate(username: Username) -> Result<Self> {
        let e = BigNum::from_u32(RSA_EXPONENT)?;
        let rsa = Rsa::generate_with_e(RSA_BITS, &e)?;
        Ok(Self {
            username,
            key: PKey::from_rsa(rsa)?,
        })
    }

    /// Imports a PKCS#8 DER private key (the credential-store form); refuses anything but RSA-3072.
    pub fn from_pkcs8_der(username: Username, der: &[u8]) -> Result<Self> {
        if der.len() > MAX_DER_LEN {
            return Err(malformed("private key too large"));
        }
        let key = PKey::private_key_from_pkcs8(der).map_err(|_| malformed("not a PKCS#8 private key"))?;
        check_rsa_key(&key).map_err(Error::Malformed)?;
        Ok(Self { username, key })
    }

    /// Exports the private key as PKCS#8 DER (for the credential store), in wiped memory.
    pub fn to_pkcs8_der(&self) -> Result<SecretBytes> {
        Ok(SecretBytes::new(self.key.private_key_to_pkcs8()?))
    }

    /// Signs a relay's login challenge (see [`crate::login`]).
    pub fn sign_login(&self, ca_fingerprint: &[u8; 32], nonce: &[u8]) -> Result<Vec<u8>> {
        let signed = crate::login::login_signed_bytes(ca_fingerprint, self.username.as_str(), nonce);
        crate::crypto::sign_pss(&self.key, &signed)
    }

    /// The username.
    pub fn username(&self) -> &Username {
        &self.username
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Result<Vec<u8>> {
        crate::verify::spki_der(&self.key)
    }

    /// SHA-256 of the SPKI DER.
    pub fn fingerprint(&self) -> Result<Fingerprint> {
        Fingerprint::of_spki_der(&self.public_key_der()?)
    }

    /// A PKCS#10 request with subject CN = username, signed (sha256WithRSAEncryption) by this key.
    pub fn csr(&self) -> Result<Csr> {
        let mut name = X509Name::builder()?;
        name.append_entry_by_nid(Nid::COMMONNAME, self.username.as_str())?;
        let name = name.build();
        let mut req = X509ReqBuilder::new()?;
        req.set_version(0)?;
        req.set_subject_name(&name)?;
        req.set_pubkey(&self.key)?;
        req.sign(&self.key, MessageDigest::sha256())?;
        Ok(Csr(req.build()))
    }

    pub(crate) fn private_key(&self) -> &PKey<Private> {
        &self.key
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("username", &self.username)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// Checks a key is RSA with at least 3072 bits and e = 65537; the error says why not.
pub(crate) fn check_rsa_key<T: openssl::pkey::HasPublic>(key: &PKey<T>) -> std::result::Result<(), String> {
    let rsa = key.rsa().map_err(|_| "not an RSA key".to_owned())?;
    if rsa.size() * 8 < RSA_BITS {
        return Err(format!("RSA key of {} bits, need {RSA_BITS}", rsa.size() * 8));
    }
    let e = BigNum::from_u32(RSA_EXPONENT).map_err(|e| e.to_string())?;
    if rsa.e() != &*e {
        return Err("RSA exponent is not 65537".to_owned());
    }
    Ok(())
}

/// The first subject CN of a name, if it is UTF-8.
pub(crate) fn common_name(name: &openssl::x509::X509NameRef) -> Option<String> {
    let entry = name.entries_by_nid(Nid::COMMONNAME).next()?;
    entry.data().to_string().ok()
}

/// A PKCS#10 certificate signing request.
pub struct Csr(X509Req);

impl Csr {
    /// Parses DER; the self-signature is checked by [`Csr::verify`], not here.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        if der.len() > MAX_DER_LEN {
            return Err(malformed("CSR too large"));
        }
        X509Req::from_der(der).map(Self).map_err(|_| malformed("not a DER CSR"))
    }

    /// Parses PEM.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        if pem.len() > 2 * MAX_DER_LEN {
            return Err(malformed("CSR too large"));
        }
        X509Req::from_pem(pem).map(Self).map_err(|_| malformed("not a PEM CSR"))
    }

    /// DER bytes.
    pub fn to_der(&self) -> Result<Vec<u8>> {
        Ok(self.0.to_der()?)
    }

    /// PEM text.
    pub fn to_pem(&self) -> Result<Vec<u8>> {
        Ok(self.0.to_pem()?)
    }

    /// Checks the self-signature, the key (RSA-3072, e = 65537) and that the CN is a canonical username,
    /// and returns that username.
    pub fn verify(&self) -> Result<Username> {
        let key = self.public_key()?;
        match self.0.verify(&key) {
            Ok(true) => {}
            _ => return Err(Error::BadCsr("self-signature does not verify".into())),
        }
        check_rsa_key(&key).map_err(Error::BadCsr)?;
        let cn = common_name(self.0.subject_name()).ok_or_else(|| Error::BadCsr("no subject CN".into()))?;
        Username::canonical(&cn).map_err(|_| Error::BadCsr(format!("CN {cn:?} is not a valid username")))
    }

    pub(crate) fn public_key(&self) -> Result<PKey<Public>> {
        self.0
            .public_key()
            .map_err(|_| Error::BadCsr("unreadable public key".into()))
    }
}

impl fmt::Debug for Csr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cn = common_name(self.0.subject_name());
        f.debug_struct("Csr").field("cn", &cn).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(Username::parse("Alice").unwrap().as_str(), "alice");
        assert_eq!(Username::parse("a.b_c-9").unwrap().as_str(), "a.b_c-9");
        for bad in ["ab", "", "a b", "alice!", "ålice", &"x".repeat(33), "bob\0"] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Username::parse(&"x".repeat(32)).is_ok());
        assert!(Username::canonical("Alice").is_err());
        assert!(serde_json::from_str::<Username>("\"Alice\"").is_err());
        assert_eq!(serde_json::from_str::<Username>("\"bob\"").unwrap().as_str(), "bob");
    }

    #[test]
    fn spki_der_gives_the_bytes_of_openssls_generic_encoder() {
        let identity = Identity::generate(Username::canonical("alice").unwrap()).unwrap();
        assert_eq!(
            identity.public_key_der().unwrap(),
            identity.key.public_key_to_der().unwrap()
        );
        // A key that is not RSA takes the generic path.
        let group = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap();
        let ec = PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap();
        assert_eq!(crate::verify::spki_der(&ec).unwrap(), ec.public_key_to_der().unwrap());
    }
}
