//! Wire types of switchboard, the WebSocket gateway that speaks JSON-RPC 2.0
//! in both directions.
//!
//! This crate is the single source of truth for the wire: the server and the
//! Rust client use it, the committed OpenRPC document in `schemas/` is
//! generated from it, and the conformance vectors in `schemas/vectors/`
//! exercise it.
//!
//! ```
//! use switchboard_protocol::frame::{self, Frame, Message};
//!
//! let frame = frame::parse(r#"{"jsonrpc":"2.0","id":"a-1","method":"echo","params":[1]}"#);
//! let Frame::Single(Message::Request { id, method, .. }) = frame else { panic!() };
//! assert_eq!(id.get(), r#""a-1""#);
//! assert_eq!(method, "echo");
//! assert_eq!(frame::write_result(id.get(), "[1]"), r#"{"jsonrpc":"2.0","id":"a-1","result":[1]}"#);
//! ```

pub mod api;
pub mod backoff;
pub mod codes;
pub mod contract;
mod error;
pub mod frame;
pub mod methods;
pub mod openrpc;
mod target;

pub use error::ErrorObject;
pub use target::Target;
