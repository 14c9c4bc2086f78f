//! [`Progress`]: how a method reports progress to the client that called it.

use serde::Serialize;
use switchboard_protocol::{frame, methods};

use crate::rpc::dispatch::Cancellable;
use crate::session::{IdText, SessionHandle};

/// Reports the progress of one running request to the client that made it,
/// as `rpc.progress {id, progress}` notifications: any number of them,
/// always before the request's answer, never after it (a report made once
/// the request has been answered or cancelled is dropped). A direct method
/// gets it with [`Request::progress`](crate::Request::progress), a jsonrpsee
/// method in its `Extensions`; it can be moved into a task.
///
/// ```
/// use std::time::Duration;
/// use switchboard_server::{Config, Gateway};
///
/// # fn build() -> Result<(), switchboard_server::Error> {
/// let gateway = Gateway::builder(Config::default())
///     .method_async("export", |req| {
///         let progress = req.progress();
///         Ok(async move {
///             for done in [25, 50, 75] {
///                 tokio::time::sleep(Duration::from_millis(100)).await;
///                 progress.report(&serde_json::json!({"percent": done}));
///             }
///             Ok("exported")
///         })
///     })?
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Progress {
    /// The session, the request's id as the client wrote it and its number
    /// in the session's table; none for a call that cannot get progress
    /// (over HTTP, or a notification).
    to: Option<(SessionHandle, IdText, u64)>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("request", &self.to.as_ref().map(|(_, id, _)| id.as_str()))
            .finish()
    }
}

impl Progress {
    pub(crate) fn new(request: Option<&Cancellable>) -> Self {
        Self {
            to: request.map(Cancellable::progress_to),
        }
    }

    /// Sends `progress` (any JSON value the method documents) to the
    /// client. True when it was queued; false when the request has been
    /// answered or cancelled already, the session is gone, or the call
    /// cannot get progress (over HTTP, or a notification).
    pub fn report<P: Serialize + ?Sized>(&self, progress: &P) -> bool {
        let Some((session, id, serial)) = &self.to else {
            return false;
        };
        let Ok(progress) = serde_json::to_string(progress) else {
            return false;
        };
        let params = format!(r#"{{"id":{},"progress":{progress}}}"#, id.as_str());
        let frame = frame::write_notification(methods::PROGRESS, Some(&params));
        session
            .shared
            .requests
            .while_running(*serial, || session.send_frame(frame).is_ok())
            .unwrap_or(false)
    }
}
