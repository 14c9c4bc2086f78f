//! [`SessionHandle`]: what the rest of the gateway holds of a session.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use switchboard_protocol::contract::{ClientMethod, Push};
use switchboard_protocol::{ErrorObject, codes, frame, methods};

use super::pending::{Outcome, PROGRESS_QUEUE, PendingCalls, ProgressSink, next_call_id};
use super::queue::{CloseRequest, OutboundQueue, SendError};
use crate::error::CallError;
use crate::ws::Outgoing;

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
    /// The client's requests still running, for `rpc.cancel`.
    pub(crate) requests: super::requests::Requests,
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
    /// A session whose messages of `deflate` bytes or more are deflated
    /// (`None`: it did not negotiate compression).
    pub(crate) fn new(id: SessionId, user: Arc<str>, limits: &crate::config::Limits, deflate: Option<usize>) -> Self {
        Self {
            shared: Arc::new(Shared {
                id,
                user,
                queue: OutboundQueue::new(limits.max_queue_bytes, deflate),
                pending: PendingCalls::new(limits.max_pending_calls),
                requests: super::requests::Requests::default(),
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

    /// Enqueues an already serialised frame: a `String`, a
    /// [`Utf8Bytes`](crate::Utf8Bytes) or an [`Outgoing`]. Cloning a
    /// `Utf8Bytes` shares its bytes, so one frame can go to many sessions;
    /// an [`Outgoing::shared`] message also shares its compressed form among
    /// the sessions that negotiated compression.
    pub fn send_frame(&self, frame: impl Into<Outgoing>) -> Result<(), SendError> {
        self.shared.queue.push(&frame.into())
    }

    /// Sends a JSON-RPC notification to this client.
    pub fn notify<P: Serialize>(&self, method: &str, params: &P) -> Result<(), SendError> {
        let params = serde_json::to_string(params).map_err(|_| SendError::Closed)?;
        self.send_frame(frame::write_notification(method, Some(&params)))
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
        let params = encode_params(params)?;
        decode_result(&self.call_raw(method, params.as_deref(), timeout).await?)
    }

    /// Calls the client method `M` on this client, as [`call`](Self::call)
    /// does, with `M`'s params and result types.
    pub async fn call_method<M: ClientMethod>(
        &self,
        params: &M::Params,
        timeout: Duration,
    ) -> Result<M::Result, CallError> {
        self.call(M::NAME, params, timeout).await
    }

    /// Sends the notification `P` to this client, with `P`'s params.
    pub fn push<P: Push>(&self, params: &P::Params) -> Result<(), SendError> {
        self.notify(P::NAME, params)
    }

    /// Like [`call`](Self::call) with raw JSON params and result.
    pub async fn call_raw(
        &self,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
    ) -> Result<Box<RawValue>, CallError> {
        self.start_call_raw(method, params, timeout).await
    }

    /// Sends the call now and returns its answer as a future that borrows
    /// nothing: the request frame is written from `params` as they are, so
    /// an asynchronous method can start a call to its client from the
    /// request it was given and keep only the call. Dropping the future
    /// before the answer tells the client `rpc.cancel`, as with
    /// [`call`](Self::call).
    pub fn start_call_raw(&self, method: &str, params: Option<&RawValue>, timeout: Duration) -> ClientCall {
        self.start_call(method, params, timeout, None)
    }

    /// Like [`start_call_raw`](Self::start_call_raw), and the progress the
    /// client reports on the call (`rpc.progress`) comes on the returned
    /// [`ProgressReports`] as it arrives, until the answer: at most 256
    /// reports wait to be read, and past that they are dropped (the answer
    /// never is).
    pub fn start_call_with_progress(
        &self,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
    ) -> (ClientCall, ProgressReports) {
        let (tx, rx) = tokio::sync::mpsc::channel(PROGRESS_QUEUE);
        let call = self.start_call(method, params, timeout, Some(ProgressSink(tx)));
        (call, ProgressReports(rx))
    }

    fn start_call(
        &self,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
        progress: Option<ProgressSink>,
    ) -> ClientCall {
        let id = next_call_id();
        if let Err(error) = self.expect_answer(id, timeout, progress) {
            return ClientCall::failed(error);
        }
        let frame = frame::write_request(id, method, params.map(RawValue::get));
        let call = ClientCall(State::Waiting(Waiting {
            session: self.clone(),
            id,
            started: Some(Instant::now()),
        }));
        if self.send_frame(frame).is_err() {
            // The session is closing: its table is (or is about to be) closed too.
            return ClientCall::failed(CallError::SessionGone);
        }
        call
    }

    /// Registers call `id` in the pending table, to time out after `timeout`
    /// (at most `limits.max_call_timeout_ms`), its progress reports going to
    /// `progress`. Multicast calls use it directly to send one shared frame
    /// to many sessions.
    pub(crate) fn expect_answer(
        &self,
        id: u64,
        timeout: Duration,
        progress: Option<ProgressSink>,
    ) -> Result<(), CallError> {
        if self.is_closed() {
            return Err(CallError::SessionGone);
        }
        let deadline = tokio::time::Instant::now() + timeout.min(self.shared.max_call_timeout);
        if self.shared.pending.insert(id, deadline, progress)? {
            // The session sets its timer again (also while blocked writing to a slow client).
            self.shared.queue.deadline_moved();
        }
        Ok(())
    }

    /// The answer to call `id` sent on this session, as a future.
    pub(crate) fn answer_to(&self, id: u64) -> ClientCall {
        ClientCall(State::Waiting(Waiting {
            session: self.clone(),
            id,
            started: None,
        }))
    }

    /// Tells the client that call `id` is no longer wanted (`rpc.cancel`).
    pub(crate) fn cancel(&self, id: u64) {
        crate::metrics::hot().client_calls_cancelled.increment(1);
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

/// A call's params as JSON.
pub(crate) fn encode_params<P: Serialize + ?Sized>(params: &P) -> Result<Option<Box<RawValue>>, CallError> {
    switchboard_protocol::contract::encode_params(params)
        .map_err(|e| CallError::Rpc(ErrorObject::with_message(codes::INVALID_PARAMS, e.to_string())))
}

/// A client's result as `R`.
pub(crate) fn decode_result<R: DeserializeOwned>(raw: &RawValue) -> Result<R, CallError> {
    serde_json::from_str(raw.get()).map_err(|e| {
        CallError::Rpc(ErrorObject::with_data(
            codes::INVALID_PARAMS,
            serde_json::json!({"reason": "the client's result has an unexpected shape", "detail": e.to_string()}),
        ))
    })
}

/// The progress a client reports on one call to it (`rpc.progress`), in
/// the order it came: see [`SessionHandle::start_call_with_progress`].
#[derive(Debug)]
pub struct ProgressReports(tokio::sync::mpsc::Receiver<(SessionHandle, Box<RawValue>)>);

impl ProgressReports {
    /// Reports for a call that cannot report (no session to call).
    pub(crate) fn none() -> Self {
        Self(tokio::sync::mpsc::channel(1).1)
    }

    /// The next report; `None` once the call has its answer (or timed out,
    /// or was given up) and every report before it was read.
    pub async fn recv(&mut self) -> Option<Box<RawValue>> {
        self.0.recv().await.map(|(_, progress)| progress)
    }
}

/// A call to a client that has been sent: a future of the client's answer
/// ([`SessionHandle::start_call_raw`]). It fails with [`CallError::Timeout`]
/// when the call's timeout passes and with [`CallError::SessionGone`] when
/// the session ends first; dropped before either, it tells the client
/// `rpc.cancel`.
#[must_use = "the call is cancelled when this is dropped"]
pub struct ClientCall(State);

enum State {
    Waiting(Waiting),
    /// The call could not be sent.
    Failed(CallError),
    Done,
}

/// What a call still waiting for its answer holds.
struct Waiting {
    session: SessionHandle,
    id: u64,
    /// When a call to this one session was sent, for its latency; `None`
    /// for a session's share of a multicast call, timed as a whole.
    started: Option<Instant>,
}

impl ClientCall {
    pub(crate) fn failed(error: CallError) -> Self {
        Self(State::Failed(error))
    }
}

impl fmt::Debug for ClientCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCall")
            .field(
                "id",
                &match &self.0 {
                    State::Waiting(waiting) => Some(waiting.id),
                    _ => None,
                },
            )
            .finish()
    }
}

impl Future for ClientCall {
    type Output = Result<Box<RawValue>, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let State::Waiting(waiting) = &self.0 else {
            return match std::mem::replace(&mut self.0, State::Done) {
                State::Failed(error) => Poll::Ready(Err(error)),
                _ => panic!("a ClientCall polled after it was done"),
            };
        };
        let outcome = match std::task::ready!(waiting.session.shared.pending.poll_answer(waiting.id, cx)) {
            Outcome::Answered(answer) => answer.map_err(CallError::Rpc),
            // The session told the client to stop when it timed the call out.
            Outcome::TimedOut => Err(CallError::Timeout),
            Outcome::Gone => Err(CallError::SessionGone),
        };
        let hot = crate::metrics::hot();
        if let Some(started) = waiting.started {
            hot.client_call_duration[crate::metrics::SESSION_TARGET].record(started.elapsed());
        }
        // Answered: nothing left to cancel when it is dropped.
        self.0 = State::Done;
        hot.calls[outcome_index(&outcome)].increment(1);
        Poll::Ready(outcome)
    }
}

/// A call to a client whose result is parsed as `R`
/// ([`Request::call_client`](crate::Request::call_client)); otherwise a
/// [`ClientCall`].
#[must_use = "the call is cancelled when this is dropped"]
pub struct ClientCallOf<R> {
    call: ClientCall,
    result: std::marker::PhantomData<fn() -> R>,
}

impl<R> ClientCallOf<R> {
    pub(crate) fn new(call: ClientCall) -> Self {
        Self {
            call,
            result: std::marker::PhantomData,
        }
    }
}

impl<R> fmt::Debug for ClientCallOf<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.call, f)
    }
}

impl<R: DeserializeOwned> Future for ClientCallOf<R> {
    type Output = Result<R, CallError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.call).poll(cx).map(|answer| decode_result(&answer?))
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

impl Drop for ClientCall {
    fn drop(&mut self) {
        // Still waiting: the client is told to stop (an answer that came
        // meanwhile is dropped, and needs no cancel).
        if let State::Waiting(Waiting { session, id, .. }) = &self.0
            && session.shared.pending.remove(*id)
        {
            session.cancel(*id);
        }
    }
}
