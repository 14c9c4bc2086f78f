//! Direct methods: synchronous handlers the gateway calls itself.
//!
//! A jsonrpsee method is called through jsonrpsee's envelope: its caller
//! travels in a fresh `Extensions` map, its answer is written into a
//! `Response {jsonrpc, id, result}` through a bounded writer and then parsed
//! again to be checked, and the gateway splices the client's id into that.
//! A direct method skips all of it: it gets the params borrowed from the
//! frame and its caller borrowed from the session, and its result is
//! serialised once, straight into the answer frame after the client's id.
//! It is for handlers that answer at once; a handler that waits (on a
//! backend, a timer, a client) belongs in a jsonrpsee module
//! (`register_async_method`), which the gateway runs on the session's task.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchboard_protocol::{ErrorObject, codes};

use crate::caller::Caller;
use crate::dispatch::Origin;
use crate::hub::Hub;
use crate::session::SessionHandle;

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

/// A direct method with its result type erased: it writes its result's JSON
/// to the end of `out`.
pub(crate) type Handler = Box<dyn Fn(Request<'_>, &mut Vec<u8>) -> Result<(), ErrorObject> + Send + Sync>;

/// Wraps a typed handler.
pub(crate) fn erase<R, F>(handler: F) -> Handler
where
    R: Serialize,
    F: Fn(Request<'_>) -> Result<R, ErrorObject> + Send + Sync + 'static,
{
    Box::new(move |request, out| {
        let result = handler(request)?;
        serde_json::to_writer(out, &result).map_err(|e| {
            tracing::error!(error = %e, "a direct method's result could not be serialised");
            ErrorObject::new(codes::INTERNAL_ERROR)
        })
    })
}

/// The direct methods of a gateway, by name.
#[derive(Default)]
pub(crate) struct DirectMethods {
    by_name: HashMap<Box<str>, Handler>,
}

impl DirectMethods {
    pub(crate) fn get(&self, name: &str) -> Option<&Handler> {
        self.by_name.get(name)
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    pub(crate) fn insert(&mut self, name: &str, handler: Handler) {
        self.by_name.insert(name.into(), handler);
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(|name| &**name)
    }
}
