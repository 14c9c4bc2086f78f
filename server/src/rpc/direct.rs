//! Direct methods: synchronous handlers the gateway calls itself.
//!
//! A jsonrpsee method is called through jsonrpsee's envelope: its caller
//! travels in a fresh `Extensions` map, its answer is written into a
//! `Response {jsonrpc, id, result}` through a bounded writer and then parsed
//! again to be checked, and the gateway splices the client's id into that.
//! A direct method skips all of it: it gets the params borrowed from the
//! frame and its caller borrowed from the session, and its result is
//! serialised once, straight into the answer frame after the client's id.
//! A synchronous direct method answers at once. An asynchronous one first
//! runs as a synchronous step that may borrow the request (to parse the
//! params, refuse a bad call at once, or take what it needs) and returns a
//! future that owns what it needs; the session runs that future on its own
//! task, like any asynchronous method, and writes its result when it is
//! done.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchboard_protocol::contract::{self, Method};
use switchboard_protocol::{ErrorObject, codes};

use tokio_util::sync::CancellationToken;

use crate::metrics::Timer;
use crate::rpc::caller::Caller;
use crate::rpc::dispatch::{Cancellable, InFlight, unless_cancelled, write_answer};
use crate::rpc::progress::Progress;
use crate::session::IdText;

/// A call to a direct method: its params, borrowed from the frame, and its
/// [`Caller`] (who made it, the way back to their client, the hub), borrowed
/// from the session for the length of the call. The caller's methods are
/// the request's own (`req.user()`, `req.call(…)`); keep `req.caller().clone()`
/// to use it beyond the call.
///
/// ```
/// use switchboard_server::{Config, Gateway};
///
/// # fn build() -> Result<(), switchboard_server::Error> {
/// let gateway = Gateway::builder(Config::default())
///     .method("add", |req| {
///         let (a, b): (i64, i64) = req.params()?;
///         Ok(a + b)
///     })?
///     .method("whoami", |req| Ok(req.user().to_owned()))?
///     .build()?;
/// # Ok(()) }
/// ```
pub struct Request<'a> {
    params: Option<&'a RawValue>,
    caller: &'a Caller,
    cancel: Option<&'a Cancellable>,
}

impl<'a> Request<'a> {
    pub(crate) fn new(params: Option<&'a RawValue>, caller: &'a Caller, cancel: Option<&'a Cancellable>) -> Self {
        Self { params, caller, cancel }
    }

    /// Fires when the client cancels this call (`rpc.cancel {id}`). The
    /// gateway then drops the method's future and answers `-32011` itself;
    /// the token is for clean-up, and for work the future handed elsewhere
    /// (a spawned task, a thread) to stop. A synchronous method, a
    /// notification and a call over HTTP are never cancelled.
    ///
    /// ```
    /// use switchboard_server::{Config, Gateway};
    ///
    /// # fn build() -> Result<(), switchboard_server::Error> {
    /// let gateway = Gateway::builder(Config::default())
    ///     .method_async("report", |req| {
    ///         let cancelled = req.cancellation();
    ///         // Work on a thread of its own stops when the client gives up.
    ///         let work = tokio::task::spawn_blocking(move || {
    ///             let mut rows = 0u64;
    ///             while rows < 1_000_000 && !cancelled.is_cancelled() {
    ///                 rows += 1;
    ///             }
    ///             rows
    ///         });
    ///         Ok(async move { work.await.map_err(|_| switchboard_server::protocol::ErrorObject::new(-32603)) })
    ///     })?
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.map_or_else(CancellationToken::new, Cancellable::token)
    }

    /// Reports progress to the client before the answer (`rpc.progress`);
    /// see [`Progress`]. A synchronous method, a notification and a call
    /// over HTTP get one that reports nothing.
    pub fn progress(&self) -> Progress {
        Progress::new(self.cancel)
    }

    /// The params parsed as `T` (absent params parse as `null`). On failure
    /// the error is `-32602` with serde's `reason` in its `data`: return it
    /// with `?`.
    pub fn params<T: Deserialize<'a>>(&self) -> Result<T, ErrorObject> {
        let text = self.params.map_or("null", RawValue::get);
        serde_json::from_str(text)
            .map_err(|e| ErrorObject::with_data(codes::INVALID_PARAMS, serde_json::json!({ "reason": e.to_string() })))
    }

    /// The params parsed as a typed method's params (see
    /// [`contract::parse_params`]): absent ones parse as `null`, and `()`
    /// also takes `[]` and `{}`.
    fn typed_params<T: DeserializeOwned>(&self) -> Result<T, ErrorObject> {
        contract::parse_params(self.params.map(RawValue::get))
    }

    /// The params as they came, unparsed.
    pub fn raw_params(&self) -> Option<&'a RawValue> {
        self.params
    }

    /// Who made the call: clone it to keep it beyond the call (for example
    /// in a task that calls the client back later).
    pub fn caller(&self) -> &'a Caller {
        self.caller
    }
}

impl std::ops::Deref for Request<'_> {
    type Target = Caller;

    fn deref(&self) -> &Caller {
        self.caller
    }
}

/// A synchronous direct method with its result type erased: it writes its
/// result's JSON to the end of `out`.
pub(crate) type SyncHandler = Box<dyn Fn(Request<'_>, &mut Vec<u8>) -> Result<(), ErrorObject> + Send + Sync>;

/// What an asynchronous direct method's future yields: the frame that
/// answers the client (`None` for a notification).
pub(crate) type Later = BoxFuture<'static, Option<String>>;

/// An asynchronous direct method with its result type erased: its first
/// step runs with the request, and the future it returns writes the answer
/// it [`Owes`].
pub(crate) type AsyncHandler =
    Box<dyn Fn(Option<&RawValue>, &Caller, Owes) -> Result<Later, ErrorObject> + Send + Sync>;

/// The answer an asynchronous direct method owes its client: what its
/// future needs to write it, the session's in-flight slot it holds until
/// then, and its entry among the session's running requests (for
/// `rpc.cancel`), and the timer of its latency, which stops when the
/// answer is written.
pub(crate) struct Owes {
    pub(crate) id: Option<IdText>,
    pub(crate) max: usize,
    pub(crate) method: Arc<str>,
    pub(crate) slot: Option<InFlight>,
    pub(crate) cancel: Option<Cancellable>,
    pub(crate) timer: Timer,
}

impl Owes {
    /// Runs the method's future, unless its request is cancelled first, and
    /// writes the answer frame for how it ended.
    async fn run<R: Serialize>(mut self, future: impl Future<Output = Result<R, ErrorObject>>) -> Option<String> {
        let ended = unless_cancelled(self.cancel.as_mut(), AssertUnwindSafe(future).catch_unwind()).await;
        let Self {
            id,
            max,
            method,
            slot,
            cancel,
            timer: _timer,
        } = self;
        drop(slot);
        let answered = match ended {
            Some(Ok(answered)) => answered,
            Some(Err(_)) => {
                tracing::error!(method = &*method, "method handler panicked");
                Err(ErrorObject::new(codes::INTERNAL_ERROR))
            }
            // Cancelled: the future was dropped, and the answer says so.
            None => return cancel.as_ref().map(Cancellable::answer),
        };
        let id = id?;
        Some(write_answer(id.as_str(), max, 64, |out| {
            serialise_into(out, &answered?)
        }))
    }
}

/// A direct method.
pub(crate) enum Handler {
    /// Answers at once.
    Sync(SyncHandler),
    /// Answers when its future is done.
    Async(AsyncHandler),
}

fn serialise_into<R: Serialize>(out: &mut Vec<u8>, result: &R) -> Result<(), ErrorObject> {
    serde_json::to_writer(out, result).map_err(|e| {
        tracing::error!(error = %e, "a direct method's result could not be serialised");
        ErrorObject::new(codes::INTERNAL_ERROR)
    })
}

/// Wraps a typed synchronous handler.
pub(crate) fn erase<R, F>(handler: F) -> Handler
where
    R: Serialize,
    F: Fn(Request<'_>) -> Result<R, ErrorObject> + Send + Sync + 'static,
{
    Handler::Sync(Box::new(move |request, out| serialise_into(out, &handler(request)?)))
}

/// Wraps a typed asynchronous handler: one boxed future, which writes the
/// answer frame itself.
pub(crate) fn erase_async<R, F, Fut>(handler: F) -> Handler
where
    R: Serialize + 'static,
    F: Fn(Request<'_>) -> Result<Fut, ErrorObject> + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ErrorObject>> + Send + 'static,
{
    Handler::Async(Box::new(move |params, caller, owes| {
        // The request borrows the params, the caller and the entry for `rpc.cancel` for the first step only.
        let future = handler(Request::new(params, caller, owes.cancel.as_ref()))?;
        Ok(owes.run(future).boxed())
    }))
}

/// Wraps a typed method's synchronous handler: it gets the params parsed
/// as the descriptor's.
pub(crate) fn erase_method<M, F>(handler: F) -> Handler
where
    M: Method,
    F: Fn(Request<'_>, M::Params) -> Result<M::Result, ErrorObject> + Send + Sync + 'static,
{
    erase(move |req| {
        let params = req.typed_params::<M::Params>()?;
        handler(req, params)
    })
}

/// Wraps a typed method's asynchronous handler, as [`erase_method`].
pub(crate) fn erase_method_async<M, F, Fut>(handler: F) -> Handler
where
    M: Method,
    F: Fn(Request<'_>, M::Params) -> Result<Fut, ErrorObject> + Send + Sync + 'static,
    Fut: Future<Output = Result<M::Result, ErrorObject>> + Send + 'static,
{
    erase_async(move |req| {
        let params = req.typed_params::<M::Params>()?;
        handler(req, params)
    })
}
