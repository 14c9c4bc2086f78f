//! The outbound queue: the only way to reach a session's socket.
//!
//! Everything that wants to send to a client (responses, pushes, calls,
//! pings) enqueues a frame here; only the session's own task writes to the
//! socket. The queue is bounded in bytes: when a push would overflow it, the
//! session is marked for closing as a slow consumer and the publisher moves on
//! at once. Nobody ever waits on a slow client.
//!
//! A session that negotiated compression queues a message in the form it
//! will be written in (deflated once for every such session, see
//! [`Outgoing`]), so the bound counts the bytes that will actually be written.

use std::collections::VecDeque;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use switchboard_protocol::codes::close;

use crate::ws::{Outgoing, Wire};

/// Why a frame was not enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// The session is closing or closed.
    Closed,
    /// The queue was full: the session is now closing as a slow consumer.
    Overflow,
}

/// A request to close the session, kept until the session task acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseRequest {
    pub(crate) code: u16,
    pub(crate) reason: String,
    /// Whether queued frames are still written before the close frame.
    pub(crate) flush_first: bool,
}

/// Queue capacity (in frames) kept between bursts; a larger one is freed once drained.
const KEPT_CAPACITY: usize = 8;

#[derive(Default)]
struct State {
    frames: VecDeque<Wire>,
    bytes: usize,
    close: Option<CloseRequest>,
}

/// What the session task is told through the queue (bits of `OutboundQueue::signals`).
mod signal {
    /// Frames are queued.
    pub(super) const FRAMES: u8 = 1;
    /// A close was requested.
    pub(super) const CLOSE: u8 = 2;
    /// The gateway is shutting down.
    pub(super) const SHUTDOWN: u8 = 4;
    /// A call to the client is due earlier than the session last looked.
    pub(super) const DEADLINE: u8 = 8;
}

/// A byte-bounded queue of text frames with a single consumer.
///
/// The consumer (the session task) waits on one waker for everything the
/// queue can tell it: frames, a close request, shutdown. Waiting is a waker
/// registration and an atomic load, with no lock and no list of waiters.
pub(crate) struct OutboundQueue {
    state: Mutex<State>,
    /// Set bits of [`signal`]: `FRAMES` exactly while frames are queued.
    signals: AtomicU8,
    /// The session task, woken when a signal is raised.
    waker: AtomicWaker,
    /// `State::bytes`, written under the lock and read without it by
    /// `GET /metrics`: the session's own cache line, so no contention.
    queued: AtomicUsize,
    max_bytes: usize,
    /// With compression negotiated: the size from which messages are deflated.
    deflate: Option<usize>,
}

impl OutboundQueue {
    /// A queue of at most `max_bytes` bytes, for a session that deflates
    /// messages of `deflate` bytes or more (`None`: it did not negotiate compression).
    pub(crate) fn new(max_bytes: usize, deflate: Option<usize>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            signals: AtomicU8::new(0),
            waker: AtomicWaker::new(),
            queued: AtomicUsize::new(0),
            max_bytes,
            deflate,
        }
    }

    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The bytes queued now (as of the last push or drain).
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Enqueues a message. Never waits (deflating it, when this session
    /// is the first to need it deflated, is done here, before the lock).
    pub(crate) fn push(&self, message: &Outgoing) -> Result<(), SendError> {
        let frame = message.wire(self.deflate);
        let len = frame.len();
        let mut state = self.state.lock();
        if state.close.is_some() {
            return Err(SendError::Closed);
        }
        if state.bytes + len > self.max_bytes {
            drop(state);
            self.overflow();
            return Err(SendError::Overflow);
        }
        state.bytes += len;
        self.queued.store(state.bytes, Ordering::Relaxed);
        let first = state.frames.is_empty();
        if first {
            // Raised under the lock, so that it is lowered only by the drain that takes this frame.
            self.signals.fetch_or(signal::FRAMES, Ordering::Release);
        }
        state.frames.push_back(frame);
        drop(state);
        if first {
            self.waker.wake();
        }
        Ok(())
    }

    /// Closes the session as a slow consumer, dropping what is queued.
    pub(crate) fn overflow(&self) {
        let mut state = self.state.lock();
        if state.close.is_some() {
            return;
        }
        state.close = Some(CloseRequest {
            code: close::SLOW_CONSUMER,
            reason: close::reason(close::SLOW_CONSUMER).to_owned(),
            flush_first: false,
        });
        state.frames.clear();
        state.bytes = 0;
        self.queued.store(0, Ordering::Relaxed);
        self.signals.fetch_and(!signal::FRAMES, Ordering::Release);
        drop(state);
        crate::metrics::hot().slow_consumer_closes.increment(1);
        self.raise(signal::CLOSE);
    }

    /// Asks the session to close. The first request wins.
    pub(crate) fn close(&self, request: CloseRequest) {
        let mut state = self.state.lock();
        if state.close.is_none() {
            state.close = Some(request);
            drop(state);
            self.raise(signal::CLOSE);
        }
    }

    /// Whether a close was requested.
    pub(crate) fn is_closing(&self) -> bool {
        self.state.lock().close.is_some()
    }

    /// Hands every queued frame to `take`, in order (under the queue's lock:
    /// `take` must not wait).
    pub(crate) fn drain(&self, take: impl FnMut(Wire)) {
        let mut state = self.state.lock();
        state.bytes = 0;
        self.queued.store(0, Ordering::Relaxed);
        self.signals.fetch_and(!signal::FRAMES, Ordering::Release);
        if state.frames.capacity() > KEPT_CAPACITY {
            // After a burst, an idle session keeps no large queue.
            std::mem::take(&mut state.frames).into_iter().for_each(take);
        } else {
            state.frames.drain(..).for_each(take);
        }
    }

    /// The pending close request, if any.
    pub(crate) fn close_request(&self) -> Option<CloseRequest> {
        self.state.lock().close.clone()
    }

    /// Tells the session the gateway is shutting down.
    pub(crate) fn shut_down(&self) {
        self.raise(signal::SHUTDOWN);
    }

    /// Raises `bit` and wakes the session task.
    fn raise(&self, bit: u8) {
        self.signals.fetch_or(bit, Ordering::Release);
        self.waker.wake();
    }

    /// The raised bits among `bits`, once there are any; registers the session task's waker.
    fn poll_raised(&self, bits: u8, cx: &mut Context<'_>) -> Poll<u8> {
        let raised = self.signals.load(Ordering::Acquire) & bits;
        if raised != 0 {
            return Poll::Ready(raised);
        }
        // Registered before looking again, so that a signal raised in between still wakes us.
        self.waker.register(cx.waker());
        match self.signals.load(Ordering::Acquire) & bits {
            0 => Poll::Pending,
            raised => Poll::Ready(raised),
        }
    }

    /// Ready while frames are queued.
    pub(crate) fn poll_frames(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.poll_raised(signal::FRAMES, cx).map(drop)
    }

    /// The next thing the queue tells the session besides its frames: a
    /// close request (for as long as it stands), then shutdown and a moved
    /// deadline (each once, then lowered).
    pub(crate) fn poll_signal(&self, cx: &mut Context<'_>) -> Poll<Signal> {
        let raised = ready!(self.poll_raised(signal::CLOSE | signal::SHUTDOWN | signal::DEADLINE, cx));
        let (bit, told) = if raised & signal::CLOSE != 0 {
            return Poll::Ready(Signal::Close);
        } else if raised & signal::SHUTDOWN != 0 {
            (signal::SHUTDOWN, Signal::Shutdown)
        } else {
            (signal::DEADLINE, Signal::DeadlineMoved)
        };
        self.signals.fetch_and(!bit, Ordering::AcqRel);
        Poll::Ready(told)
    }

    /// Tells the session that a call's deadline may be earlier than its timer.
    pub(crate) fn deadline_moved(&self) {
        self.raise(signal::DEADLINE);
    }
}

/// What the queue tells the session besides its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// A close was requested ([`close_request`](OutboundQueue::close_request) says how).
    Close,
    /// The gateway is shutting down.
    Shutdown,
    /// A call to the client is due earlier than the session last looked.
    DeadlineMoved,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_marks_slow_consumer_and_refuses_more() {
        let q = OutboundQueue::new(10, None);
        assert_eq!(q.push(&"123456".into()), Ok(()));
        assert_eq!(q.push(&"123456".into()), Err(SendError::Overflow));
        assert_eq!(q.close_request().unwrap().code, close::SLOW_CONSUMER);
        assert_eq!(q.push(&"1".into()), Err(SendError::Closed));
        let mut out = Vec::new();
        q.drain(|frame| out.push(frame));
        assert!(out.is_empty());
    }

    #[test]
    fn the_bound_counts_the_bytes_written() {
        // 2,000 bytes of JSON deflate to far less than 1,000.
        let message = Outgoing::shared(format!("[{}0]", "0,".repeat(998)).into());
        let plain = OutboundQueue::new(1000, None);
        assert_eq!(plain.push(&message), Err(SendError::Overflow));
        let deflating = OutboundQueue::new(1000, Some(256));
        for _ in 0..3 {
            assert_eq!(deflating.push(&message), Ok(()));
        }
        let mut written = Vec::new();
        deflating.drain(|frame| written.push(frame));
        assert!(
            written.iter().all(|f| matches!(f, Wire::Deflated(b) if b.len() < 300)),
            "{written:?}"
        );
    }
}
