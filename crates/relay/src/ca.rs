//! The relay's CA on disk: `DIR/ca/root.pem` and `DIR/ca/key.der` (PKCS#8, mode 0600), made at first start.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use magpie_proto::{Certificate, CertificateAuthority, SecretBytes};

/// The CA with what the API serves from it.
#[derive(Debug, Clone)]
pub struct CaInfo {
    /// The authority that issues user certificates.
    pub authority: CertificateAuthority,
    /// The root certificate, PEM.
    pub pem: String,
    /// SHA-256 of the root certificate DER (what operators publish and clients show).
    pub fingerprint: [u8; 32],
}

impl CaInfo {
    /// Wraps an authority (tests pass a shared one to skip key generation).
    pub fn new(authority: CertificateAuthority) -> Result<Self, magpie_proto::Error> {
        let root = authority.certificate();
        let pem = String::from_utf8(root.to_pem()?)
            .map_err(|_| magpie_proto::Error::Malformed("root PEM is not UTF-8".into()))?;
        let fingerprint = *root.sha256_fingerprint()?.as_bytes();
        Ok(Self {
            authority,
            pem,
            fingerprint,
        })
    }

    /// The fingerprint as lower-case hex.
    pub fn fingerprint_hex(&self) -> String {
        magpie_proto::encoding::hex(&self.fingerprint)
    }
}

/// Why the CA could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Reading or writing a CA file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The files exist but do not form a valid CA.
    #[error("CA files in {dir}: {problem}")]
    Invalid {
        /// The CA directory.
        dir: PathBuf,
        /// What is wrong.
        problem: String,
    },
}

/// Loads the CA from `data_dir/ca`, or creates it there (RSA-3072 key generation: up to a few seconds).
pub fn load_or_create(data_dir: &Path) -> Result<CaInfo, CaError> {
    if let Some(info) = load(data_dir)? {
        return Ok(info);
    }
    let dir = data_dir.join("ca");
    let (root_path, key_path) = (dir.join("root.pem"), dir.join("key.der"));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CaError::Io { path, source }
    };
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let (info, key) = create().map_err(|problem| CaError::Invalid {
        dir: dir.clone(),
        problem,
    })?;
    // Root first: a crash in between leaves no key, so the next start makes a fresh CA instead of failing.
    write_atomic(&root_path, info.pem.as_bytes(), false).map_err(io(&root_path))?;
    write_atomic(&key_path, key.expose_secret(), true).map_err(io(&key_path))?;
    Ok(info)
}

/// A new CA, and its key as PKCS#8 DER.
pub fn create() -> Result<(CaInfo, SecretBytes), String> {
    let authority = CertificateAuthority::create("Magpie relay CA", SystemTime::now()).map_err(|e| e.to_string())?;
    let key = authority.key_to_pkcs8_der().map_err(|e| e.to_string())?;
    Ok((CaInfo::new(authority).map_err(|e| e.to_string())?, key))
}

/// A CA from its root (PEM) and key (PKCS#8 DER).
pub fn from_parts(root_pem: &[u8], key_der: &[u8]) -> Result<CaInfo, String> {
    let root = Certificate::from_pem(root_pem).map_err(|e| e.to_string())?;
    let authority = CertificateAuthority::from_parts(root, key_der).map_err(|e| e.to_string())?;
    CaInfo::new(authority).map_err(|e| e.to_string())
}

/// The CA in `data_dir/ca`, if there is one.
pub fn load(data_dir: &Path) -> Result<Option<CaInfo>, CaError> {
    let dir = data_dir.join("ca");
    let root_path = dir.join("root.pem");
    let key_path = dir.join("key.der");
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CaError::Io { path, source }
    };
    let invalid = |problem: String| CaError::Invalid {
        dir: dir.clone(),
        problem,
    };
    if !key_path.exists() {
        return Ok(None);
    }
    let key = SecretBytes::new(fs::read(&key_path).map_err(io(&key_path))?);
    tighten_mode(&key_path).map_err(io(&key_path))?;
    let root_pem = fs::read(&root_path).map_err(io(&root_path))?;
    from_parts(&root_pem, key.expose_secret()).map(Some).map_err(invalid)
}

/// Writes via a temporary file and rename, fsynced; `private` files get mode 0600 from creation.
fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

/// Makes the key file 0600 again if someone loosened it.
fn tighten_mode(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(path)?.permissions().mode() & 0o777;
        if mode != 0o600 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "CA key was not 0600; fixing");
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
