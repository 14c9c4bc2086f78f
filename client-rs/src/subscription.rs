//! Topic subscriptions: [`Subscription`], a stream of [`SubscriptionEvent`]s.

use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures_util::{Stream, StreamExt};
use switchboard_protocol::frame;
use switchboard_protocol::methods::{self, Publication, StreamPosition, TopicResult};

use crate::buffer::{Buffer, Popped};
use crate::error::Error;
use crate::shared::Shared;
use crate::topic::{SubscriptionEvent, Topic};

/// A subscription to a topic: a [`Stream`] of [`SubscriptionEvent`]s.
/// Made by [`Client::subscribe`](crate::Client::subscribe).
///
/// It lives across reconnects: the client renews it with the position of
/// the last publication it received, and reports how that went with a
/// [`SubscriptionEvent::Resubscribed`]. Events wait in a bounded buffer
/// ([`ClientBuilder::buffer`](crate::ClientBuilder::buffer)); when it is full the
/// oldest are dropped and a [`SubscriptionEvent::Lagged`] says how many.
///
/// Dropping it unsubscribes (except from the personal topic, which the
/// server keeps for every session: its pushes are buffered again for the
/// next subscriber). The stream ends when the client is closed for good,
/// or when another `subscribe` to the same topic takes it over.
#[derive(Debug)]
pub struct Subscription {
    topic: String,
    buffer: Arc<Buffer<SubscriptionEvent>>,
    shared: Weak<Shared>,
    result: TopicResult,
}

impl Subscription {
    pub(crate) fn new(
        topic: String,
        buffer: Arc<Buffer<SubscriptionEvent>>,
        shared: &Arc<Shared>,
        result: TopicResult,
    ) -> Self {
        Self {
            topic,
            buffer,
            shared: Arc::downgrade(shared),
            result,
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The server's answer to the subscribe: whether the topic is
    /// recoverable (it has an `offset` and `epoch`) and where it stood.
    pub fn result(&self) -> &TopicResult {
        &self.result
    }

    /// The position the client would resume from now (recoverable topics only).
    pub fn position(&self) -> Option<StreamPosition> {
        let shared = self.shared.upgrade()?;
        let pushes = shared.pushes.lock();
        pushes.topics.get(&self.topic)?.position.clone()
    }

    /// The next publication, skipping the other events. `None` when the
    /// stream has ended.
    pub async fn next_publication(&mut self) -> Option<Publication> {
        loop {
            if let SubscriptionEvent::Publication(p) = self.next().await? {
                return Some(p);
            }
        }
    }

    /// Unsubscribes and waits for the server to confirm.
    pub async fn unsubscribe(mut self) -> Result<(), Error> {
        let Some(shared) = self.shared.upgrade() else {
            return Ok(());
        };
        self.detach(&shared, true);
        let params = serde_json::value::to_raw_value(&methods::UnsubscribeParams {
            topics: vec![self.topic.clone()],
        })
        .map_err(Error::Params)?;
        shared
            .request(methods::UNSUBSCRIBE, Some(&params), shared.config.call_timeout)
            .await
            .map(drop)
    }

    /// Lets go of the topic's entry (if it is still ours). Returns whether
    /// the server should be told to unsubscribe.
    fn detach(&mut self, shared: &Shared, forget_personal: bool) -> bool {
        let mut pushes = shared.pushes.lock();
        let ours = pushes
            .topics
            .get(&self.topic)
            .is_some_and(|t| Arc::ptr_eq(&t.buffer, &self.buffer));
        self.buffer.close();
        if !ours {
            return false;
        }
        let personal = pushes.personal.as_deref() == Some(&self.topic);
        if personal && !forget_personal {
            // The server keeps the personal topic: buffer its pushes for the next reader.
            if let Some(t) = pushes.topics.get_mut(&self.topic) {
                t.buffer = Arc::new(Buffer::new(shared.config.buffer));
            }
            return false;
        }
        if personal {
            pushes.personal = None;
        }
        pushes.topics.remove(&self.topic);
        true
    }
}

impl Stream for Subscription {
    type Item = SubscriptionEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.buffer.poll_pop(cx).map(|popped| {
            popped.map(|p| match p {
                Popped::Item(event) => event,
                Popped::Lagged(missed) => SubscriptionEvent::Lagged { missed },
            })
        })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.buffer.is_closed() {
            return;
        }
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        if self.detach(&shared, false) {
            let params = serde_json::json!({ "topics": [self.topic] }).to_string();
            // Best effort: without a connection there is no subscription to end.
            shared.try_send(frame::write_notification(methods::UNSUBSCRIBE, Some(&params)));
        }
    }
}

/// What [`claim_topic`] found, to undo the claim if the subscribe fails.
pub(crate) struct Claim {
    pub(crate) buffer: Arc<Buffer<SubscriptionEvent>>,
    pub(crate) position: Option<StreamPosition>,
    existed: bool,
    was_wanted: bool,
}

/// Takes over the topic's entry for a new subscriber: a fresh buffer that
/// receives whatever was waiting in the old one. Creates the entry if needed.
pub(crate) fn claim_topic(shared: &Shared, topic: &str) -> Claim {
    let mut pushes = shared.pushes.lock();
    let capacity = shared.config.buffer;
    let existed = pushes.topics.contains_key(topic);
    let entry = pushes
        .topics
        .entry(topic.to_owned())
        .or_insert_with(|| Topic::new(capacity, true));
    let buffer = Arc::new(Buffer::new(capacity));
    entry.buffer.hand_over(&buffer);
    entry.buffer = buffer.clone();
    let was_wanted = existed && entry.wanted;
    entry.wanted = true;
    Claim {
        buffer,
        position: entry.position.clone(),
        existed,
        was_wanted,
    }
}

/// Undoes a claim whose subscribe failed.
pub(crate) fn unclaim_topic(shared: &Shared, topic: &str, claim: &Claim) {
    let mut pushes = shared.pushes.lock();
    let Some(entry) = pushes.topics.get_mut(topic) else {
        return;
    };
    if !Arc::ptr_eq(&entry.buffer, &claim.buffer) {
        return;
    }
    if claim.existed {
        entry.wanted = claim.was_wanted;
    } else {
        pushes.topics.remove(topic);
    }
}
