//! The state a gateway's sessions and HTTP endpoints share: one
//! [`GatewayShared`] per gateway, behind an `Arc`. It sits below the session
//! actor and the HTTP edge, which both hold it, and above what it holds.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::hub::Hub;
use crate::rpc::dispatch::Dispatcher;

/// What every session and endpoint of one gateway reads.
pub(crate) struct GatewayShared {
    pub(crate) config: Arc<Config>,
    pub(crate) hub: Hub,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
    pub(crate) auth: Option<Arc<Authenticator>>,
    /// Cancelled by [`Gateway::drain`](crate::Gateway::drain).
    pub(crate) draining: CancellationToken,
    /// Upgrades per client IP.
    pub(crate) upgrades: governor::DefaultKeyedRateLimiter<std::net::IpAddr>,
    /// Set when `tls` is configured: every connection starts with a TLS handshake.
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
    /// The next connection's number (jsonrpsee's `ConnectionId`).
    pub(crate) conn_ids: AtomicUsize,
}
