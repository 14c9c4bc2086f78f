//! Rust client for switchboard, the WebSocket gateway that speaks JSON-RPC 2.0
//! in both directions — and for any other JSON-RPC 2.0 WebSocket server.
//!
//! A [`Client`] calls the server, receives its pushes, and serves the calls
//! the server (or a backend through it) makes *on the client*: the way a
//! worker behind NAT connects out and is then called by the backend.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use serde::Deserialize;
//! use switchboard_client::{Client, RpcError};
//!
//! #[derive(Deserialize)]
//! struct Dm {
//!     from: String,
//!     text: String,
//! }
//!
//! # async fn run() -> Result<(), switchboard_client::Error> {
//! let client = Client::builder("ws://127.0.0.1:8080/ws?user=alice").build()?;
//!
//! // Serve calls from the server; handlers stay registered across reconnects.
//! client.handle("ui.confirm", |(question,): (String,)| async move {
//!     Ok::<_, RpcError>(!question.is_empty())
//! });
//! // Pushes wait in a bounded buffer until read, so none is missed.
//! let mut dms = client.on_notification::<Dm>("chat.message");
//! client.connect().await?;
//!
//! // Typed calls, with a timeout; dropping one sends `rpc.cancel`.
//! let echoed: Vec<u32> = client.call("echo", [1, 2, 3]).await?;
//! assert_eq!(echoed, [1, 2, 3]);
//!
//! // Topics: renewed from the last position on every reconnect.
//! let mut news = client.subscribe("news").await?;
//! if let Some(publication) = news.next_publication().await {
//!     println!("{}: {}", publication.topic, publication.data);
//! }
//! if let Some(Ok(dm)) = dms.next().await {
//!     println!("{} says {}", dm.from, dm.text);
//! }
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! # Contents
//!
//! - [`Client`] and its [`ClientBuilder`]: [`Client::call`], [`Client::call_with_progress`]
//!   ([`ProgressCall`]), [`Client::notify`], [`Client::batch`] ([`Batch`], [`BatchProgress`]),
//!   [`Client::on_notification`] ([`Notifications`]), [`Client::subscribe`] ([`Subscription`],
//!   [`SubscriptionEvent`]), [`Client::handle`] and [`Client::handle_with`] ([`IncomingCall`]),
//!   [`Client::states`] ([`ConnectionState`]), [`Client::welcome`], [`Client::stats`] ([`Stats`]).
//! - [`Error`]: the one error type; [`RpcError`] is what handlers answer with.
//! - [`ReconnectPolicy`] and [`backoff`], the pure function behind its delays.
//! - [`protocol`]: the wire types shared with the server.
//!
//! # Reconnecting
#![doc = include_str!("docs/reconnect.md")]
//!
//! # Progress and cancellation
#![doc = include_str!("docs/progress.md")]
//!
//! # Buffers and what happens when they overflow
#![doc = include_str!("docs/buffers.md")]
//!
//! # Other JSON-RPC 2.0 servers
#![doc = include_str!("docs/other-servers.md")]
//!
//! # Compression
//!
//! The client does not offer permessage-deflate: its WebSocket library
//! (tokio-tungstenite) has no implementation of it. The gateway then sends
//! it every message uncompressed, whatever its `compression` setting, while
//! browsers and Node's `ws` on the same gateway get large messages deflated.

// The modules form layers, numbered from the bottom up. A module imports
// only from lower layers, never from its own or a higher one, so there is no
// cycle; the workspace's tidy test (`tests/tests/tidy_layers.rs`) keeps the
// imports in step with this list. The
// types both sides need live low: `Config` in `config`, each topic's state
// and events in `topic`, and `Shared` (the pending calls, the current
// connection, the pushes) in `shared`. The public face, `Client` and then
// `ClientBuilder`, is on top.

// 1. Leaves: nothing else from this crate.
mod buffer;
mod error;
mod reconnect;
mod stats;

// 2. Pieces of state.
mod handler;
mod state;
mod token;
mod topic;

// 3. The options.
mod config;

// 4. The state every part shares.
mod shared;

// 5. Over the shared state: calls, notification streams, and what the
// connection task does with each frame from the server.
mod calls;
mod inbound;
mod notifications;

// 6. What makes calls: batches, subscriptions and the token refresher.
mod batch;
mod refresher;
mod subscription;

// 7. The connection task.
mod connection;

// 8. The public face: `Client`…
mod client;

// 9. …and the builder that makes one.
mod builder;

pub use batch::{Batch, BatchCall, BatchProgress, BatchResults};
pub use builder::ClientBuilder;
pub use calls::ProgressCall;
pub use client::Client;
pub use error::{BoxError, Error, RpcError};
pub use handler::IncomingCall;
pub use notifications::Notifications;
pub use reconnect::ReconnectPolicy;
pub use rustls;
pub use state::{ConnectionState, StateStream};
pub use stats::Stats;
pub use subscription::Subscription;
pub use switchboard_protocol as protocol;
pub use switchboard_protocol::ErrorObject;
pub use switchboard_protocol::backoff::backoff;
pub use switchboard_protocol::methods::{
    HistoryPublication, HistoryResult, Publication, RecoveryGap, StreamPosition, Welcome,
};
pub use token::TokenTransport;
pub use topic::{Resubscribed, SubscriptionEvent};
