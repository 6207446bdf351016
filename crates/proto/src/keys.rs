//! The deterministic key schedule: session keys from `K`, `dh` and the transcript; the per-direction hash
//! ratchet; per-message nonce and additional data. Public so that known-answer vectors (and another
//! implementation) can check each step; the handshake and [`Session`](crate::Session) use nothing else.

use std::fmt;

use zeroize::Zeroizing;

use crate::crypto::{hkdf, hkdf_expand, hmac_sha256, TAG_LEN};
use crate::encoding::Canon;
use crate::error::Result;
use crate::secret::{ChainKey, ConfirmKey, MessageKey, RootKey, SessionSecret, SharedSecret};
use crate::symmetric::{aes_ctr_keystream, aes_gcm_open_in_place, aes_gcm_seal_in_place};

/// HKDF info of the root key.
pub const INFO_ROOT: &[u8] = b"magpie v1 session";
/// HKDF-Expand info of the initiator → responder chain key.
pub const INFO_CHAIN_I2R: &[u8] = b"magpie v1 chain initiator to responder";
/// HKDF-Expand info of the responder → initiator chain key.
pub const INFO_CHAIN_R2I: &[u8] = b"magpie v1 chain responder to initiator";
/// HKDF-Expand info of the confirm key.
pub const INFO_CONFIRM: &[u8] = b"magpie v1 confirm";
/// HKDF-Expand info of the session id.
pub const INFO_SESSION_ID: &[u8] = b"magpie v1 session id";

/// Everything a finished handshake derives.
pub struct SessionKeys {
    /// `root = HKDF-SHA256(ikm = K ‖ dh, salt = T, info = "magpie v1 session")`.
    pub root: RootKey,
    /// Chain key of the initiator's sending direction.
    pub initiator_chain: ChainKey,
    /// Chain key of the responder's sending direction.
    pub responder_chain: ChainKey,
    /// Key of the KeyConfirm MAC.
    pub confirm: ConfirmKey,
    /// Public session identifier, carried by every sealed message.
    pub session_id: [u8; 16],
}

impl fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionKeys")
            .field("root", &self.root)
            .field("initiator_chain", &self.initiator_chain)
            .field("responder_chain", &self.responder_chain)
            .field("confirm", &self.confirm)
            .field("session_id", &crate::encoding::hex(&self.session_id))
            .finish()
    }
}

/// Derives the root, both chain keys, the confirm key and the session id.
pub fn derive_session_keys(k: &SessionSecret, dh: &SharedSecret, transcript: &[u8; 32]) -> Result<SessionKeys> {
    let mut ikm = Zeroizing::new([0u8; 64]);
    let (left, right) = ikm.split_at_mut(32);
    left.copy_from_slice(k.expose_secret());
    right.copy_from_slice(dh.expose_secret());
    let mut root = Zeroizing::new([0u8; 32]);
    hkdf(ikm.as_ref(), transcript, INFO_ROOT, root.as_mut())?;
    session_keys_from_root(RootKey::from_bytes(*root))
}

/// The HKDF-Expand half of [`derive_session_keys`]: a persisted handshake stores only the root.
pub(crate) fn session_keys_from_root(root: RootKey) -> Result<SessionKeys> {
    let expand = |info: &[u8]| -> Result<Zeroizing<[u8; 32]>> {
        let mut out = Zeroizing::new([0u8; 32]);
        hkdf_expand(root.expose_secret(), info, out.as_mut())?;
        Ok(out)
    };
    let i2r = expand(INFO_CHAIN_I2R)?;
    let r2i = expand(INFO_CHAIN_R2I)?;
    let confirm = expand(INFO_CONFIRM)?;
    let mut session_id = [0u8; 16];
    hkdf_expand(root.expose_secret(), INFO_SESSION_ID, &mut session_id)?;
    Ok(SessionKeys {
        root,
        initiator_chain: ChainKey::from_bytes(*i2r),
        responder_chain: ChainKey::from_bytes(*r2i),
        confirm: ConfirmKey::from_bytes(*confirm),
        session_id,
    })
}

/// `HMAC-SHA256(confirm key, "confirm" ‖ T)`.
pub fn confirm_mac(key: &ConfirmKey, transcript: &[u8; 32]) -> Result<[u8; 32]> {
    Ok(*hmac_sha256(key.expose_secret(), &[b"confirm", transcript])?)
}

/// One ratchet step, AES-256 in counter mode as a fast-key-erasure generator: the first 64 bytes of the keystream
/// of `ck_n` (all-zero counter block) are `mk_n ‖ ck_{n+1}`.
pub fn ratchet_step(ck: &ChainKey) -> Result<(MessageKey, ChainKey)> {
    let mut mk = MessageKey::from_bytes([0; 32]);
    let mut next = ChainKey::from_bytes([0; 32]);
    aes_ctr_keystream(ck.expose_secret(), mk.expose_secret_mut(), next.expose_secret_mut())?;
    Ok((mk, next))
}

/// The 96-bit GCM nonce of message `n`: `0x00000000 ‖ u64be(n)`. Each `mk_n` seals one message, so the nonce
/// need not be secret or random; taking `n` keeps the nonces of a chain distinct at no cost.
pub fn message_nonce(n: u64) -> [u8; 12] {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&n.to_be_bytes());
    nonce
}

/// Additional data: `session id ‖ sender ‖ n`, in the canonical length-prefixed form.
pub fn message_ad(session_id: &[u8], sender: &str, n: u64) -> Vec<u8> {
    let mut c = Canon::new(AD_LABEL);
    c.bytes(session_id).str(sender).u64(n);
    c.finish()
}

/// Label of the message AD.
const AD_LABEL: &str = "magpie v1 message";
/// Room for the AD on the stack: the label, a 16-byte session id and a 32-byte username, each length-prefixed, and n.
const AD_STACK_LEN: usize = 4 + AD_LABEL.len() + 4 + 16 + 4 + 32 + 8;

/// Calls `f` with [`message_ad`], built on the stack when it fits (it always does for valid usernames): this runs
/// for every message, and the heap round trip was a tenth of the cost of sealing one.
pub(crate) fn with_message_ad<R>(session_id: &[u8], sender: &str, n: u64, f: impl FnOnce(&[u8]) -> R) -> R {
    let fields: [&[u8]; 3] = [AD_LABEL.as_bytes(), session_id, sender.as_bytes()];
    let len = fields.iter().map(|field| 4 + field.len()).sum::<usize>() + 8;
    if len > AD_STACK_LEN {
        return f(&message_ad(session_id, sender, n));
    }
    let mut buf = [0u8; AD_STACK_LEN];
    let mut at = 0;
    for field in fields {
        // The fit check above bounds every field far below u32::MAX.
        let prefix = u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes();
        buf[at..at + 4].copy_from_slice(&prefix);
        buf[at + 4..at + 4 + field.len()].copy_from_slice(field);
        at += 4 + field.len();
    }
    buf[at..at + 8].copy_from_slice(&n.to_be_bytes());
    f(&buf[..len])
}

/// AES-256-GCM with `mk_n` as key, the nonce of `n`, and the message AD. Returns ciphertext ‖ tag.
pub fn seal_with_key(mk: &MessageKey, session_id: &[u8], sender: &str, n: u64, plaintext: &[u8]) -> Result<Vec<u8>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
    buf.extend_from_slice(plaintext);
    seal_in_place(mk, session_id, sender, n, buf)
}

/// Inverse of [`seal_with_key`]; every failure is the opaque `Decrypt`.
pub fn open_with_key(
    mk: &MessageKey,
    session_id: &[u8],
    sender: &str,
    n: u64,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    open_in_place(mk, session_id, sender, n, sealed.to_vec())
}

/// [`seal_with_key`] turning the plaintext's own buffer into the ciphertext.
fn seal_in_place(
    mk: &MessageKey,
    session_id: &[u8],
    sender: &str,
    n: u64,
    plaintext: Zeroizing<Vec<u8>>,
) -> Result<Vec<u8>> {
    with_message_ad(session_id, sender, n, |ad| {
        aes_gcm_seal_in_place(mk.expose_secret(), &message_nonce(n), ad, plaintext)
    })
}

/// [`open_with_key`] turning the ciphertext's own buffer into the plaintext.
pub(crate) fn open_in_place(
    mk: &MessageKey,
    session_id: &[u8],
    sender: &str,
    n: u64,
    sealed: Vec<u8>,
) -> Result<Zeroizing<Vec<u8>>> {
    with_message_ad(session_id, sender, n, |ad| {
        aes_gcm_open_in_place(mk.expose_secret(), &message_nonce(n), ad, sealed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_ad_is_the_canonical_ad_at_every_length() {
        for sender_len in [3, 31, 32, 33, 200] {
            let sender = "a".repeat(sender_len);
            for session_id in [&[0x5a; 16][..], &[1; 15], &[2; 40]] {
                for n in [0, 258, u64::MAX] {
                    let stack = with_message_ad(session_id, &sender, n, <[u8]>::to_vec);
                    assert_eq!(
                        stack,
                        message_ad(session_id, &sender, n),
                        "{sender_len} {}",
                        session_id.len()
                    );
                }
            }
        }
    }
}
