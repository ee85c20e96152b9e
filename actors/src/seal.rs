//! AES-256-GCM sealing of tokens at rest.
//!
//! A sealed record is `version (1 byte) || nonce (12 bytes) || ciphertext || tag (16)`.
//! The version byte names the key that sealed it, so keys can be rotated: records
//! sealed under an older key still open while that key is loaded, and are re-sealed
//! under the current one when next written. Every seal draws a fresh random 96-bit
//! nonce from the OS. The record's sled key is the associated data, so a sealed value
//! copied onto another record (another Page's token, say) fails to open.

use std::fmt;

use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// Why a key could not be loaded or a record could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the encryption key must be base64 of exactly 32 bytes")]
    BadKey,
    #[error("sealed record is too short or has an unknown key version {0}")]
    UnknownVersion(u8),
    #[error("sealed record is truncated")]
    Truncated,
    #[error("sealed record failed authentication (wrong key, wrong record, or tampered)")]
    Tampered,
    #[error("the operating system's random source failed")]
    Random,
}

/// A 32-byte AES-256 key. `Debug` is redacted.
#[derive(Clone)]
pub struct EncryptionKey([u8; 32]);

impl EncryptionKey {
    /// Parses the base64 form that `pagesync keygen` prints (standard alphabet, padded
    /// or not; surrounding whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| SealError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        Ok(EncryptionKey(key))
    }

    /// A new key from the OS random source.
    pub fn generate() -> Result<Self, SealError> {
        let key: [u8; 32] = Generate::try_generate().map_err(|_| SealError::Random)?;
        Ok(EncryptionKey(key))
    }

    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey([redacted])")
    }
}

/// Seals and opens records. Holds the current key and, during a rotation, older ones.
#[derive(Clone)]
pub struct Sealer {
    current: u8,
    keys: Vec<(u8, Aes256Gcm)>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer").field("current_version", &self.current).finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer with one key, used for sealing and opening, under version 1.
    pub fn new(key: &EncryptionKey) -> Self {
        Sealer::with_keys(1, key, &[])
    }

    /// A sealer that seals with `current` (as version `version`) and can still open
    /// records sealed with any of `older` (each with its own version byte).
    pub fn with_keys(version: u8, current: &EncryptionKey, older: &[(u8, EncryptionKey)]) -> Self {
        let mut keys = vec![(version, Aes256Gcm::new(&current.0.into()))];
        for (v, k) in older {
            keys.push((*v, Aes256Gcm::new(&k.0.into())));
        }
        Sealer { current: version, keys }
    }

    /// The version byte new records get.
    pub fn current_version(&self) -> u8 {
        self.current
    }

    /// Seals `plaintext` for the record named `record_key`.
    pub fn seal(&self, record_key: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let cipher = self.cipher(self.current).ok_or(SealError::UnknownVersion(self.current))?;
        let nonce: Nonce<_> = Generate::try_generate().map_err(|_| SealError::Random)?;
        let ciphertext =
            cipher.encrypt(&nonce, Payload { msg: plaintext, aad: record_key }).map_err(|_| SealError::Tampered)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(self.current);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a record sealed for `record_key`.
    pub fn open(&self, record_key: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let (&version, rest) = sealed.split_first().ok_or(SealError::Truncated)?;
        let cipher = self.cipher(version).ok_or(SealError::UnknownVersion(version))?;
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Truncated);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| SealError::Truncated)?;
        cipher.decrypt(&nonce, Payload { msg: ciphertext, aad: record_key }).map_err(|_| SealError::Tampered)
    }

    /// Whether a sealed record was made under an older key and should be re-sealed.
    pub fn is_stale(&self, sealed: &[u8]) -> bool {
        sealed.first().is_some_and(|v| *v != self.current)
    }

    fn cipher(&self, version: u8) -> Option<&Aes256Gcm> {
        self.keys.iter().find(|(v, _)| *v == version).map(|(_, c)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey([byte; 32])
    }

    #[test]
    fn seal_then_open_round_trips() {
        let sealer = Sealer::new(&key(7));
        let sealed = sealer.seal(b"page_token/1", b"EAAG-token").unwrap();
        assert_eq!(sealed[0], 1, "version byte");
        assert_eq!(sealed.len(), 1 + 12 + 10 + 16);
        assert_eq!(sealer.open(b"page_token/1", &sealed).unwrap(), b"EAAG-token");
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let sealer = Sealer::new(&key(7));
        let a = sealer.seal(b"k", b"same").unwrap();
        let b = sealer.seal(b"k", b"same").unwrap();
        assert_ne!(a[1..13], b[1..13]);
        assert_ne!(a, b);
    }

    #[test]
    fn a_flipped_bit_anywhere_is_detected() {
        let sealer = Sealer::new(&key(7));
        let sealed = sealer.seal(b"page_token/1", b"EAAG-token").unwrap();
        for i in 1..sealed.len() {
            let mut t = sealed.clone();
            t[i] ^= 0x01;
            assert_eq!(sealer.open(b"page_token/1", &t), Err(SealError::Tampered), "byte {i}");
        }
    }

    #[test]
    fn a_record_moved_to_another_key_does_not_open() {
        let sealer = Sealer::new(&key(7));
        let sealed = sealer.seal(b"page_token/1", b"EAAG-token").unwrap();
        assert_eq!(sealer.open(b"page_token/2", &sealed), Err(SealError::Tampered));
    }

    #[test]
    fn the_wrong_key_does_not_open() {
        let sealed = Sealer::new(&key(7)).seal(b"k", b"v").unwrap();
        assert_eq!(Sealer::new(&key(8)).open(b"k", &sealed), Err(SealError::Tampered));
    }

    #[test]
    fn truncated_and_unknown_versions_are_refused() {
        let sealer = Sealer::new(&key(7));
        assert_eq!(sealer.open(b"k", &[]), Err(SealError::Truncated));
        assert_eq!(sealer.open(b"k", &[1, 2, 3]), Err(SealError::Truncated));
        assert_eq!(sealer.open(b"k", &[9; 40]), Err(SealError::UnknownVersion(9)));
    }

    #[test]
    fn rotation_opens_old_records_and_flags_them_stale() {
        let old = Sealer::new(&key(1));
        let sealed = old.seal(b"k", b"v").unwrap();
        let rotated = Sealer::with_keys(2, &key(2), &[(1, key(1))]);
        assert_eq!(rotated.open(b"k", &sealed).unwrap(), b"v");
        assert!(rotated.is_stale(&sealed));
        let fresh = rotated.seal(b"k", b"v").unwrap();
        assert_eq!(fresh[0], 2);
        assert!(!rotated.is_stale(&fresh));
    }

    #[test]
    fn keys_parse_from_base64_of_32_bytes_only() {
        let k = EncryptionKey::generate().unwrap();
        let text = k.to_base64();
        assert!(EncryptionKey::from_base64(&text).is_ok());
        assert!(EncryptionKey::from_base64(&format!(" {text}\n")).is_ok());
        assert_eq!(EncryptionKey::from_base64("c2hvcnQ=").err(), Some(SealError::BadKey));
        assert_eq!(EncryptionKey::from_base64("not base64!").err(), Some(SealError::BadKey));
        assert_eq!(format!("{k:?}"), "EncryptionKey([redacted])");
    }
}
