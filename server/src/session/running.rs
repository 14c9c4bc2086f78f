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
use std::task::{Context, Poll};

use futures_util::future::{BoxFuture, CatchUnwind};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};

use super::SessionHandle;

/// The running handlers of one session. Holds no memory until the first one.
#[derive(Default)]
pub(crate) struct Running {
    handlers: Option<FuturesUnordered<Handler>>,
}

type Handler = CatchUnwind<AssertUnwindSafe<BoxFuture<'static, Option<String>>>>;

impl Running {
    /// Starts `handler`; it is first polled on the session's next turn.
    pub(crate) fn push(&mut self, handler: BoxFuture<'static, Option<String>>) {
        self.handlers
            .get_or_insert_with(FuturesUnordered::new)
            .push(AssertUnwindSafe(handler).catch_unwind());
    }

    /// How many handlers have not answered yet.
    pub(crate) fn len(&self) -> usize {
        self.handlers.as_ref().map_or(0, FuturesUnordered::len)
    }

    /// Polls the handlers that can make progress and queues their answers.
    /// Ready once at least one finished; pending otherwise (woken when one can go on).
    pub(crate) fn poll_answers(&mut self, session: &SessionHandle, cx: &mut Context<'_>) -> Poll<()> {
        let Some(handlers) = self.handlers.as_mut() else {
            return Poll::Pending;
        };
        let mut finished = false;
        while let Poll::Ready(Some(answer)) = handlers.poll_next_unpin(cx) {
            finished = true;
            match answer {
                Ok(Some(answer)) => {
                    let _ = session.send_frame(answer.into());
                }
                Ok(None) => {}
                Err(_) => tracing::error!("a method handler panicked; its call gets no answer"),
            }
        }
        if finished { Poll::Ready(()) } else { Poll::Pending }
    }
}
