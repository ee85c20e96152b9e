//! Waiting for the app: generic polls and waits on a page's file, state and the writer.

use std::time::{Duration, Instant};

use pagesync_actors::messages::{PageState, SyncStatus, WriterStats};
use serde_json::Value;

use super::spawn::TestApp;

/// Polls `check` every 10 ms until it holds or `limit` passes.
pub async fn poll_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls the async `check` every 20 ms until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestApp {
    /// Waits until `page_data.json` of `page` has `name`, then returns its JSON.
    pub async fn wait_for_name(&self, page: &str, name: &str) -> Value {
        let path = self.page_file(page);
        let mut last = None;
        let found = poll_until(Duration::from_secs(10), || {
            let value = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok());
            let ok = value.as_ref().is_some_and(|v| v["name"] == name);
            last = value;
            ok
        })
        .await;
        assert!(found, "page_data.json of {page} never showed {name:?}; last seen: {last:?}");
        last.unwrap_or_default()
    }

    /// Waits until the writer has recorded `status` for `page`. The file lands before the
    /// state does, so a test that saw the file must still wait for the state.
    pub async fn wait_for_status(&self, page: &str, status: SyncStatus) -> PageState {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let state = self.page_state(page).await;
            if let Some(state) = state.as_ref().filter(|s| s.status == status) {
                return state.clone();
            }
            assert!(Instant::now() < deadline, "{page} never reached {status:?}; last: {state:?}");
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until the writer has nothing in flight and the inbox is empty.
    pub async fn wait_idle(&self) -> WriterStats {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stats = self.stats().await;
            if stats.inbox_depth == 0 && stats.running == 0 && stats.waiting_pages == 0 {
                return stats;
            }
            assert!(Instant::now() < deadline, "writer never went idle: {stats:?}");
            actix_web::rt::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
