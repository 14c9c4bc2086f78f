//! switchboard: a WebSocket gateway that speaks JSON-RPC 2.0 in both directions.
//!
//! Clients call methods and subscribe to topics; the server pushes to a
//! session, a user, a topic or everyone, and calls methods *on clients*,
//! collecting one answer per session.
//!
//! ```no_run
//! use std::time::Duration;
//! use jsonrpsee::RpcModule;
//! use switchboard_server::{Caller, Config, Gateway};
//!
//! # async fn run() -> Result<(), switchboard_server::Error> {
//! let mut module = RpcModule::new(());
//! // A method that asks the caller's own client before it answers.
//! module.register_async_method("delete", |_params, _ctx, ext| async move {
//!     let caller = ext.get::<Caller>().expect("set by the gateway").clone();
//!     let confirmed: bool = caller
//!         .call("ui.confirm", &["Delete it?"], Duration::from_secs(10))
//!         .await
//!         .unwrap_or(false);
//!     confirmed
//! })?;
//!
//! let gateway = Gateway::builder(Config::default()).module(module)?.build()?;
//! let hub = gateway.hub().clone(); // push or call from anywhere
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! gateway.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! Start reading at [`Gateway`]; the routing API is [`Hub`]; what a method
//! handler knows of its caller is [`Caller`].

mod actor;
mod demo;
mod edge;
mod error;
mod hub;
mod metrics;
mod rpc;
mod session;
mod signing;
mod state;
mod webhook;
mod ws;

pub mod auth;
pub mod broker;
pub mod config;

pub use config::{
    ApiKey, Config, Limits, StreamConfig, TlsConfig, TopicPattern, UpstreamConfig, WebhookConfig, WebhookEvent,
};
pub use edge::gateway::{Gateway, GatewayBuilder};
pub use error::{CallError, Error};
pub use hub::{
    CallEntry, CallOptions, CallProgress, CallReport, CallStream, CallUpdate, Hub, HubError, HubStats, personal_topic,
};
pub use rpc::caller::Caller;
pub use rpc::direct::Request;
pub use rpc::progress::Progress;
pub use session::{ClientCall, ClientCallOf, ProgressReports, SendError, SessionHandle, SessionId};
pub use switchboard_protocol as protocol;
pub use switchboard_protocol::Target;
pub use switchboard_protocol::api::{CallPolicy, CallSummary};
pub use tungstenite::Utf8Bytes;
pub use ws::Outgoing;
#[doc(hidden)]
pub use ws::verification as ws_verification;
