//! WebSocket: the upgrade, and the socket a session owns.
//!
//! The upgrade is answered here rather than by axum's extractor, and the
//! framing is done here rather than by a WebSocket library, so that the
//! session controls every byte of memory its connection holds. `read.rs`
//! reads the client's frames into a buffer that exists only while something
//! is unread and hands messages out borrowed from it; `write.rs` keeps the
//! frames to send in an outbox (headers built there, payloads not copied: a
//! fan-out frame is one buffer shared by every session) that is freed after
//! each flush. An idle session's connection holds no buffer at all, whatever
//! it received or sent before.
//!
//! permessage-deflate (`deflate.rs`) is negotiated in the upgrade when the
//! configuration turns it on; a message is then deflated on its own, once
//! for every session that receives it ([`Outgoing`]), and inflated by the
//! reader within the message size limit.

mod deflate;
mod outgoing;
mod read;
#[doc(hidden)]
pub mod verification;
mod write;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use switchboard_protocol::codes::close;
use switchboard_protocol::methods;
use tokio::io::{AsyncRead, AsyncWrite};
use tungstenite::Utf8Bytes;

pub use outgoing::Outgoing;
pub(crate) use outgoing::Wire;
pub(crate) use read::{Incoming, ReadError};
use write::{Outbox, opcode};

use crate::config::Limits;

/// How long a close handshake may take before the socket is dropped.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// A valid WebSocket upgrade request, ready to be accepted.
pub(crate) struct WsUpgrade {
    key: HeaderValue,
    protocol: Option<HeaderValue>,
    /// Whether the client offered permessage-deflate in a form the gateway accepts.
    deflate_offered: bool,
    on_upgrade: OnUpgrade,
}

fn refuse(status: StatusCode, why: &'static str) -> Response {
    (status, why).into_response()
}

/// Whether a comma-separated header (any of its lines) lists `token`, ignoring case.
fn lists_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

impl<S: Send + Sync> FromRequestParts<S> for WsUpgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if parts.method != Method::GET {
            return Err(refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "a WebSocket upgrade is a GET request",
            ));
        }
        if parts.version != Version::HTTP_11 {
            return Err(refuse(StatusCode::BAD_REQUEST, "a WebSocket upgrade needs HTTP/1.1"));
        }
        let headers = &parts.headers;
        if !lists_token(headers, header::CONNECTION, "upgrade") {
            return Err(refuse(StatusCode::BAD_REQUEST, "Connection: Upgrade is missing"));
        }
        if !lists_token(headers, header::UPGRADE, "websocket") {
            return Err(refuse(StatusCode::BAD_REQUEST, "Upgrade: websocket is missing"));
        }
        if headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
            // RFC 6455 §4.2.2: name the version this server speaks.
            let mut refused = refuse(StatusCode::UPGRADE_REQUIRED, "only WebSocket version 13 is supported");
            refused
                .headers_mut()
                .insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            return Err(refused);
        }
        let Some(key) = headers
            .get(header::SEC_WEBSOCKET_KEY)
            .filter(|k| !k.is_empty())
            .cloned()
        else {
            return Err(refuse(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is missing"));
        };
        // Only `switchboard.v1` is ever chosen; other offers (a `bearer.` token) are read by auth.
        let protocol = lists_token(headers, header::SEC_WEBSOCKET_PROTOCOL, methods::PROTOCOL_VERSION)
            .then(|| HeaderValue::from_static(methods::PROTOCOL_VERSION));
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err(refuse(
                StatusCode::UPGRADE_REQUIRED,
                "this connection cannot be upgraded",
            ));
        };
        Ok(Self {
            key,
            protocol,
            deflate_offered: deflate::offered(headers),
            on_upgrade,
        })
    }
}

/// How a session's socket is set up, from the limits.
#[derive(Clone, Copy)]
pub(crate) struct SocketConfig {
    read_step: usize,
    write_limit: usize,
    max_message: usize,
    /// With compression on: the size from which messages are deflated.
    compression: Option<usize>,
}

impl SocketConfig {
    /// Sockets without compression.
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            read_step: limits.read_buffer_size,
            write_limit: limits.write_buffer_size,
            max_message: limits.max_message_size,
            compression: None,
        }
    }

    /// Offers permessage-deflate to clients that ask for it, deflating
    /// messages of `threshold` bytes or more (`None`: compression is off).
    pub(crate) fn compression(self, threshold: Option<usize>) -> Self {
        Self {
            compression: threshold,
            ..self
        }
    }
}

impl WsUpgrade {
    /// The threshold from which the session's messages will be deflated, if
    /// the client offered compression and `config` turns it on.
    pub(crate) fn compression(&self, config: &SocketConfig) -> Option<usize> {
        config.compression.filter(|_| self.deflate_offered)
    }

    /// Answers `101 Switching Protocols` and, once the connection has
    /// switched, runs `session` on the socket in a task of its own.
    pub(crate) fn accept<F, Fut>(self, config: SocketConfig, session: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let deflate = self.compression(&config);
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            session(Socket::new(TokioIo::new(upgraded), config, deflate)).await;
        });
        let accept = tungstenite::handshake::derive_accept_key(self.key.as_bytes());
        let mut response = Response::new(axum::body::Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some(protocol) = self.protocol {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, protocol);
        }
        if deflate.is_some() {
            headers.insert(
                header::SEC_WEBSOCKET_EXTENSIONS,
                HeaderValue::from_static(deflate::AGREED),
            );
        }
        response
    }
}

/// The server's end of one WebSocket connection.
///
/// Reading ([`Socket::poll_next`]) hands out one message at a time, borrowed
/// from the read buffer; pings are answered by queueing a pong. Writing is
/// two steps: frames are put in the outbox ([`Socket::push_text`] and the
/// control frames), and [`Socket::poll_flush`] writes them all out.
pub(crate) struct Socket<T = TokioIo<Upgraded>> {
    io: T,
    input: read::Input,
    out: Outbox,
    /// With permessage-deflate negotiated: the size from which messages are deflated.
    deflate: Option<usize>,
}

impl<T> Socket<T> {
    /// A socket over `io`; `deflate` is the threshold of a negotiated
    /// permessage-deflate.
    pub(crate) fn new(io: T, config: SocketConfig, deflate: Option<usize>) -> Self {
        Self {
            io,
            input: read::Input::new(config.read_step, config.max_message, deflate.is_some()),
            out: Outbox::new(config.write_limit),
            deflate,
        }
    }

    /// With permessage-deflate negotiated: the size from which messages are deflated.
    pub(crate) fn deflate_threshold(&self) -> Option<usize> {
        self.deflate
    }

    /// Queues a message as the session's queue prepared it; it leaves at the next flush.
    pub(crate) fn push(&mut self, message: Wire) {
        match message {
            Wire::Text(text) => self.push_text(text),
            Wire::Deflated(bytes) => self.out.push_deflated(opcode::TEXT, bytes),
        }
    }

    /// Whether everything put in the outbox has been written.
    pub(crate) fn is_flushed(&self) -> bool {
        self.out.is_empty()
    }

    /// Queues a text frame carrying `payload`; it leaves at the next flush.
    pub(crate) fn push_text(&mut self, payload: Utf8Bytes) {
        self.out.push(opcode::TEXT, Bytes::from(payload));
    }

    /// Queues a binary message carrying `payload`. Only the verification
    /// echo sends one (the protocol is text), and deflates it, with
    /// compression negotiated, from the threshold on even where that does not
    /// make it smaller, as it does text (see `verification.rs`).
    pub(crate) fn push_binary(&mut self, payload: Bytes) {
        match self
            .deflate
            .filter(|t| payload.len() >= *t)
            .and_then(|_| deflate::deflate_always(&payload))
        {
            Some(deflated) => self.out.push_deflated(opcode::BINARY, deflated),
            None => self.out.push(opcode::BINARY, payload),
        }
    }

    /// Queues a ping with no payload.
    pub(crate) fn push_ping(&mut self) {
        self.out.push(opcode::PING, Bytes::new());
    }

    /// Queues a close frame with `code` and `reason` (at most 123 bytes).
    pub(crate) fn push_close(&mut self, code: u16, reason: &str) {
        let mut payload = Vec::with_capacity(2 + reason.len());
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(reason.as_bytes());
        self.out.push(opcode::CLOSE, payload.into());
    }
}

impl<T: AsyncRead + Unpin> Socket<T> {
    /// The client's next message or control frame; pending until one has
    /// arrived whole (the socket's waker is registered with `cx`).
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Result<Incoming<'_>, ReadError>> {
        let Self { io, input, out, .. } = self;
        input.poll_next(io, cx, |ping| out.push(opcode::PONG, Bytes::copy_from_slice(ping)))
    }
}

impl<T: AsyncRead + Unpin> Socket<T> {
    /// Ready once [`try_next`](Self::try_next) can make progress without
    /// waiting for the socket (a whole frame has arrived, or reading ended);
    /// the socket's waker is registered with `cx`.
    pub(crate) fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.input.poll_ready(&mut self.io, cx)
    }

    /// The next message if it has already arrived, without waiting for the
    /// socket (a session handles what came together before it writes).
    pub(crate) fn try_next(&mut self) -> Poll<Result<Incoming<'_>, ReadError>> {
        self.poll_next(&mut Context::from_waker(futures_util::task::noop_waker_ref()))
    }
}

impl<T: AsyncWrite + Unpin> Socket<T> {
    /// Writes out everything in the outbox, then frees it.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.out.poll_write_to(&mut self.io, cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Ends the connection's write side (after the close handshake).
    pub(crate) fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_flush(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Socket<T> {
    /// The closing handshake started by the server: a close frame with
    /// `code` and `reason`, then the client's close frame awaited (anything
    /// before it is dropped), then the end of the connection; all within
    /// `timeout`.
    pub(crate) async fn close(&mut self, code: u16, reason: &str, timeout: Duration) {
        self.push_close(code, reason);
        let handshake = async {
            std::future::poll_fn(|cx| self.poll_flush(cx)).await.ok()?;
            while !std::future::poll_fn(|cx| self.poll_next(cx).map(|m| m.map(|m| matches!(m, Incoming::Close(_)))))
                .await
                .ok()?
            {}
            std::future::poll_fn(|cx| self.poll_shutdown(cx)).await.ok()
        };
        let _ = tokio::time::timeout(timeout, handshake).await;
    }

    /// Answers the client's close frame with the same code (`1000` if it
    /// gave none) and ends the connection, within `timeout`.
    pub(crate) async fn answer_close(&mut self, code: Option<u16>, timeout: Duration) {
        self.push_close(code.unwrap_or(close::NORMAL), "");
        let _ = tokio::time::timeout(timeout, std::future::poll_fn(|cx| self.poll_shutdown(cx))).await;
    }
}
