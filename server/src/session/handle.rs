//! [`SessionHandle`]: what the rest of the gateway holds of a session.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use switchboard_protocol::{ErrorObject, codes, frame, methods};
use tungstenite::Utf8Bytes;

use super::pending::{Outcome, PendingCalls, next_call_id};
use super::queue::{CloseRequest, OutboundQueue, SendError};
use crate::error::CallError;

/// The opaque id of a session, unique on its node (and prefixed by the node id).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Arc<str>);

impl SessionId {
    pub(crate) fn new(s: impl Into<Arc<str>>) -> Self {
        Self(s.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SessionId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for SessionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// A cheap, cloneable handle to one live (or just ended) session.
///
/// Sending never waits: frames go to the session's bounded outbound queue and
/// its own task writes them to the socket.
#[derive(Clone)]
pub struct SessionHandle {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) id: SessionId,
    pub(crate) user: Arc<str>,
    pub(crate) queue: OutboundQueue,
    pub(crate) pending: PendingCalls,
    pub(crate) in_flight: AtomicUsize,
    /// The session's credentials: claims and expiry, replaced by `rpc.refresh`.
    pub(crate) auth: parking_lot::Mutex<SessionAuth>,
    /// The topics this session is subscribed to (the registry holds the other direction).
    pub(crate) topics: parking_lot::Mutex<Vec<super::Subscription>>,
    pub(crate) max_in_flight: usize,
    pub(crate) max_call_timeout: Duration,
}

/// What a session's token said.
#[derive(Debug, Clone, Default)]
pub(crate) struct SessionAuth {
    /// The token's claims (none in dev mode).
    pub(crate) claims: Option<Arc<serde_json::Value>>,
    /// When the token expires, in seconds since the Unix epoch.
    pub(crate) expires_at: Option<u64>,
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHandle")
            .field("id", &self.shared.id)
            .field("user", &self.shared.user)
            .finish()
    }
}

impl SessionHandle {
    pub(crate) fn new(id: SessionId, user: Arc<str>, limits: &crate::config::Limits) -> Self {
        Self {
            shared: Arc::new(Shared {
                id,
                user,
                queue: OutboundQueue::new(limits.max_queue_bytes),
                pending: PendingCalls::new(limits.max_pending_calls),
                in_flight: AtomicUsize::new(0),
                topics: parking_lot::Mutex::new(Vec::new()),
                auth: parking_lot::Mutex::new(SessionAuth::default()),
                max_in_flight: limits.max_in_flight,
                max_call_timeout: Duration::from_millis(limits.max_call_timeout_ms),
            }),
        }
    }

    /// The session's id.
    pub fn id(&self) -> &SessionId {
        &self.shared.id
    }

    /// The user the session belongs to.
    pub fn user(&self) -> &str {
        &self.shared.user
    }

    /// The claims of the session's token (`None` in dev mode).
    pub fn claims(&self) -> Option<Arc<serde_json::Value>> {
        self.shared.auth.lock().claims.clone()
    }

    pub(crate) fn set_auth(&self, claims: Option<Arc<serde_json::Value>>, expires_at: Option<u64>) {
        *self.shared.auth.lock() = SessionAuth { claims, expires_at };
    }

    pub(crate) fn expires_at(&self) -> Option<u64> {
        self.shared.auth.lock().expires_at
    }

    /// Whether the session is closing or closed.
    pub fn is_closed(&self) -> bool {
        self.shared.queue.is_closing()
    }

    /// Enqueues an already serialised frame. Cloning a [`Utf8Bytes`] shares
    /// its bytes, so one frame can go to many sessions.
    pub fn send_frame(&self, frame: Utf8Bytes) -> Result<(), SendError> {
        self.shared.queue.push(frame)
    }

    /// Sends a JSON-RPC notification to this client.
    pub fn notify<P: Serialize>(&self, method: &str, params: &P) -> Result<(), SendError> {
        let params = serde_json::to_string(params).map_err(|_| SendError::Closed)?;
        self.send_frame(frame::write_notification(method, Some(&params)).into())
    }

    /// Calls `method` on this client and waits at most `timeout` for its answer.
    ///
    /// If the timeout passes, or the returned future is dropped first, the
    /// client is sent `rpc.cancel {id}`. If the session ends first, the call
    /// fails at once with [`CallError::SessionGone`].
    pub async fn call<P, R>(&self, method: &str, params: &P, timeout: Duration) -> Result<R, CallError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let params = serde_json::value::to_raw_value(params)
            .map_err(|e| CallError::Rpc(ErrorObject::with_message(codes::INVALID_PARAMS, e.to_string())))?;
        let raw = self.call_raw(method, Some(&params), timeout).await?;
        serde_json::from_str(raw.get()).map_err(|e| {
            CallError::Rpc(ErrorObject::with_data(
                codes::INVALID_PARAMS,
                serde_json::json!({"reason": "the client's result has an unexpected shape", "detail": e.to_string()}),
            ))
        })
    }

    /// Like [`call`](Self::call) with raw JSON params and result.
    pub async fn call_raw(
        &self,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
    ) -> Result<Box<RawValue>, CallError> {
        let id = next_call_id();
        let frame: Utf8Bytes = frame::write_request(id, method, params.map(RawValue::get)).into();
        self.expect_answer(id, timeout)?;
        let guard = PendingGuard {
            session: self,
            id,
            armed: true,
        };
        self.send_frame(frame).map_err(|_| CallError::SessionGone)?;
        guard.wait().await
    }

    /// Registers call `id` in the pending table, to time out after `timeout`
    /// (at most `limits.max_call_timeout_ms`). Multicast calls use it directly
    /// to send one shared frame to many sessions.
    pub(crate) fn expect_answer(&self, id: u64, timeout: Duration) -> Result<(), CallError> {
        if self.is_closed() {
            return Err(CallError::SessionGone);
        }
        let deadline = tokio::time::Instant::now() + timeout.min(self.shared.max_call_timeout);
        if self.shared.pending.insert(id, deadline)? {
            // The session sets its timer again (also while blocked writing to a slow client).
            self.shared.queue.raise(super::queue::signal::DEADLINE);
        }
        Ok(())
    }

    /// Waits for the answer to call `id` sent on this session.
    pub(crate) async fn wait_answer(&self, id: u64) -> Result<Box<RawValue>, CallError> {
        PendingGuard {
            session: self,
            id,
            armed: true,
        }
        .wait()
        .await
    }

    /// Tells the client that call `id` is no longer wanted (`rpc.cancel`).
    pub(crate) fn cancel(&self, id: u64) {
        let _ = self.notify(methods::CANCEL, &methods::Cancel { id: id.into() });
    }

    /// Asks the session to close with `code` after `rpc.disconnect` and the
    /// frames already queued.
    pub fn disconnect(&self, code: u16, reason: &str) {
        let reason = truncate_reason(reason);
        let params = methods::Disconnect {
            code,
            reason: reason.clone(),
            reconnect: switchboard_protocol::codes::close_class(code)
                != switchboard_protocol::codes::CloseClass::Terminal,
        };
        let _ = self.notify(methods::DISCONNECT, &params);
        self.shared.queue.close(CloseRequest {
            code,
            reason,
            flush_first: true,
        });
    }

    /// Takes one in-flight slot for a client request, if one is free.
    pub(crate) fn try_begin_request(&self) -> bool {
        let s = &self.shared;
        let mut n = s.in_flight.load(Ordering::Relaxed);
        loop {
            if n >= s.max_in_flight {
                return false;
            }
            match s
                .in_flight
                .compare_exchange_weak(n, n + 1, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(cur) => n = cur,
            }
        }
    }

    pub(crate) fn end_request(&self) {
        self.shared.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Close reasons must fit in a close frame (123 bytes).
pub(crate) fn truncate_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// Removes a pending call whose waiting future is dropped before it ended,
/// and tells the client `rpc.cancel`.
struct PendingGuard<'a> {
    session: &'a SessionHandle,
    id: u64,
    armed: bool,
}

impl PendingGuard<'_> {
    async fn wait(mut self) -> Result<Box<RawValue>, CallError> {
        let pending = &self.session.shared.pending;
        let outcome = match std::future::poll_fn(|cx| pending.poll_answer(self.id, cx)).await {
            Outcome::Answered(answer) => answer.map_err(CallError::Rpc),
            // The session told the client to stop when it timed the call out.
            Outcome::TimedOut => Err(CallError::Timeout),
            Outcome::Gone => Err(CallError::SessionGone),
        };
        self.armed = false;
        crate::metrics::hot().calls[outcome_index(&outcome)].increment(1);
        outcome
    }
}

fn outcome_index(outcome: &Result<Box<RawValue>, CallError>) -> usize {
    match outcome {
        Ok(_) => 0,
        Err(CallError::Rpc(_)) => 1,
        Err(CallError::Timeout) => 2,
        Err(CallError::SessionGone) => 3,
        Err(_) => 4,
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        // Still waiting: the client is told to stop (an answer that came
        // meanwhile is dropped, and needs no cancel).
        if self.armed && self.session.shared.pending.remove(self.id) {
            self.session.cancel(self.id);
        }
    }
}
