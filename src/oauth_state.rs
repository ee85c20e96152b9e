//! Signed OAuth `state` values: `base64url(json).base64url(hmac)`, HMAC-SHA256 under
//! `STATE_TOKEN_SECRET`, each carrying who it is for, a random nonce and an expiry
//! 10 minutes out.
//!
//! - [`FacebookState`] (Facebook Login): the user UUID; its nonce is issued and used up
//!   by the SessionActor.
//! - [`ShopifyState`] (Shopify install): the shop. Nothing is stored when it is issued,
//!   so `/shopify/login` costs no storage however often it is called; the nonce also
//!   goes into the browser's `shopify_state` cookie, and only a nonce actually used by
//!   a Shopify-signed callback is remembered (to refuse its reuse).
//!
//! Both share one sign/verify path. The MAC covers a per-kind label before the payload,
//! so a value issued as one kind never verifies as the other, whatever its fields.

use base64::Engine as _;
use pagesync_actors::{Secret, ShopDomain, UserId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::verify::{constant_time_eq, hmac_sha256};

/// How long a `state` is valid (both kinds).
pub const STATE_LIFETIME_SECS: u64 = 600;

/// A kind of signed state.
pub trait SignedState: Serialize + DeserializeOwned {
    /// Goes into the MAC ahead of the payload (domain separation between kinds).
    const LABEL: &'static str;
    /// Unix seconds after which the state is refused.
    fn expires_at(&self) -> u64;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacebookState {
    #[serde(rename = "u")]
    pub user: UserId,
    #[serde(rename = "n")]
    pub nonce: String,
    /// Unix seconds.
    #[serde(rename = "e")]
    pub expires_at: u64,
}

impl SignedState for FacebookState {
    const LABEL: &'static str = "pagesync facebook state\n";
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

/// The Shopify install `state`, bound to the shop it was issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopifyState {
    #[serde(rename = "s")]
    pub shop: ShopDomain,
    /// 128 random bits, hex; also the value of the `shopify_state` cookie.
    #[serde(rename = "n")]
    pub nonce: String,
    /// Unix seconds.
    #[serde(rename = "e")]
    pub expires_at: u64,
}

impl ShopifyState {
    /// A fresh state for `shop`, valid [`STATE_LIFETIME_SECS`] from `now`.
    pub fn new(shop: ShopDomain, now: u64) -> Self {
        ShopifyState {
            shop,
            nonce: pagesync_actors::hex(&rand::random::<[u8; 16]>()),
            expires_at: now.saturating_add(STATE_LIFETIME_SECS),
        }
    }
}

impl SignedState for ShopifyState {
    const LABEL: &'static str = "pagesync shopify state\n";
    fn expires_at(&self) -> u64 {
        self.expires_at
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("state is malformed")]
    Malformed,
    #[error("state signature is wrong")]
    Forged,
    #[error("state has expired")]
    Expired,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
}

fn mac<T: SignedState>(secret: &Secret, payload: &str) -> String {
    let mut message = Vec::with_capacity(T::LABEL.len() + payload.len());
    message.extend_from_slice(T::LABEL.as_bytes());
    message.extend_from_slice(payload.as_bytes());
    b64().encode(hmac_sha256(secret.expose().as_bytes(), &message))
}

/// Signs a state of any kind.
pub fn sign_token<T: SignedState>(secret: &Secret, state: &T) -> String {
    // Serialising these plain structs cannot fail; an empty payload would not verify.
    let json = serde_json::to_vec(state).unwrap_or_default();
    let payload = b64().encode(json);
    let mac = mac::<T>(secret, &payload);
    format!("{payload}.{mac}")
}

/// Checks the signature (constant time) and the expiry of a state of kind `T`.
pub fn verify_token<T: SignedState>(secret: &Secret, value: &str, now: u64) -> Result<T, StateError> {
    let (payload, mac) = value.split_once('.').ok_or(StateError::Malformed)?;
    if !constant_time_eq(mac, &self::mac::<T>(secret, payload)) {
        return Err(StateError::Forged);
    }
    let json = b64().decode(payload).map_err(|_| StateError::Malformed)?;
    let state: T = serde_json::from_slice(&json).map_err(|_| StateError::Malformed)?;
    if state.expires_at() < now {
        return Err(StateError::Expired);
    }
    Ok(state)
}

/// Signs a Facebook state (the Facebook route's name for [`sign_token`]).
pub fn sign(secret: &Secret, state: &FacebookState) -> String {
    sign_token(secret, state)
}

/// Verifies a Facebook state (the Facebook route's name for [`verify_token`]).
pub fn verify(secret: &Secret, value: &str, now: u64) -> Result<FacebookState, StateError> {
    verify_token(secret, value, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(expires_at: u64) -> FacebookState {
        FacebookState { user: UserId::random(), nonce: "00ff".into(), expires_at }
    }

    #[test]
    fn a_signed_state_verifies_until_it_expires() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        let s = state(1000);
        let text = sign(&secret, &s);
        assert_eq!(verify(&secret, &text, 999), Ok(s.clone()));
        assert_eq!(verify(&secret, &text, 1001), Err(StateError::Expired));
    }

    #[test]
    fn tampering_and_other_secrets_are_detected() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        let text = sign(&secret, &state(1000));
        assert_eq!(verify(&Secret::new("another secret of enough length!!"), &text, 0), Err(StateError::Forged));
        let mut chars: Vec<char> = text.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        let tampered: String = chars.into_iter().collect();
        assert_eq!(verify(&secret, &tampered, 0), Err(StateError::Forged));
        assert_eq!(verify(&secret, "no-dot", 0), Err(StateError::Malformed));
    }

    #[test]
    fn a_shopify_state_carries_its_shop_and_expires() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        let shop = ShopDomain::parse("a.myshopify.com").unwrap();
        let s = ShopifyState::new(shop.clone(), 1000);
        assert_eq!(s.nonce.len(), 32, "128 bits, hex");
        assert_ne!(ShopifyState::new(shop, 1000).nonce, s.nonce);
        let text = sign_token(&secret, &s);
        assert_eq!(verify_token::<ShopifyState>(&secret, &text, 1600), Ok(s.clone()));
        assert_eq!(verify_token::<ShopifyState>(&secret, &text, 1601), Err(StateError::Expired));
        assert_eq!(verify_token::<ShopifyState>(&Secret::new("x".repeat(32)), &text, 0), Err(StateError::Forged));
    }

    #[test]
    fn a_state_of_one_kind_never_verifies_as_the_other() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        let shopify = sign_token(&secret, &ShopifyState::new(ShopDomain::parse("a.myshopify.com").unwrap(), 0));
        assert_eq!(verify(&secret, &shopify, 0), Err(StateError::Forged));
        let facebook = sign(&secret, &state(1000));
        assert_eq!(verify_token::<ShopifyState>(&secret, &facebook, 0), Err(StateError::Forged));
    }

    #[test]
    fn a_signed_state_naming_an_invalid_shop_is_malformed() {
        // Signed by us but not a ShopDomain: refused when parsed, never trusted.
        #[derive(Serialize, Deserialize)]
        struct Raw {
            s: String,
            n: String,
            e: u64,
        }
        impl SignedState for Raw {
            const LABEL: &'static str = ShopifyState::LABEL;
            fn expires_at(&self) -> u64 {
                self.e
            }
        }
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        let text = sign_token(&secret, &Raw { s: "evil.com".into(), n: "00".into(), e: 10 });
        assert_eq!(verify_token::<ShopifyState>(&secret, &text, 0), Err(StateError::Malformed));
    }
}
