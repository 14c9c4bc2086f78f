//! The WebSocket upgrade and the socket a session owns.
//!
//! The upgrade is answered here rather than by axum's extractor so that the
//! session's socket sits on [`SessionIo`], whose writes the session
//! controls. tungstenite reads the client's frames; the session writes its
//! own text frames straight into [`SessionIo`]'s outbox (header built here,
//! payload not copied) and [`SessionIo`] writes each flush's frames with as
//! few vectored writes as the socket allows, then gives its memory back.
//! tungstenite keeps the capacity of its buffers for the life of a
//! connection, so a write path through it would keep one burst of large
//! frames resident on every idle session afterwards.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use switchboard_protocol::methods;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tungstenite::Utf8Bytes;
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
            // tungstenite's own frames (pings, pongs, close) go straight to SessionIo's outbox.
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

/// Most slices handed to one vectored write (two per frame: header and payload).
const MAX_SLICES: usize = 128;

/// One frame (or raw bytes) waiting to be written: a WebSocket header
/// built here and a payload shared with whoever else sends it.
struct Chunk {
    head: [u8; 10],
    head_len: u8,
    body: Bytes,
}

impl Chunk {
    fn len(&self) -> usize {
        usize::from(self.head_len) + self.body.len()
    }
}

/// The header of an unmasked, final text frame of `len` bytes (RFC 6455 §5.2).
fn text_header(len: usize) -> ([u8; 10], u8) {
    let mut head = [0u8; 10];
    head[0] = 0x81;
    let head_len = match len {
        0..=125 => {
            head[1] = len as u8;
            2
        }
        126..=0xFFFF => {
            head[1] = 126;
            head[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            head[1] = 127;
            head[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    };
    (head, head_len)
}

/// A connection whose writes are an outbox of frames that holds memory only
/// while it has something to write.
///
/// The session puts text frames in with [`SessionIo::push_text`]: the frame
/// header is built here and the payload is not copied (a fan-out frame is
/// one buffer shared by every session it goes to). Bytes tungstenite writes
/// itself (pings, pongs, close frames) join the same outbox in order. A
/// flush hands everything to the socket in vectored writes of up to `limit`
/// bytes each (a larger frame goes in one write of its own) and then frees
/// the outbox, so an idle session holds no write memory whatever it sent
/// before. Reads pass through untouched.
pub(crate) struct SessionIo<T> {
    inner: T,
    out: VecDeque<Chunk>,
    /// How much of the first chunk is already written.
    sent: usize,
    limit: usize,
}

impl<T> SessionIo<T> {
    pub(crate) fn new(inner: T, limit: usize) -> Self {
        Self {
            inner,
            out: VecDeque::new(),
            sent: 0,
            limit: limit.max(1),
        }
    }

    /// Whether everything put in has been written.
    pub(crate) fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Queues a text frame carrying `payload`; it leaves at the next flush.
    pub(crate) fn push_text(&mut self, payload: Utf8Bytes) {
        let body = Bytes::from(payload);
        let (head, head_len) = text_header(body.len());
        self.out.push_back(Chunk { head, head_len, body });
    }
}

impl<T: AsyncWrite + Unpin> SessionIo<T> {
    /// Writes out everything queued, then frees the outbox.
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Self {
            inner,
            out,
            sent,
            limit,
        } = self;
        while !out.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut used = 0;
            let mut bytes = 0;
            let mut skip = *sent;
            for chunk in out.iter() {
                if used + 2 > MAX_SLICES || (used > 0 && bytes >= *limit) {
                    break;
                }
                for part in [&chunk.head[..usize::from(chunk.head_len)], &chunk.body[..]] {
                    let cut = skip.min(part.len());
                    skip -= cut;
                    let part = &part[cut..];
                    if !part.is_empty() {
                        slices[used] = IoSlice::new(part);
                        used += 1;
                        bytes += part.len();
                    }
                }
            }
            let mut n = ready!(Pin::new(&mut *inner).poll_write_vectored(cx, &slices[..used]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            while let Some(first) = out.front() {
                let left = first.len() - *sent;
                if n < left {
                    *sent += n;
                    break;
                }
                n -= left;
                *sent = 0;
                out.pop_front();
            }
        }
        // Idle sessions keep no outbox.
        *out = VecDeque::new();
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SessionIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SessionIo<T> {
    /// tungstenite's own frames (its write buffer is off, so each call is
    /// whole frames): queued behind the session's, written at the flush.
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().out.push_back(Chunk {
            head: [0; 10],
            head_len: 0,
            body: Bytes::copy_from_slice(data),
        });
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_out(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::SessionIo;

    const LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

    /// The bytes of an unmasked final text frame carrying `payload`.
    fn text_frame(payload: &str) -> Vec<u8> {
        let mut frame = vec![0x81];
        match payload.len() {
            n @ 0..=125 => frame.push(n as u8),
            n @ 126..=0xFFFF => {
                frame.push(126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(payload.as_bytes());
        frame
    }

    #[tokio::test]
    async fn frames_wait_for_the_flush_then_the_outbox_is_freed() {
        tokio::time::timeout(LIMIT, frames_wait()).await.expect("in time");
    }

    async fn frames_wait() {
        let (client, mut server) = tokio::io::duplex(1 << 20);
        let mut io = SessionIo::new(client, 64);
        let sizes = [0, 5, 125, 126, 300, 65_535, 65_536, 70_000];
        let payloads: Vec<String> = sizes.iter().map(|&n| "x".repeat(n)).collect();
        for p in &payloads {
            io.push_text(p.clone().into());
        }
        assert_eq!(io.out.len(), sizes.len(), "nothing written before the flush");
        io.flush().await.unwrap();
        assert_eq!(io.out.capacity(), 0, "the outbox is freed after a flush");
        let want: Vec<u8> = payloads.iter().flat_map(|p| text_frame(p)).collect();
        let mut got = vec![0; want.len()];
        server.read_exact(&mut got).await.unwrap();
        assert!(got == want, "frames arrive whole and in order");
    }

    #[tokio::test]
    async fn partial_writes_keep_frames_whole_and_in_order() {
        tokio::time::timeout(LIMIT, partial_writes()).await.expect("in time");
    }

    async fn partial_writes() {
        // A pipe of 7 bytes: every write is partial and most wait for the reader.
        let (client, mut server) = tokio::io::duplex(7);
        let mut io = SessionIo::new(client, 16);
        let mut want = Vec::new();
        for i in 0..40 {
            let payload = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "y".repeat(i * 7));
            want.extend(text_frame(&payload));
            io.push_text(payload.into());
            if i % 9 == 0 {
                // Bytes tungstenite writes itself (a pong) keep their place.
                io.write_all(&[0x8A, 0x00]).await.unwrap();
                want.extend_from_slice(&[0x8A, 0x00]);
            }
        }
        let reader = async {
            let mut got = vec![0; want.len()];
            server.read_exact(&mut got).await.unwrap();
            got
        };
        let (flushed, got) = tokio::join!(io.flush(), reader);
        flushed.unwrap();
        assert!(got == want, "frames arrive whole and in order");
    }
}
