//! Handlers that did not answer at once (asynchronous methods, upstream
//! calls), run by the session task itself rather than spawned: a handler
//! woken by the answer the session has just read runs in the same turn, and
//! what it answers leaves in the same write. They run concurrently with each
//! other and with the socket, at most `limits.max_in_flight` of them (the
//! dispatcher refuses more with `-32003`).

use std::panic::AssertUnwindSafe;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};

/// A handler's future: the answer frame to send, if any.
pub(crate) type Handler = BoxFuture<'static, Option<String>>;

/// The running handlers of one session. Holds no memory until the first
/// one starts, and gives it back once none is running ([`trim`](Self::trim)).
#[derive(Default)]
pub(crate) struct Handlers {
    running: Option<FuturesUnordered<Handler>>,
}

impl Handlers {
    /// Starts `handler`; it is first polled on the session's next turn.
    pub(crate) fn push(&mut self, handler: Handler) {
        // Should anything in a handler's future panic (the dispatcher already
        // answers a panicking method with -32603), that one call gets no
        // answer and the session lives on.
        let guarded = AssertUnwindSafe(handler).catch_unwind().map(|answer| {
            answer.unwrap_or_else(|_| {
                tracing::error!("a method handler panicked; its call gets no answer");
                None
            })
        });
        self.running
            .get_or_insert_with(FuturesUnordered::new)
            .push(guarded.boxed());
    }

    /// How many handlers have not answered yet.
    pub(crate) fn len(&self) -> usize {
        self.running.as_ref().map_or(0, FuturesUnordered::len)
    }

    /// The next answer (`None` for a handler that answers nothing, such as a
    /// notification's). Pending for ever while none is running: select it
    /// only when [`len`](Self::len) is not zero.
    pub(crate) async fn next(&mut self) -> Option<String> {
        match self.running.as_mut() {
            Some(running) => running.next().await.flatten(),
            None => std::future::pending().await,
        }
    }

    /// Gives the memory back when no handler is running.
    pub(crate) fn trim(&mut self) {
        if self.len() == 0 {
            self.running = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use tokio::sync::oneshot;

    use super::Handlers;

    #[tokio::test]
    async fn answers_come_as_handlers_finish_and_a_panic_answers_nothing() {
        let mut handlers = Handlers::default();
        let (tx, rx) = oneshot::channel::<String>();
        handlers.push(async move { rx.await.ok() }.boxed());
        handlers.push(async { Some("at once".to_owned()) }.boxed());
        handlers.push(async { panic!("a handler panics") }.boxed());
        assert_eq!(handlers.len(), 3);
        assert_eq!(handlers.next().await, Some("at once".to_owned()));
        assert_eq!(
            handlers.next().await,
            None,
            "the panic ends its handler without an answer"
        );
        tx.send("later".to_owned()).unwrap();
        assert_eq!(handlers.next().await, Some("later".to_owned()));
        assert_eq!(handlers.len(), 0);
        handlers.trim();
        assert!(handlers.running.is_none(), "no memory kept while none runs");
    }
}
