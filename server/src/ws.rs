//! The WebSocket upgrade and the socket a session owns.
//!
//! The upgrade is answered here rather than by axum's extractor so that the
//! session's socket sits on [`SessionIo`]: a write buffer that the session
//! controls. tungstenite keeps the capacity of its own buffers for the life
//! of a connection, so one burst of large frames would otherwise stay
//! resident on every idle session afterwards. Here tungstenite's write
//! buffer is switched off (each frame goes straight to [`SessionIo`]) and
//! [`SessionIo`] gathers the frames of one flush, writes them in one go and
//! then gives its memory back.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use switchboard_protocol::methods;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{Role, WebSocketConfig};

use crate::config::Limits;

/// The socket of one session.
pub(crate) type Socket = WebSocketStream<SessionIo<TokioIo<Upgraded>>>;

/// A valid WebSocket upgrade request, ready to be accepted.
pub(crate) struct WsUpgrade {
    key: HeaderValue,
    protocol: Option<HeaderValue>,
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
            on_upgrade,
        })
    }
}

/// How a session's socket is set up, from the limits.
#[derive(Clone, Copy)]
pub(crate) struct SocketConfig {
    websocket: WebSocketConfig,
    write_buffer: usize,
}

impl SocketConfig {
    pub(crate) fn new(limits: &Limits) -> Self {
        let websocket = WebSocketConfig::default()
            .read_buffer_size(limits.read_buffer_size)
            // Every frame goes straight to SessionIo, which buffers one flush.
            .write_buffer_size(0)
            .max_write_buffer_size(limits.max_queue_bytes.max(limits.write_buffer_size * 2))
            .max_message_size(Some(limits.max_message_size))
            .max_frame_size(Some(limits.max_message_size));
        Self {
            websocket,
            write_buffer: limits.write_buffer_size,
        }
    }
}

impl WsUpgrade {
    /// Answers `101 Switching Protocols` and, once the connection has
    /// switched, runs `session` on the socket in a task of its own.
    pub(crate) fn accept<F, Fut>(self, config: SocketConfig, session: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let SocketConfig {
            websocket,
            write_buffer,
        } = config;
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let Ok(upgraded) = on_upgrade.await else {
                return;
            };
            let io = SessionIo::new(TokioIo::new(upgraded), write_buffer);
            session(WebSocketStream::from_raw_socket(io, Role::Server, Some(websocket)).await).await;
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
        response
    }
}

/// A connection with a write buffer that holds memory only while it has
/// something to write.
///
/// Writes are gathered (up to `limit` bytes; a write larger than that goes
/// straight through) until the session flushes; the flush writes them with
/// as few system calls as the socket allows and then frees the buffer, so
/// an idle session holds no write buffer at all whatever it sent before.
/// Reads pass through untouched.
pub(crate) struct SessionIo<T> {
    inner: T,
    buf: Vec<u8>,
    /// How much of `buf` is already written.
    written: usize,
    limit: usize,
}

impl<T> SessionIo<T> {
    pub(crate) fn new(inner: T, limit: usize) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            written: 0,
            limit: limit.max(1),
        }
    }
}

impl<T: AsyncWrite + Unpin> SessionIo<T> {
    /// Writes out everything buffered.
    fn poll_write_buffered(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.buf.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SessionIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SessionIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() + data.len() > this.limit {
            ready!(this.poll_write_buffered(cx))?;
            if data.len() >= this.limit {
                return Pin::new(&mut this.inner).poll_write(cx, data);
            }
        }
        this.buf.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_buffered(cx))?;
        // Idle sessions keep no write buffer.
        this.buf = Vec::new();
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_buffered(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::SessionIo;

    const LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

    #[tokio::test]
    async fn gathers_until_flush_then_frees_the_buffer() {
        tokio::time::timeout(LIMIT, gathers()).await.expect("in time");
    }

    async fn gathers() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut io = SessionIo::new(client, 64);
        io.write_all(b"hello ").await.unwrap();
        io.write_all(b"world").await.unwrap();
        assert_eq!(io.buf.len(), 11, "nothing written before the flush");
        io.flush().await.unwrap();
        assert_eq!(io.buf.capacity(), 0, "the buffer is freed after a flush");
        let mut got = vec![0; 11];
        tokio::io::AsyncReadExt::read_exact(&mut server, &mut got)
            .await
            .unwrap();
        assert_eq!(&got, b"hello world");
    }

    #[tokio::test]
    async fn large_writes_go_straight_through_in_order() {
        tokio::time::timeout(LIMIT, large_writes()).await.expect("in time");
    }

    async fn large_writes() {
        let (client, mut server) = tokio::io::duplex(1 << 16);
        let mut io = SessionIo::new(client, 8);
        io.write_all(b"abc").await.unwrap();
        io.write_all(&[b'x'; 20]).await.unwrap();
        io.write_all(b"def").await.unwrap();
        io.flush().await.unwrap();
        let mut got = vec![0; 26];
        tokio::io::AsyncReadExt::read_exact(&mut server, &mut got)
            .await
            .unwrap();
        assert_eq!(&got[..3], b"abc");
        assert_eq!(&got[3..23], &[b'x'; 20]);
        assert_eq!(&got[23..], b"def");
    }
}
