//! The Facebook Login `state`: `base64url(json).base64url(hmac)`, HMAC-SHA256 under
//! `STATE_TOKEN_SECRET`, carrying the user UUID, a single-use nonce (kept by the
//! SessionActor) and an expiry 10 minutes out.

use base64::Engine as _;
use pagesync_actors::{Secret, UserId};
use serde::{Deserialize, Serialize};

use crate::verify::{constant_time_eq, hmac_sha256};

/// How long a Facebook `state` is valid.
pub const STATE_LIFETIME_SECS: u64 = 600;

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

pub fn sign(secret: &Secret, state: &FacebookState) -> String {
    let json = serde_json::to_vec(state).unwrap_or_default();
    let payload = b64().encode(json);
    let mac = hmac_sha256(secret.expose().as_bytes(), payload.as_bytes());
    format!("{payload}.{}", b64().encode(mac))
}

pub fn verify(secret: &Secret, value: &str, now: u64) -> Result<FacebookState, StateError> {
    let (payload, mac) = value.split_once('.').ok_or(StateError::Malformed)?;
    let expected = b64().encode(hmac_sha256(secret.expose().as_bytes(), payload.as_bytes()));
    if !constant_time_eq(mac, &expected) {
        return Err(StateError::Forged);
    }
    let json = b64().decode(payload).map_err(|_| StateError::Malformed)?;
    let state: FacebookState = serde_json::from_slice(&json).map_err(|_| StateError::Malformed)?;
    if state.expires_at < now {
        return Err(StateError::Expired);
    }
    Ok(state)
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
}
