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
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchboard_protocol::{ErrorObject, codes};

use crate::error::CallError;
use crate::hub::Hub;
use crate::rpc::caller::Caller;
use crate::rpc::dispatch::{IdText, InFlight, Origin, write_answer};
use crate::session::{ClientCall, ClientCallOf, SessionHandle};

/// A call to a direct method: its params and who made it, borrowed for the
/// length of the call.
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
    origin: &'a Origin<'a>,
    hub: &'a Hub,
}

impl<'a> Request<'a> {
    pub(crate) fn new(params: Option<&'a RawValue>, origin: &'a Origin<'a>, hub: &'a Hub) -> Self {
        Self { params, origin, hub }
    }

    /// The params parsed as `T` (absent params parse as `null`). On failure
    /// the error is `-32602` with serde's `reason` in its `data`: return it
    /// with `?`.
    pub fn params<T: Deserialize<'a>>(&self) -> Result<T, ErrorObject> {
        let text = self.params.map_or("null", RawValue::get);
        serde_json::from_str(text)
            .map_err(|e| ErrorObject::with_data(codes::INVALID_PARAMS, serde_json::json!({ "reason": e.to_string() })))
    }

    /// The params as they came, unparsed.
    pub fn raw_params(&self) -> Option<&'a RawValue> {
        self.params
    }

    /// The caller's user id.
    pub fn user(&self) -> &str {
        self.origin.user
    }

    /// The caller's session; `None` for calls over HTTP (`POST /rpc`).
    pub fn session(&self) -> Option<&SessionHandle> {
        self.origin.session
    }

    /// The claims of the caller's token (`None` in dev mode).
    pub fn claims(&self) -> Option<Arc<serde_json::Value>> {
        self.origin.claims()
    }

    /// The hub, to push to or call any target.
    pub fn hub(&self) -> &Hub {
        self.hub
    }

    /// Calls `method` on the caller's own client: the request frame is sent
    /// now, written from `params` as they are, and the returned future of
    /// the client's answer borrows nothing of this request. So an
    /// asynchronous method's first step can start the call and its future
    /// keep only the call. Over HTTP, where there is no client to call, the
    /// future fails with [`CallError::SessionGone`]. Dropping it before the
    /// answer tells the client `rpc.cancel`.
    pub fn call_client_raw(&self, method: &str, params: Option<&RawValue>, timeout: Duration) -> ClientCall {
        match self.origin.session {
            Some(session) => session.start_call_raw(method, params, timeout),
            None => ClientCall::failed(CallError::SessionGone),
        }
    }

    /// Like [`call_client_raw`](Self::call_client_raw) with typed params
    /// and result.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_server::{Config, Gateway};
    ///
    /// # fn build() -> Result<(), switchboard_server::Error> {
    /// let gateway = Gateway::builder(Config::default())
    ///     .method_async("delete", |req| {
    ///         let (name,): (&str,) = req.params()?;
    ///         // Sent now, from the borrowed name; the future keeps only the call.
    ///         let confirmed = req.call_client::<_, bool>("ui.confirm", &[name], Duration::from_secs(5));
    ///         Ok(async move { Ok(confirmed.await.unwrap_or(false)) })
    ///     })?
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn call_client<P, R>(&self, method: &str, params: &P, timeout: Duration) -> ClientCallOf<R>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        ClientCallOf::new(match crate::session::encode_params(params) {
            Ok(params) => self.call_client_raw(method, Some(&params), timeout),
            Err(error) => ClientCall::failed(error),
        })
    }

    /// The caller as an owned [`Caller`], to keep beyond the call (for
    /// example in a task that calls the client back later).
    pub fn caller(&self) -> Caller {
        Caller::new(
            self.origin.session.cloned(),
            self.origin.user.clone(),
            self.origin.claims.clone(),
            self.hub.clone(),
        )
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
pub(crate) type AsyncHandler = Box<dyn Fn(Request<'_>, Owes) -> Result<Later, ErrorObject> + Send + Sync>;

/// The answer an asynchronous direct method owes its client: what its
/// future needs to write it, and the session's in-flight slot it holds
/// until then.
pub(crate) struct Owes {
    pub(crate) id: Option<IdText>,
    pub(crate) max: usize,
    pub(crate) method: Arc<str>,
    pub(crate) slot: Option<InFlight>,
}

impl Owes {
    /// The answer frame for how the method's future ended.
    fn answer<R: Serialize>(self, ended: std::thread::Result<Result<R, ErrorObject>>) -> Option<String> {
        let Self { id, max, method, slot } = self;
        drop(slot);
        let answered = ended.unwrap_or_else(|_| {
            tracing::error!(method = &*method, "method handler panicked");
            Err(ErrorObject::new(codes::INTERNAL_ERROR))
        });
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
    R: Serialize,
    F: Fn(Request<'_>) -> Result<Fut, ErrorObject> + Send + Sync + 'static,
    Fut: Future<Output = Result<R, ErrorObject>> + Send + 'static,
{
    Handler::Async(Box::new(move |request, owes| {
        let future = handler(request)?;
        Ok(async move { owes.answer(AssertUnwindSafe(future).catch_unwind().await) }.boxed())
    }))
}
