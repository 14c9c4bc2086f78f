//! A session's subscriptions and how publications reach it.
//!
//! Publications on recoverable topics carry an offset. A subscription that is
//! recovering holds live publications back while history is read; when the
//! replay is queued, the held ones follow, minus any the replay already
//! contained. From then on a publication whose offset is not newer than the
//! last one delivered in the same epoch is dropped, so the seam has no gap
//! and no duplicate; one in a new epoch (the stream began again, as after a
//! Redis without persistence restarted) is new and delivered, and its epoch
//! tells the client so.

use std::sync::Arc;

use super::SessionHandle;
use super::queue::SendError;
use crate::ws::Outgoing;

/// How publications on one topic reach this session.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// A topic without history: every publication is queued.
    Plain,
    /// A recoverable topic, live: publications newer than `last` in the
    /// stream's `epoch` (an [`epoch_tag`], 0 while unknown), or in another
    /// epoch, are queued.
    Live { last: u64, epoch: u64 },
    /// A recoverable topic whose history is being read, or (for the personal
    /// topic of a new session) may soon be: publications wait here. `claimed`
    /// marks a recovery under way, which only that recovery may end.
    Held {
        frames: Vec<(u64, Outgoing)>,
        bytes: usize,
        claimed: bool,
    },
}

/// A stream's epoch as a number, so that a delivery compares two words, not
/// two strings (never 0, which stands for an epoch not known yet).
pub(crate) fn epoch_tag(epoch: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    epoch.hash(&mut h);
    h.finish().max(1)
}

/// One subscription of a session.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) topic: Arc<str>,
    pub(crate) delivery: Delivery,
}

impl SessionHandle {
    /// Delivers a publication with an offset on `topic`, in the epoch tagged `epoch`.
    pub(crate) fn deliver_at(&self, topic: &str, offset: u64, epoch: u64, frame: &Outgoing) -> Result<(), SendError> {
        let mut subs = self.shared.topics.lock();
        let Some(sub) = subs.iter_mut().find(|s| &*s.topic == topic) else {
            return Err(SendError::Closed);
        };
        match &mut sub.delivery {
            Delivery::Plain => self.shared.queue.push(frame),
            Delivery::Live { last, epoch: live } => {
                if *live == 0 {
                    *live = epoch;
                }
                if epoch == *live && offset <= *last {
                    return Ok(());
                }
                *last = offset;
                *live = epoch;
                self.shared.queue.push(frame)
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
    /// newer than both, and makes the subscription live after `top` in the
    /// epoch tagged `epoch` (0 if unknown: the next publication's is taken).
    pub(crate) fn finish_recovery(&self, topic: &str, replay: Vec<(u64, Outgoing)>, top: u64, epoch: u64) {
        let mut subs = self.shared.topics.lock();
        let Some(sub) = subs.iter_mut().find(|s| &*s.topic == topic) else {
            return;
        };
        let held = match std::mem::replace(&mut sub.delivery, Delivery::Live { last: top, epoch }) {
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
                let _ = self.shared.queue.push(&frame);
            }
        }
        last = last.max(top);
        for (offset, frame) in held {
            if offset > last {
                last = offset;
                let _ = self.shared.queue.push(&frame);
            }
        }
        sub.delivery = Delivery::Live { last, epoch };
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
            self.finish_recovery(topic, Vec::new(), 0, 0);
        }
    }
}
