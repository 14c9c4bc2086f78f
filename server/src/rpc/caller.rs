//! [`Caller`]: what a method handler knows about who called it.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::error::CallError;
use crate::hub::Hub;
use crate::session::{SessionHandle, SessionId};

/// The caller of a method, found in the handler's `Extensions`.
///
/// ```
/// use std::time::Duration;
/// use jsonrpsee::RpcModule;
/// use switchboard_server::Caller;
///
/// let mut module = RpcModule::new(());
/// module
///     .register_async_method("confirm", |_params, _ctx, ext| async move {
///         let caller = ext.get::<Caller>().expect("set by the gateway").clone();
///         // Ask the caller's own client before answering.
///         let ok: bool = caller
///             .call("ui.confirm", &["Delete?"], Duration::from_secs(5))
///             .await
///             .unwrap_or(false);
///         ok
///     })
///     .unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Caller {
    session: Option<SessionHandle>,
    user: Arc<str>,
    claims: Option<Arc<serde_json::Value>>,
    hub: Hub,
}

impl Caller {
    pub(crate) fn new(
        session: Option<SessionHandle>,
        user: Arc<str>,
        claims: Option<Arc<serde_json::Value>>,
        hub: Hub,
    ) -> Self {
        Self {
            session,
            user,
            claims,
            hub,
        }
    }

    /// The caller's session; `None` for calls over HTTP (`POST /rpc`).
    pub fn session(&self) -> Option<&SessionHandle> {
        self.session.as_ref()
    }

    /// The caller's session id; `None` over HTTP.
    pub fn session_id(&self) -> Option<&SessionId> {
        self.session.as_ref().map(SessionHandle::id)
    }

    /// The caller's user id.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The claims of the caller's token (`None` in dev mode and over HTTP in dev mode).
    pub fn claims(&self) -> Option<Arc<serde_json::Value>> {
        self.claims
            .clone()
            .or_else(|| self.session.as_ref().and_then(SessionHandle::claims))
    }

    /// The hub, to push to or call any target.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Calls `method` back on the caller's own session.
    ///
    /// Fails with [`CallError::SessionGone`] over HTTP, where there is no session to call.
    pub async fn call<P, R>(&self, method: &str, params: &P, timeout: Duration) -> Result<R, CallError>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        match &self.session {
            Some(session) => session.call(method, params, timeout).await,
            None => Err(CallError::SessionGone),
        }
    }

    /// Like [`call`](Self::call) with raw JSON params and result: nothing is
    /// parsed or serialised on the way (the params must be an array or an object).
    pub async fn call_raw(
        &self,
        method: &str,
        params: &RawValue,
        timeout: Duration,
    ) -> Result<Box<RawValue>, CallError> {
        match &self.session {
            Some(session) => session.call_raw(method, Some(params), timeout).await,
            None => Err(CallError::SessionGone),
        }
    }
}
