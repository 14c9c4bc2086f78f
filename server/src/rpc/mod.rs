//! Calls from clients: the method table and dispatch, the gateway's own
//! `rpc.*` methods, direct methods and their request context, the upstream
//! proxy, and the OpenRPC document that describes them.
//!
//! A text frame from a session (or a `POST /rpc` body) goes to
//! [`dispatch`], which answers parse errors, invalid requests and batches
//! itself and routes each request to a built-in, a direct method, a
//! jsonrpsee method or an upstream.

pub(crate) mod builtins;
pub(crate) mod caller;
pub(crate) mod direct;
pub(crate) mod discover;
pub(crate) mod dispatch;
pub(crate) mod history;
pub(crate) mod presence;
pub(crate) mod progress;
pub(crate) mod table;
pub(crate) mod upstream;
