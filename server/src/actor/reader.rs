//! Reading the socket only when it has something to read.
//!
//! The session task wakes for its queue and its timer as well as for the
//! socket. Polling the socket on every wake-up costs a trip through the
//! connection layers and the reactor's readiness (which takes a lock) only
//! to learn that nothing arrived: on a session that mostly receives pushes,
//! that is most of its work besides the write. The
//! socket is therefore polled with a waker of its own, which raises
//! [`signal::READ`] on the session's queue; the session reads only then, and
//! waits on its queue's one waker for everything.

use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use crate::session::{Shared, signal, signal_waker};
use crate::ws::{Incoming, ReadError, Socket};

/// The session's reader.
pub(crate) struct Reader {
    shared: Arc<Shared>,
    waker: Waker,
}

impl Reader {
    /// A reader for the session of `shared`; the first read is due at once
    /// (it registers the socket's waker).
    pub(crate) fn new(shared: &Arc<Shared>) -> Self {
        shared.queue.mark(signal::READ);
        Self {
            shared: Arc::clone(shared),
            waker: signal_waker(shared, signal::READ),
        }
    }

    /// The next message if one has arrived. Call when [`signal::READ`] is raised.
    pub(crate) fn try_next<'s>(&self, socket: &'s mut Socket) -> Poll<Result<Incoming<'s>, ReadError>> {
        // Lowered before polling: a wake-up from here on raises it again.
        self.shared.queue.lower(signal::READ);
        let polled = socket.poll_next(&mut Context::from_waker(&self.waker));
        if polled.is_ready() {
            // More may be buffered already, with no wake-up to come for it.
            self.shared.queue.mark(signal::READ);
        }
        polled
    }
}
