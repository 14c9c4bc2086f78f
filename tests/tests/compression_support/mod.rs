//! A raw WebSocket client that speaks permessage-deflate (RFC 7692) by
//! hand, with flate2: it writes the upgrade request itself (so a test
//! chooses the exact `Sec-WebSocket-Extensions` offer and reads the exact
//! answer), deflates what it sends with no context takeover, and hands out
//! every frame the server sends with its RSV1 bit, inflated.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::Value;
use switchboard_tests::WAIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a deflated message ends with before the sender strips it (RFC 7692 §7.2.1).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// The answer the gateway gives to an offer it accepts.
pub const AGREED: &str = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// An offer of permessage-deflate as browsers make it.
pub const BROWSER_OFFER: &str = "permessage-deflate; client_max_window_bits";

const MASK: [u8; 4] = [0x5a, 0x17, 0xc3, 0x08];

/// `message` deflated on its own, the flush's tail stripped.
pub fn deflate(message: &[u8]) -> Vec<u8> {
    let mut compressor = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(message.len() + 64);
    compressor
        .compress_vec(message, &mut out, FlushCompress::Sync)
        .expect("deflates");
    assert!(out.ends_with(&TAIL), "a sync flush ends with its marker");
    out.truncate(out.len() - TAIL.len());
    out
}

/// A deflated message inflated on its own.
pub fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut inflater = Decompress::new(false);
    let mut out = Vec::with_capacity(payload.len() * 8 + 1024);
    loop {
        let before = inflater.total_in();
        inflater
            .decompress_vec(&input[inflater.total_in() as usize..], &mut out, FlushDecompress::Sync)
            .expect("the server's message inflates on its own");
        if inflater.total_in() as usize == input.len() && out.len() < out.capacity() {
            return out;
        }
        if inflater.total_in() == before && out.len() < out.capacity() {
            panic!("the server's message does not inflate");
        }
        out.reserve(out.capacity());
    }
}

/// The upgrade request for `path` with `extensions` header lines.
pub fn upgrade_request(addr: SocketAddr, path: &str, extensions: &[&str]) -> String {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: switchboard.v1\r\n"
    );
    for line in extensions {
        request.push_str(&format!("Sec-WebSocket-Extensions: {line}\r\n"));
    }
    request.push_str("\r\n");
    request
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFrame {
    pub fin: bool,
    pub rsv1: bool,
    /// RSV2 and RSV3.
    pub rsv23: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl ServerFrame {
    /// The close code of a close frame.
    pub fn close_code(&self) -> Option<u16> {
        (self.opcode == 0x8 && self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }

    /// A text message's JSON, inflated first if it was deflated.
    pub fn json(&self) -> Value {
        assert_eq!(
            (self.opcode, self.fin, self.rsv23),
            (0x1, true, 0),
            "a whole text message"
        );
        let text = if self.rsv1 {
            inflate(&self.payload)
        } else {
            self.payload.clone()
        };
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&text)))
    }
}

/// A connection upgraded by hand.
pub struct RawClient {
    pub stream: TcpStream,
    /// The `101`'s head.
    pub head: String,
}

impl RawClient {
    /// Upgrades a connection to `path` with `extensions` header lines; panics
    /// unless the server answers `101`.
    pub async fn upgrade(addr: SocketAddr, path: &str, extensions: &[&str]) -> Self {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(upgrade_request(addr, path, extensions).as_bytes())
            .await
            .expect("write the upgrade");
        // The head byte by byte, so that no frame is read with it.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
                .await
                .expect("the upgrade answer in time")
                .expect("read");
            assert_eq!(n, 1, "closed during the upgrade: {}", String::from_utf8_lossy(&head));
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).expect("an ASCII head");
        assert!(head.starts_with("HTTP/1.1 101"), "not upgraded: {head}");
        Self { stream, head }
    }

    /// Upgrades as `user` offering `extensions`, and reads the welcome.
    pub async fn connect(addr: SocketAddr, user: &str, extensions: &[&str]) -> Self {
        let mut client = Self::upgrade(addr, &format!("/ws?user={user}"), extensions).await;
        let welcome = client.next().await.json();
        assert_eq!(welcome["method"], "rpc.welcome", "{welcome}");
        client
    }

    /// The value of the answer's `Sec-WebSocket-Extensions`, if it has one.
    pub fn extensions(&self) -> Option<String> {
        extensions_of(&self.head)
    }

    /// Sends one masked frame; `first` is FIN, RSV and opcode.
    pub async fn send_frame(&mut self, first: u8, payload: &[u8]) {
        let mut frame = vec![first];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&MASK);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        // The server may close before it has read everything.
        let _ = self.stream.write_all(&frame).await;
    }

    /// Sends `text` as one deflated text message.
    pub async fn send_deflated(&mut self, text: &str) {
        self.send_frame(0xC1, &deflate(text.as_bytes())).await;
    }

    /// Sends `text` as one plain text message.
    pub async fn send_plain(&mut self, text: &str) {
        self.send_frame(0x81, text.as_bytes()).await;
    }

    /// The server's next frame; panics if none comes in time.
    pub async fn next(&mut self) -> ServerFrame {
        tokio::time::timeout(WAIT, self.read_frame())
            .await
            .expect("a frame in time")
            .expect("a frame, not the end of the connection")
    }

    /// The server's next frame, or `None` at the end of the connection.
    pub async fn read_frame(&mut self) -> Option<ServerFrame> {
        let mut head = [0u8; 2];
        self.stream.read_exact(&mut head).await.ok()?;
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7F {
            126 => {
                let mut n = [0u8; 2];
                self.stream.read_exact(&mut n).await.ok()?;
                u64::from(u16::from_be_bytes(n))
            }
            127 => {
                let mut n = [0u8; 8];
                self.stream.read_exact(&mut n).await.ok()?;
                u64::from_be_bytes(n)
            }
            n => u64::from(n),
        };
        let mut payload = vec![0u8; usize::try_from(len).expect("a frame that fits")];
        self.stream.read_exact(&mut payload).await.ok()?;
        Some(ServerFrame {
            fin: head[0] & 0x80 != 0,
            rsv1: head[0] & 0x40 != 0,
            rsv23: head[0] & 0x30,
            opcode: head[0] & 0x0F,
            payload,
        })
    }

    /// Reads until the server's close frame and returns its code (`None`:
    /// the connection ended without one); text messages before it are
    /// returned too.
    pub async fn closed(&mut self) -> (Option<u16>, Vec<ServerFrame>) {
        let mut before = Vec::new();
        loop {
            match tokio::time::timeout(WAIT, self.read_frame())
                .await
                .expect("closed in time")
            {
                Some(frame) if frame.opcode == 0x8 => return (frame.close_code(), before),
                Some(frame) => before.push(frame),
                None => return (None, before),
            }
        }
    }
}

/// The value of `Sec-WebSocket-Extensions` in a response head.
pub fn extensions_of(head: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-extensions")
            .then(|| value.trim().to_owned())
    })
}
