//! AES-256-CTR (the ratchet) and AES-256-GCM (messages) on cipher contexts kept per thread, for the key-level API
//! and skipped message keys; a session's chains keep contexts of their own (`chain`). The GCM steps are shared.
//!
//! A fresh EVP context per call cost about 3,000 instructions of allocation, provider dispatch and teardown
//! around a few hundred of AES; re-keying a kept context skips all but the key schedule. Each context is
//! re-keyed with zeros right after use, so no chain or message key's schedule outlives the call that used it.

use std::cell::RefCell;
use std::sync::OnceLock;
use std::thread::LocalKey;

use openssl::cipher::{Cipher, CipherRef};
use openssl::cipher_ctx::{CipherCtx, CipherCtxRef};
use openssl::error::ErrorStack;
use zeroize::Zeroizing;

use crate::crypto::TAG_LEN;
use crate::error::{Error, Result};

type Slot = LocalKey<RefCell<Option<CipherCtx>>>;

thread_local! {
    static GCM_CTX: RefCell<Option<CipherCtx>> = const { RefCell::new(None) };
    static CTR_CTX: RefCell<Option<CipherCtx>> = const { RefCell::new(None) };
}

/// AES-256-GCM, fetched from the provider once (an implicit fetch on every use costs about 0.5 µs).
pub(crate) fn aes_256_gcm() -> &'static CipherRef {
    static AES_GCM: OnceLock<Option<Cipher>> = OnceLock::new();
    match AES_GCM.get_or_init(|| Cipher::fetch(None, "AES-256-GCM", None).ok()) {
        Some(c) => c,
        None => Cipher::aes_256_gcm(),
    }
}

/// AES-256-CTR, fetched from the provider once.
pub(crate) fn aes_256_ctr() -> &'static CipherRef {
    static AES_CTR: OnceLock<Option<Cipher>> = OnceLock::new();
    match AES_CTR.get_or_init(|| Cipher::fetch(None, "AES-256-CTR", None).ok()) {
        Some(c) => c,
        None => Cipher::aes_256_ctr(),
    }
}

/// Runs `f` on this thread's context for `cipher`; `f` must key it (init with `None` as the cipher). Afterwards,
/// whatever `f` returned, the context is re-keyed with zeros, or freed (OpenSSL wipes it) if that fails.
fn with_ctx<R>(
    slot: &'static Slot,
    cipher: &'static CipherRef,
    f: impl FnOnce(&mut CipherCtxRef) -> Result<R, ErrorStack>,
) -> Result<R, ErrorStack> {
    let run = |kept: &mut Option<CipherCtx>| {
        let mut ctx = match kept.take() {
            Some(ctx) => ctx,
            None => {
                let mut ctx = CipherCtx::new()?;
                ctx.encrypt_init(Some(cipher), None, None)?;
                ctx
            }
        };
        let out = f(&mut ctx);
        if ctx.encrypt_init(None, Some(&[0u8; 32]), None).is_ok() {
            *kept = Some(ctx);
        }
        out
    };
    slot.with(|cell| match cell.try_borrow_mut() {
        Ok(mut kept) => run(&mut kept),
        // Only reachable if `f` itself sealed or opened: give that inner call a context of its own.
        Err(_) => run(&mut None),
    })
}

/// Fills `first` then `second` with the AES-256-CTR keystream of `key` from an all-zero counter block.
pub(crate) fn aes_ctr_keystream(key: &[u8; 32], first: &mut [u8; 32], second: &mut [u8; 32]) -> Result<()> {
    // One 64-byte update costs less than two 32-byte ones plus wiping this buffer.
    let mut stream = [0u8; 64];
    let made = with_ctx(&CTR_CTX, aes_256_ctr(), |ctx| {
        ctx.encrypt_init(None, Some(key), Some(&[0u8; 16]))?;
        ctx.cipher_update_inplace(&mut stream, 64)?;
        Ok(())
    });
    let (a, b) = stream.split_at(32);
    first.copy_from_slice(a);
    second.copy_from_slice(b);
    // Not `Zeroizing`: that wipes an array a volatile byte at a time.
    zeroize::zeroize_bytes(&mut stream);
    made?;
    Ok(())
}

/// AES-256-GCM seal of the plaintext in `buf`, which becomes ciphertext ‖ tag: no second buffer to wipe. Give `buf`
/// [`TAG_LEN`] spare capacity to spare a copy.
pub(crate) fn aes_gcm_seal_in_place(
    key: &[u8; 32],
    nonce: &[u8; 12],
    ad: &[u8],
    buf: Zeroizing<Vec<u8>>,
) -> Result<Vec<u8>> {
    seal_buffer(buf, |plain, tag| {
        with_ctx(&GCM_CTX, aes_256_gcm(), |ctx| {
            gcm_seal_on(ctx, Some(key), nonce, ad, plain, tag)
        })
    })
}

/// AES-256-GCM open of the ciphertext ‖ tag in `buf`, which becomes the plaintext (or is wiped, as unauthenticated
/// output, on failure).
pub(crate) fn aes_gcm_open_in_place(
    key: &[u8; 32],
    nonce: &[u8; 12],
    ad: &[u8],
    buf: Vec<u8>,
) -> Result<Zeroizing<Vec<u8>>> {
    open_buffer(buf, |sealed, tag| {
        with_ctx(&GCM_CTX, aes_256_gcm(), |ctx| {
            gcm_open_on(ctx, Some(key), nonce, ad, sealed, tag)
        })
    })
}

/// Runs `seal` on the plaintext in `buf` and appends the tag it writes.
pub(crate) fn seal_buffer(
    mut buf: Zeroizing<Vec<u8>>,
    seal: impl FnOnce(&mut [u8], &mut [u8; TAG_LEN]) -> Result<(), ErrorStack>,
) -> Result<Vec<u8>> {
    let len = buf.len();
    if buf.capacity() - len < TAG_LEN {
        // `reserve` would free the old allocation unwiped: copy, and let the old buffer be wiped on drop.
        let mut roomy = Zeroizing::new(Vec::with_capacity(len + TAG_LEN));
        roomy.extend_from_slice(&buf);
        buf = roomy;
    }
    let mut tag = [0u8; TAG_LEN];
    seal(&mut buf, &mut tag)?;
    buf.extend_from_slice(&tag);
    // Now ciphertext: nothing left to wipe.
    Ok(std::mem::take(&mut *buf))
}

/// Splits the tag off `buf` and runs `open` on the rest; any failure is the opaque `Decrypt`.
pub(crate) fn open_buffer(
    buf: Vec<u8>,
    open: impl FnOnce(&mut [u8], &[u8; TAG_LEN]) -> Result<(), ErrorStack>,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(buf);
    let len = buf.len().checked_sub(TAG_LEN).ok_or(Error::Decrypt)?;
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&buf[len..]);
    buf.truncate(len);
    open(&mut buf, &tag).map_err(|_| Error::Decrypt)?;
    Ok(buf)
}

/// Seals `buf` in place on an AES-256-GCM `ctx`, keyed with `key` first, or already keyed when `key` is `None`.
pub(crate) fn gcm_seal_on(
    ctx: &mut CipherCtxRef,
    key: Option<&[u8; 32]>,
    nonce: &[u8; 12],
    ad: &[u8],
    buf: &mut [u8],
    tag: &mut [u8; TAG_LEN],
) -> Result<(), ErrorStack> {
    ctx.encrypt_init(None, key.map(|k| k.as_slice()), Some(nonce))?;
    ctx.cipher_update(ad, None)?;
    // GCM is a stream mode (block size 1): the update turns all the bytes, the final none.
    let len = buf.len();
    ctx.cipher_update_inplace(buf, len)?;
    ctx.cipher_final(&mut [])?;
    ctx.tag(tag)
}

/// Opens `buf` in place on an AES-256-GCM `ctx`, keyed as in [`gcm_seal_on`].
pub(crate) fn gcm_open_on(
    ctx: &mut CipherCtxRef,
    key: Option<&[u8; 32]>,
    nonce: &[u8; 12],
    ad: &[u8],
    buf: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), ErrorStack> {
    ctx.decrypt_init(None, key.map(|k| k.as_slice()), Some(nonce))?;
    ctx.set_tag(tag)?;
    ctx.cipher_update(ad, None)?;
    let len = buf.len();
    ctx.cipher_update_inplace(buf, len)?;
    ctx.cipher_final(&mut [])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aes_gcm_seal(key: &[u8; 32], nonce: &[u8; 12], ad: &[u8], plain: &[u8]) -> Result<Vec<u8>> {
        aes_gcm_seal_in_place(key, nonce, ad, Zeroizing::new(plain.to_vec()))
    }

    fn aes_gcm_open(key: &[u8; 32], nonce: &[u8; 12], ad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        aes_gcm_open_in_place(key, nonce, ad, sealed.to_vec())
    }

    #[test]
    fn gcm_round_trip_and_tamper() {
        let key = [7u8; 32];
        let nonce = [9u8; 12];
        let sealed = aes_gcm_seal(&key, &nonce, b"ad", b"hello").unwrap();
        assert_eq!(aes_gcm_open(&key, &nonce, b"ad", &sealed).unwrap().as_slice(), b"hello");
        assert!(matches!(
            aes_gcm_open(&key, &nonce, b"ax", &sealed),
            Err(Error::Decrypt)
        ));
        assert!(matches!(
            aes_gcm_open(&key, &nonce, b"ad", &sealed[..10]),
            Err(Error::Decrypt)
        ));
    }

    #[test]
    fn a_failed_open_leaves_the_kept_context_usable_for_both_directions() {
        let (key, other) = ([3u8; 32], [4u8; 32]);
        let nonce = [1u8; 12];
        let sealed = aes_gcm_seal(&key, &nonce, b"ad", b"first").unwrap();
        assert!(matches!(
            aes_gcm_open(&other, &nonce, b"ad", &sealed),
            Err(Error::Decrypt)
        ));
        let again = aes_gcm_seal(&key, &nonce, b"ad", b"first").unwrap();
        assert_eq!(sealed, again, "the failed open left state behind");
        assert_eq!(aes_gcm_open(&key, &nonce, b"ad", &again).unwrap().as_slice(), b"first");
    }

    #[test]
    fn kept_contexts_give_the_bytes_of_fresh_ones_use_after_use() {
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let mut counters = [0u8; 64];
        for (i, block) in counters.chunks_mut(16).enumerate() {
            block[15] = i as u8;
        }
        let ecb = openssl::symm::encrypt(openssl::symm::Cipher::aes_256_ecb(), &key, None, &counters).unwrap();
        let mut tag = [0u8; TAG_LEN];
        let gcm = openssl::symm::encrypt_aead(
            openssl::symm::Cipher::aes_256_gcm(),
            &key,
            Some(&[2u8; 12]),
            b"additional",
            b"a message",
            &mut tag,
        )
        .unwrap();
        for _ in 0..3 {
            let (mut first, mut second) = ([1u8; 32], [2u8; 32]);
            aes_ctr_keystream(&key, &mut first, &mut second).unwrap();
            assert_eq!([first, second].concat(), &ecb[..64]);
            let sealed = aes_gcm_seal(&key, &[2u8; 12], b"additional", b"a message").unwrap();
            assert_eq!(sealed, [gcm.as_slice(), &tag].concat());
        }
    }
}
