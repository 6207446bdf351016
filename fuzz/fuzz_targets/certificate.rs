//! Certificate, CSR and PKCS#8 parsers, and chain verification of whatever parses.
#![no_main]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use magpie_proto::*;

fn trust() -> &'static TrustAnchor {
    static T: OnceLock<TrustAnchor> = OnceLock::new();
    T.get_or_init(|| {
        let pem = include_str!("../../crates/proto/tests/vectors/keys/ca1.pem");
        let der = openssl::pkey::PKey::private_key_from_pem(pem.as_bytes())
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap();
        let key = Identity::from_pkcs8_der(Username::canonical("magpie-ca").unwrap(), &der).unwrap();
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        CertificateAuthority::create_with_key("Fuzz CA", key, t0)
            .unwrap()
            .trust_anchor()
            .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_660);
    if let Ok(cert) = Certificate::from_der(data) {
        let _ = cert.spki_fingerprint();
        let _ = cert.validity_unix();
        let name = Username::canonical("alice").unwrap();
        let _ = trust().verify(&[cert], &name, now);
    }
    let _ = Certificate::from_pem(data);
    let _ = Csr::from_der(data).map(|c| c.verify());
    let _ = Identity::from_pkcs8_der(Username::canonical("alice").unwrap(), data);
});
