//! The outbox's record format and the queue handle that builds records for a caller's
//! own group commit: a record is `[u32 big-endian length][meta JSON][body bytes]`, the
//! body kept byte for byte.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::messages::{Enqueued, ItemKind};
use crate::store::Write;

/// Everything about an item but its body, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemMeta {
    /// Stable across attempts and restarts (`X-Pagesync-Delivery`, `webhook-id`).
    pub id: String,
    pub kind: ItemKind,
    pub lane: String,
    /// Unix milliseconds when it was queued (or put back in line by `outbox retry`).
    pub queued_ms: u64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Unix milliseconds of the last attempt.
    pub last_attempt_ms: Option<u64>,
    /// Why the last attempt failed (never a body or a secret).
    pub last_error: Option<String>,
    /// Headers to send as they are (a forward's `Content-Type` and Meta signatures).
    #[serde(default)]
    pub headers: Vec<(String, String)>,
}

/// Builds outbox records for a caller's group commit. Cheap to clone; shared by the
/// webhook route and the actors that emit events.
#[derive(Clone)]
pub struct OutboxQueue {
    pub(super) tree: sled::Tree,
    pub(super) next_seq: Arc<AtomicU64>,
}

/// An item built by [`OutboxQueue`]: commit `write` with your own records, then send
/// [`Enqueued`] to the actor.
#[derive(Debug)]
pub struct Prepared {
    pub write: Write,
    pub enqueued: Enqueued,
}

impl OutboxQueue {
    /// A new item of `kind` in `lane`, with a fresh random id prefixed `prefix`.
    pub fn prepare(&self, kind: ItemKind, lane: &str, headers: Vec<(String, String)>, body: &[u8]) -> Prepared {
        let prefix = match kind {
            ItemKind::Forward => "fwd_",
            ItemKind::Event => "msg_",
        };
        let meta = ItemMeta {
            id: format!("{prefix}{}", crate::hex(&rand::random::<[u8; 16]>())),
            kind,
            lane: lane.to_owned(),
            queued_ms: unix_ms(),
            attempts: 0,
            last_attempt_ms: None,
            last_error: None,
            headers,
        };
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let write = (self.tree.clone(), seq.to_be_bytes().to_vec(), encode(&meta, body));
        Prepared { write, enqueued: Enqueued { seq, lane: meta.lane, kind, queued_ms: meta.queued_ms } }
    }
}

/// The body of an event (Standard Webhooks): `{"type", "timestamp", "data"}`.
pub fn event_body(kind: &str, data: serde_json::Value) -> Vec<u8> {
    let body = serde_json::json!({ "type": kind, "timestamp": rfc3339_utc(unix_ms() / 1000), "data": data });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for unix seconds (days to civil date, proleptic Gregorian).
pub fn rfc3339_utc(secs: u64) -> String {
    let (year, month, day, h, m, s) = crate::civil_utc(secs);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}Z")
}

pub(super) fn encode(meta: &ItemMeta, body: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(meta).unwrap_or_default();
    let len = u32::try_from(json.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(4 + json.len() + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(body);
    out
}

pub(super) fn decode(raw: &[u8]) -> Option<(ItemMeta, &[u8])> {
    let len = u32::from_be_bytes(raw.get(..4)?.try_into().ok()?) as usize;
    let json = raw.get(4..4usize.checked_add(len)?)?;
    let body = raw.get(4 + len..)?;
    Some((serde_json::from_slice(json).ok()?, body))
}

pub(super) fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
