//! Calls this server made to one client, waiting for its answers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::value::RawValue;
use switchboard_protocol::ErrorObject;
use tokio::time::Instant;

use crate::error::CallError;

/// The answer a client gave to one of our calls.
pub(crate) type Answer = Result<Box<RawValue>, ErrorObject>;

/// How many progress reports wait for a slow reader before more are dropped.
pub(crate) const PROGRESS_QUEUE: usize = 256;

/// Where a call's progress reports go (`rpc.progress` from the client), when
/// its caller asked for them: the node's task that runs a multicast call, or
/// the caller of a single-session call, with the session that sent each.
#[derive(Clone)]
pub(crate) struct ProgressSink(pub(crate) tokio::sync::mpsc::Sender<(super::SessionHandle, Box<RawValue>)>);

/// Request ids for calls to clients. One counter for the whole node: a
/// multicast call sends the same id to every session it reaches, so that its
/// frame is serialised once, and pending calls are keyed by (session, id).
/// Ids start at 1 and stay far below 2^53, so they are exact in JavaScript.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_call_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Hashes call ids for the pending table. The ids are the server's own
/// counter (a client's answer only looks one up), so nobody can choose keys
/// that collide: a multiplication by an odd constant spreads consecutive
/// ids over the table, at a fraction of SipHash's cost.
#[derive(Clone, Copy, Default)]
struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed here; this is for completeness.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The pending table of one session. A waiting caller's answer is put in
/// its slot and its waker woken: no channel per call. Nor a timer per call:
/// the session's own timer watches the earliest deadline and times out the
/// calls whose deadline has passed ([`expire`](PendingCalls::expire)).
pub(crate) struct PendingCalls {
    inner: Mutex<Inner>,
    limit: usize,
    /// Deadlines are kept as whole milliseconds after this instant.
    base: Instant,
    /// The earliest deadline of a waiting call, rounded up (`u64::MAX`: none).
    /// Lowered by every new call; raised only by `expire`, so between two
    /// expiries it may be earlier than needed, never later.
    earliest: AtomicU64,
}

enum Slot {
    Waiting {
        waker: Option<Waker>,
        deadline: Instant,
        progress: Option<ProgressSink>,
    },
    Answered(Answer),
    TimedOut,
}

/// How a call ended.
pub(crate) enum Outcome {
    Answered(Answer),
    TimedOut,
    /// The session ended first.
    Gone,
}

struct Inner {
    calls: HashMap<u64, Slot, IdHash>,
    closed: bool,
}

impl PendingCalls {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                calls: HashMap::default(),
                closed: false,
            }),
            limit,
            base: Instant::now(),
            earliest: AtomicU64::new(u64::MAX),
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        let after = at.saturating_duration_since(self.base);
        // Rounded up, so that a timer set for it finds the call due.
        u64::try_from(after.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX - 1)
    }

    /// Registers call `id`, to time out at `deadline`; wait for its answer
    /// with [`poll_answer`](Self::poll_answer). True when its deadline is now
    /// the earliest to watch.
    pub(crate) fn insert(&self, id: u64, deadline: Instant, progress: Option<ProgressSink>) -> Result<bool, CallError> {
        let mut inner = self.inner.lock();
        if inner.closed {
            return Err(CallError::SessionGone);
        }
        if inner.calls.len() >= self.limit {
            return Err(CallError::TooManyPending);
        }
        inner.calls.insert(
            id,
            Slot::Waiting {
                waker: None,
                deadline,
                progress,
            },
        );
        let at = self.millis(deadline);
        Ok(self.earliest.fetch_min(at, Ordering::Relaxed) > at)
    }

    /// When the session should next call [`expire`](Self::expire).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        match self.earliest.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(self.base + Duration::from_millis(ms)),
        }
    }

    /// Times out the calls whose deadline has passed (their callers are
    /// woken) and returns their ids.
    pub(crate) fn expire(&self, now: Instant) -> Vec<u64> {
        let mut expired = Vec::new();
        let mut wakers = Vec::new();
        {
            let mut inner = self.inner.lock();
            let mut earliest = u64::MAX;
            for (id, slot) in &mut inner.calls {
                if let Slot::Waiting { waker, deadline, .. } = slot {
                    if *deadline <= now {
                        wakers.extend(waker.take());
                        expired.push(*id);
                        *slot = Slot::TimedOut;
                    } else {
                        earliest = earliest.min(self.millis(*deadline));
                    }
                }
            }
            self.earliest.store(earliest, Ordering::Relaxed);
        }
        wakers.into_iter().for_each(Waker::wake);
        expired
    }

    /// How call `id` ended, once it has (and the call is forgotten).
    pub(crate) fn poll_answer(&self, id: u64, cx: &mut Context<'_>) -> Poll<Outcome> {
        let mut inner = self.inner.lock();
        match inner.calls.get_mut(&id) {
            Some(Slot::Waiting { waker, .. }) => {
                match waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            Some(_) => Poll::Ready(match inner.calls.remove(&id) {
                Some(Slot::Answered(answer)) => Outcome::Answered(answer),
                _ => Outcome::TimedOut,
            }),
            None => Poll::Ready(Outcome::Gone),
        }
    }

    /// Hands an answer to its caller. Returns false for an unknown id (or an
    /// answer to a call already answered or timed out).
    pub(crate) fn complete(&self, id: u64, answer: Answer) -> bool {
        let waker = {
            let mut inner = self.inner.lock();
            match inner.calls.get_mut(&id) {
                Some(slot @ Slot::Waiting { .. }) => match std::mem::replace(slot, Slot::Answered(answer)) {
                    Slot::Waiting { waker, .. } => waker,
                    _ => None,
                },
                _ => return false,
            }
        };
        // The caller may have given up a moment ago; that is not an error.
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// Where progress on call `id` goes, if it is still waiting and its caller wants it.
    pub(crate) fn progress_sink(&self, id: u64) -> Option<ProgressSink> {
        match self.inner.lock().calls.get(&id) {
            Some(Slot::Waiting { progress, .. }) => progress.clone(),
            _ => None,
        }
    }

    /// Forgets call `id` (its caller gave up). Returns whether it was still
    /// waiting for its answer.
    pub(crate) fn remove(&self, id: u64) -> bool {
        matches!(self.inner.lock().calls.remove(&id), Some(Slot::Waiting { .. }))
    }

    /// Fails every pending call at once (their callers find no slot) and
    /// refuses new ones: the session is gone.
    pub(crate) fn close(&self) {
        let calls = {
            let mut inner = self.inner.lock();
            inner.closed = true;
            std::mem::take(&mut inner.calls)
        };
        for slot in calls.into_values() {
            if let Slot::Waiting { waker: Some(waker), .. } = slot {
                waker.wake();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::task::{Context, Poll};
    use std::time::Duration;

    use futures_util::task::noop_waker;
    use tokio::time::Instant;

    use super::{Outcome, PendingCalls};

    #[test]
    fn deadlines_are_watched_from_the_earliest_and_expired_calls_end_as_timed_out() {
        let pending = PendingCalls::new(8);
        let now = Instant::now();
        let waker = noop_waker();
        let cx = &mut Context::from_waker(&waker);
        assert_eq!(pending.next_deadline(), None);
        pending.insert(1, now + Duration::from_millis(300), None).unwrap();
        pending.insert(2, now + Duration::from_millis(100), None).unwrap();
        pending.insert(3, now + Duration::from_millis(200), None).unwrap();
        let first = pending.next_deadline().expect("a deadline");
        assert!(first >= now + Duration::from_millis(100) && first < now + Duration::from_millis(102));
        assert!(pending.poll_answer(2, cx).is_pending());
        // Call 2 is answered: the watched deadline may stay early, never late.
        assert!(pending.complete(2, Ok(serde_json::value::to_raw_value(&7).unwrap())));
        assert!(
            !pending.complete(2, Ok(serde_json::value::to_raw_value(&8).unwrap())),
            "one answer per call"
        );
        assert!(matches!(pending.poll_answer(2, cx), Poll::Ready(Outcome::Answered(Ok(v))) if v.get() == "7"));
        assert!(pending.expire(first).is_empty(), "nothing was due");
        assert!(pending.next_deadline().unwrap() >= now + Duration::from_millis(200));
        assert_eq!(pending.expire(now + Duration::from_millis(250)), [3]);
        assert!(matches!(pending.poll_answer(3, cx), Poll::Ready(Outcome::TimedOut)));
        assert!(
            !pending.complete(3, Ok(serde_json::value::to_raw_value(&9).unwrap())),
            "too late"
        );
        assert!(pending.next_deadline().unwrap() >= now + Duration::from_millis(300));
        pending.close();
        assert!(matches!(pending.poll_answer(1, cx), Poll::Ready(Outcome::Gone)));
        assert!(pending.insert(4, now, None).is_err(), "a closed table takes no calls");
    }
}
