//! Handlers of server→client calls, erased to one type, and the
//! [`IncomingCall`] each one runs with.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use switchboard_protocol::{ErrorObject, codes, frame, methods};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::RpcError;

/// What a handler's future resolves to: the raw result or the error to send.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = Result<Box<RawValue>, ErrorObject>> + Send>>;

/// A registered handler: takes the raw params and the call, returns the answer's future.
pub(crate) type Handler = Arc<dyn Fn(Option<Box<RawValue>>, IncomingCall) -> HandlerFuture + Send + Sync>;

/// A call from the server while a handler serves it: report progress to the
/// caller, and see whether the caller gave up. Handlers registered with
/// [`Client::handle_with`](crate::Client::handle_with) get one.
///
/// Cheap to clone; a clone may move into a task of its own (a worker
/// thread, a spawned task) that reports for the handler.
///
/// ```no_run
/// # fn register(client: &switchboard_client::Client) {
/// use switchboard_client::{IncomingCall, RpcError};
///
/// client.handle_with("job.run", |(steps,): (u32,), call: IncomingCall| async move {
///     for step in 1..=steps {
///         tokio::time::sleep(std::time::Duration::from_millis(100)).await;
///         call.progress(&serde_json::json!({ "step": step, "of": steps }));
///     }
///     Ok::<_, RpcError>("done")
/// });
/// # }
/// ```
#[derive(Clone)]
pub struct IncomingCall {
    inner: Arc<CallState>,
}

struct CallState {
    method: String,
    /// The server's request id, as it was written.
    id: Box<RawValue>,
    /// The connection's outbound queue.
    tx: mpsc::Sender<String>,
    /// Whether the one answer has been decided. Progress is queued only
    /// while this is false, under the same lock, so none follows the answer.
    answered: Mutex<bool>,
    /// Fired by `rpc.cancel {id}` from the server.
    cancel: CancellationToken,
}

impl std::fmt::Debug for IncomingCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingCall")
            .field("method", &self.inner.method)
            .field("id", &self.inner.id.get())
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl IncomingCall {
    pub(crate) fn new(method: String, id: Box<RawValue>, tx: mpsc::Sender<String>) -> Self {
        Self {
            inner: Arc::new(CallState {
                method,
                id,
                tx,
                answered: Mutex::new(false),
                cancel: CancellationToken::new(),
            }),
        }
    }

    /// The method the server called.
    pub fn method(&self) -> &str {
        &self.inner.method
    }

    /// The server's request id, as the server wrote it.
    pub fn id(&self) -> &RawValue {
        &self.inner.id
    }

    /// Reports `progress` (any value that serialises to JSON) to the caller
    /// with `rpc.progress {id, progress}`. Returns whether the report was
    /// queued.
    ///
    /// Reports are best effort and never wait: one is dropped when the
    /// answer has already been sent (a report never follows the answer), when
    /// the call was cancelled, when the connection is gone or its outbound
    /// queue is full, or when the value does not serialise. A caller that
    /// did not ask for progress ignores it.
    pub fn progress<T: Serialize + ?Sized>(&self, progress: &T) -> bool {
        let progress = match serde_json::to_string(progress) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(error = %e, method = %self.inner.method, "a progress report could not be serialised");
                return false;
            }
        };
        let mut params = String::with_capacity(progress.len() + self.inner.id.get().len() + 20);
        params.push_str("{\"id\":");
        params.push_str(self.inner.id.get());
        params.push_str(",\"progress\":");
        params.push_str(&progress);
        params.push('}');
        let frame = frame::write_notification(methods::PROGRESS, Some(&params));
        let answered = self.inner.answered.lock();
        !*answered && !self.inner.cancel.is_cancelled() && self.inner.tx.try_send(frame).is_ok()
    }

    /// Whether the server cancelled the call (`rpc.cancel`): the caller gave up.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Completes when the server cancels the call.
    ///
    /// The handler's own future is dropped at that moment, so awaiting this
    /// inside it is rarely useful; it is meant for work the handler handed to
    /// another task or thread, which should stop too.
    pub async fn cancelled(&self) {
        self.inner.cancel.cancelled().await;
    }

    /// A token cancelled when the server cancels the call, for code that
    /// takes a [`CancellationToken`]. Cancelling it yourself does not cancel
    /// the call.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.inner.cancel.child_token()
    }

    /// The server cancelled the call.
    pub(crate) fn cancel(&self) {
        self.inner.cancel.cancel();
    }

    /// Takes the right to send the one answer: true for the first caller
    /// only. No progress report is queued after this.
    pub(crate) fn take_answer(&self) -> bool {
        let mut answered = self.inner.answered.lock();
        !std::mem::replace(&mut *answered, true)
    }

    /// Sends `frame` as the call's one answer, unless an answer was taken
    /// already. Progress queued before it goes out before it.
    pub(crate) async fn answer(&self, frame: String) {
        if self.take_answer() {
            // A closed queue means the connection is gone, and the answer with it.
            let _ = self.inner.tx.send(frame).await;
        }
    }
}

/// Wraps a typed async function as a [`Handler`]: params that do not decode
/// are answered `-32602`, a result that does not serialise `-32603`.
pub(crate) fn erase<P, R, F, Fut>(f: F) -> Handler
where
    P: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(P) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, RpcError>> + Send + 'static,
{
    erase_with(move |params: P, _call: IncomingCall| f(params))
}

/// Like [`erase`], for a function that also takes the [`IncomingCall`].
pub(crate) fn erase_with<P, R, F, Fut>(f: F) -> Handler
where
    P: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
    F: Fn(P, IncomingCall) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<R, RpcError>> + Send + 'static,
{
    let f = Arc::new(f);
    Arc::new(move |params: Option<Box<RawValue>>, call: IncomingCall| {
        let f = f.clone();
        Box::pin(async move {
            let params: P = decode_params(params.as_deref())?;
            let result = f(params, call).await?;
            serde_json::value::to_raw_value(&result).map_err(|e| {
                tracing::warn!(error = %e, "a handler's result could not be serialised");
                ErrorObject::new(codes::INTERNAL_ERROR)
            })
        })
    })
}

/// Decodes params into `P`, or answers `-32602` with the reason.
pub(crate) fn decode_params<P: DeserializeOwned>(params: Option<&RawValue>) -> Result<P, ErrorObject> {
    switchboard_protocol::contract::parse_params(params.map(RawValue::get))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).expect("valid JSON")
    }

    #[test]
    fn params_decode_leniently_when_empty() {
        let unit: Result<(), _> = decode_params(Some(&raw("[]")));
        assert!(unit.is_ok());
        let none: Option<u8> = decode_params(Some(&raw("{}"))).expect("decodes");
        assert_eq!(none, None);
        let nums: Vec<u8> = decode_params(Some(&raw("[]"))).expect("decodes");
        assert!(nums.is_empty());
        let pair: (u8, String) = decode_params(Some(&raw(r#"[1,"a"]"#))).expect("decodes");
        assert_eq!(pair, (1, "a".to_owned()));
        let bad = decode_params::<(u8,)>(Some(&raw(r#"["x"]"#))).expect_err("fails");
        assert_eq!(bad.code, codes::INVALID_PARAMS);
    }

    #[tokio::test]
    async fn a_handler_answers_typed_results_and_errors() {
        let h = erase(|(a, b): (i64, i64)| async move {
            if b == 0 {
                Err(RpcError::with_message(1, "division by zero"))
            } else {
                Ok(a / b)
            }
        });
        let (tx, _rx) = mpsc::channel(1);
        let call = IncomingCall::new("div".into(), raw("1"), tx);
        let checks = async {
            assert_eq!(h(Some(raw("[6,3]")), call.clone()).await.expect("ok").get(), "2");
            assert_eq!(h(Some(raw("[6,0]")), call.clone()).await.expect_err("err").code, 1);
            assert_eq!(h(None, call).await.expect_err("err").code, codes::INVALID_PARAMS);
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), checks)
            .await
            .expect("handlers answer in time");
    }

    #[test]
    fn progress_is_queued_until_the_answer_and_never_after() {
        let (tx, mut rx) = mpsc::channel(2);
        let call = IncomingCall::new("job".into(), raw(r#""a-1""#), tx);
        assert!(call.progress(&serde_json::json!({"step": 1})));
        assert_eq!(
            rx.try_recv().expect("queued"),
            r#"{"jsonrpc":"2.0","method":"rpc.progress","params":{"id":"a-1","progress":{"step":1}}}"#
        );
        // A full queue drops the report rather than waiting.
        assert!(call.progress(&2) && call.progress(&3));
        assert!(!call.progress(&4), "the queue is full");
        assert!(call.take_answer(), "the first answer is taken");
        assert!(!call.take_answer(), "and only once");
        while rx.try_recv().is_ok() {}
        assert!(!call.progress(&5), "answered: nothing more is queued");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_cancelled_call_reports_nothing() {
        let (tx, mut rx) = mpsc::channel(2);
        let call = IncomingCall::new("job".into(), raw("7"), tx);
        let token = call.cancellation_token();
        token.cancel();
        assert!(!call.is_cancelled(), "a child token does not cancel the call");
        call.cancel();
        assert!(call.is_cancelled() && call.cancellation_token().is_cancelled());
        assert!(!call.progress(&1));
        assert!(rx.try_recv().is_err());
    }
}
