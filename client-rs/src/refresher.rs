//! Refreshing the session's token while connected: [`spawn_refresher`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use switchboard_protocol::methods;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::shared::Shared;
use crate::token::{jwt_expiry, refresh_delay};

/// Aborts a task when dropped.
pub(crate) struct AbortOnDrop(AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps the session's token fresh, for as long as the connection lives:
/// asks the token source for a new token and sends it with `rpc.refresh`,
/// shortly before a JWT's `exp` (or the expiry the server reported), and
/// whenever the server warns with `rpc.expiring`. Only with a token source.
pub(crate) fn spawn_refresher(shared: &Arc<Shared>, token: Option<&str>) -> Option<(AbortOnDrop, Arc<Notify>)> {
    if !shared.config.token.is_source() {
        return None;
    }
    let warned = Arc::new(Notify::new());
    let mut expiry = token.and_then(jwt_expiry);
    let shared = Arc::downgrade(shared);
    let wake = warned.clone();
    let task = tokio::spawn(async move {
        loop {
            let sleep = async {
                match expiry {
                    Some(at) => tokio::time::sleep(refresh_delay(at, SystemTime::now())).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = sleep => {}
                () = wake.notified() => {}
            }
            let Some(shared) = shared.upgrade() else { return };
            let token = match shared.config.token.get().await {
                Ok(Some(t)) => t,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "the token source failed; the session ends when its token expires");
                    expiry = None;
                    continue;
                }
            };
            let Ok(params) = serde_json::value::to_raw_value(&methods::RefreshParams { token: token.clone() }) else {
                return;
            };
            let timeout = shared.config.call_timeout;
            match shared.request(methods::REFRESH, Some(&params), timeout).await {
                Ok(result) => {
                    let reported = serde_json::from_str::<methods::Expiry>(result.get())
                        .ok()
                        .and_then(|e| e.expires_at_ms)
                        .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
                    expiry = jwt_expiry(&token).or(reported);
                }
                Err(e) => {
                    // The server may not do refreshes; the next connection gets a fresh token anyway.
                    tracing::debug!(error = %e, "token refresh refused");
                    expiry = None;
                }
            }
        }
    });
    Some((AbortOnDrop(task.abort_handle()), warned))
}
