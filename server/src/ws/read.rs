//! Reading the client's frames (RFC 6455 §5) without keeping memory between
//! reads.
//!
//! Bytes are read in steps of `chunk` bytes into a buffer that exists only
//! while something is unread: once every byte has been taken and the socket
//! has nothing more, the buffer is freed. A frame larger than a step gets a
//! buffer of exactly its size, read straight into, and freed with it, so one
//! large frame does not leave a large buffer behind on an idle session (a
//! buffer that grows to its largest frame, and sometimes to twice that, is
//! what made the resident size of a long-running node creep up). A message is
//! handed out borrowed from the buffer, unmasked in place: nothing is copied
//! unless it came in fragments or deflated.
//!
//! With permessage-deflate negotiated, a message whose first frame has RSV1
//! set is inflated once it has arrived whole, into a buffer that never grows
//! past the message size limit (plus the one byte that tells it is passed).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use switchboard_protocol::codes::close;
use tokio::io::AsyncRead;

use super::deflate;
use super::write::opcode;

/// A message or control frame from the client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Incoming<'a> {
    Text(&'a str),
    /// A binary message (the protocol is text; the session refuses it).
    Binary(&'a [u8]),
    /// A ping, already answered (the pong waits in the outbox).
    Ping,
    Pong,
    /// The client's close frame, with its code if it gave one.
    Close(Option<u16>),
}

/// Why reading stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// A frame or message over the size limit (close `1009`).
    TooBig,
    /// A text message or close reason that is not UTF-8 (close `1007`).
    InvalidUtf8,
    /// A deflated message that does not inflate (close `1007`).
    Inflate,
    /// A frame that breaks RFC 6455 (close `1002`).
    Protocol(&'static str),
    /// The connection ended without a close frame.
    Eof,
    Io(io::Error),
}

impl ReadError {
    /// The close code the server answers this error with (RFC 6455 §7.4.1),
    /// or `None` when the connection is gone and nothing can be sent.
    pub(crate) fn close_code(&self) -> Option<u16> {
        match self {
            Self::TooBig => Some(close::TOO_BIG),
            Self::InvalidUtf8 | Self::Inflate => Some(close::INVALID_UTF8),
            Self::Protocol(_) => Some(close::PROTOCOL_ERROR),
            Self::Eof | Self::Io(_) => None,
        }
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooBig => f.write_str("message too big"),
            Self::InvalidUtf8 => f.write_str("text is not UTF-8"),
            Self::Inflate => f.write_str("a compressed message that does not inflate"),
            Self::Protocol(why) => f.write_str(why),
            Self::Eof => f.write_str("connection closed without a close frame"),
            Self::Io(e) => e.fmt(f),
        }
    }
}

/// A frame header as read from the wire.
struct Header {
    fin: bool,
    /// RSV1: the message's payload is deflated (first frames only).
    deflated: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Header bytes (2 to 14).
    len: usize,
    payload: usize,
}

/// Parses the header at the start of `b`; `None` while it is incomplete.
/// Everything that can be refused from the header alone is refused here,
/// before any of the payload is read. `inflate`: permessage-deflate was
/// negotiated, so RSV1 may mark the first frame of a message.
fn parse_header(b: &[u8], max: usize, inflate: bool) -> Result<Option<Header>, ReadError> {
    let [b0, b1, ..] = *b else { return Ok(None) };
    if b0 & 0x30 != 0 {
        return Err(ReadError::Protocol("reserved bits set without an extension"));
    }
    let fin = b0 & 0x80 != 0;
    let deflated = b0 & 0x40 != 0;
    let op = b0 & 0x0F;
    let control = op & 0x08 != 0;
    if deflated && !inflate {
        return Err(ReadError::Protocol("a compressed frame without permessage-deflate"));
    }
    if deflated && (control || op == opcode::CONTINUATION) {
        return Err(ReadError::Protocol("RSV1 on a control or continuation frame"));
    }
    if !matches!(
        op,
        opcode::CONTINUATION | opcode::TEXT | opcode::BINARY | opcode::CLOSE | opcode::PING | opcode::PONG
    ) {
        return Err(ReadError::Protocol("unknown opcode"));
    }
    if b1 & 0x80 == 0 {
        return Err(ReadError::Protocol("client frames must be masked"));
    }
    let (payload, at) = match b1 & 0x7F {
        126 => match b.get(2..4) {
            Some(n) => (u64::from(u16::from_be_bytes([n[0], n[1]])), 4),
            None => return Ok(None),
        },
        127 => match b.get(2..10) {
            Some(n) => {
                let n = u64::from_be_bytes(n.try_into().expect("eight bytes"));
                if n >> 63 != 0 {
                    return Err(ReadError::Protocol("frame length out of range"));
                }
                (n, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if control && (!fin || payload > 125) {
        return Err(ReadError::Protocol(
            "control frames must be final and at most 125 bytes",
        ));
    }
    if payload > max as u64 {
        return Err(ReadError::TooBig);
    }
    let Some(mask) = b.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        deflated,
        opcode: op,
        mask: mask.try_into().expect("four bytes"),
        len: at + 4,
        payload: payload as usize,
    }))
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = payload.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let v = u32::from_ne_bytes((&*chunk).try_into().expect("four bytes")) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i];
    }
}

/// Whether a close code may be sent by a peer (RFC 6455 §7.4).
fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Where the message handed out lies.
enum Found {
    /// In `buf[start..end]`.
    Buffered {
        text: bool,
        start: usize,
        end: usize,
    },
    /// In `assembled` (it came in fragments).
    Assembled {
        text: bool,
    },
    Ping,
    Pong,
    Close(Option<u16>),
}

/// A message arriving in fragments: whether it is text, whether it is
/// deflated, its bytes so far, and how many of them are known to be UTF-8.
struct Fragments {
    text: bool,
    deflated: bool,
    data: Vec<u8>,
    checked: usize,
}

impl Fragments {
    /// Adds a fragment. Text that can no longer become UTF-8 is refused at
    /// once rather than when the message ends (RFC 6455 §8.1 allows either;
    /// failing fast saves reading the rest of a message that is refused
    /// anyway). A character cut between two fragments is waited for.
    fn push(&mut self, fragment: &[u8]) -> Result<(), ReadError> {
        self.data.extend_from_slice(fragment);
        // Deflated bytes are not text: their UTF-8 is checked once inflated.
        if self.text && !self.deflated {
            match std::str::from_utf8(&self.data[self.checked..]) {
                Ok(_) => self.checked = self.data.len(),
                Err(e) if e.error_len().is_none() => self.checked += e.valid_up_to(),
                Err(_) => return Err(ReadError::InvalidUtf8),
            }
        }
        Ok(())
    }
}

/// The read side of one connection.
pub(super) struct Input {
    /// Bytes read and not yet taken: `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// A message arriving in fragments.
    fragments: Option<Fragments>,
    /// The last message that came in fragments or deflated, until the next read.
    assembled: Vec<u8>,
    chunk: usize,
    max_message: usize,
    /// Whether permessage-deflate was negotiated.
    inflate: bool,
    /// How the socket's reading ended, found by [`poll_ready`](Self::poll_ready)
    /// and reported by the next [`poll_next`](Self::poll_next).
    ended: Option<ReadError>,
}

impl Input {
    pub(super) fn new(chunk: usize, max_message: usize, inflate: bool) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            fragments: None,
            assembled: Vec::new(),
            chunk: chunk.max(16),
            max_message,
            inflate,
            ended: None,
        }
    }

    /// Ready once [`poll_next`](Self::poll_next) can make progress without
    /// waiting for the socket: a whole frame is buffered, or reading ended
    /// (an error, or the end of the stream). Nothing is taken, so a caller
    /// may wait for this with a real waker and then read with none.
    pub(super) fn poll_ready<T: AsyncRead + Unpin>(&mut self, io: &mut T, cx: &mut Context<'_>) -> Poll<()> {
        if self.ended.is_some() {
            return Poll::Ready(());
        }
        loop {
            let needed = match parse_header(&self.buf[self.pos..], self.max_message, self.inflate) {
                // A header that is refused is for poll_next to report.
                Err(_) => return Poll::Ready(()),
                Ok(Some(h)) if self.buf.len() - self.pos >= h.len + h.payload => return Poll::Ready(()),
                Ok(Some(h)) => h.len + h.payload,
                Ok(None) => 14,
            };
            match ready!(self.poll_fill(io, cx, needed)) {
                Ok(0) => self.ended = Some(ReadError::Eof),
                Ok(_) => continue,
                Err(e) => self.ended = Some(ReadError::Io(e)),
            }
            return Poll::Ready(());
        }
    }

    /// Bytes read and not yet taken.
    pub(super) fn unread(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The read buffer's capacity.
    pub(super) fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The buffers' capacity (what an idle connection keeps: nothing).
    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.buf.capacity() + self.assembled.capacity()
    }

    /// The next message or control frame. `pong` is given the payload of a
    /// ping to answer. Pending once the socket has nothing more, having freed
    /// the buffer if nothing is left in it.
    pub(super) fn poll_next<T: AsyncRead + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
        mut pong: impl FnMut(&[u8]),
    ) -> Poll<Result<Incoming<'_>, ReadError>> {
        if !self.assembled.is_empty() {
            self.assembled = Vec::new();
        }
        let found = loop {
            let header = parse_header(&self.buf[self.pos..], self.max_message, self.inflate)?;
            // How many bytes the next frame needs in all, if its header is here.
            let needed = match &header {
                Some(h) => h.len + h.payload,
                None => 14,
            };
            if let Some(h) = header
                && self.buf.len() - self.pos >= needed
            {
                let start = self.pos + h.len;
                let end = start + h.payload;
                self.pos += needed;
                unmask(&mut self.buf[start..end], h.mask);
                if let Some(found) = self.frame(&h, start, end, &mut pong)? {
                    break found;
                }
                continue;
            }
            // What poll_ready found when it last needed more bytes.
            if let Some(ended) = self.ended.take() {
                return Poll::Ready(Err(ended));
            }
            match ready!(self.poll_fill(io, cx, needed)) {
                Ok(0) => return Poll::Ready(Err(ReadError::Eof)),
                Ok(_) => {}
                Err(e) => return Poll::Ready(Err(ReadError::Io(e))),
            }
        };
        Poll::Ready(Ok(match found {
            Found::Buffered { text: true, start, end } => {
                Incoming::Text(std::str::from_utf8(&self.buf[start..end]).map_err(|_| ReadError::InvalidUtf8)?)
            }
            Found::Assembled { text: true } => {
                Incoming::Text(std::str::from_utf8(&self.assembled).map_err(|_| ReadError::InvalidUtf8)?)
            }
            Found::Buffered {
                text: false,
                start,
                end,
            } => Incoming::Binary(&self.buf[start..end]),
            Found::Assembled { text: false } => Incoming::Binary(&self.assembled),
            Found::Ping => Incoming::Ping,
            Found::Pong => Incoming::Pong,
            Found::Close(code) => Incoming::Close(code),
        }))
    }

    /// Takes one whole frame whose (unmasked) payload is `buf[start..end]`:
    /// what to hand out, or `None` to read on (a fragment).
    fn frame(
        &mut self,
        h: &Header,
        start: usize,
        end: usize,
        pong: &mut impl FnMut(&[u8]),
    ) -> Result<Option<Found>, ReadError> {
        let payload = &self.buf[start..end];
        Ok(Some(match h.opcode {
            opcode::TEXT | opcode::BINARY => {
                if self.fragments.is_some() {
                    return Err(ReadError::Protocol("a new message began before the last one ended"));
                }
                let text = h.opcode == opcode::TEXT;
                if !h.fin {
                    let mut fragments = Fragments {
                        text,
                        deflated: h.deflated,
                        data: Vec::new(),
                        checked: 0,
                    };
                    fragments.push(payload)?;
                    self.fragments = Some(fragments);
                    return Ok(None);
                }
                if h.deflated {
                    deflate::inflate(payload, self.max_message, &mut self.assembled)?;
                    return Ok(Some(Found::Assembled { text }));
                }
                Found::Buffered { text, start, end }
            }
            opcode::CONTINUATION => {
                let Some(fragments) = self.fragments.as_mut() else {
                    return Err(ReadError::Protocol("a continuation frame with no message to continue"));
                };
                if fragments.data.len() + payload.len() > self.max_message {
                    return Err(ReadError::TooBig);
                }
                fragments.push(payload)?;
                if !h.fin {
                    return Ok(None);
                }
                let text = fragments.text;
                let fragments = self.fragments.take().expect("a message in fragments");
                if fragments.deflated {
                    deflate::inflate(&fragments.data, self.max_message, &mut self.assembled)?;
                } else {
                    self.assembled = fragments.data;
                }
                Found::Assembled { text }
            }
            opcode::PING => {
                pong(payload);
                Found::Ping
            }
            opcode::PONG => Found::Pong,
            _ => match payload {
                [] => Found::Close(None),
                [_] => return Err(ReadError::Protocol("a close payload of one byte")),
                [hi, lo, reason @ ..] => {
                    let code = u16::from_be_bytes([*hi, *lo]);
                    if !valid_close_code(code) {
                        return Err(ReadError::Protocol("an invalid close code"));
                    }
                    std::str::from_utf8(reason).map_err(|_| ReadError::InvalidUtf8)?;
                    Found::Close(Some(code))
                }
            },
        }))
    }

    /// Reads more bytes; the next frame needs `needed` bytes from `pos`.
    /// Frees the buffer when the socket has nothing and nothing is left.
    fn poll_fill<T: AsyncRead + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
        needed: usize,
    ) -> Poll<io::Result<usize>> {
        let have = self.buf.len() - self.pos;
        if have == 0 {
            self.pos = 0;
            if self.buf.capacity() > self.chunk {
                // A large frame's buffer has served: do not keep it.
                self.buf = Vec::new();
            } else {
                self.buf.clear();
            }
        }
        // The buffer holds one step, or one whole frame larger than that
        // (the rest of it is read in one go into a buffer of exactly its size).
        let want = needed.max(self.chunk) - have;
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.drain(..self.pos);
            self.pos = 0;
            self.buf.reserve_exact(want);
        }
        // Read into the spare capacity as it is: filling it with zeros
        // first would cost the rest of a large frame on every read of it.
        match tokio_util::io::poll_read_buf(Pin::new(io), cx, &mut self.buf) {
            Poll::Ready(read) => Poll::Ready(read),
            Poll::Pending => {
                if self.pos == self.buf.len() {
                    // Nothing unread: an idle connection holds no read memory.
                    self.buf = Vec::new();
                    self.pos = 0;
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};

    use tokio::io::AsyncWriteExt;

    use super::{Incoming, Input, ReadError};

    /// A hang guard with ample room: each test here takes well under a
    /// second in a debug build.
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(60);
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A masked client frame: `first` is FIN, RSV and opcode.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![first];
        match payload.len() {
            n @ 0..=125 => f.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&MASK);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        f
    }

    fn text(s: &str) -> Vec<u8> {
        frame(0x81, s.as_bytes())
    }

    /// `bytes` cut into pieces of `piece` bytes.
    fn cut(bytes: &[u8], piece: usize) -> Vec<Vec<u8>> {
        bytes.chunks(piece).map(<[u8]>::to_vec).collect()
    }

    /// What a reader makes of `bytes`, written in pieces of `piece` bytes,
    /// read with steps of `step` bytes: every message as text (binary as
    /// `<binary>`, pings as `<ping>`), then the error that ended it.
    async fn read_all(bytes: Vec<u8>, piece: usize, step: usize, max: usize) -> (Vec<String>, ReadError, Vec<Vec<u8>>) {
        read_pieces(cut(&bytes, piece), step, max).await
    }

    /// What a reader makes of `pieces`, written one by one.
    async fn read_pieces(pieces: Vec<Vec<u8>>, step: usize, max: usize) -> (Vec<String>, ReadError, Vec<Vec<u8>>) {
        read_pieces_with(pieces, step, max, false).await
    }

    /// What a reader makes of `pieces`, with permessage-deflate negotiated
    /// if `inflate`.
    async fn read_pieces_with(
        pieces: Vec<Vec<u8>>,
        step: usize,
        max: usize,
        inflate: bool,
    ) -> (Vec<String>, ReadError, Vec<Vec<u8>>) {
        let (mut client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            for part in pieces {
                if client.write_all(&part).await.is_err() {
                    return;
                }
            }
        });
        let mut input = Input::new(step, max, inflate);
        let mut got = Vec::new();
        let mut pongs = Vec::new();
        let error = loop {
            let next = std::future::poll_fn(|cx| {
                input
                    .poll_next(&mut server, cx, |p| pongs.push(p.to_vec()))
                    .map(|r| r.map(|m| describe(&m)))
            })
            .await;
            match next {
                Ok(m) => got.push(m),
                Err(e) => break e,
            }
        };
        // A writer still writing finds the pipe closed.
        drop(server);
        writer.await.unwrap();
        (got, error, pongs)
    }

    fn describe(m: &Incoming<'_>) -> String {
        match m {
            Incoming::Text(t) => (*t).to_owned(),
            Incoming::Binary(_) => "<binary>".into(),
            Incoming::Ping => "<ping>".into(),
            Incoming::Pong => "<pong>".into(),
            Incoming::Close(code) => format!("<close {code:?}>"),
        }
    }

    #[tokio::test]
    async fn messages_of_every_length_class_arrive_whole_however_the_bytes_are_cut() {
        tokio::time::timeout(LIMIT, every_length()).await.expect("in time");
    }

    async fn every_length() {
        // Both edges of every length class: 7-bit, 16-bit (126 and up) and 64-bit (65,536 and up).
        let sizes = [0, 1, 5, 125, 126, 127, 1000, 65_535, 65_536, 70_000];
        let messages: Vec<String> = sizes.iter().map(|&n| "é".repeat(n / 2) + &"x".repeat(n % 2)).collect();
        let frames: Vec<Vec<u8>> = messages.iter().map(|m| text(m)).collect();
        let bytes = frames.concat();
        // Coarse cuts, with steps smaller and larger than the frames.
        for (piece, step) in [(1000, 64), (1 << 20, 1024), (3000, 4096)] {
            let (got, error, _) = read_all(bytes.clone(), piece, step, 1 << 20).await;
            assert_eq!(got, messages, "pieces of {piece}, steps of {step}");
            assert!(matches!(error, ReadError::Eof), "{error}");
        }
        // Every header (at most 14 bytes) cut at every byte, the payload after
        // it in one piece: each length class is read from a header that
        // arrives a byte at a time, without feeding the long payloads byte by
        // byte (that is slow work in a debug build, not more coverage).
        let header_cuts: Vec<Vec<u8>> = frames
            .iter()
            .flat_map(|f| {
                let (head, payload) = f.split_at(f.len().min(16));
                cut(head, 1).into_iter().chain([payload.to_vec()])
            })
            .collect();
        for step in [16, 64] {
            let (got, error, _) = read_pieces(header_cuts.clone(), step, 1 << 20).await;
            assert_eq!(got, messages, "headers byte by byte, steps of {step}");
            assert!(matches!(error, ReadError::Eof), "{error}");
        }
        // Fine cuts over the short messages: payloads split everywhere too.
        let short = messages.iter().filter(|m| m.len() <= 1000).count();
        let short_bytes = frames[..short].concat();
        for (piece, step) in [(1, 16), (7, 16)] {
            let (got, error, _) = read_all(short_bytes.clone(), piece, step, 1 << 20).await;
            assert_eq!(got, messages[..short], "pieces of {piece}, steps of {step}");
            assert!(matches!(error, ReadError::Eof), "{error}");
        }
    }

    #[tokio::test]
    async fn fragments_are_joined_and_pings_between_them_answered() {
        tokio::time::timeout(LIMIT, fragments()).await.expect("in time");
    }

    async fn fragments() {
        let mut bytes = frame(0x01, "{\"jsonrpc\":".as_bytes());
        bytes.extend(frame(0x89, b"are you there"));
        bytes.extend(frame(0x00, "\"2.0\",\"method\":\"é".as_bytes()));
        bytes.extend(frame(0x80, "\"}".as_bytes()));
        bytes.extend(frame(0x82, &[0, 1, 2]));
        // A character cut between two fragments ("é" is C3 A9).
        bytes.extend(frame(0x01, &[b'<', 0xC3]));
        bytes.extend(frame(0x80, &[0xA9, b'>']));
        bytes.extend(frame(0x8A, b""));
        bytes.extend(frame(0x88, &[0x03, 0xE8, b'b', b'y', b'e']));
        let (got, error, pongs) = read_all(bytes, 5, 16, 1 << 20).await;
        assert_eq!(
            got,
            [
                "<ping>",
                "{\"jsonrpc\":\"2.0\",\"method\":\"é\"}",
                "<binary>",
                "<é>",
                "<pong>",
                "<close Some(1000)>"
            ]
        );
        assert_eq!(pongs, [b"are you there".to_vec()]);
        assert!(matches!(error, ReadError::Eof));
    }

    #[tokio::test]
    async fn frames_that_break_the_protocol_are_refused() {
        tokio::time::timeout(LIMIT, refused()).await.expect("in time");
    }

    async fn refused() {
        let unmasked = vec![0x81, 0x02, b'h', b'i'];
        let mut mid_message = frame(0x01, b"a");
        mid_message.extend(text("b"));
        let mut too_big_in_pieces = frame(0x01, &[b'a'; 60]);
        too_big_in_pieces.extend(frame(0x80, &[b'a'; 60]));
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("unmasked", unmasked, "protocol"),
            ("reserved bit", frame(0xC1, b"x"), "protocol"),
            ("unknown opcode", frame(0x83, b"x"), "protocol"),
            ("fragmented ping", frame(0x09, b"x"), "protocol"),
            ("long ping", frame(0x89, &[0; 126]), "protocol"),
            ("stray continuation", frame(0x80, b"x"), "protocol"),
            ("message in a message", mid_message, "protocol"),
            ("close of one byte", frame(0x88, &[3]), "protocol"),
            ("close code 1005", frame(0x88, &[0x03, 0xED]), "protocol"),
            ("close reason not UTF-8", frame(0x88, &[0x03, 0xE8, 0xFF]), "utf-8"),
            ("text not UTF-8", frame(0x81, &[b'a', 0xC3]), "utf-8"),
            // Refused at the first bad fragment, before the message ends.
            ("fragment not UTF-8", frame(0x01, &[b'a', 0xFF]), "utf-8"),
            ("too big", text(&"a".repeat(101)), "too big"),
            ("too big in pieces", too_big_in_pieces, "too big"),
        ];
        for (name, bytes, expected) in cases {
            let (got, error, _) = read_all(bytes, 3, 16, 100).await;
            assert!(got.is_empty(), "{name}: nothing handed out, got {got:?}");
            let kind = match error {
                ReadError::Protocol(_) => "protocol",
                ReadError::InvalidUtf8 => "utf-8",
                ReadError::TooBig => "too big",
                _ => "other",
            };
            assert_eq!(kind, expected, "{name}: {error}");
        }
    }

    #[tokio::test]
    async fn deflated_messages_are_inflated_however_the_bytes_are_cut() {
        tokio::time::timeout(LIMIT, deflated()).await.expect("in time");
    }

    async fn deflated() {
        let deflate = |s: &str| super::deflate::deflate(s.as_bytes()).expect("deflates");
        let long = "{\"jsonrpc\":\"2.0\",\"method\":\"é\"}".repeat(20);
        let mut bytes = frame(0xC1, &deflate(&long));
        bytes.extend(text("plain"));
        // In fragments, RSV1 on the first only, with a ping between them.
        let deflated = deflate(&long);
        bytes.extend(frame(0x41, &deflated[..10]));
        bytes.extend(frame(0x89, b""));
        bytes.extend(frame(0x80, &deflated[10..]));
        bytes.extend(frame(0xC2, &deflate(&long)));
        for (piece, step) in [(1, 16), (7, 64), (1000, 1024)] {
            let (got, error, _) = read_pieces_with(cut(&bytes, piece), step, 4096, true).await;
            assert_eq!(
                got,
                [&long, "plain", "<ping>", &long, "<binary>"],
                "pieces of {piece}, steps of {step}"
            );
            assert!(matches!(error, ReadError::Eof), "{error}");
        }
        let mut continuation = frame(0x01, b"[");
        continuation.extend(frame(0xC0, &deflate(&long)));
        let cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
            (
                "RSV1 without negotiation",
                frame(0xC1, &deflate(&long)),
                false,
                "protocol",
            ),
            ("RSV1 on a ping", frame(0xC9, b""), true, "protocol"),
            ("RSV1 on a continuation", continuation, true, "protocol"),
            ("RSV2", frame(0xA1, b"[]"), true, "protocol"),
            ("RSV3", frame(0x91, b"[]"), true, "protocol"),
            (
                "inflates past the limit",
                frame(0xC1, &deflate(&"x".repeat(101))),
                true,
                "too big",
            ),
            ("does not inflate", frame(0xC1, &[0xFF; 8]), true, "inflate"),
            (
                "inflates to bad UTF-8",
                frame(0xC1, &super::deflate::deflate(&[0xFF; 64]).unwrap()),
                true,
                "utf-8",
            ),
        ];
        for (name, bytes, inflate, expected) in cases {
            let (got, error, _) = read_pieces_with(cut(&bytes, 3), 16, 100, inflate).await;
            assert!(got.is_empty(), "{name}: nothing handed out, got {got:?}");
            let kind = match error {
                ReadError::Protocol(_) => "protocol",
                ReadError::InvalidUtf8 => "utf-8",
                ReadError::TooBig => "too big",
                ReadError::Inflate => "inflate",
                _ => "other",
            };
            assert_eq!(kind, expected, "{name}: {error}");
        }
    }

    #[tokio::test]
    async fn an_oversized_frame_is_refused_from_its_header_alone() {
        tokio::time::timeout(LIMIT, refused_early()).await.expect("in time");
    }

    async fn refused_early() {
        // Only the header of a 1 GiB frame is ever sent.
        let mut bytes = vec![0x81, 0x80 | 127];
        bytes.extend_from_slice(&(1u64 << 30).to_be_bytes());
        bytes.extend_from_slice(&MASK);
        let (got, error, _) = read_all(bytes, 100, 16, 1 << 20).await;
        assert!(got.is_empty() && matches!(error, ReadError::TooBig), "{error}");
    }

    #[tokio::test]
    async fn an_idle_connection_keeps_no_read_memory_after_a_large_message() {
        tokio::time::timeout(LIMIT, idle_memory()).await.expect("in time");
    }

    async fn idle_memory() {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        let mut input = Input::new(1024, 1 << 20, false);
        let large = "x".repeat(200_000);
        let mut bytes = text(&large);
        bytes.extend(text("small"));
        // A large frame, a small one, and half of a third.
        let half = text("the rest comes later");
        bytes.extend_from_slice(&half[..10]);
        client.write_all(&bytes).await.unwrap();
        let mut seen = Vec::new();
        std::future::poll_fn(|cx| {
            loop {
                match input.poll_next(&mut server, cx, |_| {}) {
                    Poll::Ready(Ok(m)) => seen.push(describe(&m).len()),
                    Poll::Ready(Err(e)) => panic!("{e}"),
                    Poll::Pending => return Poll::Ready(()),
                }
            }
        })
        .await;
        assert_eq!(seen, [200_000, 5]);
        assert_eq!(input.capacity(), 1024, "part of a frame keeps one step");
        client.write_all(&half[10..]).await.unwrap();
        let rest =
            std::future::poll_fn(|cx| input.poll_next(&mut server, cx, |_| {}).map(|m| describe(&m.unwrap()))).await;
        assert_eq!(rest, "the rest comes later");
        let waker = futures_util::task::noop_waker();
        assert!(
            input
                .poll_next(&mut server, &mut Context::from_waker(&waker), |_| {})
                .is_pending()
        );
        assert_eq!(input.capacity(), 0, "nothing unread: no buffer");
    }
}
