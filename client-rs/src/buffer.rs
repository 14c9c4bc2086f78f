//! [`Buffer`]: the bounded queue between the connection task and one stream.
//!
//! The connection task must never wait for the application (it also reads
//! the answers to calls), so pushing never blocks: when the buffer is full
//! the *oldest* item is dropped and counted, and the consumer is told how
//! many it missed before it gets the items that were kept.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;

/// What a consumer takes out of a buffer.
#[derive(Debug)]
pub(crate) enum Popped<T> {
    /// The next item.
    Item(T),
    /// This many older items were dropped because the buffer was full.
    Lagged(u64),
}

#[derive(Debug)]
struct State<T> {
    items: VecDeque<T>,
    capacity: usize,
    missed: u64,
    closed: bool,
    waker: Option<Waker>,
}

/// A bounded, drop-oldest, single-consumer queue that can be closed.
#[derive(Debug)]
pub(crate) struct Buffer<T> {
    state: Mutex<State<T>>,
}

impl<T> Buffer<T> {
    /// An empty buffer holding at most `capacity` items (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::new(),
                capacity: capacity.max(1),
                missed: 0,
                closed: false,
                waker: None,
            }),
        }
    }

    /// Appends `item`, dropping the oldest item when full. Returns whether
    /// an item was dropped. Items pushed after [`close`](Self::close) are discarded.
    pub(crate) fn push(&self, item: T) -> bool {
        let mut s = self.state.lock();
        if s.closed {
            return false;
        }
        let dropped = s.items.len() >= s.capacity;
        if dropped {
            s.items.pop_front();
            s.missed += 1;
        }
        s.items.push_back(item);
        let waker = s.waker.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        dropped
    }

    /// Ends the stream: the consumer gets what is queued, then the end.
    pub(crate) fn close(&self) {
        let mut s = self.state.lock();
        s.closed = true;
        let waker = s.waker.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether the buffer was closed.
    pub(crate) fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// Moves every queued item (and the count of missed ones) into `other`,
    /// then closes this buffer: a new consumer takes over from an old one.
    pub(crate) fn hand_over(&self, other: &Buffer<T>) {
        let (items, missed) = {
            let mut s = self.state.lock();
            s.closed = true;
            (std::mem::take(&mut s.items), std::mem::take(&mut s.missed))
        };
        self.close();
        let mut o = other.state.lock();
        o.missed += missed;
        for item in items {
            if o.items.len() >= o.capacity {
                o.items.pop_front();
                o.missed += 1;
            }
            o.items.push_back(item);
        }
    }

    /// Takes the next item, or registers the consumer's waker.
    pub(crate) fn poll_pop(&self, cx: &mut Context<'_>) -> Poll<Option<Popped<T>>> {
        let mut s = self.state.lock();
        if s.missed > 0 {
            return Poll::Ready(Some(Popped::Lagged(std::mem::take(&mut s.missed))));
        }
        if let Some(item) = s.items.pop_front() {
            return Poll::Ready(Some(Popped::Item(item)));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// How many items are queued.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state.lock().items.len()
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};

    use futures_util::task::noop_waker;

    use super::*;

    fn pop<T>(b: &Buffer<T>) -> Poll<Option<Popped<T>>> {
        let waker = noop_waker();
        b.poll_pop(&mut Context::from_waker(&waker))
    }

    #[test]
    fn drops_the_oldest_and_reports_how_many() {
        let b = Buffer::new(2);
        assert!(!b.push(1));
        assert!(!b.push(2));
        assert!(b.push(3));
        assert!(b.push(4));
        assert_eq!(b.len(), 2);
        assert!(matches!(pop(&b), Poll::Ready(Some(Popped::Lagged(2)))));
        assert!(matches!(pop(&b), Poll::Ready(Some(Popped::Item(3)))));
        assert!(matches!(pop(&b), Poll::Ready(Some(Popped::Item(4)))));
        assert!(pop(&b).is_pending());
        b.close();
        assert!(!b.push(5));
        assert!(matches!(pop(&b), Poll::Ready(None)));
    }

    #[test]
    fn a_new_consumer_takes_over_what_was_queued() {
        let old = Buffer::new(3);
        old.push("a");
        old.push("b");
        let new = Buffer::new(1);
        old.hand_over(&new);
        assert!(old.is_closed());
        assert!(matches!(pop(&old), Poll::Ready(None)));
        assert!(matches!(pop(&new), Poll::Ready(Some(Popped::Lagged(1)))));
        assert!(matches!(pop(&new), Poll::Ready(Some(Popped::Item("b")))));
    }

    #[test]
    fn a_capacity_of_zero_holds_one() {
        let b = Buffer::new(0);
        b.push(1);
        assert!(matches!(pop(&b), Poll::Ready(Some(Popped::Item(1)))));
    }
}
