//! [`Gateway`]: builds the pieces, exposes the axum [`Router`], and serves.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use jsonrpsee::core::server::Methods;
use serde::{Deserialize, Serialize};
use switchboard_protocol::codes::close;
use switchboard_protocol::contract::{ClientMethod, Described, Method, Push};
use switchboard_protocol::{ErrorObject, codes, frame};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{Authenticator, Identity, redact_query};
use crate::broker::{Broker, LocalBroker, RedisBroker};
use crate::config::BrokerKind;
use crate::config::Config;
use crate::error::Error;
use crate::hub::Hub;
use crate::rpc::caller::Caller;
use crate::rpc::direct::Request;
use crate::rpc::dispatch::{Dispatcher, Outcome};
use crate::rpc::table::MethodTable;
use crate::session::{SessionHandle, SessionId};
use crate::state::GatewayShared;
use crate::ws::{SocketConfig, WsUpgrade};

/// Builds a [`Gateway`].
pub struct GatewayBuilder {
    config: Config,
    methods: MethodTable,
    broker: Option<Arc<dyn Broker>>,
}

impl GatewayBuilder {
    /// Adds the methods of a jsonrpsee module (an `RpcModule` or anything
    /// that converts into `Methods`, such as an `#[rpc(server)]` trait's
    /// `into_rpc()`), unchanged: they join the one method table beside the
    /// direct methods. Names starting with `rpc.` are refused, and so is a
    /// name registered before (then none of the module's methods is added).
    pub fn module(mut self, module: impl Into<Methods>) -> Result<Self, Error> {
        self.methods.add_module(module.into())?;
        Ok(self)
    }

    /// Adds a direct method: a synchronous handler the gateway calls itself,
    /// with the params borrowed from the frame and the caller borrowed from
    /// the session, whose result is serialised once, straight into the
    /// answer. It costs less per call than a jsonrpsee method (no
    /// `Extensions`, no response envelope written and parsed again); use it
    /// for methods that answer at once, and [`method_async`](Self::method_async)
    /// for those that wait. An `Err` is the
    /// JSON-RPC error the client gets; [`Request::params`] gives `-32602`
    /// with a reason. Names starting with `rpc.` are refused, and so is a
    /// name registered twice (here or in a module).
    ///
    /// ```
    /// use switchboard_server::{Config, Gateway};
    /// use switchboard_server::protocol::{ErrorObject, codes};
    ///
    /// # fn build() -> Result<(), switchboard_server::Error> {
    /// let gateway = Gateway::builder(Config::default())
    ///     .method("divide", |req| {
    ///         let (a, b): (f64, f64) = req.params()?;
    ///         if b == 0.0 {
    ///             return Err(ErrorObject::with_data(codes::INVALID_PARAMS, serde_json::json!({"reason": "division by zero"})));
    ///         }
    ///         Ok(a / b)
    ///     })?
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn method<R, F>(self, name: &str, handler: F) -> Result<Self, Error>
    where
        R: Serialize,
        F: Fn(Request<'_>) -> Result<R, ErrorObject> + Send + Sync + 'static,
    {
        self.add_direct(name, crate::rpc::direct::erase(handler))
    }

    /// Adds an asynchronous direct method. The handler is called at once
    /// with the borrowed [`Request`]: parse the params and take what the
    /// work needs there (an `Err` answers the call at once), then return a
    /// future that owns it. The session runs that future on its own task,
    /// like any asynchronous method (it holds one of the session's
    /// `limits.max_in_flight` slots), and writes the future's result
    /// straight into the answer, without jsonrpsee's envelope.
    ///
    /// ```
    /// use std::time::Duration;
    /// use switchboard_server::{Config, Gateway};
    ///
    /// # fn build() -> Result<(), switchboard_server::Error> {
    /// let gateway = Gateway::builder(Config::default())
    ///     .method_async("confirm", |req| {
    ///         let (question,): (String,) = req.params()?;
    ///         let caller = req.caller().clone();
    ///         Ok(async move {
    ///             // Ask the caller's own client before answering.
    ///             let yes: bool = caller
    ///                 .call("ui.confirm", &[question], Duration::from_secs(10))
    ///                 .await
    ///                 .unwrap_or(false);
    ///             Ok(yes)
    ///         })
    ///     })?
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    pub fn method_async<R, F, Fut>(self, name: &str, handler: F) -> Result<Self, Error>
    where
        R: Serialize + 'static,
        F: Fn(Request<'_>) -> Result<Fut, ErrorObject> + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ErrorObject>> + Send + 'static,
    {
        self.add_direct(name, crate::rpc::direct::erase_async(handler))
    }

    /// Adds a typed method: the descriptor `M` (shared with the clients,
    /// see [`contract`](switchboard_protocol::contract)) gives its name and
    /// the types of its params and result, and `rpc.discover` describes it
    /// with their schemas. The handler gets the params parsed as
    /// `M::Params` (a mismatch answers `-32602` with serde's `reason` in its
    /// `data`); otherwise it is a direct method, as [`method`](Self::method).
    ///
    /// ```
    /// use switchboard_server::protocol::contract::Method;
    /// use switchboard_server::{Config, Gateway};
    ///
    /// struct Add;
    /// impl Method for Add {
    ///     const NAME: &'static str = "add";
    ///     const SUMMARY: &'static str = "The sum of two numbers.";
    ///     type Params = (i64, i64);
    ///     type Result = i64;
    /// }
    ///
    /// # fn build() -> Result<(), switchboard_server::Error> {
    /// let gateway = Gateway::builder(Config::default())
    ///     .serve::<Add, _>(|_req, (a, b)| Ok(a + b))?
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    ///
    /// A handler whose types differ from the descriptor's does not compile:
    ///
    /// ```compile_fail
    /// # use switchboard_server::protocol::contract::Method;
    /// # use switchboard_server::{Config, Gateway};
    /// # struct Add;
    /// # impl Method for Add {
    /// #     const NAME: &'static str = "add";
    /// #     type Params = (i64, i64);
    /// #     type Result = i64;
    /// # }
    /// # fn build() -> Result<(), switchboard_server::Error> {
    /// Gateway::builder(Config::default()).serve::<Add, _>(|_req, (a, b): (i64, i64)| Ok(format!("{a}{b}")))?;
    /// # Ok(()) }
    /// ```
    pub fn serve<M, F>(mut self, handler: F) -> Result<Self, Error>
    where
        M: Method,
        F: Fn(Request<'_>, M::Params) -> Result<M::Result, ErrorObject> + Send + Sync + 'static,
    {
        let handler = crate::rpc::direct::erase_method::<M, F>(handler);
        self.methods.add_described(Described::method::<M>(), handler)?;
        Ok(self)
    }

    /// Adds a typed asynchronous method: [`serve`](Self::serve)'s typing
    /// with [`method_async`](Self::method_async)'s two steps.
    pub fn serve_async<M, F, Fut>(mut self, handler: F) -> Result<Self, Error>
    where
        M: Method,
        F: Fn(Request<'_>, M::Params) -> Result<Fut, ErrorObject> + Send + Sync + 'static,
        Fut: Future<Output = Result<M::Result, ErrorObject>> + Send + 'static,
    {
        let handler = crate::rpc::direct::erase_method_async::<M, F, Fut>(handler);
        self.methods.add_described(Described::method::<M>(), handler)?;
        Ok(self)
    }

    /// Describes a method registered without its types, a jsonrpsee
    /// module's or a direct method's, as the descriptor `M` says: for
    /// `rpc.discover` only (the method still parses its own params). Refused
    /// when no method `M::NAME` is registered or when it is described
    /// already.
    pub fn describe<M: Method>(mut self) -> Result<Self, Error> {
        self.methods.describe(Described::method::<M>())?;
        Ok(self)
    }

    /// Declares a method the gateway calls on clients, so that
    /// `rpc.discover` lists it, with its schemas and
    /// `"x-switchboard-direction": "client"`, for clients to implement. Call
    /// it through [`Caller::call_method`](crate::Caller::call_method) or
    /// [`SessionHandle::call_method`], which take and return `M`'s types.
    pub fn declare_client_method<M: ClientMethod>(mut self) -> Result<Self, Error> {
        self.methods.declare(Described::client_method::<M>())?;
        Ok(self)
    }

    /// Declares a notification the gateway pushes to clients, so that
    /// `rpc.discover` lists it (`"x-switchboard-direction": "client"`, no
    /// result). Push it through [`Hub::push`](crate::Hub::push) or
    /// [`SessionHandle::push`], which take `P`'s params.
    pub fn declare_push<P: Push>(mut self) -> Result<Self, Error> {
        self.methods.declare(Described::push::<P>())?;
        Ok(self)
    }

    /// The document `rpc.discover` would answer with the methods added so far.
    #[cfg(test)]
    pub(crate) fn discover_document(&self) -> Box<serde_json::value::RawValue> {
        crate::rpc::discover::document(&self.methods)
    }

    fn add_direct(mut self, name: &str, handler: crate::rpc::direct::Handler) -> Result<Self, Error> {
        self.methods.add_direct(name, handler)?;
        Ok(self)
    }

    /// Uses `broker` instead of the in-process default.
    pub fn broker(mut self, broker: Arc<dyn Broker>) -> Self {
        self.broker = Some(broker);
        self
    }

    /// Builds the gateway. The demo methods are added when the configuration
    /// asks for them (by default in dev mode).
    pub fn build(mut self) -> Result<Gateway, Error> {
        self.config.validate()?;
        crate::metrics::install();
        if self.config.demo.unwrap_or(self.config.dev_mode()) {
            self = crate::demo::register(self)?;
        }
        let config = Arc::new(self.config);
        let broker: Arc<dyn Broker> = match (self.broker, config.broker) {
            (Some(b), _) => b,
            (None, BrokerKind::Local) => Arc::new(LocalBroker::new()),
            (None, BrokerKind::Redis) => {
                Arc::new(RedisBroker::new(config.redis.clone()).map_err(|e| Error::Broker(Box::new(e)))?)
            }
        };
        let hub = Hub::new(broker, &config);
        let discover = crate::rpc::discover::document(&self.methods);
        let limits_per_ip = config.limits.upgrades_per_ip_per_minute;
        let auth = config.auth.as_ref().map(Authenticator::new).transpose()?;
        if let Some(auth) = &auth
            && tokio::runtime::Handle::try_current().is_ok()
        {
            auth.spawn_refresh();
        }
        let dispatcher = Dispatcher {
            methods: self.methods,
            config: config.clone(),
            hub: hub.clone(),
            discover,
            auth: auth.clone(),
            upstreams: crate::rpc::upstream::Upstreams::new(&config.upstreams, config.limits.max_response_size)?,
        };
        let tls = config.tls.as_ref().map(crate::edge::tls::acceptor).transpose()?;
        Ok(Gateway {
            shared: Arc::new(GatewayShared {
                config,
                hub,
                dispatcher,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
                auth,
                tls,
                draining: CancellationToken::new(),
                upgrades: governor::RateLimiter::keyed(governor::Quota::per_minute(
                    std::num::NonZeroU32::new(limits_per_ip).unwrap_or(std::num::NonZeroU32::MIN),
                )),
                conn_ids: AtomicUsize::new(1),
            }),
        })
    }
}

/// A switchboard gateway: sessions, routing, and the HTTP endpoints.
///
/// ```no_run
/// # async fn run() -> Result<(), switchboard_server::Error> {
/// use jsonrpsee::RpcModule;
/// use switchboard_server::{Config, Gateway};
///
/// let mut module = RpcModule::new(());
/// module.register_method("add", |params, _, _| {
///     let (a, b): (i64, i64) = params.parse()?;
///     Ok::<_, jsonrpsee::types::ErrorObjectOwned>(a + b)
/// })?;
/// let gateway = Gateway::builder(Config::default()).module(module)?.build()?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// gateway.serve(listener, std::future::pending()).await
/// # }
/// ```
#[derive(Clone)]
pub struct Gateway {
    shared: Arc<GatewayShared>,
}

impl Gateway {
    /// Starts building a gateway with `config`.
    pub fn builder(config: Config) -> GatewayBuilder {
        GatewayBuilder {
            config,
            methods: MethodTable::default(),
            broker: None,
        }
    }

    /// The hub: push to, call, subscribe or disconnect any target.
    pub fn hub(&self) -> &Hub {
        &self.shared.hub
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The gateway's routes, to serve on their own or to merge into an app:
    /// `GET /ws`, `POST /rpc`, `POST /api`, `GET /healthz`, `GET /readyz`, `GET /metrics`,
    /// and the dashboard pages (`GET /`, `/demo`, `/assets/*`).
    pub fn router(&self) -> Router {
        let limit = self.shared.config.limits.max_message_size;
        Router::new()
            .route("/ws", get(ws_upgrade))
            .route("/rpc", post(http_rpc).layer(DefaultBodyLimit::max(limit)))
            .route(
                "/api",
                post(crate::edge::api::handle).layer(DefaultBodyLimit::max(limit)),
            )
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics_text))
            .merge(crate::edge::assets::router())
            .with_state(self.shared.clone())
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting,
    /// gives in-flight calls up to `limits.shutdown_grace_ms` to finish, and
    /// closes every session with 1001. With `tls` configured, every connection
    /// starts with a TLS handshake (within `limits.handshake_timeout_ms`), so the
    /// port serves `wss://` and `https://` only.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let router = self.router();
        let limits = self.shared.config.limits.clone();
        let connections = TaskTracker::new();
        let stop = self.shared.shutdown.clone();
        let tls = self.shared.tls.clone();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and similar: back off a little, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
                () = stop.cancelled() => break,
            };
            let _ = stream.set_nodelay(true);
            // Handlers that limit per client address find the peer here.
            let service = TowerToHyperService::new(router.clone().layer(axum::Extension(ConnectInfo(peer))));
            let stop = stop.clone();
            let handshake = limits.handshake_timeout();
            let tls = tls.clone();
            connections.spawn(async move {
                let Some(acceptor) = tls else {
                    return serve_connection(stream, service, handshake, stop).await;
                };
                // The TLS handshake runs here, not in the accept loop, so a slow
                // client delays only itself; it has the upgrade request's time limit.
                let accepted = tokio::select! {
                    accepted = tokio::time::timeout(handshake, acceptor.accept(stream)) => accepted,
                    () = stop.cancelled() => return,
                };
                match accepted {
                    Ok(Ok(stream)) => serve_connection(stream, service, handshake, stop).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
            });
        }
        drop(listener);
        tracing::info!("shutting down");
        self.shutdown();
        connections.close();
        self.shared.tasks.close();
        let deadline = limits.shutdown_grace() + std::time::Duration::from_secs(3);
        let _ = tokio::time::timeout(deadline, async {
            connections.wait().await;
            self.shared.tasks.wait().await;
        })
        .await;
        Ok(())
    }

    /// Drains this node before it goes away: new sessions are refused (and
    /// `/readyz` answers 503) while every session is told `rpc.disconnect`
    /// and closed with 1012, which clients take as "reconnect now, with
    /// jitter" — to another node behind the load balancer. Their presence
    /// goes with them. HTTP keeps being served until shutdown.
    pub fn drain(&self) {
        self.shared.draining.cancel();
        self.shared
            .hub
            .registry()
            .for_each(&switchboard_protocol::Target::All, |s| {
                s.disconnect(close::DRAINING, close::reason(close::DRAINING));
            });
    }

    /// Stops the gateway as if its shutdown future had completed.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
        // Sessions are told through their queues (they wait on nothing
        // shared); one registering meanwhile sees the token at its start.
        self.shared
            .hub
            .registry()
            .for_each(&switchboard_protocol::Target::All, |s| s.shared.queue.shut_down());
    }
}

/// Serves HTTP/1 (and WebSocket upgrades) on one connection, plain or TLS,
/// until it ends; on shutdown, lets the request in progress finish.
async fn serve_connection<I>(
    io: I,
    service: TowerToHyperService<Router>,
    header_timeout: std::time::Duration,
    stop: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

#[derive(Deserialize)]
struct Who {
    user: Option<String>,
}

/// Who a request comes from: in dev mode `?user=NAME` (or `anonymous`);
/// otherwise what its token or the connect hook says.
async fn identify(
    shared: &GatewayShared,
    headers: &HeaderMap,
    query: Option<&str>,
    who: &Who,
) -> Result<Identity, (StatusCode, String)> {
    let Some(auth) = &shared.auth else {
        return match &who.user {
            Some(u) if u.is_empty() || u.len() > 128 => {
                Err((StatusCode::BAD_REQUEST, "?user= must be 1 to 128 bytes".to_owned()))
            }
            Some(u) => Ok(Identity {
                user: u.as_str().into(),
                claims: Arc::new(serde_json::Value::Null),
                expires_at: None,
            }),
            None => Ok(Identity {
                user: "anonymous".into(),
                claims: Arc::new(serde_json::Value::Null),
                expires_at: None,
            }),
        };
    };
    if who.user.is_some() {
        return Err((
            StatusCode::UNAUTHORIZED,
            "?user= is accepted in dev mode only".to_owned(),
        ));
    }
    auth.authenticate(headers, query).await.map_err(|e| {
        tracing::debug!(error = %e, query = %query.map(redact_query).unwrap_or_default(), "authentication failed");
        (StatusCode::UNAUTHORIZED, e.to_string())
    })
}

fn unauthorised(reason: &str) -> Response {
    let error = ErrorObject::with_data(codes::UNAUTHORIZED, serde_json::json!({ "reason": reason }));
    let mut response = Response::new(Body::from(frame::write_error(None, &error)));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The client's address: the peer, or behind a trusted proxy the rightmost
/// `X-Forwarded-For` entry that is not itself a trusted proxy.
fn client_ip(config: &Config, peer: std::net::IpAddr, headers: &HeaderMap) -> std::net::IpAddr {
    if !config.trusted_proxies.contains(&peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .rev()
        .find(|ip| !config.trusted_proxies.contains(ip))
        .unwrap_or(peer)
}

fn origin_allowed(config: &Config, headers: &HeaderMap) -> bool {
    if config.allowed_origins.is_empty() {
        return true;
    }
    // Only browsers send Origin; the allowlist protects their users from
    // other sites' pages. Programs without an Origin authenticate as usual.
    match headers.get(header::ORIGIN) {
        None => true,
        Some(o) => o.to_str().is_ok_and(|o| config.allowed_origins.iter().any(|a| a == o)),
    }
}

async fn ws_upgrade(
    State(shared): State<Arc<GatewayShared>>,
    peer: Option<axum::Extension<ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Query(who): Query<Who>,
    ws: WsUpgrade,
) -> Response {
    let limits = &shared.config.limits;
    if !origin_allowed(&shared.config, &headers) {
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    if let Some(axum::Extension(ConnectInfo(peer))) = peer {
        let ip = client_ip(&shared.config, peer.ip(), &headers);
        // Loopback peers (local tools, a local proxy not listed as trusted) are not limited.
        if !ip.is_loopback() && shared.upgrades.check_key(&ip).is_err() {
            metrics::counter!("switchboard_upgrades_limited_total").increment(1);
            return (
                StatusCode::TOO_MANY_REQUESTS,
                "too many connection attempts from this address",
            )
                .into_response();
        }
        if shared.upgrades.len() > 100_000 {
            shared.upgrades.retain_recent();
        }
    }
    if shared.hub.registry().session_count() >= limits.max_sessions {
        return (StatusCode::SERVICE_UNAVAILABLE, "session limit reached").into_response();
    }
    if shared.shutdown.is_cancelled() || shared.draining.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let identity = match identify(&shared, &headers, query.as_deref(), &who).await {
        Ok(identity) => identity,
        // A browser cannot read the status of a refused upgrade, only close
        // codes: requests with an Origin (browsers always send one) get the
        // upgrade and an immediate terminal close that says why.
        Err((StatusCode::UNAUTHORIZED, reason)) if headers.contains_key(header::ORIGIN) => {
            let reason = crate::session::truncate_reason(&reason);
            return ws.accept(SocketConfig::new(limits), move |mut socket| async move {
                socket
                    .close(close::UNAUTHORIZED, &reason, crate::ws::CLOSE_TIMEOUT)
                    .await;
            });
        }
        Err((StatusCode::UNAUTHORIZED, reason)) => return unauthorised(&reason),
        Err(other) => return other.into_response(),
    };
    if shared.hub.registry().user_session_count(&identity.user) >= limits.max_sessions_per_user {
        return (StatusCode::TOO_MANY_REQUESTS, "too many sessions for this user").into_response();
    }
    let config = SocketConfig::new(limits).compression(shared.config.deflate_threshold());
    let session = SessionHandle::new(
        SessionId::new(shared.hub.next_session_id()),
        identity.user,
        limits,
        ws.compression(&config),
    );
    if shared.auth.is_some() {
        session.set_auth(Some(identity.claims), identity.expires_at);
    }
    let conn_id = shared.conn_ids.fetch_add(1, Ordering::Relaxed);
    let tasks = shared.tasks.clone();
    ws.accept(config, move |socket| {
        tasks.track_future(crate::actor::run(socket, session, shared, conn_id))
    })
}

async fn http_rpc(
    State(shared): State<Arc<GatewayShared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Query(who): Query<Who>,
    body: String,
) -> Response {
    let identity = match identify(&shared, &headers, query.as_deref(), &who).await {
        Ok(identity) => identity,
        Err((StatusCode::UNAUTHORIZED, reason)) => return unauthorised(&reason),
        Err(other) => return other.into_response(),
    };
    let claims = shared.auth.is_some().then_some(identity.claims);
    let caller = Caller::for_http(identity.user, claims, shared.hub.clone());
    let reply = match shared.dispatcher.handle_text(&caller, &body) {
        Outcome::Reply(s) => Some(s),
        Outcome::Silent => None,
        Outcome::Later(f) => f.await,
    };
    match reply {
        Some(json) => {
            let mut response = Response::new(Body::from(json));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

/// Ready when the broker reaches the other nodes and the gateway is not shutting down.
async fn readyz(State(shared): State<Arc<GatewayShared>>) -> Response {
    if shared.shutdown.is_cancelled() || shared.draining.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
    }
    if !shared.hub.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "broker unavailable").into_response();
    }
    "ready".into_response()
}

async fn metrics_text(State(shared): State<Arc<GatewayShared>>, headers: HeaderMap) -> Response {
    if !shared.config.dev_mode()
        && !shared.config.metrics_public
        && crate::edge::api::authorise(&shared, &headers).is_err()
    {
        return unauthorised("metrics need an API key (Authorization: Bearer <api key>) or metrics_public = true");
    }
    let registry = shared.hub.registry();
    metrics::gauge!("switchboard_users").set(registry.user_count() as f64);
    metrics::gauge!("switchboard_topics").set(registry.topic_count() as f64);
    let mut body = crate::metrics::render();
    let stats = shared.hub.stats();
    // Summed here, at scrape time, from each session's own count: the queue
    // itself touches nothing shared when a frame is queued.
    let (queued, most_queued) = registry.queued_bytes();
    body.push_str(&format!(
        "# TYPE switchboard_local_sessions gauge\nswitchboard_local_sessions {}\n\
         # TYPE switchboard_frames_serialised_total counter\nswitchboard_frames_serialised_total {}\n\
         # TYPE switchboard_outbound_queued_bytes gauge\nswitchboard_outbound_queued_bytes {queued}\n\
         # TYPE switchboard_outbound_queued_bytes_max gauge\nswitchboard_outbound_queued_bytes_max {most_queued}\n",
        registry.session_count(),
        stats.frames_serialised,
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
