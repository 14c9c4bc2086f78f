//! A session's subscriptions and how publications reach it.
//!
//! Publications on recoverable topics carry an offset. A subscription that is
//! recovering holds live publications back while history is read; when the
//! replay is queued, the held ones follow, minus any the replay already
//! contained. From then on a publication whose offset is not newer than the
//! last one delivered is dropped, so the seam has no gap and no duplicate.

use std::sync::Arc;

use tungstenite::Utf8Bytes;

use super::SessionHandle;
use super::queue::SendError;

/// How publications on one topic reach this session.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// A topic without history: every publication is queued.
    Plain,
    /// A recoverable topic, live: publications newer than `last` are queued.
    Live { last: u64 },
    /// A recoverable topic whose history is being read, or (for the personal
    /// topic of a new session) may soon be: publications wait here. `claimed`
    /// marks a recovery under way, which only that recovery may end.
    Held {
        frames: Vec<(u64, Utf8Bytes)>,
        bytes: usize,
        claimed: bool,
    },
}

/// One subscription of a session.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) topic: Arc<str>,
    pub(crate) delivery: Delivery,
}

impl SessionHandle {
    /// Delivers a publication with an offset on `topic`.
    pub(crate) fn deliver_at(&self, topic: &str, offset: u64, frame: &Utf8Bytes) -> Result<(), SendError> {
        let mut subs = self.shared.topics.lock();
        let Some(sub) = subs.iter_mut().find(|s| &*s.topic == topic) else {
            return Err(SendError::Closed);
        };
        match &mut sub.delivery {
            Delivery::Plain => self.shared.queue.push(frame.clone()),
            Delivery::Live { last } => {
                if offset <= *last {
                    return Ok(());
                }
                *last = offset;
                self.shared.queue.push(frame.clone())
            }
            Delivery::Held { frames, bytes, .. } => {
                *bytes += frame.len();
                if *bytes > self.shared.queue.max_bytes() {
                    drop(subs);
                    // Held publications count against the same bound as the queue.
                    self.shared.queue.overflow();
                    return Err(SendError::Overflow);
                }
                frames.push((offset, frame.clone()));
                Ok(())
            }
        }
    }

    /// Ends a recovery on `topic`: queues `replay` (publications after the
    /// client's position, in order), then the held live publications that are
    /// newer than both, and makes the subscription live after `top`.
    pub(crate) fn finish_recovery(&self, topic: &str, replay: Vec<(u64, Utf8Bytes)>, top: u64) {
        let mut subs = self.shared.topics.lock();
        let Some(sub) = subs.iter_mut().find(|s| &*s.topic == topic) else {
            return;
        };
        let held = match std::mem::replace(&mut sub.delivery, Delivery::Live { last: top }) {
            Delivery::Held { frames, .. } => frames,
            other => {
                sub.delivery = other;
                return;
            }
        };
        let mut last = 0;
        for (offset, frame) in replay {
            if offset > last {
                last = offset;
                let _ = self.shared.queue.push(frame);
            }
        }
        last = last.max(top);
        for (offset, frame) in held {
            if offset > last {
                last = offset;
                let _ = self.shared.queue.push(frame);
            }
        }
        sub.delivery = Delivery::Live { last };
    }

    /// Claims an unclaimed hold on `topic` for a recovery. Returns whether it did.
    pub(crate) fn claim_hold(&self, topic: &str) -> bool {
        let mut subs = self.shared.topics.lock();
        match subs.iter_mut().find(|s| &*s.topic == topic).map(|s| &mut s.delivery) {
            Some(Delivery::Held { claimed, .. }) if !*claimed => {
                *claimed = true;
                true
            }
            _ => false,
        }
    }

    /// Ends an unclaimed hold on `topic`: what was held is delivered and the
    /// subscription goes live. A claimed hold is left to its recovery.
    pub(crate) fn release_hold(&self, topic: &str) {
        if self.claim_hold(topic) {
            self.finish_recovery(topic, Vec::new(), 0);
        }
    }
}
