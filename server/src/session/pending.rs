//! Calls this server made to one client, waiting for its answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde_json::value::RawValue;
use switchboard_protocol::ErrorObject;
use tokio::sync::oneshot;

use crate::error::CallError;

/// The answer a client gave to one of our calls.
pub(crate) type Answer = Result<Box<RawValue>, ErrorObject>;

/// Request ids for calls to clients. One counter for the whole node: a
/// multicast call sends the same id to every session it reaches, so that its
/// frame is serialised once, and pending calls are keyed by (session, id).
/// Ids start at 1 and stay far below 2^53, so they are exact in JavaScript.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_call_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// The pending table of one session.
pub(crate) struct PendingCalls {
    inner: Mutex<Inner>,
    limit: usize,
}

struct Inner {
    calls: HashMap<u64, oneshot::Sender<Answer>>,
    closed: bool,
}

impl PendingCalls {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                calls: HashMap::new(),
                closed: false,
            }),
            limit,
        }
    }

    /// Registers call `id`; its answer arrives on the returned receiver.
    pub(crate) fn insert(&self, id: u64) -> Result<oneshot::Receiver<Answer>, CallError> {
        let mut inner = self.inner.lock();
        if inner.closed {
            return Err(CallError::SessionGone);
        }
        if inner.calls.len() >= self.limit {
            return Err(CallError::TooManyPending);
        }
        let (tx, rx) = oneshot::channel();
        inner.calls.insert(id, tx);
        Ok(rx)
    }

    /// Hands an answer to its caller. Returns false for an unknown id.
    pub(crate) fn complete(&self, id: u64, answer: Answer) -> bool {
        let sender = self.inner.lock().calls.remove(&id);
        match sender {
            // The caller may have given up a moment ago; that is not an error.
            Some(tx) => {
                let _ = tx.send(answer);
                true
            }
            None => false,
        }
    }

    /// Forgets call `id` (its caller gave up). Returns whether it was still pending.
    pub(crate) fn remove(&self, id: u64) -> bool {
        self.inner.lock().calls.remove(&id).is_some()
    }

    /// Fails every pending call at once (their receivers see the sender dropped)
    /// and refuses new ones: the session is gone.
    pub(crate) fn close(&self) {
        let calls = {
            let mut inner = self.inner.lock();
            inner.closed = true;
            std::mem::take(&mut inner.calls)
        };
        drop(calls);
    }
}
