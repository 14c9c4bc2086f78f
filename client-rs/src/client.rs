//! [`Client`]: the handle applications use.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use switchboard_protocol::contract::{ClientMethod, Method, Push};
use switchboard_protocol::frame;
use switchboard_protocol::methods::{
    self, HistoryParams, HistoryResult, PublishParams, PublishResult, StreamPosition, SubscribeResult, TopicRequest,
    Welcome,
};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::batch::Batch;
use crate::buffer::Buffer;
use crate::calls::{ProgressCall, send};
use crate::config::{Config, without_query};
use crate::error::{Error, RpcError};
use crate::handler::IncomingCall;
use crate::notifications::Notifications;
use crate::shared::{Pending, Shared};
use crate::state::{ConnectionState, StateStream};
use crate::stats::Stats;
use crate::subscription::{Subscription, claim_topic, unclaim_topic};

/// A switchboard client (or a client of any JSON-RPC 2.0 WebSocket server).
///
/// Cheap to clone: every clone drives the same connection. The connection
/// ends when [`close`](Self::close) is called, or when every clone is dropped
/// (clones captured by handlers count too, so call `close` when you are done).
///
/// ```no_run
/// # async fn run() -> Result<(), switchboard_client::Error> {
/// use switchboard_client::Client;
///
/// let client = Client::builder("ws://127.0.0.1:8080/ws?user=alice").build()?;
/// client.handle("ui.confirm", |(question,): (String,)| async move {
///     Ok(question.ends_with('?'))
/// });
/// client.connect().await?;
/// let echoed: Vec<i32> = client.call("echo", [1, 2, 3]).await?;
/// assert_eq!(echoed, [1, 2, 3]);
/// client.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    _owner: Arc<CloseOnDrop>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &without_query(&self.shared.config.url))
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// Closes the client when the last handle goes.
struct CloseOnDrop(CancellationToken);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Serialises params; `()` and other values that serialise as `null` mean "no params".
fn to_params<P: Serialize>(params: &P) -> Result<Option<Box<RawValue>>, Error> {
    switchboard_protocol::contract::encode_params(params).map_err(Error::Params)
}

/// rustls needs a process-wide crypto provider before the first `wss://`
/// connection, or it panics; install ring's once (unless the application
/// installed one already).
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Client {
    pub(crate) fn from_config(config: Config) -> Self {
        let shared = Arc::new(Shared::new(config));
        Self {
            _owner: Arc::new(CloseOnDrop(shared.shutdown.clone())),
            shared,
        }
    }

    /// Connects, and from then on keeps the client connected by the
    /// reconnect policy. Returns once the first connection is open (for a
    /// switchboard server: once its `rpc.welcome` arrived), or with the
    /// error of that first attempt, which closes the client.
    ///
    /// Register handlers before connecting, so that no call from the server
    /// finds none. Calling `connect` again waits until the client is connected.
    pub async fn connect(&self) -> Result<(), Error> {
        install_crypto_provider();
        let (tx, rx) = oneshot::channel();
        let started = {
            let mut task = self.shared.task.lock();
            let started = self.shared.started.swap(true, Ordering::AcqRel);
            if !started {
                if let Some(closed) = self.closed_error() {
                    return Err(closed);
                }
                let shared = self.shared.clone();
                *task = Some(tokio::spawn(crate::connection::run(shared, tx)));
            }
            started
        };
        if !started {
            return rx.await.unwrap_or(Err(Error::Disconnected));
        }
        let mut states = self.states();
        while let Some(state) = states.next().await {
            if state == ConnectionState::Connected {
                return Ok(());
            }
        }
        Err(self.closed_error().unwrap_or(Error::Disconnected))
    }

    fn closed_error(&self) -> Option<Error> {
        let link = self.shared.link.lock();
        link.closed.as_ref().map(|_| link.no_connection())
    }

    /// Calls `method` with `params` and decodes the result as `R`, within the
    /// default call timeout ([`ClientBuilder::call_timeout`](crate::ClientBuilder::call_timeout)).
    ///
    /// `params` is anything that serialises to a JSON array or object (a
    /// tuple, an array, a struct, `serde_json::json!(…)`); `()` sends none.
    /// Dropping the returned future gives up on the call, and the server is
    /// sent `rpc.cancel {id}`. Without a connection the call fails at once
    /// with [`Error::Disconnected`]; so does a call waiting when the
    /// connection drops.
    pub async fn call<P: Serialize, R: DeserializeOwned>(&self, method: &str, params: P) -> Result<R, Error> {
        self.call_with_timeout(method, params, self.shared.config.call_timeout)
            .await
    }

    /// Like [`call`](Self::call) with its own timeout. When it passes, the
    /// call fails with [`Error::Timeout`] and the server is sent `rpc.cancel`.
    pub async fn call_with_timeout<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: P,
        timeout: Duration,
    ) -> Result<R, Error> {
        let params = to_params(&params)?;
        let raw = self.shared.request(method, params.as_deref(), timeout).await?;
        serde_json::from_str(raw.get()).map_err(Error::Decode)
    }

    /// Calls the method `M` described by the application's contract (see
    /// [`contract`](switchboard_protocol::contract)), within the default
    /// call timeout: `M` gives its name and the types of its params and
    /// result, so a call whose types differ from the server's does not
    /// compile.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), switchboard_client::Error> {
    /// use switchboard_client::Client;
    /// use switchboard_client::protocol::contract::Method;
    ///
    /// struct Add;
    /// impl Method for Add {
    ///     const NAME: &'static str = "add";
    ///     type Params = (i64, i64);
    ///     type Result = i64;
    /// }
    ///
    /// let client = Client::builder("ws://127.0.0.1:8080/ws?user=ada").build()?;
    /// client.connect().await?;
    /// let sum: i64 = client.call_method::<Add>((1, 2)).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// ```compile_fail
    /// # async fn run(client: switchboard_client::Client) -> Result<(), switchboard_client::Error> {
    /// # use switchboard_client::protocol::contract::Method;
    /// # struct Add;
    /// # impl Method for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Params = (i64, i64);
    /// #     type Result = i64;
    /// # }
    /// // The params are two numbers, not a string.
    /// let sum = client.call_method::<Add>(("1 + 2".to_owned(),)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn call_method<M: Method>(&self, params: M::Params) -> Result<M::Result, Error> {
        self.call(M::NAME, params).await
    }

    /// Like [`call_method`](Self::call_method) with its own timeout.
    pub async fn call_method_with_timeout<M: Method>(
        &self,
        params: M::Params,
        timeout: Duration,
    ) -> Result<M::Result, Error> {
        self.call_with_timeout(M::NAME, params, timeout).await
    }

    /// Like [`call_with_timeout`](Self::call_with_timeout) with raw JSON params and result.
    pub async fn call_raw(
        &self,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
    ) -> Result<Box<RawValue>, Error> {
        self.shared.request(method, params, timeout).await
    }

    /// Calls `method` with `params` and returns the call under way, to read
    /// the progress the server reports for it (`rpc.progress`) before its
    /// result; within the default call timeout. Returns once the call is sent.
    ///
    /// The [`ProgressCall`] is a [`Stream`](futures_util::Stream) of the
    /// reports, which ends when the answer arrives; [`ProgressCall::result`]
    /// then gives the result, decoded as `R` (use `Box<RawValue>` for the raw
    /// JSON). No report is yielded after the answer. In a batch,
    /// [`Batch::call_with_progress`] does the same. Progress of calls made
    /// any other way ([`call`](Self::call), [`Batch::call`]) is dropped on
    /// arrival.
    ///
    /// ```no_run
    /// # async fn run(client: switchboard_client::Client) -> Result<(), switchboard_client::Error> {
    /// use futures_util::StreamExt;
    ///
    /// let mut call = client.call_with_progress::<_, u64>("demo.sleep", serde_json::json!({"ms": 350})).await?;
    /// while let Some(report) = call.next().await {
    ///     println!("progress: {}", report?);
    /// }
    /// let slept = call.result().await?;
    /// assert_eq!(slept, 350);
    /// # Ok(()) }
    /// ```
    pub async fn call_with_progress<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: P,
    ) -> Result<ProgressCall<R>, Error> {
        self.call_with_progress_timeout(method, params, self.shared.config.call_timeout)
            .await
    }

    /// Like [`call_with_progress`](Self::call_with_progress) with its own
    /// timeout, counted from this call (sending included). When it passes,
    /// the progress stream ends, the result is [`Error::Timeout`] and the
    /// server is sent `rpc.cancel`.
    pub async fn call_with_progress_timeout<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: P,
        timeout: Duration,
    ) -> Result<ProgressCall<R>, Error> {
        let params = to_params(&params)?;
        ProgressCall::start(self.shared.clone(), method, params.as_deref(), timeout).await
    }

    /// Sends the notification `method(params)`: no answer comes back.
    pub async fn notify<P: Serialize>(&self, method: &str, params: P) -> Result<(), Error> {
        let params = to_params(&params)?;
        let frame = frame::write_notification(method, params.as_deref().map(RawValue::get));
        let conn = {
            let link = self.shared.link.lock();
            link.conn.clone().ok_or_else(|| link.no_connection())?
        };
        let timeout = self.shared.config.call_timeout;
        send(&conn, frame, Instant::now() + timeout, timeout).await
    }

    /// Starts a batch: several calls and notifications in one frame.
    pub fn batch(&self) -> Batch {
        Batch::new(self.shared.clone())
    }

    /// The notifications of `method`, with their params decoded as `T`.
    ///
    /// Notifications that arrived before this call (since the client was
    /// built) are delivered first: a reader made late misses nothing that
    /// still fits its buffer. Another call for the same method takes the
    /// stream over (the older stream ends).
    pub fn on_notification<T: DeserializeOwned>(&self, method: impl Into<String>) -> Notifications<T> {
        let method = method.into();
        let buffer = Arc::new(Buffer::new(self.shared.config.buffer));
        let mut pushes = self.shared.pushes.lock();
        if let Some(old) = pushes.methods.insert(method.clone(), buffer.clone()) {
            old.hand_over(&buffer);
        }
        drop(pushes);
        if self.is_closed() {
            buffer.close();
        }
        Notifications::new(method, buffer)
    }

    /// The pushes of the notification `P` described by the application's
    /// contract, with their params decoded as `P::Params`; as
    /// [`on_notification`](Self::on_notification).
    pub fn on_push<P: Push>(&self) -> Notifications<P::Params> {
        self.on_notification(P::NAME)
    }

    /// Subscribes to `topic` and returns the stream of its publications.
    ///
    /// The subscription is renewed on every reconnect, from the position of
    /// the last publication received, and each renewal is reported on the
    /// stream as a [`SubscriptionEvent::Resubscribed`](crate::SubscriptionEvent::Resubscribed)
    /// saying whether the missed publications were recovered. Subscribing
    /// to a topic again takes its stream over (the older stream ends).
    pub async fn subscribe(&self, topic: impl Into<String>) -> Result<Subscription, Error> {
        let topic = topic.into();
        let claim = claim_topic(&self.shared, &topic);
        let params = methods::SubscribeParams {
            topics: vec![TopicRequest {
                topic: topic.clone(),
                since: claim.position.clone(),
            }],
        };
        let asked = vec![(topic.clone(), claim.position.is_some())];
        let outcome = async {
            let params = serde_json::value::to_raw_value(&params).map_err(Error::Params)?;
            let mut asked = Some(asked);
            let raw = self
                .shared
                .request_with(
                    methods::SUBSCRIBE,
                    Some(&params),
                    self.shared.config.call_timeout,
                    |reply| Pending::Subscribe {
                        topics: asked.take().unwrap_or_default(),
                        resume: false,
                        reply: Some(reply),
                    },
                )
                .await?;
            let mut result: SubscribeResult = serde_json::from_str(raw.get()).map_err(Error::Decode)?;
            result
                .topics
                .pop()
                .ok_or(Error::InvalidResponse("rpc.subscribe answered without the topic"))
        }
        .await;
        match outcome {
            Ok(result) => Ok(Subscription::new(topic, claim.buffer, &self.shared, result)),
            Err(e) => {
                unclaim_topic(&self.shared, &topic, &claim);
                claim.buffer.close();
                Err(e)
            }
        }
    }

    /// Publishes `data` on `topic` with `rpc.publish` (if the server lets
    /// clients publish). On a recoverable topic the result holds the
    /// publication's offset and epoch.
    pub async fn publish<D: Serialize>(&self, topic: &str, data: D) -> Result<PublishResult, Error> {
        let data = serde_json::to_value(data).map_err(Error::Params)?;
        let params = PublishParams {
            topic: topic.to_owned(),
            data,
        };
        self.call(methods::PUBLISH, params).await
    }

    /// Reads what a recoverable topic keeps, with `rpc.history`, oldest
    /// first: with `since`, the publications after that position (at most
    /// `limit`; ask again from the last one's offset for more); without, the
    /// most recent `limit` (`None`: 100, or the server's maximum if lower).
    /// A position the server no longer has is answered `recovered: false`
    /// with its `gap` and no publications: reload what the topic describes.
    /// A topic without history is refused with `-32602`, one the user may
    /// not read with `-32001` ([`Error::Rpc`]).
    pub async fn history(
        &self,
        topic: &str,
        since: Option<StreamPosition>,
        limit: Option<u64>,
    ) -> Result<HistoryResult, Error> {
        let params = HistoryParams {
            topic: topic.to_owned(),
            since,
            limit,
        };
        self.call(methods::HISTORY, params).await
    }

    /// Serves the server's calls of `method` with `handler`, replacing any
    /// handler the method had. Works before and after [`connect`](Self::connect),
    /// and stays registered across reconnects.
    ///
    /// Each call runs in a task of its own, so handlers run concurrently (up
    /// to [`ClientBuilder::max_handlers`](crate::ClientBuilder::max_handlers)). Params that do not decode as `P`
    /// are answered `-32602`; a handler that panics is answered `-32603`; an
    /// `rpc.cancel` from the server (its caller gave up) drops the handler's
    /// future and answers the call `-32011` (`Cancelled`) in its place, unless
    /// its answer was already sent; the end of the connection drops it too.
    /// Methods without a handler are answered `-32601`.
    ///
    /// To report progress or see the cancellation, use [`handle_with`](Self::handle_with).
    pub fn handle<P, R, F, Fut>(&self, method: impl Into<String>, handler: F)
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(P) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, RpcError>> + Send + 'static,
    {
        let handler = crate::handler::erase(handler);
        self.shared.handlers.write().insert(method.into(), handler);
    }

    /// Like [`handle`](Self::handle), with a handler that also gets the
    /// [`IncomingCall`]: to report progress to the caller
    /// ([`IncomingCall::progress`], sent as `rpc.progress` before the answer
    /// and never after it) and to see whether the server cancelled the call
    /// ([`IncomingCall::cancelled`], for work handed to other tasks).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), switchboard_client::Error> {
    /// use switchboard_client::{Client, IncomingCall, RpcError};
    ///
    /// let client = Client::builder("ws://127.0.0.1:8080/ws?user=worker").build()?;
    /// client.handle_with("files.scan", |(dir,): (String,), call: IncomingCall| async move {
    ///     let mut scanned = 0;
    ///     for _ in 0..3 {
    ///         scanned += 100; // scan a part of `dir` …
    ///         call.progress(&serde_json::json!({ "dir": dir, "scanned": scanned }));
    ///     }
    ///     Ok::<_, RpcError>(scanned)
    /// });
    /// client.connect().await?;
    /// # Ok(()) }
    /// ```
    pub fn handle_with<P, R, F, Fut>(&self, method: impl Into<String>, handler: F)
    where
        P: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(P, IncomingCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, RpcError>> + Send + 'static,
    {
        let handler = crate::handler::erase_with(handler);
        self.shared.handlers.write().insert(method.into(), handler);
    }

    /// Serves the server's calls of the client method `M` described by the
    /// application's contract, as [`handle_with`](Self::handle_with) does:
    /// the handler gets `M::Params` and must answer `M::Result`, so one whose
    /// types differ from the server's does not compile.
    ///
    /// ```no_run
    /// # fn run(client: switchboard_client::Client) {
    /// use switchboard_client::RpcError;
    /// use switchboard_client::protocol::contract::ClientMethod;
    ///
    /// struct Confirm;
    /// impl ClientMethod for Confirm {
    ///     const NAME: &'static str = "ui.confirm";
    ///     type Params = (String,);
    ///     type Result = bool;
    /// }
    ///
    /// client.handle_method::<Confirm, _, _>(|(question,), _call| async move {
    ///     Ok::<_, RpcError>(question.ends_with('?'))
    /// });
    /// # }
    /// ```
    ///
    /// ```compile_fail
    /// # fn run(client: switchboard_client::Client) {
    /// # use switchboard_client::RpcError;
    /// # use switchboard_client::protocol::contract::ClientMethod;
    /// # struct Confirm;
    /// # impl ClientMethod for Confirm {
    /// #     const NAME: &'static str = "ui.confirm";
    /// #     type Params = (String,);
    /// #     type Result = bool;
    /// # }
    /// // The server expects a bool, not a string.
    /// client.handle_method::<Confirm, _, _>(|(question,), _call| async move { Ok::<_, RpcError>(question) });
    /// # }
    /// ```
    pub fn handle_method<M, F, Fut>(&self, handler: F)
    where
        M: ClientMethod,
        F: Fn(M::Params, IncomingCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<M::Result, RpcError>> + Send + 'static,
    {
        self.handle_with(M::NAME, handler);
    }

    /// Stops serving `method`. Returns whether it had a handler.
    pub fn remove_handler(&self, method: &str) -> bool {
        self.shared.handlers.write().remove(method).is_some()
    }

    /// The connection's state changes, starting with the current state.
    pub fn states(&self) -> StateStream {
        self.shared.states.lock().watch()
    }

    /// The current state (`None` before [`connect`](Self::connect)).
    pub fn state(&self) -> Option<ConnectionState> {
        self.shared.states.lock().current()
    }

    /// What the server said in the `rpc.welcome` of the latest connection:
    /// the session id, the user and the session's limits. `None` before the
    /// first connection, and for servers that send no welcome.
    pub fn welcome(&self) -> Option<Welcome> {
        self.shared.welcome.lock().clone()
    }

    /// The personal topic (`user:{id}`) the client manages, once known.
    /// Subscribe to it to read the user's recoverable pushes.
    pub fn personal_topic(&self) -> Option<String> {
        self.shared.pushes.lock().personal.clone()
    }

    /// The client's counters.
    pub fn stats(&self) -> Stats {
        self.shared.stats.snapshot()
    }

    /// Whether the client is closed for good.
    pub fn is_closed(&self) -> bool {
        self.shared.link.lock().closed.is_some()
    }

    /// Closes the connection (with close code 1000) and the client for good:
    /// waiting calls fail with [`Error::Closed`], streams end, no reconnect.
    pub async fn close(&self) {
        self.shared.shutdown.cancel();
        let task = {
            let mut task = self.shared.task.lock();
            if !self.shared.started.swap(true, Ordering::AcqRel) {
                // Never connected: nothing runs, so close right here.
                self.shared
                    .link
                    .lock()
                    .closed
                    .get_or_insert_with(|| (None, "closed before it connected".to_owned()));
                self.shared.states.lock().end();
                return;
            }
            task.take()
        };
        match task {
            Some(task) => {
                let _ = task.await;
            }
            None => {
                // Another `close` waits for the connection task: wait for the end of the states.
                let mut states = self.states();
                while states.next().await.is_some() {}
            }
        }
    }
}
