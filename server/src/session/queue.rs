//! The outbound queue: the only way to reach a session's socket.
//!
//! Everything that wants to send to a client (responses, pushes, calls,
//! pings) enqueues a frame here; only the session's own task writes to the
//! socket. The queue is bounded in bytes: when a push would overflow it, the
//! session is marked for closing as a slow consumer and the publisher moves on
//! at once. Nobody ever waits on a slow client.

use std::collections::VecDeque;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use switchboard_protocol::codes::close;
use tungstenite::Utf8Bytes;

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
    frames: VecDeque<Utf8Bytes>,
    bytes: usize,
    close: Option<CloseRequest>,
}

/// What the session task is woken for (bits of [`OutboundQueue::signals`]).
pub(crate) mod signal {
    /// Frames are queued.
    pub(crate) const FRAMES: u8 = 1;
    /// A close was requested.
    pub(crate) const CLOSE: u8 = 2;
    /// The gateway is shutting down.
    pub(crate) const SHUTDOWN: u8 = 4;
    /// The socket woke the session: it may have something to read.
    pub(crate) const READ: u8 = 8;
    /// A call to the client is due before the session's timer: set it again.
    pub(crate) const DEADLINE: u8 = 16;
    /// A handler the session runs can make progress.
    pub(crate) const HANDLERS: u8 = 32;
    /// The session's timer fired, or was set and must be polled.
    pub(crate) const TIMER: u8 = 64;
    /// Reported once, then lowered.
    pub(super) const ONCE: u8 = SHUTDOWN | DEADLINE | TIMER;
}

/// A byte-bounded queue of text frames with a single consumer.
///
/// The consumer (the session task) waits on one waker for everything the
/// queue can tell it: frames, a close request, shutdown, and its socket
/// having woken it. Waiting is a waker registration and an atomic load, with
/// no lock and no list of waiters.
pub(crate) struct OutboundQueue {
    state: Mutex<State>,
    /// Set bits of [`signal`]: `FRAMES` exactly while frames are queued.
    signals: AtomicU8,
    /// The session task, woken when a signal is raised.
    waker: AtomicWaker,
    max_bytes: usize,
}

impl OutboundQueue {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            signals: AtomicU8::new(0),
            waker: AtomicWaker::new(),
            max_bytes,
        }
    }

    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Enqueues a frame. Never waits.
    pub(crate) fn push(&self, frame: Utf8Bytes) -> Result<(), SendError> {
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
        self.signals.fetch_and(!signal::FRAMES, Ordering::Release);
        drop(state);
        metrics::counter!("switchboard_slow_consumer_closes_total").increment(1);
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
    pub(crate) fn drain(&self, take: impl FnMut(Utf8Bytes)) {
        let mut state = self.state.lock();
        state.bytes = 0;
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
    pub(crate) fn raise(&self, bit: u8) {
        self.signals.fetch_or(bit, Ordering::Release);
        self.waker.wake();
    }

    /// Raises `bit` without waking anyone (the session task itself, running).
    pub(crate) fn mark(&self, bit: u8) {
        self.signals.fetch_or(bit, Ordering::Release);
    }

    /// The signals raised now.
    pub(crate) fn raised(&self) -> u8 {
        self.signals.load(Ordering::Acquire)
    }

    /// Lowers `bit`.
    pub(crate) fn lower(&self, bit: u8) {
        self.signals.fetch_and(!bit, Ordering::AcqRel);
    }

    /// Ready with the raised signals (at least one); `SHUTDOWN`, `DEADLINE`
    /// and `TIMER` are reported once, the others for as long as they hold.
    ///
    /// When ready, the waker is taken out: the session is running and will
    /// poll again before it waits, so what it raises itself meanwhile (the
    /// answers it queues, a read it leaves unfinished) does not wake it a
    /// second time for nothing. Anything that must reach it later is a
    /// signal, which it finds when it looks again.
    pub(crate) fn poll_signals(&self, cx: &mut Context<'_>) -> Poll<u8> {
        let mut raised = self.signals.load(Ordering::Acquire);
        if raised == 0 {
            // Registered before looking again, so that a signal raised in between still wakes us.
            self.waker.register(cx.waker());
            raised = self.signals.load(Ordering::Acquire);
            if raised == 0 {
                return Poll::Pending;
            }
        }
        if raised & signal::ONCE != 0 {
            self.signals.fetch_and(!signal::ONCE, Ordering::AcqRel);
        }
        drop(self.waker.take());
        Poll::Ready(raised)
    }

    /// Ready once a close was requested.
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.waker.register(cx.waker());
        if self.signals.load(Ordering::Acquire) & signal::CLOSE != 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// A waker that raises `bit` on a session's queue, so that the session waits
/// on its queue's one waker for everything (the socket's wake-ups, its
/// handlers', its timer's). It holds the session weakly: a waker kept a little longer by
/// the socket's layers, the reactor or a handler must not keep the
/// session's state alive.
pub(crate) fn signal_waker(shared: &Arc<super::handle::Shared>, bit: u8) -> Waker {
    struct Raise(Weak<super::handle::Shared>, u8);

    impl Wake for Raise {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            if let Some(shared) = self.0.upgrade() {
                shared.queue.raise(self.1);
            }
        }
    }

    Waker::from(Arc::new(Raise(Arc::downgrade(shared), bit)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_marks_slow_consumer_and_refuses_more() {
        let q = OutboundQueue::new(10);
        assert_eq!(q.push(Utf8Bytes::from("123456")), Ok(()));
        assert_eq!(q.push(Utf8Bytes::from("123456")), Err(SendError::Overflow));
        assert_eq!(q.close_request().unwrap().code, close::SLOW_CONSUMER);
        assert_eq!(q.push(Utf8Bytes::from("1")), Err(SendError::Closed));
        let mut out = Vec::new();
        q.drain(|frame| out.push(frame));
        assert!(out.is_empty());
    }
}
