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
//!
//! The handlers sit in numbered slots, each with a waker of its own made
//! once and kept: waking one sets its slot's bit and raises `HANDLERS` on
//! the session's queue, and the session polls the slots whose bits are set.
//! Starting a handler costs no allocation besides its future, and neither
//! does waking or finishing one.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures_util::future::BoxFuture;
use parking_lot::Mutex;

use crate::session::{SessionHandle, signal, signal_waker};

type Handler = BoxFuture<'static, Option<String>>;

/// The running handlers of one session. Holds no memory until the first
/// one, and gives it back when the session has been idle a while
/// ([`trim`](Self::trim)).
#[derive(Default)]
pub(crate) struct Running {
    slots: Option<Box<Slots>>,
}

struct Slots {
    /// The handlers by slot; `None` where a slot is free.
    handlers: Vec<Option<Handler>>,
    /// Each slot's waker.
    wakers: Vec<Waker>,
    /// The free slots.
    free: Vec<usize>,
    /// Slots started since the last run, to be polled once.
    started: Vec<usize>,
    /// Slots whose handlers were woken.
    woken: Arc<Woken>,
    /// A copy of `woken`'s bits, taken for one run.
    taken: Vec<u64>,
    len: usize,
}

/// The bits of the slots whose handlers were woken; shared with the wakers.
struct Woken {
    bits: Mutex<Vec<u64>>,
    /// Raises `HANDLERS` on the session's queue.
    session: Waker,
}

/// Wakes the handler in one slot.
struct SlotWaker {
    woken: Arc<Woken>,
    slot: usize,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        {
            let mut bits = self.woken.bits.lock();
            let word = self.slot / 64;
            if bits.len() <= word {
                bits.resize(word + 1, 0);
            }
            bits[word] |= 1 << (self.slot % 64);
        }
        self.woken.session.wake_by_ref();
    }
}

impl Running {
    /// Starts `handler`; it is first polled on the session's next turn.
    pub(crate) fn push(&mut self, session: &SessionHandle, handler: Handler) {
        let slots = self.slots.get_or_insert_with(|| {
            Box::new(Slots {
                handlers: Vec::new(),
                wakers: Vec::new(),
                free: Vec::new(),
                started: Vec::new(),
                woken: Arc::new(Woken {
                    bits: Mutex::new(Vec::new()),
                    session: signal_waker(&session.shared, signal::HANDLERS),
                }),
                taken: Vec::new(),
                len: 0,
            })
        });
        let slot = slots.free.pop().unwrap_or_else(|| {
            let slot = slots.handlers.len();
            slots.handlers.push(None);
            slots.wakers.push(Waker::from(Arc::new(SlotWaker {
                woken: Arc::clone(&slots.woken),
                slot,
            })));
            slot
        });
        slots.handlers[slot] = Some(handler);
        slots.started.push(slot);
        slots.len += 1;
        session.shared.queue.mark(signal::HANDLERS);
    }

    /// How many handlers have not answered yet.
    pub(crate) fn len(&self) -> usize {
        self.slots.as_ref().map_or(0, |slots| slots.len)
    }

    /// Gives the slots' memory back when no handler is running.
    pub(crate) fn trim(&mut self) {
        if self.len() == 0 {
            self.slots = None;
        }
    }

    /// Polls the handlers that were started or woken and queues their
    /// answers. Call when [`signal::HANDLERS`] was raised (it is lowered here).
    pub(crate) fn run(&mut self, session: &SessionHandle) {
        let Some(slots) = self.slots.as_deref_mut() else {
            return;
        };
        // Lowered before looking: a wake-up from here on raises it again.
        session.shared.queue.lower(signal::HANDLERS);
        {
            let mut bits = slots.woken.bits.lock();
            slots.taken.clear();
            slots.taken.extend(bits.iter_mut().map(std::mem::take));
        }
        for i in 0..slots.started.len() {
            let slot = slots.started[i];
            slots.poll(session, slot);
        }
        slots.started.clear();
        for word in 0..slots.taken.len() {
            let mut bits = slots.taken[word];
            while bits != 0 {
                let slot = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                slots.poll(session, slot);
            }
        }
    }
}

impl Slots {
    /// Polls the handler in `slot`, if there is one (a wake-up may come
    /// late, for a handler that has finished), and queues its answer.
    fn poll(&mut self, session: &SessionHandle, slot: usize) {
        let Some(handler) = self.handlers[slot].as_mut() else {
            return;
        };
        let mut cx = Context::from_waker(&self.wakers[slot]);
        let answer = match std::panic::catch_unwind(AssertUnwindSafe(|| handler.as_mut().poll(&mut cx))) {
            Ok(Poll::Pending) => return,
            Ok(Poll::Ready(answer)) => answer,
            Err(_) => {
                tracing::error!("a method handler panicked; its call gets no answer");
                None
            }
        };
        self.handlers[slot] = None;
        self.free.push(slot);
        self.len -= 1;
        if let Some(answer) = answer {
            let _ = session.send_frame(answer.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::FutureExt;
    use tokio::sync::oneshot;

    use super::Running;
    use crate::config::Limits;
    use crate::session::{SessionHandle, SessionId, signal};

    fn answers(session: &SessionHandle) -> Vec<String> {
        let mut out = Vec::new();
        session.shared.queue.drain(|frame| out.push(frame.as_str().to_owned()));
        out
    }

    fn waiting(rx: oneshot::Receiver<u32>) -> futures_util::future::BoxFuture<'static, Option<String>> {
        async move { rx.await.ok().map(|n| n.to_string()) }.boxed()
    }

    #[test]
    fn handlers_run_when_woken_in_any_order_and_their_slots_are_reused() {
        let session = SessionHandle::new(SessionId::new("s"), Arc::from("u"), &Limits::default());
        let queue = &session.shared.queue;
        let mut running = Running::default();
        let (tx1, rx1) = oneshot::channel();
        let (tx2, rx2) = oneshot::channel();
        let (tx3, rx3) = oneshot::channel();
        for rx in [rx1, rx2, rx3] {
            running.push(&session, waiting(rx));
        }
        assert_ne!(queue.raised() & signal::HANDLERS, 0, "started handlers are due");
        running.run(&session);
        assert_eq!(running.len(), 3);
        assert!(answers(&session).is_empty());
        assert_eq!(queue.raised() & signal::HANDLERS, 0);

        tx2.send(2).unwrap();
        assert_ne!(queue.raised() & signal::HANDLERS, 0, "a wake-up raises the signal");
        running.run(&session);
        assert_eq!(answers(&session), ["2"]);
        assert_eq!(running.len(), 2);

        // The freed slot is taken again; a late wake-up for it is harmless.
        let (tx4, rx4) = oneshot::channel();
        running.push(&session, waiting(rx4));
        running.push(&session, async { panic!("a handler that panics") }.boxed());
        running.run(&session);
        assert_eq!(running.len(), 3, "the panicking handler is gone");
        tx3.send(3).unwrap();
        tx4.send(4).unwrap();
        tx1.send(1).unwrap();
        running.run(&session);
        let mut got = answers(&session);
        got.sort();
        assert_eq!(got, ["1", "3", "4"]);
        assert_eq!(running.len(), 0);
        running.trim();
        assert!(running.slots.is_none());
    }
}
