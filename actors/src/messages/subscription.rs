//! SubscriptionActor's messages and replies: the webhook subscriptions at app and Page
//! level.

use actix::Message;
use serde::{Deserialize, Serialize};

use crate::ids::PageId;

/// Stored state of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SubscriptionState {
    pub subscribed: bool,
    /// App level: the configuration fingerprint; Page level: the fields.
    pub detail: String,
    pub last_error: Option<String>,
    pub attempts: u32,
    /// Unix seconds of the last change.
    pub updated_at: u64,
    /// App level: the other callback URL found where ours should be, left alone
    /// because `PAGESYNC_FORWARD_URL` is not set. `Some` means `conflict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
    /// App level: the callback URL pagesync registered last. Meta still showing it
    /// after `FACEBOOK_WEBHOOK_ADDRESS` moved is pagesync's own, not a conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_url: Option<String>,
}

/// What a subscription's state amounts to, for operators (`pagesync pages`, the
/// dashboard, `/metrics`). A fixed set: it is used as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    /// Not made yet (or not yet tried).
    Pending,
    Subscribed,
    /// The last attempt failed; retried in the background.
    Failed,
    /// App level only: another callback URL holds the app's `page` webhooks and
    /// pagesync may not take it over. Waits for the operator.
    Conflict,
}

impl SubscriptionStatus {
    /// Every value, in a fixed order (metric label values).
    pub const ALL: [SubscriptionStatus; 4] = [
        SubscriptionStatus::Pending,
        SubscriptionStatus::Subscribed,
        SubscriptionStatus::Failed,
        SubscriptionStatus::Conflict,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Pending => "pending",
            SubscriptionStatus::Subscribed => "subscribed",
            SubscriptionStatus::Failed => "failed",
            SubscriptionStatus::Conflict => "conflict",
        }
    }
}

impl SubscriptionState {
    /// The status this state amounts to.
    pub fn status(&self) -> SubscriptionStatus {
        if self.subscribed {
            SubscriptionStatus::Subscribed
        } else if self.conflict.is_some() {
            SubscriptionStatus::Conflict
        } else if self.last_error.is_some() {
            SubscriptionStatus::Failed
        } else {
            SubscriptionStatus::Pending
        }
    }
}

/// Make sure the app-level subscription exists for the current configuration.
/// Fire-and-forget: never wait on it from an HTTP handler.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct EnsureAppSubscription;

/// Make sure our app is subscribed on the Page with our fields. Replies after the
/// first attempt; a failure is retried in the background.
#[derive(Debug, Message)]
#[rtype(result = "SubscriptionState")]
pub struct EnsurePageSubscription {
    pub page: PageId,
}

/// Forget Pages' subscription state (their tokens are gone).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ForgetSubscriptions {
    pub pages: Vec<PageId>,
}

/// The state of the app-level subscription (`None` for the app) or of a Page's.
#[derive(Debug, Message)]
#[rtype(result = "Option<SubscriptionState>")]
pub struct GetSubscription {
    pub page: Option<PageId>,
}

/// The subscription state of each Page, in the order asked: one message for a
/// dashboard screen or an `/api/v1/pages` slice instead of one per row.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Option<SubscriptionState>>")]
pub struct GetPageSubscriptions {
    pub pages: Vec<PageId>,
}
