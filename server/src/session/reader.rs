//! Reading the socket only when it has something to read.
//!
//! The session task wakes for its queue and its timer as well as for the
//! socket. Polling the socket on every wake-up costs a trip through
//! tokio-tungstenite, the connection layers and the reactor's readiness
//! (which takes a lock) only to learn that nothing arrived: on a session that
//! mostly receives pushes, that is most of its work besides the write. The
//! socket is therefore polled with a waker of its own, which records that
//! the socket woke the task; other wake-ups leave the socket alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::StreamExt;
use futures_util::task::AtomicWaker;
use tungstenite::Message;

use crate::ws::Socket;

struct Flag {
    /// The socket may have something: poll it on the next turn.
    ready: AtomicBool,
    /// The session task, woken when the socket wakes.
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// The session's reader: polls the socket only when the socket asked for it.
pub(crate) struct Reader {
    flag: Arc<Flag>,
    waker: Waker,
}

type Incoming = Option<Result<Message, tungstenite::Error>>;

impl Reader {
    pub(crate) fn new() -> Self {
        let flag = Arc::new(Flag {
            // Polled once at the start, which registers the socket's waker.
            ready: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Self {
            waker: Waker::from(Arc::clone(&flag)),
            flag,
        }
    }

    /// The next message, for the session's `select!`.
    pub(crate) fn poll_next(&self, socket: &mut Socket, cx: &mut Context<'_>) -> Poll<Incoming> {
        // Registered before the flag is read: a wake in between still reaches the task.
        self.flag.task.register(cx.waker());
        if !self.flag.ready.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        self.try_next(socket)
    }

    /// The next message if one has already arrived (for reading in batches).
    pub(crate) fn try_next(&self, socket: &mut Socket) -> Poll<Incoming> {
        let polled = socket.poll_next_unpin(&mut Context::from_waker(&self.waker));
        if polled.is_ready() {
            // More may be buffered already, with no wake-up to come for it.
            self.flag.ready.store(true, Ordering::Release);
        }
        polled
    }
}
