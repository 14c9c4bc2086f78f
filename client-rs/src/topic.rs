//! What the client knows of one topic ([`Topic`]) and the events a
//! subscription to it yields ([`SubscriptionEvent`]).
//!
//! They sit below the shared state that holds every topic, and below both
//! the [`Subscription`](crate::Subscription) stream that reads the events and
//! the connection task that writes them.

use std::sync::Arc;

use switchboard_protocol::ErrorObject;
use switchboard_protocol::methods::{Publication, RecoveryGap, StreamPosition};

use crate::buffer::Buffer;

/// What a [`Subscription`](crate::Subscription) yields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SubscriptionEvent {
    /// A publication on the topic. On a recoverable topic it carries its
    /// `offset` and `epoch`, and the client remembers them to resume from.
    Publication(Publication),
    /// The subscription was renewed after a reconnect. The publications the
    /// server replays (if it could) follow this event.
    Resubscribed(Resubscribed),
    /// The subscription could not be renewed after a reconnect: the server
    /// refused it. Publications stop; the client tries again on the next
    /// reconnect.
    ResubscribeFailed(ErrorObject),
    /// The reader was too slow: the buffer was full and this many older
    /// events were dropped. Those publications are lost to this reader (the
    /// client does not ask for them again).
    Lagged {
        /// How many events were dropped.
        missed: u64,
    },
}

/// How a subscription came back after a reconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resubscribed {
    /// Whether every publication made while the client was away is (or is
    /// about to be) delivered: the topic keeps history, the client knew its
    /// position, and the server replayed everything since. `false` means
    /// publications were missed: reload the state they describe.
    pub recovered: bool,
    /// Why recovery was incomplete, when the server said why (`None` when
    /// recovered, and for topics without history).
    pub gap: Option<RecoveryGap>,
    /// The position the client resumes from now.
    pub position: Option<StreamPosition>,
}

/// One topic the client knows of.
pub(crate) struct Topic {
    /// Where its events wait for the [`Subscription`](crate::Subscription).
    pub(crate) buffer: Arc<Buffer<SubscriptionEvent>>,
    /// Whether the application subscribed to it (or it is the managed
    /// personal topic): such topics are renewed on every reconnect.
    pub(crate) wanted: bool,
    /// Where to resume from: the newest position known.
    pub(crate) position: Option<StreamPosition>,
    /// The last publication delivered (epoch, offset), to drop a duplicate.
    pub(crate) last: Option<(String, u64)>,
}

impl Topic {
    pub(crate) fn new(capacity: usize, wanted: bool) -> Self {
        Self {
            buffer: Arc::new(Buffer::new(capacity)),
            wanted,
            position: None,
            last: None,
        }
    }

    /// Moves the resume position forward to `offset` in `epoch` (or to
    /// another epoch, which starts over).
    pub(crate) fn advance(&mut self, epoch: &str, offset: u64) {
        match &mut self.position {
            Some(p) if p.epoch == epoch => p.offset = p.offset.max(offset),
            _ => {
                self.position = Some(StreamPosition {
                    offset,
                    epoch: epoch.to_owned(),
                })
            }
        }
    }
}
