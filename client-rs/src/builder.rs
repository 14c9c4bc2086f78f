//! [`ClientBuilder`]: every option of a client, each with its default.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::client::Client;
use crate::config::{Config, Headers, without_query};
use crate::error::{BoxError, Error};
use crate::reconnect::ReconnectPolicy;
use crate::token::{Token, TokenTransport};

/// Builds a [`Client`]. Made by [`Client::builder`].
///
/// ```
/// use std::time::Duration;
/// use switchboard_client::{Client, ReconnectPolicy};
///
/// let client = Client::builder("ws://127.0.0.1:8080/ws")
///     .token("my-jwt")
///     .call_timeout(Duration::from_secs(5))
///     .reconnect(ReconnectPolicy::between(Duration::from_millis(200), Duration::from_secs(10)))
///     .build()?;
/// # Ok::<(), switchboard_client::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` or `connect`"]
pub struct ClientBuilder {
    config: Config,
}

// `Client::builder` is defined here, next to the builder it returns, so that
// `client.rs` does not have to import the module above it.
impl Client {
    /// Starts building a client for `url` (`ws://…` or `wss://…`).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }
}

impl ClientBuilder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        Self {
            config: Config {
                url: url.into(),
                token: Token::None,
                token_transport: TokenTransport::Header,
                headers: Headers::default(),
                connect_timeout: Duration::from_secs(10),
                call_timeout: Duration::from_secs(30),
                max_in_flight: 64,
                max_handlers: 64,
                ping_interval: Some(Duration::from_secs(25)),
                reconnect: ReconnectPolicy::default(),
                buffer: 1024,
                personal_topic: true,
                max_message_size: 16 << 20,
                send_cancel: true,
                tls: None,
            },
        }
    }

    /// Sends this token with every connection. Default: no token.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.config.token = Token::Fixed(token.into());
        self
    }

    /// Asks `source` for a fresh token before every connection (the first
    /// one and each reconnect), and while connected, before the token
    /// expires (shortly before a JWT's `exp` claim, and when the server
    /// warns with `rpc.expiring`), sending the new one with `rpc.refresh`.
    /// A failing source fails the first connect, and makes a reconnect
    /// attempt count as failed. With a source, a handshake refused with 401
    /// or 403 is retried (the next token may be accepted); with a fixed
    /// token it closes the client.
    ///
    /// ```
    /// # use switchboard_client::Client;
    /// let builder = Client::builder("wss://example.invalid/ws").token_source(|| async {
    ///     // Ask your identity provider here.
    ///     Ok::<_, std::io::Error>("fresh-jwt".to_owned())
    /// });
    /// ```
    pub fn token_source<F, Fut, E>(mut self, source: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.config.token = Token::source(source);
        self
    }

    /// How the token travels: a header (the default) or a subprotocol.
    pub fn token_transport(mut self, transport: TokenTransport) -> Self {
        self.config.token_transport = transport;
        self
    }

    /// Adds a header to the WebSocket handshake.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.headers.0.push((name.into(), value.into()));
        self
    }

    /// How long opening a connection may take, from the TCP connect to the
    /// `rpc.welcome`. Default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }

    /// The timeout of calls that name none. Default 30 s.
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.config.call_timeout = timeout;
        self
    }

    /// The most calls waiting for an answer at once; further calls wait for
    /// a free slot (within their timeout). Keep it at or below the server's
    /// `max_in_flight` (announced in `rpc.welcome`, 64 by default), which
    /// answers the excess with `-32003`. Default 64.
    pub fn max_in_flight(mut self, calls: usize) -> Self {
        self.config.max_in_flight = calls.max(1);
        self
    }

    /// The most server→client calls handled at once; more are answered
    /// `-32003` (overloaded) at once. Default 64.
    pub fn max_handlers(mut self, handlers: usize) -> Self {
        self.config.max_handlers = handlers.max(1);
        self
    }

    /// How often to ping the server. A connection that has not delivered a
    /// single frame one interval after a ping is considered dead and is
    /// replaced. `None` turns pings off. Default 25 s.
    pub fn ping_interval(mut self, interval: Option<Duration>) -> Self {
        self.config.ping_interval = interval.filter(|d| !d.is_zero());
        self
    }

    /// How to reconnect. Default: [`ReconnectPolicy::default`] (0.5 s to 20 s).
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.config.reconnect = policy;
        self
    }

    /// How many pushes each notification method and each topic keeps for a
    /// reader that is slow or not there yet, and how many progress reports a
    /// [`ProgressCall`](crate::ProgressCall) keeps. When full, the oldest is
    /// dropped and the reader is told how many it missed. Default 1024.
    pub fn buffer(mut self, pushes: usize) -> Self {
        self.config.buffer = pushes.max(1);
        self
    }

    /// Whether to manage the personal topic `user:{id}` that the server
    /// subscribes every session to: learn its position on connect and
    /// resume it on reconnect, so that recoverable pushes to the user are
    /// not lost. Default `true`.
    pub fn personal_topic(mut self, manage: bool) -> Self {
        self.config.personal_topic = manage;
        self
    }

    /// The largest message accepted from the server, in bytes. Default 16 MiB.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.config.max_message_size = bytes;
        self
    }

    /// Whether a call given up (timed out or dropped) sends `rpc.cancel {id}`
    /// to the server. Default `true`.
    pub fn send_cancel(mut self, send: bool) -> Self {
        self.config.send_cancel = send;
        self
    }

    /// The TLS configuration for `wss://` URLs, for example one that trusts
    /// a private certificate authority. Default: the Mozilla roots of
    /// `webpki-roots`, with rustls's *ring* provider.
    pub fn tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.config.tls = Some(config);
        self
    }

    /// Builds the client without connecting: register handlers, then call
    /// [`Client::connect`]. Fails only on a URL that is not `ws://` or `wss://`.
    pub fn build(self) -> Result<Client, Error> {
        let url = self.config.url.trim();
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            let url = without_query(url);
            return Err(Error::InvalidUrl(format!("{url}: expected ws:// or wss://")));
        }
        Ok(Client::from_config(self.config))
    }

    /// Builds the client and connects it (see [`Client::connect`]).
    pub async fn connect(self) -> Result<Client, Error> {
        let client = self.build()?;
        client.connect().await?;
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_shows_no_secrets() {
        let builder = ClientBuilder::new("wss://example.invalid/ws?token=secret-1")
            .token("secret-2")
            .header("x-api-key", "secret-3");
        let client = builder.clone().build().expect("builds");
        for text in [format!("{builder:?}"), format!("{client:?}")] {
            assert!(!text.contains("secret"), "{text}");
            assert!(text.contains("wss://example.invalid/ws"), "{text}");
        }
        assert!(format!("{builder:?}").contains("x-api-key"));
    }

    #[test]
    fn only_websocket_urls_build() {
        assert!(ClientBuilder::new("ws://127.0.0.1:1/ws").build().is_ok());
        let refused = ClientBuilder::new("https://example.invalid/?token=secret").build();
        assert!(
            matches!(&refused, Err(Error::InvalidUrl(u)) if !u.contains("secret")),
            "{refused:?}"
        );
    }
}
