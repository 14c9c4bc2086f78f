//! [`Caller`]: the one request context every method handler gets — who
//! called (session, user, claims), the way back to that client, and the hub.
//!
//! A direct method finds it behind its [`Request`](crate::Request) (which
//! adds the borrowed params); a jsonrpsee method finds it in its
//! `Extensions`. A session builds its `Caller` once and lends it to every
//! frame it dispatches; an HTTP request (`POST /rpc`) builds one for itself.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use switchboard_protocol::contract::ClientMethod;

use crate::error::CallError;
use crate::hub::Hub;
use crate::session::{ClientCall, ClientCallOf, ProgressReports, SessionHandle, SessionId};

/// Who called a method, and the way back to them.
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
    pub(crate) session: Option<SessionHandle>,
    pub(crate) user: Arc<str>,
    /// The claims of an HTTP request's token (a session keeps its own, which `rpc.refresh` may replace).
    claims: Option<Arc<serde_json::Value>>,
    hub: Hub,
    /// jsonrpsee's connection id for this session (0 over HTTP).
    pub(crate) conn_id: usize,
}

impl Caller {
    /// The caller of every frame a session sends.
    pub(crate) fn for_session(session: SessionHandle, hub: Hub, conn_id: usize) -> Self {
        Self {
            user: session.shared.user.clone(),
            session: Some(session),
            claims: None,
            hub,
            conn_id,
        }
    }

    /// The caller of an HTTP request, with its token's claims.
    pub(crate) fn for_http(user: Arc<str>, claims: Option<Arc<serde_json::Value>>, hub: Hub) -> Self {
        Self {
            session: None,
            user,
            claims,
            hub,
            conn_id: 0,
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

    /// The claims of the caller's token (`None` in dev mode).
    pub fn claims(&self) -> Option<Arc<serde_json::Value>> {
        self.claims
            .clone()
            .or_else(|| self.session.as_ref().and_then(SessionHandle::claims))
    }

    /// The hub, to push to or call any target.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Calls `method` on the caller's own client: the request frame is sent
    /// now, and the returned future of the client's answer borrows nothing,
    /// so an asynchronous method's first step can start the call from the
    /// params it borrows and its future keep only the call. Over HTTP, where
    /// there is no client to call, the future fails with
    /// [`CallError::SessionGone`]. Dropping it before the answer tells the
    /// client `rpc.cancel`.
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
    ///         let confirmed = req.call::<_, bool>("ui.confirm", &[name], Duration::from_secs(5));
    ///         Ok(async move { Ok(confirmed.await.unwrap_or(false)) })
    ///     })?
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn call<P, R>(&self, method: &str, params: &P, timeout: Duration) -> ClientCallOf<R>
    where
        P: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        ClientCallOf::new(match crate::session::encode_params(params) {
            Ok(params) => self.call_raw(method, params.as_deref(), timeout),
            Err(error) => ClientCall::failed(error),
        })
    }

    /// Calls the client method `M` on the caller's own client, as
    /// [`call`](Self::call) does, with `M`'s params and result types: a
    /// call whose types differ from the descriptor's does not compile.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_server::protocol::contract::{ClientMethod, Method};
    /// use switchboard_server::{Config, Gateway};
    ///
    /// struct Confirm;
    /// impl ClientMethod for Confirm {
    ///     const NAME: &'static str = "ui.confirm";
    ///     type Params = (String,);
    ///     type Result = bool;
    /// }
    /// struct Delete;
    /// impl Method for Delete {
    ///     const NAME: &'static str = "files.delete";
    ///     type Params = (String,);
    ///     type Result = bool;
    /// }
    ///
    /// # fn build() -> Result<(), switchboard_server::Error> {
    /// let gateway = Gateway::builder(Config::default())
    ///     .declare_client_method::<Confirm>()?
    ///     .serve_async::<Delete, _, _>(|req, (name,)| {
    ///         let confirmed = req.call_method::<Confirm>(&(format!("Delete {name}?"),), Duration::from_secs(30));
    ///         Ok(async move { Ok(confirmed.await.unwrap_or(false)) })
    ///     })?
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn call_method<M: ClientMethod>(&self, params: &M::Params, timeout: Duration) -> ClientCallOf<M::Result> {
        ClientCallOf::new(match crate::session::encode_params(params) {
            Ok(params) => self.call_raw(M::NAME, params.as_deref(), timeout),
            Err(error) => ClientCall::failed(error),
        })
    }

    /// Like [`call_raw`](Self::call_raw), with the progress the client
    /// reports on the call: see [`SessionHandle::start_call_with_progress`].
    /// Over HTTP the call fails with [`CallError::SessionGone`] and no
    /// progress comes.
    pub fn call_raw_with_progress(
        &self,
        method: &str,
        params: Option<&RawValue>,
        timeout: Duration,
    ) -> (ClientCall, ProgressReports) {
        match &self.session {
            Some(session) => session.start_call_with_progress(method, params, timeout),
            None => (ClientCall::failed(CallError::SessionGone), ProgressReports::none()),
        }
    }

    /// Like [`call`](Self::call) with raw JSON params (an array or an object,
    /// written into the request as they are) and the raw result.
    pub fn call_raw(&self, method: &str, params: Option<&RawValue>, timeout: Duration) -> ClientCall {
        match &self.session {
            Some(session) => session.start_call_raw(method, params, timeout),
            None => ClientCall::failed(CallError::SessionGone),
        }
    }
}
