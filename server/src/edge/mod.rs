//! The HTTP edge: the [`Gateway`](gateway::Gateway) and its builder, the
//! accept loop (plain TCP or TLS), upgrade admission (origin, rate, identity,
//! per-user limits) before a session actor starts, `POST /rpc`, the server
//! API on `POST /api`, metrics, health and the dashboard's assets.

pub(crate) mod api;
pub(crate) mod assets;
pub(crate) mod gateway;
pub(crate) mod tls;
