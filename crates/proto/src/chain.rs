//! One direction of a session's ratchet, with the next message key already scheduled.
//!
//! A chain at position `n` holds `ck_n`, the state that is exported. Beside it, built on first use, it keeps an
//! AES-256-GCM context keyed with `mk_n` and an AES-256-CTR context keyed with `ck_{n+1}`. Using `mk_n` moves both
//! one step on: re-keying the GCM context with `mk_{n+1}` is what erases `mk_n`, so the erasure does the next
//! message's work instead of costing a key schedule of its own (the thread-local contexts of `symmetric` re-key
//! with zeros after each use, four extra schedules per seal and open). Everything held is derivable from `ck_n`,
//! which the session holds anyway, so a copy of this state reveals nothing `ck_n` does not.

use openssl::cipher_ctx::CipherCtx;
use openssl::error::ErrorStack;
use zeroize::Zeroizing;

use crate::error::Result;
use crate::keys::{message_nonce, with_message_ad};
use crate::secret::ChainKey;
use crate::symmetric::{aes_256_ctr, aes_256_gcm, gcm_open_on, gcm_seal_on, open_buffer, seal_buffer};

/// One sending or receiving chain.
pub(crate) struct Chain {
    key: ChainKey,
    ahead: Option<Ahead>,
}

/// The contexts of a chain at `ck_n`. Freeing an OpenSSL cipher context wipes it.
struct Ahead {
    /// AES-256-GCM keyed with `mk_n`.
    gcm: CipherCtx,
    /// AES-256-CTR keyed with `ck_{n+1}`, counter block zero.
    ctr: CipherCtx,
    /// `ck_{n+1}`.
    next: ChainKey,
}

impl Chain {
    pub(crate) fn new(key: ChainKey) -> Self {
        Self { key, ahead: None }
    }

    /// `ck_n`.
    pub(crate) fn key(&self) -> &ChainKey {
        &self.key
    }

    /// Moves the chain to `key` (after skipping ahead); its contexts are rebuilt on next use.
    pub(crate) fn reset(&mut self, key: ChainKey) {
        self.key = key;
        self.ahead = None;
    }

    /// Seals `plaintext` as message `n` with `mk_n`, and steps the chain to `ck_{n+1}`.
    pub(crate) fn seal(
        &mut self,
        session_id: &[u8],
        sender: &str,
        n: u64,
        plaintext: Zeroizing<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let ahead = self.ahead()?;
        let sealed = with_message_ad(session_id, sender, n, |ad| {
            seal_buffer(plaintext, |buf, tag| {
                gcm_seal_on(&mut ahead.gcm, None, &message_nonce(n), ad, buf, tag)
            })
        })?;
        self.step();
        Ok(sealed)
    }

    /// Opens message `n` with `mk_n` and, only if it authenticates, steps the chain to `ck_{n+1}`.
    pub(crate) fn open(
        &mut self,
        session_id: &[u8],
        sender: &str,
        n: u64,
        sealed: Vec<u8>,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let ahead = self.ahead()?;
        let plain = with_message_ad(session_id, sender, n, |ad| {
            open_buffer(sealed, |buf, tag| {
                gcm_open_on(&mut ahead.gcm, None, &message_nonce(n), ad, buf, tag)
            })
        })?;
        self.step();
        Ok(plain)
    }

    fn ahead(&mut self) -> Result<&mut Ahead> {
        let ahead = match self.ahead.take() {
            Some(ahead) => ahead,
            None => Ahead::build(&self.key)?,
        };
        Ok(self.ahead.insert(ahead))
    }

    /// `mk_n` has been used: `ck_{n+1}` becomes the state, and the contexts move to `mk_{n+1}` and `ck_{n+2}`.
    fn step(&mut self) {
        if let Some(ahead) = self.ahead.as_mut() {
            std::mem::swap(&mut self.key, &mut ahead.next);
            if ahead.derive().is_err() {
                // Freed, so wiped; rebuilt from the (already stepped) state on next use.
                self.ahead = None;
            }
        }
    }
}

impl Ahead {
    fn build(key: &ChainKey) -> Result<Self, ErrorStack> {
        let mut ctr = CipherCtx::new()?;
        ctr.encrypt_init(Some(aes_256_ctr()), Some(key.expose_secret()), Some(&[0u8; 16]))?;
        let mut gcm = CipherCtx::new()?;
        gcm.encrypt_init(Some(aes_256_gcm()), None, None)?;
        let mut ahead = Self {
            gcm,
            ctr,
            next: ChainKey::from_bytes([0; 32]),
        };
        ahead.derive()?;
        Ok(ahead)
    }

    /// With `ctr` keyed with `ck`: the ratchet step of `ck` (the first 64 bytes of its keystream are `mk ‖ ck'`,
    /// as [`crate::keys::ratchet_step`]) keys `gcm` with `mk` and `ctr` with `ck'`, and keeps `ck'` in `next`.
    fn derive(&mut self) -> Result<(), ErrorStack> {
        let mut stream = [0u8; 64];
        let derived = (|| {
            self.ctr.cipher_update_inplace(&mut stream, 64)?;
            let (mk, next) = stream.split_at(32);
            self.next.expose_secret_mut().copy_from_slice(next);
            self.ctr.encrypt_init(None, Some(next), Some(&[0u8; 16]))?;
            self.gcm.encrypt_init(None, Some(mk), None)
        })();
        zeroize::zeroize_bytes(&mut stream);
        derived
    }
}

impl Clone for Chain {
    fn clone(&self) -> Self {
        // The copies hold the same keys and are wiped when freed; if copying fails they are rebuilt on use.
        let ahead = self.ahead.as_ref().and_then(|ahead| {
            let copy = |src: &CipherCtx| -> Result<CipherCtx, ErrorStack> {
                let mut ctx = CipherCtx::new()?;
                ctx.copy(src)?;
                Ok(ctx)
            };
            Some(Ahead {
                gcm: copy(&ahead.gcm).ok()?,
                ctr: copy(&ahead.ctr).ok()?,
                next: ahead.next.clone(),
            })
        });
        Self {
            key: self.key.clone(),
            ahead,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::keys::{open_with_key, ratchet_step, seal_with_key};

    const ID: [u8; 16] = [0x5a; 16];

    fn plain(text: &str) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(text.as_bytes().to_vec())
    }

    #[test]
    fn sealing_on_the_chain_gives_the_bytes_of_the_key_schedule() {
        let mut ck = ChainKey::from_bytes(std::array::from_fn(|i| i as u8 + 0x10));
        let mut chain = Chain::new(ck.clone());
        for n in 0..5 {
            let (mk, next) = ratchet_step(&ck).unwrap();
            let body = format!("message {n}");
            let sealed = chain.seal(&ID, "alice", n, plain(&body)).unwrap();
            assert_eq!(sealed, seal_with_key(&mk, &ID, "alice", n, body.as_bytes()).unwrap());
            assert_eq!(
                open_with_key(&mk, &ID, "alice", n, &sealed).unwrap().as_slice(),
                body.as_bytes()
            );
            ck = next;
            assert_eq!(chain.key(), &ck, "the state is ck_{}", n + 1);
        }
    }

    #[test]
    fn a_failed_open_leaves_the_chain_where_it_was() {
        let ck = ChainKey::from_bytes([7; 32]);
        let mut sender = Chain::new(ck.clone());
        let mut receiver = Chain::new(ck.clone());
        let sealed = sender.seal(&ID, "alice", 0, plain("hello")).unwrap();
        let mut forged = sealed.clone();
        forged[1] ^= 1;
        assert!(matches!(receiver.open(&ID, "alice", 0, forged), Err(Error::Decrypt)));
        assert!(matches!(
            receiver.open(&ID, "bob", 0, sealed.clone()),
            Err(Error::Decrypt)
        ));
        assert_eq!(receiver.key(), &ck);
        assert_eq!(receiver.open(&ID, "alice", 0, sealed).unwrap().as_slice(), b"hello");
        let second = sender.seal(&ID, "alice", 1, plain("again")).unwrap();
        assert_eq!(receiver.open(&ID, "alice", 1, second).unwrap().as_slice(), b"again");
    }

    #[test]
    fn a_clone_goes_on_alone_and_alike() {
        let mut chain = Chain::new(ChainKey::from_bytes([3; 32]));
        chain.seal(&ID, "alice", 0, plain("zero")).unwrap();
        let mut copy = chain.clone();
        let mut rebuilt = Chain::new(chain.key().clone());
        // The copy must not lean on the original's memory.
        drop(chain);
        let expected = rebuilt.seal(&ID, "alice", 1, plain("one")).unwrap();
        assert_eq!(copy.seal(&ID, "alice", 1, plain("one")).unwrap(), expected);
        let mut after_reset = copy.clone();
        after_reset.reset(copy.key().clone());
        let expected = copy.seal(&ID, "alice", 2, plain("two")).unwrap();
        assert_eq!(after_reset.seal(&ID, "alice", 2, plain("two")).unwrap(), expected);
    }
}
