//! Certificates, chain verification against the pinned relay root, SPKI fingerprints and pin checks.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::{HasPublic, PKey, PKeyRef, Public};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::{X509VerifyFlags, X509VerifyParam};
use openssl::x509::{X509KeyUsage, X509StoreContext, X509};
use serde::{Deserialize, Serialize};

use crate::crypto::sha256;
use crate::error::{malformed, CertProblem, Error, Result};
use crate::identity::{check_rsa_key, common_name, Identity, Username, MAX_DER_LEN};

/// Most certificates a peer may present in one chain (leaf first).
pub const MAX_CHAIN_LEN: usize = 4;
// X509_V_ERR_* codes from x509_vfy.h (stable ABI values).
const X509_V_ERR_CERT_NOT_YET_VALID: i32 = 9;
const X509_V_ERR_CERT_HAS_EXPIRED: i32 = 10;

/// Seconds since the Unix epoch (0 for earlier times).
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A SHA-256 fingerprint (of an SPKI, or of a whole certificate for the CA root).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// SHA-256 of SubjectPublicKeyInfo DER.
    pub fn of_spki_der(spki_der: &[u8]) -> Result<Self> {
        Ok(Self(sha256(spki_der)?))
    }

    /// Wraps raw digest bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        crate::encoding::hex(&self.0)
    }

    /// Parses 64 hex characters (either case, optional `:` separators).
    pub fn from_hex(s: &str) -> Result<Self> {
        let clean: String = s.chars().filter(|c| *c != ':').collect();
        let bytes = crate::encoding::unhex(&clean).ok_or_else(|| malformed("fingerprint hex"))?;
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| malformed("fingerprint must be 32 bytes"))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.to_hex())
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// An X.509 certificate (not yet trusted: see [`TrustAnchor::verify`]).
#[derive(Clone)]
pub struct Certificate(X509);

impl Certificate {
    /// Parses DER.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        if der.len() > MAX_DER_LEN {
            return Err(Error::BadCertificate(CertProblem::Unparsable));
        }
        X509::from_der(der)
            .map(Self)
            .map_err(|_| Error::BadCertificate(CertProblem::Unparsable))
    }

    /// Parses PEM.
    pub fn from_pem(pem: &[u8]) -> Result<Self> {
        if pem.len() > 2 * MAX_DER_LEN {
            return Err(Error::BadCertificate(CertProblem::Unparsable));
        }
        X509::from_pem(pem)
            .map(Self)
            .map_err(|_| Error::BadCertificate(CertProblem::Unparsable))
    }

    /// DER bytes.
    pub fn to_der(&self) -> Result<Vec<u8>> {
        Ok(self.0.to_der()?)
    }

    /// PEM text.
    pub fn to_pem(&self) -> Result<Vec<u8>> {
        Ok(self.0.to_pem()?)
    }

    /// The subject CN, if any (unverified until the chain is).
    pub fn common_name(&self) -> Option<String> {
        common_name(self.0.subject_name())
    }

    /// The public key as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> Result<Vec<u8>> {
        let key = self.public_key()?;
        spki_der(&key)
    }

    /// Checks a login answer made by [`Identity::sign_login`] with this certificate's key, for `username` at the
    /// relay whose CA has `ca_fingerprint`. Any mismatch is `BadSignature`.
    pub fn verify_login(
        &self,
        ca_fingerprint: &[u8; 32],
        username: &str,
        nonce: &[u8],
        signature: &[u8],
    ) -> Result<()> {
        let signed = crate::login::login_signed_bytes(ca_fingerprint, username, nonce);
        let key = self.public_key()?;
        crate::crypto::verify_pss(&key, &signed, signature)
    }

    /// SHA-256 of the SPKI: what peers pin.
    pub fn spki_fingerprint(&self) -> Result<Fingerprint> {
        Fingerprint::of_spki_der(&self.public_key_der()?)
    }

    /// SHA-256 of the whole certificate DER (what `openssl x509 -fingerprint -sha256` shows).
    pub fn sha256_fingerprint(&self) -> Result<Fingerprint> {
        let digest = self.0.digest(MessageDigest::sha256())?;
        let bytes: [u8; 32] = digest
            .as_ref()
            .try_into()
            .map_err(|_| Error::Crypto("digest length".into()))?;
        Ok(Fingerprint(bytes))
    }

    /// `notBefore` and `notAfter` as Unix seconds.
    pub fn validity_unix(&self) -> Result<(i64, i64)> {
        let epoch = Asn1Time::from_unix(0)?;
        let secs = |t: &openssl::asn1::Asn1TimeRef| -> Result<i64> {
            let d = epoch.diff(t)?;
            Ok(i64::from(d.days) * 86_400 + i64::from(d.secs))
        };
        Ok((secs(self.0.not_before())?, secs(self.0.not_after())?))
    }

    /// The serial number as upper-case hex.
    pub fn serial_hex(&self) -> Result<String> {
        let bn = self.0.serial_number().to_bn()?;
        Ok(bn.to_hex_str()?.to_string())
    }

    pub(crate) fn public_key(&self) -> Result<PKey<Public>> {
        self.0
            .public_key()
            .map_err(|_| Error::BadCertificate(CertProblem::Unsuitable("unreadable public key".into())))
    }

    pub(crate) fn x509(&self) -> &X509 {
        &self.0
    }

    pub(crate) fn from_x509(x: X509) -> Self {
        Self(x)
    }
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificate")
            .field("cn", &self.common_name())
            .field("spki_sha256", &self.spki_fingerprint().ok())
            .finish()
    }
}

/// A peer whose chain verified: name, leaf certificate and its SPKI fingerprint.
#[derive(Debug, Clone)]
pub struct VerifiedPeer {
    username: Username,
    certificate: Certificate,
    fingerprint: Fingerprint,
    key: PKey<Public>,
}

impl VerifiedPeer {
    /// The verified username (the certificate's CN).
    pub fn username(&self) -> &Username {
        &self.username
    }

    /// The leaf certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// SHA-256 of the leaf's SPKI.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    pub(crate) fn public_key(&self) -> &PKey<Public> {
        &self.key
    }

    /// Rebuilds a peer verified earlier, for a persisted handshake: the chain is not verified again, but the
    /// certificate must carry `username` and have `fingerprint`, so a state cannot swap one for the other.
    pub(crate) fn restore(username: Username, certificate: Certificate, fingerprint: &Fingerprint) -> Result<Self> {
        if certificate.common_name().as_deref() != Some(username.as_str()) {
            return Err(malformed("peer certificate is for another name"));
        }
        let key = certificate.public_key()?;
        check_rsa_key(&key).map_err(|why| Error::BadCertificate(CertProblem::Unsuitable(why)))?;
        let found = Fingerprint::of_spki_der(&spki_der(&key)?)?;
        if found != *fingerprint {
            return Err(malformed("peer fingerprint does not match its certificate"));
        }
        Ok(Self {
            username,
            certificate,
            fingerprint: found,
            key,
        })
    }
}

/// The SubjectPublicKeyInfo DER of `key`. An RSA key is encoded through its RSA structure: OpenSSL 3's generic
/// `i2d_PUBKEY` looks its encoder up among the providers on every call, which cost 11–24 µs a key against 5 here
/// (several times per handshake step). Both give the same bytes.
pub(crate) fn spki_der<T: HasPublic>(key: &PKeyRef<T>) -> Result<Vec<u8>> {
    match key.rsa() {
        Ok(rsa) => Ok(rsa.public_key_to_der()?),
        Err(_) => Ok(key.public_key_to_der()?),
    }
}

/// The pinned relay CA root that every peer certificate must chain to.
#[derive(Clone)]
pub struct TrustAnchor {
    root: Certificate,
}

impl TrustAnchor {
    /// Pins `root` after checking it is self-signed and may sign certificates.
    pub fn new(root: Certificate) -> Result<Self> {
        let key = root.public_key()?;
        if !matches!(root.0.verify(&key), Ok(true)) {
            return Err(Error::BadCertificate(CertProblem::Untrusted(
                "root is not self-signed".into(),
            )));
        }
        let ku = root.0.key_usage().unwrap_or(X509KeyUsage::empty());
        if !ku.contains(X509KeyUsage::KEY_CERT_SIGN) {
            return Err(Error::BadCertificate(CertProblem::Unsuitable(
                "root lacks keyCertSign".into(),
            )));
        }
        Ok(Self { root })
    }

    /// The root certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.root
    }

    /// SHA-256 of the root certificate DER, to show at first registration.
    pub fn fingerprint(&self) -> Result<Fingerprint> {
        self.root.sha256_fingerprint()
    }

    /// Verifies `chain` (leaf first) to the root at time `now` with `X509StoreContext` (signatures, validity,
    /// CA flags, path length), then checks the leaf: CN equals `expected`, RSA-3072, key usage
    /// digitalSignature + keyEncipherment and not keyCertSign.
    pub fn verify(&self, chain: &[Certificate], expected: &Username, now: SystemTime) -> Result<VerifiedPeer> {
        let (leaf, rest) = chain
            .split_first()
            .ok_or_else(|| Error::BadCertificate(CertProblem::Untrusted("empty chain".into())))?;
        if chain.len() > MAX_CHAIN_LEN {
            return Err(Error::BadCertificate(CertProblem::Untrusted("chain too long".into())));
        }
        self.verify_path(leaf, rest, now)?;

        let found = leaf.common_name().unwrap_or_default();
        if found != expected.as_str() {
            return Err(Error::BadCertificate(CertProblem::WrongName {
                expected: expected.to_string(),
                found,
            }));
        }
        let key = leaf.public_key()?;
        check_rsa_key(&key).map_err(|why| Error::BadCertificate(CertProblem::Unsuitable(why)))?;
        let ku = leaf.0.key_usage().unwrap_or(X509KeyUsage::empty());
        let needed = X509KeyUsage::DIGITAL_SIGNATURE | X509KeyUsage::KEY_ENCIPHERMENT;
        if !ku.contains(needed) || ku.contains(X509KeyUsage::KEY_CERT_SIGN) {
            return Err(Error::BadCertificate(CertProblem::Unsuitable("key usage".into())));
        }
        let fingerprint = Fingerprint::of_spki_der(&spki_der(&key)?)?;
        Ok(VerifiedPeer {
            username: expected.clone(),
            certificate: leaf.clone(),
            fingerprint,
            key,
        })
    }

    fn verify_path(&self, leaf: &Certificate, rest: &[Certificate], now: SystemTime) -> Result<()> {
        let mut param = X509VerifyParam::new()?;
        let secs = i64::try_from(unix_secs(now)).map_err(|_| malformed("time out of range"))?;
        // `time_t` is not i64 on every platform.
        #[allow(clippy::useless_conversion)]
        param.set_time(secs.try_into().map_err(|_| malformed("time out of range"))?);
        param.set_flags(X509VerifyFlags::X509_STRICT)?;
        param.set_depth(i32::try_from(MAX_CHAIN_LEN).unwrap_or(4));

        let mut store = X509StoreBuilder::new()?;
        store.add_cert(self.root.0.clone())?;
        store.set_param(&param)?;
        let store = store.build();

        let mut untrusted = Stack::new()?;
        for cert in rest {
            untrusted.push(cert.0.clone())?;
        }
        let mut ctx = X509StoreContext::new()?;
        // OpenSSL reports some broken certificates (e.g. an undecodable key) as an error stack rather than
        // a verify result: both are the peer's fault.
        let outcome = ctx.init(&store, &leaf.0, &untrusted, |c| Ok((c.verify_cert()?, c.error())));
        match outcome {
            Ok((true, _)) => Ok(()),
            Err(stack) => Err(Error::BadCertificate(CertProblem::Untrusted(
                stack
                    .errors()
                    .first()
                    .and_then(|e| e.reason())
                    .unwrap_or("verification error")
                    .to_owned(),
            ))),
            Ok((false, err)) => Err(Error::BadCertificate(match err.as_raw() {
                X509_V_ERR_CERT_HAS_EXPIRED => CertProblem::Expired,
                X509_V_ERR_CERT_NOT_YET_VALID => CertProblem::NotYetValid,
                _ => CertProblem::Untrusted(err.error_string().to_owned()),
            })),
        }
    }
}

impl fmt::Debug for TrustAnchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustAnchor").field("root", &self.root).finish()
    }
}

/// What a pin check found for a peer's presented key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinCheck {
    /// Nothing was pinned: pin this fingerprint (trust on first use).
    New,
    /// The pinned fingerprint matches.
    Same,
    /// A different key than the pinned one: block the chat and warn.
    Changed {
        /// The pinned fingerprint.
        old: Fingerprint,
        /// The presented fingerprint.
        new: Fingerprint,
    },
}

impl PinCheck {
    /// Compares a presented fingerprint with what the caller's pin store holds.
    pub fn check(pinned: Option<&Fingerprint>, presented: &Fingerprint) -> Self {
        match pinned {
            None => Self::New,
            Some(old) if crate::crypto::ct_eq(old.as_bytes(), presented.as_bytes()) => Self::Same,
            Some(old) => Self::Changed {
                old: *old,
                new: *presented,
            },
        }
    }

    /// `Changed` as [`Error::KeyChanged`], the rest as `Ok`.
    pub fn into_result(self) -> Result<Self> {
        match self {
            Self::Changed { old, new } => Err(Error::KeyChanged {
                pinned: old,
                presented: new,
            }),
            other => Ok(other),
        }
    }
}

/// A user's identity together with its certificate: what the handshake signs and sends with.
#[derive(Clone)]
pub struct Credential {
    identity: Identity,
    certificate: Certificate,
    fingerprint: Fingerprint,
}

impl Credential {
    /// Pairs an identity with its issued certificate, checking the key and the CN match.
    pub fn new(identity: Identity, certificate: Certificate) -> Result<Self> {
        let cert_spki = certificate.public_key_der()?;
        if !crate::crypto::ct_eq(&cert_spki, &identity.public_key_der()?) {
            return Err(Error::BadCertificate(CertProblem::KeyMismatch));
        }
        let found = certificate.common_name().unwrap_or_default();
        if found != identity.username().as_str() {
            return Err(Error::BadCertificate(CertProblem::WrongName {
                expected: identity.username().to_string(),
                found,
            }));
        }
        let fingerprint = Fingerprint::of_spki_der(&cert_spki)?;
        Ok(Self {
            identity,
            certificate,
            fingerprint,
        })
    }

    /// The identity (name and private key).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The username.
    pub fn username(&self) -> &Username {
        self.identity.username()
    }

    /// The certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// SHA-256 of the SPKI.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("identity", &self.identity)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}
