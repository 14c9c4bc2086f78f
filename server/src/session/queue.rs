//! The outbound queue: the only way to reach a session's socket.
//!
//! Everything that wants to send to a client (responses, pushes, calls,
//! pings) enqueues a frame here; only the session's own task writes to the
//! socket. The queue is bounded in bytes: when a push would overflow it, the
//! session is marked for closing as a slow consumer and the publisher moves on
//! at once. Nobody ever waits on a slow client.

use std::collections::VecDeque;

use parking_lot::Mutex;
use switchboard_protocol::codes::close;
use tokio::sync::Notify;
use tokio::sync::futures::Notified;
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

#[derive(Default)]
struct State {
    frames: VecDeque<Utf8Bytes>,
    bytes: usize,
    close: Option<CloseRequest>,
}

/// A byte-bounded queue of text frames with a single consumer.
pub(crate) struct OutboundQueue {
    state: Mutex<State>,
    /// Wakes the session task for new frames.
    ready: Notify,
    /// Wakes the session task for a close request, even while it is blocked writing.
    kill: Notify,
    max_bytes: usize,
}

impl OutboundQueue {
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            kill: Notify::new(),
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
        state.frames.push_back(frame);
        drop(state);
        self.ready.notify_one();
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
        drop(state);
        metrics::counter!("switchboard_slow_consumer_closes_total").increment(1);
        self.kill.notify_one();
    }

    /// Asks the session to close. The first request wins.
    pub(crate) fn close(&self, request: CloseRequest) {
        let mut state = self.state.lock();
        if state.close.is_none() {
            state.close = Some(request);
            drop(state);
            self.kill.notify_one();
        }
    }

    /// Whether a close was requested.
    pub(crate) fn is_closing(&self) -> bool {
        self.state.lock().close.is_some()
    }

    /// Moves every queued frame into `out`.
    pub(crate) fn drain_into(&self, out: &mut Vec<Utf8Bytes>) {
        let mut state = self.state.lock();
        out.extend(state.frames.drain(..));
        state.bytes = 0;
    }

    /// The pending close request, if any.
    pub(crate) fn close_request(&self) -> Option<CloseRequest> {
        self.state.lock().close.clone()
    }

    /// Completes when frames may have been queued. Kept pinned by the
    /// session and re-armed after each wake-up, so that waiting costs no
    /// registration per loop.
    pub(crate) fn ready(&self) -> Notified<'_> {
        self.ready.notified()
    }

    /// Completes when a close was requested (once: the session then ends).
    pub(crate) fn killed(&self) -> Notified<'_> {
        self.kill.notified()
    }
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
        q.drain_into(&mut out);
        assert!(out.is_empty());
    }
}
