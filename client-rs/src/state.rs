//! [`ConnectionState`] and the [`StateStream`] that reports its changes.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;

use crate::buffer::{Buffer, Popped};

/// Where the connection stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Opening a connection (the first one, or a reconnect).
    Connecting,
    /// Connected: calls can be made. Topics are being renewed if this is a reconnect.
    Connected,
    /// The connection ended.
    Disconnected {
        /// The close code the server sent, if a close frame arrived.
        code: Option<u16>,
        /// Why, as the server said or as the client saw it.
        reason: String,
        /// Whether the client will reconnect. When `false` this is the last
        /// state: the client is closed and the state stream ends.
        will_retry: bool,
    },
}

/// How many state changes a slow [`StateStream`] keeps; older ones are dropped.
const STATE_BUFFER: usize = 64;

/// The current state and everyone watching it.
#[derive(Debug, Default)]
pub(crate) struct States {
    current: Option<ConnectionState>,
    watchers: Vec<Arc<Buffer<ConnectionState>>>,
    ended: bool,
}

impl States {
    pub(crate) fn current(&self) -> Option<ConnectionState> {
        self.current.clone()
    }

    pub(crate) fn set(&mut self, state: ConnectionState) {
        // A watcher whose stream was dropped holds the only other reference.
        self.watchers.retain(|w| Arc::strong_count(w) > 1);
        for w in &self.watchers {
            w.push(state.clone());
        }
        self.current = Some(state);
    }

    /// The client is closed for good: every stream ends after the last state.
    pub(crate) fn end(&mut self) {
        self.ended = true;
        for w in self.watchers.drain(..) {
            w.close();
        }
    }

    pub(crate) fn watch(&mut self) -> StateStream {
        let buffer = Arc::new(Buffer::new(STATE_BUFFER));
        if let Some(s) = &self.current {
            buffer.push(s.clone());
        }
        if self.ended {
            buffer.close();
        } else {
            self.watchers.push(buffer.clone());
        }
        StateStream { buffer }
    }
}

/// The changes of the connection's state, starting with the current one.
/// Made by [`Client::states`](crate::Client::states).
///
/// It ends after the final [`ConnectionState::Disconnected`] (the one with
/// `will_retry: false`). A stream read too slowly keeps the latest 64 changes.
#[derive(Debug)]
pub struct StateStream {
    buffer: Arc<Buffer<ConnectionState>>,
}

impl Stream for StateStream {
    type Item = ConnectionState;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            return match self.buffer.poll_pop(cx) {
                Poll::Ready(Some(Popped::Item(s))) => Poll::Ready(Some(s)),
                // Older changes were dropped; the newer ones that follow are what matters.
                Poll::Ready(Some(Popped::Lagged(_))) => continue,
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            };
        }
    }
}
