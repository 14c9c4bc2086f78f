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
//! let mut dms = client.on_notification::<Dm>("chat.dm");
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
//! - [`Client`] and its [`ClientBuilder`]: [`Client::call`], [`Client::notify`],
//!   [`Client::batch`] ([`Batch`]), [`Client::on_notification`] ([`Notifications`]),
//!   [`Client::subscribe`] ([`Subscription`], [`SubscriptionEvent`]), [`Client::handle`],
//!   [`Client::states`] ([`ConnectionState`]), [`Client::welcome`], [`Client::stats`] ([`Stats`]).
//! - [`Error`]: the one error type; [`RpcError`] is what handlers answer with.
//! - [`ReconnectPolicy`] and [`backoff`], the pure function behind its delays.
//! - [`protocol`]: the wire types shared with the server.
//!
//! # Reconnecting
#![doc = include_str!("docs/reconnect.md")]
//!
//! # Buffers and what happens when they overflow
#![doc = include_str!("docs/buffers.md")]
//!
//! # Other JSON-RPC 2.0 servers
#![doc = include_str!("docs/other-servers.md")]

mod backoff;
mod batch;
mod buffer;
mod builder;
mod calls;
mod client;
mod connection;
mod error;
mod handler;
mod inbound;
mod notifications;
mod shared;
mod state;
mod stats;
mod subscription;
mod token;

pub use backoff::{ReconnectPolicy, backoff};
pub use batch::{Batch, BatchCall, BatchResults};
pub use builder::ClientBuilder;
pub use client::Client;
pub use error::{BoxError, Error, RpcError};
pub use notifications::Notifications;
pub use rustls;
pub use state::{ConnectionState, StateStream};
pub use stats::Stats;
pub use subscription::{Resubscribed, Subscription, SubscriptionEvent};
pub use switchboard_protocol as protocol;
pub use switchboard_protocol::ErrorObject;
pub use switchboard_protocol::methods::{Publication, RecoveryGap, StreamPosition, Welcome};
pub use token::TokenTransport;
