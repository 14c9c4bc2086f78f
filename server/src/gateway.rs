//! [`Gateway`]: builds the pieces, exposes the axum [`Router`], and serves.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use jsonrpsee::core::server::Methods;
use serde::Deserialize;
use serde_json::value::RawValue;
use switchboard_protocol::methods;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::broker::{Broker, LocalBroker};
use crate::config::Config;
use crate::dispatch::{Dispatcher, Origin, Outcome};
use crate::error::Error;
use crate::hub::Hub;
use crate::session::{self, SessionHandle, SessionId};

/// Builds a [`Gateway`].
pub struct GatewayBuilder {
    config: Config,
    methods: Methods,
    broker: Option<Arc<dyn Broker>>,
}

impl GatewayBuilder {
    /// Adds the methods of a jsonrpsee module (an `RpcModule` or anything
    /// that converts into `Methods`, such as an `#[rpc(server)]` trait's
    /// `into_rpc()`). Names starting with `rpc.` are refused.
    pub fn module(mut self, module: impl Into<Methods>) -> Result<Self, Error> {
        let module: Methods = module.into();
        if let Some(name) = module.method_names().find(|n| methods::is_reserved(n)) {
            return Err(Error::ReservedMethod(name.to_owned()));
        }
        self.methods.merge(module)?;
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
            self = self.module(crate::demo::module())?;
        }
        let config = Arc::new(self.config);
        let broker = self.broker.unwrap_or_else(|| Arc::new(LocalBroker::new()));
        let hub = Hub::new(broker, &config);
        let discover = crate::discover::document(&self.methods);
        let dispatcher = Dispatcher {
            methods: self.methods,
            config: config.clone(),
            hub: hub.clone(),
            discover,
        };
        Ok(Gateway {
            shared: Arc::new(GatewayShared {
                config,
                hub,
                dispatcher,
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
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

pub(crate) struct GatewayShared {
    pub(crate) config: Arc<Config>,
    pub(crate) hub: Hub,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
    conn_ids: AtomicUsize,
}

impl Gateway {
    /// Starts building a gateway with `config`.
    pub fn builder(config: Config) -> GatewayBuilder {
        GatewayBuilder {
            config,
            methods: Methods::new(),
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
    /// `GET /ws`, `POST /rpc`, `GET /healthz`, `GET /metrics` and `GET /`.
    pub fn router(&self) -> Router {
        let limit = self.shared.config.limits.max_message_size;
        Router::new()
            .route("/ws", get(ws_upgrade))
            .route("/rpc", post(http_rpc).layer(DefaultBodyLimit::max(limit)))
            .route("/api", post(crate::api::handle).layer(DefaultBodyLimit::max(limit)))
            .route("/healthz", get(|| async { "ok" }))
            .route("/metrics", get(metrics_text))
            .merge(crate::assets::router())
            .with_state(self.shared.clone())
    }

    /// Serves on `listener` until `shutdown` completes, then stops accepting,
    /// gives in-flight calls up to `limits.shutdown_grace_ms` to finish, and
    /// closes every session with 1001.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let router = self.router();
        let limits = self.shared.config.limits.clone();
        let connections = TaskTracker::new();
        let stop = self.shared.shutdown.clone();
        tokio::pin!(shutdown);
        loop {
            let (stream, _peer) = tokio::select! {
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
            let service = TowerToHyperService::new(router.clone());
            let stop = stop.clone();
            let handshake = limits.handshake_timeout();
            connections.spawn(async move {
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(handshake)
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades();
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => {}
                    () = stop.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            });
        }
        drop(listener);
        tracing::info!("shutting down");
        self.shared.shutdown.cancel();
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

    /// Stops the gateway as if its shutdown future had completed.
    pub fn shutdown(&self) {
        self.shared.shutdown.cancel();
    }
}

#[derive(Deserialize)]
struct Who {
    user: Option<String>,
}

/// The user of a dev-mode request: `?user=NAME`, or `anonymous`.
fn dev_user(shared: &GatewayShared, who: &Who) -> Result<Arc<str>, (StatusCode, &'static str)> {
    match &who.user {
        Some(_) if !shared.config.dev_mode() => Err((StatusCode::UNAUTHORIZED, "?user= is accepted in dev mode only")),
        Some(u) if u.is_empty() || u.len() > 128 => Err((StatusCode::BAD_REQUEST, "?user= must be 1 to 128 bytes")),
        Some(u) => Ok(u.as_str().into()),
        None => Ok("anonymous".into()),
    }
}

async fn ws_upgrade(
    State(shared): State<Arc<GatewayShared>>,
    Query(who): Query<Who>,
    ws: WebSocketUpgrade,
) -> Response {
    let user = match dev_user(&shared, &who) {
        Ok(u) => u,
        Err(r) => return r.into_response(),
    };
    let limits = &shared.config.limits;
    if shared.hub.registry().session_count() >= limits.max_sessions {
        return (StatusCode::SERVICE_UNAVAILABLE, "session limit reached").into_response();
    }
    if shared.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    let session = SessionHandle::new(SessionId::new(shared.hub.next_session_id()), user, limits);
    let conn_id = shared.conn_ids.fetch_add(1, Ordering::Relaxed);
    let tasks = shared.tasks.clone();
    ws.protocols([methods::PROTOCOL_VERSION])
        .read_buffer_size(limits.read_buffer_size)
        .write_buffer_size(limits.write_buffer_size)
        .max_write_buffer_size(limits.max_queue_bytes.max(limits.write_buffer_size * 2))
        .max_message_size(limits.max_message_size)
        .max_frame_size(limits.max_message_size)
        .on_upgrade(move |socket| tasks.track_future(session::run(socket, session, shared, conn_id)))
}

async fn http_rpc(State(shared): State<Arc<GatewayShared>>, Query(who): Query<Who>, body: String) -> Response {
    let user = match dev_user(&shared, &who) {
        Ok(u) => u,
        Err(r) => return r.into_response(),
    };
    let origin = Origin {
        session: None,
        user: &user,
        conn_id: 0,
    };
    let reply = match shared.dispatcher.handle_text(&origin, &body) {
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

async fn metrics_text(State(shared): State<Arc<GatewayShared>>) -> Response {
    let registry = shared.hub.registry();
    metrics::gauge!("switchboard_users").set(registry.user_count() as f64);
    metrics::gauge!("switchboard_topics").set(registry.topic_count() as f64);
    let mut body = crate::metrics::render();
    let stats = shared.hub.stats();
    body.push_str(&format!(
        "# TYPE switchboard_local_sessions gauge\nswitchboard_local_sessions {}\n\
         # TYPE switchboard_frames_serialised_total counter\nswitchboard_frames_serialised_total {}\n",
        registry.session_count(),
        stats.frames_serialised,
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Turns raw JSON into a boxed raw value (used by the OpenRPC builder).
pub(crate) fn raw(value: &serde_json::Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("a JSON value always serialises")
}
