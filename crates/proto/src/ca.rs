//! The relay's certificate authority: a self-signed RSA-3072 root that issues user certificates from CSRs.

use std::fmt;
use std::time::SystemTime;

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::x509::extension::{AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier};
use openssl::x509::{X509Name, X509};

use crate::crypto::random_array;
use crate::error::{malformed, CertProblem, Error, Result};
use crate::identity::{Csr, Identity, Username};
use crate::secret::SecretBytes;
use crate::verify::{unix_secs, Certificate, TrustAnchor};

/// Validity of a user certificate.
pub const USER_CERT_DAYS: i64 = 365;
/// Validity of the CA root.
pub const ROOT_CERT_DAYS: i64 = 10 * 365;
/// `notBefore` is set this far before `now` so a peer whose clock is a little behind still accepts it.
pub const BACKDATE_SECS: i64 = 300;

/// The relay's CA: its root certificate and private key.
#[derive(Clone)]
pub struct CertificateAuthority {
    key: Identity,
    root: Certificate,
}

impl CertificateAuthority {
    /// Makes a fresh RSA-3072 root: CN = `name`, CA:TRUE pathlen 0, keyCertSign + cRLSign, SKI/AKI,
    /// random 128-bit serial, valid 10 years from `now`.
    pub fn create(name: &str, now: SystemTime) -> Result<Self> {
        let key = Identity::generate(Username::canonical("magpie-ca")?)?;
        Self::create_with_key(name, key, now)
    }

    /// As [`CertificateAuthority::create`] with a given key (tests, vectors, slow key generation elsewhere).
    pub fn create_with_key(name: &str, key: Identity, now: SystemTime) -> Result<Self> {
        let subject = name_cn(name)?;
        let pkey = key.private_key();
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let serial = random_serial()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&subject)?;
        b.set_issuer_name(&subject)?;
        b.set_pubkey(pkey)?;
        let (nb, na) = validity(now, ROOT_CERT_DAYS)?;
        b.set_not_before(&nb)?;
        b.set_not_after(&na)?;
        b.append_extension(BasicConstraints::new().critical().ca().pathlen(0).build()?)?;
        b.append_extension(KeyUsage::new().critical().key_cert_sign().crl_sign().build()?)?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(None, None))?;
        b.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(None, None))?;
        b.append_extension(aki)?;
        b.sign(pkey, MessageDigest::sha256())?;
        Ok(Self {
            key,
            root: Certificate::from_x509(b.build()),
        })
    }

    /// Rebuilds a CA from its stored root certificate and PKCS#8 DER key, checking they belong together.
    pub fn from_parts(root: Certificate, key_pkcs8_der: &[u8]) -> Result<Self> {
        let key = Identity::from_pkcs8_der(Username::canonical("magpie-ca")?, key_pkcs8_der)?;
        let root_spki = root.public_key_der()?;
        if !crate::crypto::ct_eq(&root_spki, &key.public_key_der()?) {
            return Err(Error::BadCertificate(CertProblem::KeyMismatch));
        }
        TrustAnchor::new(root.clone())?;
        Ok(Self { key, root })
    }

    /// The root certificate (what clients pin).
    pub fn certificate(&self) -> &Certificate {
        &self.root
    }

    /// A trust anchor for this root.
    pub fn trust_anchor(&self) -> Result<TrustAnchor> {
        TrustAnchor::new(self.root.clone())
    }

    /// The CA private key as PKCS#8 DER (the relay stores it with mode 0600).
    pub fn key_to_pkcs8_der(&self) -> Result<SecretBytes> {
        self.key.to_pkcs8_der()
    }

    /// Verifies the CSR (self-signature, RSA-3072, CN a canonical username) and issues a v3 certificate:
    /// random 128-bit serial, valid one year from `now`, CA:FALSE, digitalSignature + keyEncipherment,
    /// SKI/AKI, sha256WithRSAEncryption. Whether the name is free is the caller's business.
    pub fn issue(&self, csr: &Csr, now: SystemTime) -> Result<Certificate> {
        let username = csr.verify()?;
        let subject = name_cn(username.as_str())?;
        let pubkey = csr.public_key()?;
        let ca = self.key.private_key();
        let mut b = X509::builder()?;
        b.set_version(2)?;
        let serial = random_serial()?;
        b.set_serial_number(&serial)?;
        b.set_subject_name(&subject)?;
        b.set_issuer_name(self.root.x509().subject_name())?;
        b.set_pubkey(&pubkey)?;
        let (nb, na) = validity(now, USER_CERT_DAYS)?;
        b.set_not_before(&nb)?;
        b.set_not_after(&na)?;
        b.append_extension(BasicConstraints::new().critical().build()?)?;
        b.append_extension(
            KeyUsage::new()
                .critical()
                .digital_signature()
                .key_encipherment()
                .build()?,
        )?;
        let ski = SubjectKeyIdentifier::new().build(&b.x509v3_context(Some(self.root.x509()), None))?;
        b.append_extension(ski)?;
        let aki = AuthorityKeyIdentifier::new()
            .keyid(true)
            .build(&b.x509v3_context(Some(self.root.x509()), None))?;
        b.append_extension(aki)?;
        b.sign(ca, MessageDigest::sha256())?;
        // The request's attributes and extensions are deliberately not copied.
        Ok(Certificate::from_x509(b.build()))
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("root", &self.root)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

fn name_cn(cn: &str) -> Result<X509Name> {
    if cn.is_empty() || cn.len() > 64 {
        return Err(malformed("common name must be 1..=64 bytes"));
    }
    let mut name = X509Name::builder()?;
    name.append_entry_by_nid(Nid::COMMONNAME, cn)?;
    Ok(name.build())
}

/// A random serial of exactly 128 bits (127 of them random): the top bit is set so that every serial has 16
/// bytes (1 in 256 had 15 when a leading zero byte fell away). DER adds a zero byte: 17, within RFC 5280's 20.
fn random_serial() -> Result<Asn1Integer> {
    let mut bytes: [u8; 16] = random_array()?;
    bytes[0] |= 0x80;
    let bn = BigNum::from_slice(&bytes)?;
    Ok(bn.to_asn1_integer()?)
}

fn validity(now: SystemTime, days: i64) -> Result<(Asn1Time, Asn1Time)> {
    let now = i64::try_from(unix_secs(now)).map_err(|_| malformed("time out of range"))?;
    let not_before = Asn1Time::from_unix(now - BACKDATE_SECS)?;
    let not_after = Asn1Time::from_unix(now + days * 86_400)?;
    Ok((not_before, not_after))
}
