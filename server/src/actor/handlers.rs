//! Handlers that did not answer at once (asynchronous methods, upstream
//! calls), run by the session task itself rather than spawned: a handler
//! woken by the answer the session has just read runs in the same turn, and
//! what it answers leaves in the same write. They run concurrently with each
//! other and with the socket, at most `limits.max_in_flight` of them (the
//! dispatcher refuses more with `-32003`).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll};

use futures_util::future::{BoxFuture, CatchUnwind, Map};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, Stream};

/// A handler's future: the answer frame to send, if any.
pub(crate) type Handler = BoxFuture<'static, Option<String>>;

/// A handler whose panic ends it without an answer (no second box).
type Guarded =
    Map<CatchUnwind<AssertUnwindSafe<Handler>>, fn(Result<Option<String>, Box<dyn Any + Send>>) -> Option<String>>;

fn unless_panicked(ended: Result<Option<String>, Box<dyn Any + Send>>) -> Option<String> {
    ended.unwrap_or_else(|_| {
        tracing::error!("a method handler panicked; its call gets no answer");
        None
    })
}

/// The running handlers of one session. Holds no memory until the first
/// one starts, and gives it back once none is running ([`trim`](Self::trim)).
#[derive(Default)]
pub(crate) struct Handlers {
    running: Option<FuturesUnordered<Guarded>>,
}

impl Handlers {
    /// Starts `handler`; it is first polled on the session's next turn.
    pub(crate) fn push(&mut self, handler: Handler) {
        // Should anything in a handler's future panic (the dispatcher already
        // answers a panicking method with -32603), that one call gets no
        // answer and the session lives on.
        let guarded: Guarded = AssertUnwindSafe(handler).catch_unwind().map(unless_panicked);
        self.running.get_or_insert_with(FuturesUnordered::new).push(guarded);
    }

    /// How many handlers have not answered yet.
    pub(crate) fn len(&self) -> usize {
        self.running.as_ref().map_or(0, FuturesUnordered::len)
    }

    /// Runs the handlers that can go on and hands each answer to `answer`
    /// (a handler that answers nothing, such as a notification's, ends
    /// without a call). Ready once at least one handler ended; pending while
    /// none can go on, and for ever while none is running: select it only
    /// when [`len`](Self::len) is not zero.
    pub(crate) fn poll_answers(&mut self, cx: &mut Context<'_>, mut answer: impl FnMut(String)) -> Poll<()> {
        let Some(running) = self.running.as_mut() else {
            return Poll::Pending;
        };
        let mut ended = false;
        while let Poll::Ready(Some(frame)) = std::pin::Pin::new(&mut *running).poll_next(cx) {
            ended = true;
            frame.into_iter().for_each(&mut answer);
        }
        if ended { Poll::Ready(()) } else { Poll::Pending }
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

    /// The answers of the handlers that end in the next turn that ends any.
    async fn next(handlers: &mut Handlers) -> Vec<String> {
        let mut answers = Vec::new();
        std::future::poll_fn(|cx| handlers.poll_answers(cx, |a| answers.push(a))).await;
        answers
    }

    #[tokio::test]
    async fn answers_come_as_handlers_finish_and_a_panic_answers_nothing() {
        let mut handlers = Handlers::default();
        let (tx, rx) = oneshot::channel::<String>();
        handlers.push(async move { rx.await.ok() }.boxed());
        handlers.push(async { Some("at once".to_owned()) }.boxed());
        handlers.push(async { panic!("a handler panics") }.boxed());
        assert_eq!(handlers.len(), 3);
        assert_eq!(
            next(&mut handlers).await,
            ["at once"],
            "both end at once; the panic ends its handler without an answer"
        );
        assert_eq!(handlers.len(), 1);
        tx.send("later".to_owned()).unwrap();
        assert_eq!(next(&mut handlers).await, ["later"]);
        assert_eq!(handlers.len(), 0);
        handlers.trim();
        assert!(handlers.running.is_none(), "no memory kept while none runs");
    }
}
