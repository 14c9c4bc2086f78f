//! Writing frames: an outbox that holds memory only while it has something
//! to write.
//!
//! Text frames go in with their header built here and their payload not
//! copied (a fan-out frame is one buffer shared by every session it goes to);
//! control frames (ping, pong, close) join the same outbox in order. A flush
//! hands everything to the socket in vectored writes of up to `limit` bytes
//! each (a larger frame goes in one write of its own) and then frees the
//! outbox, so an idle session holds no write memory whatever it sent before.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::AsyncWrite;

/// Most slices handed to one vectored write (two per frame: header and payload).
const MAX_SLICES: usize = 128;

/// Writes up to this size are copied into one buffer and sent with a plain write.
const GATHER: usize = 2048;

/// Frames the outbox first makes room for.
const FIRST_CAPACITY: usize = 16;

/// Frame opcodes (RFC 6455 §5.2).
pub(super) mod opcode {
    pub(crate) const CONTINUATION: u8 = 0x0;
    pub(crate) const TEXT: u8 = 0x1;
    pub(crate) const BINARY: u8 = 0x2;
    pub(crate) const CLOSE: u8 = 0x8;
    pub(crate) const PING: u8 = 0x9;
    pub(crate) const PONG: u8 = 0xA;
}

/// One frame waiting to be written: its header and a payload shared with
/// whoever else sends it.
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

/// The first header bit of a message whose payload is deflated (RSV1, RFC 7692 §6).
const DEFLATED: u8 = 0x40;

/// The header of an unmasked, final frame of `len` bytes (servers do not
/// mask); `first` is its first byte but for FIN.
fn header(first: u8, len: usize) -> ([u8; 10], u8) {
    let mut head = [0u8; 10];
    head[0] = 0x80 | first;
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

/// The frames of one connection waiting for the next flush.
pub(super) struct Outbox {
    out: VecDeque<Chunk>,
    /// How much of the first chunk is already written.
    sent: usize,
    limit: usize,
}

impl Outbox {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            out: VecDeque::new(),
            sent: 0,
            limit: limit.max(1),
        }
    }

    /// Whether everything put in has been written.
    pub(super) fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Queues a final frame of `opcode` carrying `payload`.
    pub(super) fn push(&mut self, opcode: u8, payload: Bytes) {
        self.push_frame(opcode, payload);
    }

    /// Queues a message of `opcode` whose `payload` is deflated: one final
    /// frame with RSV1 set.
    pub(super) fn push_deflated(&mut self, opcode: u8, payload: Bytes) {
        self.push_frame(DEFLATED | opcode, payload);
    }

    fn push_frame(&mut self, first: u8, payload: Bytes) {
        if self.out.capacity() == 0 {
            // One allocation for a typical flush instead of growing 4, 8, 16
            // (and under glibc's large-request size, which would make it
            // consolidate its free lists).
            self.out.reserve_exact(FIRST_CAPACITY);
        }
        let (head, head_len) = header(first, payload.len());
        self.out.push_back(Chunk {
            head,
            head_len,
            body: payload,
        });
    }

    /// Writes out everything queued to `io`, then frees the outbox.
    pub(super) fn poll_write_to<T: AsyncWrite + Unpin>(
        &mut self,
        io: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let Self { out, sent, limit } = self;
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
            let mut n = if bytes <= GATHER {
                // A small write is gathered and sent as one buffer: a plain
                // send costs the kernel less than a vectored write.
                let mut gathered = [0u8; GATHER];
                let mut at = 0;
                for slice in &slices[..used] {
                    gathered[at..at + slice.len()].copy_from_slice(slice);
                    at += slice.len();
                }
                ready!(Pin::new(&mut *io).poll_write(cx, &gathered[..at]))?
            } else {
                ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..used]))?
            };
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

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::{Outbox, opcode};

    /// A hang guard with ample room, not a budget: each test here takes
    /// well under a second in a debug build.
    const LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

    /// The bytes of an unmasked final frame carrying `payload`.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![first];
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
        frame.extend_from_slice(payload);
        frame
    }

    async fn flush<T: tokio::io::AsyncWrite + Unpin>(out: &mut Outbox, io: &mut T) {
        std::future::poll_fn(|cx| out.poll_write_to(io, cx)).await.unwrap();
    }

    #[tokio::test]
    async fn frames_wait_for_the_flush_then_the_outbox_is_freed() {
        tokio::time::timeout(LIMIT, frames_wait()).await.expect("in time");
    }

    async fn frames_wait() {
        let (mut client, mut server) = tokio::io::duplex(1 << 20);
        let mut out = Outbox::new(64);
        let sizes = [0, 5, 125, 126, 300, 65_535, 65_536, 70_000];
        let payloads: Vec<String> = sizes.iter().map(|&n| "x".repeat(n)).collect();
        for p in &payloads {
            out.push(opcode::TEXT, p.clone().into());
        }
        assert_eq!(out.out.len(), sizes.len(), "nothing written before the flush");
        flush(&mut out, &mut client).await;
        assert_eq!(out.out.capacity(), 0, "the outbox is freed after a flush");
        let want: Vec<u8> = payloads.iter().flat_map(|p| frame(0x81, p.as_bytes())).collect();
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
        let (mut client, mut server) = tokio::io::duplex(7);
        let mut out = Outbox::new(16);
        let mut want = Vec::new();
        for i in 0..40 {
            let payload = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "y".repeat(i * 7));
            want.extend(frame(0x81, payload.as_bytes()));
            out.push(opcode::TEXT, payload.into());
            if i % 9 == 0 {
                // Control frames keep their place.
                out.push(opcode::PONG, bytes::Bytes::from_static(b"hi"));
                want.extend(frame(0x8A, b"hi"));
            }
        }
        let reader = async {
            let mut got = vec![0; want.len()];
            server.read_exact(&mut got).await.unwrap();
            got
        };
        let (_, got) = tokio::join!(flush(&mut out, &mut client), reader);
        assert!(got == want, "frames arrive whole and in order");
    }
}
