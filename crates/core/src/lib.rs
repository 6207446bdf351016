//! Magpie's client engine. The desktop shell and the CLI are thin faces over it.

pub mod engine;
pub mod error;
pub mod history;
pub mod keystore;
mod lock_order;
pub mod profile;
pub mod relay;

pub use engine::{Client, Event};
pub use error::{Error, Result};
pub use history::History;
pub use profile::Profile;

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::OnceLock;

    use magpie_proto::{Identity, Username};

    /// RSA-3072 keygen is slow: every unit test shares one key, under whatever name it needs.
    pub(crate) fn identity(name: &str) -> Identity {
        static DER: OnceLock<Vec<u8>> = OnceLock::new();
        let der = DER.get_or_init(|| {
            let identity = Identity::generate(username("keygen")).unwrap();
            identity.to_pkcs8_der().unwrap().expose_secret().to_vec()
        });
        Identity::from_pkcs8_der(username(name), der).unwrap()
    }

    pub(crate) fn username(name: &str) -> Username {
        Username::parse(name).unwrap()
    }

    /// Every file below `dir`, to grep a profile's disk for what must not be there.
    pub(crate) fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
        out
    }
}
