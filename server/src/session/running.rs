//! Handlers that did not answer at once, run by the session task itself.
//!
//! An asynchronous method (one that waits on a backend, a timer, or an
//! answer from this very client) used to get a task of its own. Spawning
//! costs an aligned allocation, a trip through the scheduler's queues and a
//! second task waking for every step, and its answer then waited for the
//! session task to be scheduled again to be written. Here the session polls
//! its handlers between reading and writing: a handler woken by the answer
//! the session has just read runs in the same turn, and what it answers
//! leaves in the same write. Handlers still run concurrently with each other
//! and with the socket; the number of them is bounded by
//! `limits.max_in_flight`. The dispatcher already answers a panicking method
//! with `-32603`; should anything else in a handler's future panic, that one
//! call gets no answer and the session lives on.

use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll, Waker};

use futures_util::future::{BoxFuture, CatchUnwind};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};

use super::SessionHandle;
use super::queue::{signal, signal_waker};

/// The running handlers of one session. Holds no memory until the first one.
#[derive(Default)]
pub(crate) struct Running {
    handlers: Option<(FuturesUnordered<Handler>, Waker)>,
}

type Handler = CatchUnwind<AssertUnwindSafe<BoxFuture<'static, Option<String>>>>;

impl Running {
    /// Starts `handler`; it is first polled on the session's next turn.
    pub(crate) fn push(&mut self, session: &SessionHandle, handler: BoxFuture<'static, Option<String>>) {
        let (handlers, _) = self.handlers.get_or_insert_with(|| {
            let waker = signal_waker(&session.shared, signal::HANDLERS);
            (FuturesUnordered::new(), waker)
        });
        handlers.push(AssertUnwindSafe(handler).catch_unwind());
        session.shared.queue.mark(signal::HANDLERS);
    }

    /// How many handlers have not answered yet.
    pub(crate) fn len(&self) -> usize {
        self.handlers.as_ref().map_or(0, |(handlers, _)| handlers.len())
    }

    /// Polls the handlers that can make progress and queues their answers.
    /// Call when [`signal::HANDLERS`] was raised (it is lowered here).
    pub(crate) fn run(&mut self, session: &SessionHandle) {
        let Some((handlers, waker)) = self.handlers.as_mut() else {
            return;
        };
        // Lowered before polling: a wake-up from here on raises it again.
        session.shared.queue.lower(signal::HANDLERS);
        let mut cx = Context::from_waker(waker);
        while let Poll::Ready(Some(answer)) = handlers.poll_next_unpin(&mut cx) {
            match answer {
                Ok(Some(answer)) => {
                    let _ = session.send_frame(answer.into());
                }
                Ok(None) => {}
                Err(_) => tracing::error!("a method handler panicked; its call gets no answer"),
            }
        }
    }
}
