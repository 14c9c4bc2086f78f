//! [`Config`]: the options of a client, fixed when it is built.
//!
//! They live apart from the builder that fills them in, low in the crate, so
//! that the state every part of a client shares (`shared.rs`) can hold them
//! without depending on the public face above it.

use std::sync::Arc;
use std::time::Duration;

use crate::reconnect::ReconnectPolicy;
use crate::token::{Token, TokenTransport};

/// The options of a client, fixed when it is built.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) url: String,
    pub(crate) token: Token,
    pub(crate) token_transport: TokenTransport,
    pub(crate) headers: Headers,
    pub(crate) connect_timeout: Duration,
    pub(crate) call_timeout: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) max_handlers: usize,
    pub(crate) ping_interval: Option<Duration>,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) buffer: usize,
    pub(crate) personal_topic: bool,
    pub(crate) max_message_size: usize,
    pub(crate) send_cancel: bool,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            // Without the query, which may carry a token.
            .field("url", &without_query(&self.url))
            .field("token", &self.token)
            .field("token_transport", &self.token_transport)
            .field("headers", &self.headers)
            .field("connect_timeout", &self.connect_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("max_handlers", &self.max_handlers)
            .field("ping_interval", &self.ping_interval)
            .field("reconnect", &self.reconnect)
            .field("buffer", &self.buffer)
            .field("personal_topic", &self.personal_topic)
            .field("max_message_size", &self.max_message_size)
            .field("send_cancel", &self.send_cancel)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// A URL without its query string.
pub(crate) fn without_query(url: &str) -> &str {
    url.split('?').next().unwrap_or_default()
}

/// Extra handshake headers. Their values may be secrets, so `Debug` shows
/// only their names.
#[derive(Clone, Default)]
pub(crate) struct Headers(pub(crate) Vec<(String, String)>);

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(name, _)| name)).finish()
    }
}
