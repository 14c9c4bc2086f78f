//! The framing layer, reachable from outside the crate for verification
//! only: an echo endpoint for the Autobahn test suite, and a frame reader and
//! permessage-deflate's pieces for the fuzz targets. Both run the code sessions run (the upgrade, [`Socket`],
//! the reader and the outbox), not copies of it. Not an API: it may change at
//! any time.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use switchboard_protocol::codes::close;
use tokio::io::{AsyncRead, ReadBuf};
use tungstenite::Utf8Bytes;

use super::read::{Incoming, Input, ReadError};
use super::{CLOSE_TIMEOUT, Outgoing, Socket, SocketConfig, Wire, WsUpgrade, deflate};
use crate::config::Limits;

/// A router with a WebSocket echo at `/`: every text and binary message
/// comes back as it came, pings are answered, and a broken frame closes the
/// connection with the code a session would close it with. The upgrade is
/// the gateway's own (no authentication: nothing here reaches a session).
///
/// permessage-deflate is accepted as a session accepts it; messages of
/// `compression_threshold` bytes or more are echoed deflated, even where a
/// session would send them plain because deflating does not make them
/// smaller (`None`: compression off).
pub fn echo_router(limits: &Limits, compression_threshold: Option<usize>) -> Router {
    let config = SocketConfig::new(limits).compression(compression_threshold);
    Router::new().route(
        "/",
        get(move |upgrade: WsUpgrade| async move { upgrade.accept(config, echo) }),
    )
}

/// What the echo does with one thing it read.
enum Echo {
    Text(Utf8Bytes),
    Binary(Bytes),
    Close(Option<u16>),
    Nothing,
}

impl From<Incoming<'_>> for Echo {
    fn from(incoming: Incoming<'_>) -> Self {
        match incoming {
            Incoming::Text(text) => Self::Text(text.into()),
            Incoming::Binary(bytes) => Self::Binary(Bytes::copy_from_slice(bytes)),
            Incoming::Close(code) => Self::Close(code),
            // A ping's pong is already in the outbox.
            Incoming::Ping | Incoming::Pong => Self::Nothing,
        }
    }
}

async fn echo(mut socket: Socket) {
    loop {
        // Everything that has arrived is echoed before one flush, as a session
        // answers a burst of requests.
        let next = std::future::poll_fn(|cx| {
            let polled = socket.poll_next(cx).map(|r| r.map(Echo::from));
            match polled {
                Poll::Pending if !socket.is_flushed() => Poll::Ready(Ok(None)),
                other => other.map(|r| r.map(Some)),
            }
        })
        .await;
        match next {
            Ok(Some(Echo::Text(text))) => {
                let threshold = socket.deflate_threshold();
                let wire = match Outgoing::from(text).wire(threshold) {
                    // Deflated even where that does not make it smaller (a
                    // session would send it plain), so that the compression
                    // cases check the deflated path on every message; kosoku
                    // 0.1.0 also fails a case in which a plain text message
                    // arrives on a compressing connection, which RFC 7692 allows.
                    Wire::Text(text) if threshold.is_some() => match deflate::deflate_always(text.as_bytes()) {
                        Some(deflated) => Wire::Deflated(deflated),
                        None => Wire::Text(text),
                    },
                    wire => wire,
                };
                socket.push(wire);
            }
            Ok(Some(Echo::Binary(bytes))) => socket.push_binary(bytes),
            Ok(Some(Echo::Nothing)) => {}
            Ok(Some(Echo::Close(code))) => {
                socket.answer_close(code, CLOSE_TIMEOUT).await;
                return;
            }
            Ok(None) => {
                if std::future::poll_fn(|cx| socket.poll_flush(cx)).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                if let Some(code) = error.close_code() {
                    socket.close(code, close::reason(code), CLOSE_TIMEOUT).await;
                }
                return;
            }
        }
    }
}

/// Something the reader handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping; the payload is what its pong carries.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// A close frame, with its code if it had one.
    Close(Option<u16>),
}

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The stream ended (whole frames or not).
    Eof,
    /// A frame or message over the limit (close 1009).
    TooBig,
    /// Text or a close reason that is not UTF-8, or a deflated message that
    /// does not inflate (close 1007).
    InvalidUtf8,
    /// A frame that breaks RFC 6455 (close 1002).
    Protocol,
}

/// A byte stream delivered in the pieces given: each piece is what one read
/// finds (at most what the reader asks for; the rest of the piece waits for
/// the next read), and an empty piece is a read that finds nothing yet.
struct Pieces<'a> {
    pieces: VecDeque<&'a [u8]>,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let Some(piece) = self.pieces.front_mut() else {
            return Poll::Ready(Ok(()));
        };
        if piece.is_empty() {
            self.pieces.pop_front();
            return Poll::Pending;
        }
        let n = piece.len().min(buf.remaining());
        buf.put_slice(&piece[..n]);
        *piece = &piece[n..];
        if piece.is_empty() {
            self.pieces.pop_front();
        }
        Poll::Ready(Ok(()))
    }
}

/// Reads the client frames in `pieces` with the session's reader (steps of
/// `step` bytes, messages of at most `max` bytes): everything handed out, and
/// why reading stopped.
///
/// Panics when the reader breaks one of its own rules: a message over `max`,
/// or a read buffer kept while nothing is unread (an idle connection holds
/// no read memory).
pub fn read_stream(pieces: &[&[u8]], step: usize, max: usize) -> (Vec<Read>, End) {
    let mut io = Pieces {
        pieces: pieces.iter().copied().collect(),
    };
    let mut input = Input::new(step, max, false);
    let mut out = Vec::new();
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let end = loop {
        let mut pong = None;
        let polled = input.poll_next(&mut io, &mut cx, |p| pong = Some(p.to_vec()));
        let read = match polled {
            Poll::Pending => {
                assert!(
                    input.unread() > 0 || input.buffer_capacity() == 0,
                    "a read buffer is kept while nothing is unread"
                );
                continue;
            }
            Poll::Ready(Err(e)) => {
                break match e {
                    ReadError::TooBig => End::TooBig,
                    ReadError::InvalidUtf8 | ReadError::Inflate => End::InvalidUtf8,
                    ReadError::Protocol(_) => End::Protocol,
                    ReadError::Eof | ReadError::Io(_) => End::Eof,
                };
            }
            Poll::Ready(Ok(read)) => match read {
                Incoming::Text(t) => Read::Text(t.to_owned()),
                Incoming::Binary(b) => Read::Binary(b.to_vec()),
                Incoming::Ping => Read::Ping(pong.take().expect("a ping is answered with a pong")),
                Incoming::Pong => Read::Pong,
                Incoming::Close(code) => Read::Close(code),
            },
        };
        if let Read::Text(t) = &read {
            assert!(t.len() <= max, "a message of {} bytes over the limit of {max}", t.len());
        }
        if let Read::Binary(b) = &read {
            assert!(b.len() <= max, "a message of {} bytes over the limit of {max}", b.len());
        }
        out.push(read);
    };
    (out, end)
}

/// Whether the gateway accepts one of the permessage-deflate offers in
/// `lines` (the lines of a `Sec-WebSocket-Extensions` header; a line that is
/// not a valid header value is left out).
pub fn accepts_offer(lines: &[&[u8]]) -> bool {
    let mut headers = axum::http::HeaderMap::new();
    for line in lines {
        if let Ok(value) = axum::http::HeaderValue::from_bytes(line) {
            headers.append(axum::http::header::SEC_WEBSOCKET_EXTENSIONS, value);
        }
    }
    deflate::offered(&headers)
}

/// `message` deflated as a session deflates it: `None` when that would not
/// make it smaller.
pub fn deflate_message(message: &[u8]) -> Option<Vec<u8>> {
    deflate::deflate(message).map(|bytes| bytes.to_vec())
}

/// `message` deflated even when that makes it larger, as the echo does.
pub fn deflate_message_always(message: &[u8]) -> Option<Vec<u8>> {
    deflate::deflate_always(message).map(|bytes| bytes.to_vec())
}

/// A client's deflated message inflated as the reader inflates it, within
/// `max` bytes: [`End::TooBig`] past them, [`End::InvalidUtf8`] (close 1007)
/// when it does not inflate.
///
/// Panics when inflating breaks its own rule: a buffer with room past the
/// limit (plus the one byte that tells it is passed).
pub fn inflate_message(deflated: &[u8], max: usize) -> Result<Vec<u8>, End> {
    let mut out = Vec::new();
    let result = deflate::inflate(deflated, max, &mut out);
    assert!(
        out.capacity() <= max + 1,
        "room for {} bytes under a limit of {max}",
        out.capacity()
    );
    match result {
        Ok(()) => Ok(out),
        Err(ReadError::TooBig) => Err(End::TooBig),
        Err(_) => Err(End::InvalidUtf8),
    }
}
