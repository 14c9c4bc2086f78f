//! The node-local [`Registry`]: session id → session, user → sessions,
//! topic → subscribers.
//!
//! Topic subscribers are kept as a copy-on-write snapshot (`Arc<Vec<_>>`): a
//! publish clones one `Arc` and walks it without holding any lock, and a
//! subscribe changes the vector in place unless a publish is walking it at
//! that moment, in which case it copies.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use parking_lot::Mutex;
use switchboard_protocol::Target;
use tokio::sync::Notify;

use crate::broker::Interest;
use crate::session::{Delivery, SessionHandle, SessionId, Subscription};

/// Changes of local interest, in the order they happened, for a broker that
/// listens only where there is interest. Pushed while the map entry that
/// changed is locked, so the order per user or topic is the order of changes.
#[derive(Default)]
pub(crate) struct InterestQueue {
    pub(crate) changes: Mutex<VecDeque<(u64, Interest)>>,
    queued: AtomicU64,
    pub(crate) wake: Notify,
}

impl InterestQueue {
    fn push(&self, change: Interest) {
        let mut q = self.changes.lock();
        let seq = self.queued.fetch_add(1, Ordering::AcqRel) + 1;
        q.push_back((seq, change));
        drop(q);
        self.wake.notify_one();
    }

    /// The sequence number of the latest change queued.
    pub(crate) fn latest(&self) -> u64 {
        self.queued.load(Ordering::Acquire)
    }
}

/// A snapshot of a topic's subscribers.
pub(crate) type Subscribers = Arc<Vec<SessionHandle>>;

/// Sessions, users and topics on this node.
#[derive(Default)]
pub(crate) struct Registry {
    sessions: DashMap<SessionId, SessionHandle>,
    users: DashMap<Arc<str>, Vec<SessionHandle>>,
    topics: DashMap<Arc<str>, Subscribers>,
    /// Present when the broker wants to know about interest.
    pub(crate) interest: Option<Arc<InterestQueue>>,
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubscribeError {
    /// The session has as many subscriptions as allowed.
    TooMany,
    /// The session is gone.
    Gone,
}

impl Registry {
    /// A registry; `track_interest` when the broker listens only where there is interest.
    pub(crate) fn new(track_interest: bool) -> Self {
        Self {
            interest: track_interest.then(Default::default),
            ..Self::default()
        }
    }

    pub(crate) fn insert(&self, session: &SessionHandle) {
        self.sessions.insert(session.id().clone(), session.clone());
        let mut list = self.users.entry(session.shared.user.clone()).or_default();
        if list.is_empty()
            && let Some(q) = &self.interest
        {
            q.push(Interest::AddUser(session.user().to_owned()));
        }
        list.push(session.clone());
    }

    fn interested(&self, change: impl FnOnce() -> Interest) {
        if let Some(q) = &self.interest {
            q.push(change());
        }
    }

    /// Removes a session and all its subscriptions.
    pub(crate) fn remove(&self, session: &SessionHandle) {
        self.sessions.remove(session.id());
        let topics = std::mem::take(&mut *session.shared.topics.lock());
        for sub in topics {
            self.remove_subscriber(&sub.topic, session);
        }
        self.users.remove_if_mut(&session.shared.user, |user, list| {
            list.retain(|s| s.id() != session.id());
            let empty = list.is_empty();
            if empty {
                self.interested(|| Interest::RemoveUser(user.to_string()));
            }
            empty
        });
    }

    pub(crate) fn session(&self, id: &str) -> Option<SessionHandle> {
        self.sessions.get(id).map(|s| s.clone())
    }

    /// The bytes queued for this node's sessions: in all, and for the one with the most.
    pub(crate) fn queued_bytes(&self) -> (usize, usize) {
        self.sessions.iter().fold((0, 0), |(total, most), session| {
            let queued = session.shared.queue.queued_bytes();
            (total + queued, most.max(queued))
        })
    }

    pub(crate) fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub(crate) fn user_session_count(&self, user: &str) -> usize {
        self.users.get(user).map_or(0, |l| l.len())
    }

    pub(crate) fn user_count(&self) -> usize {
        self.users.len()
    }

    pub(crate) fn topic_count(&self) -> usize {
        self.topics.len()
    }

    /// Subscribes a session to a topic. Returns false if it already was.
    /// `delivery` is how publications reach the session from now on.
    pub(crate) fn subscribe(
        &self,
        session: &SessionHandle,
        topic: &str,
        max: usize,
        delivery: Delivery,
    ) -> Result<bool, SubscribeError> {
        let topic: Arc<str> = {
            let mut mine = session.shared.topics.lock();
            if session.is_closed() {
                return Err(SubscribeError::Gone);
            }
            if mine.iter().any(|t| &*t.topic == topic) {
                return Ok(false);
            }
            // The personal topic is the gateway's doing: it does not use up a slot.
            let personal = super::personal_topic(session.user());
            if topic != personal && mine.iter().filter(|s| *s.topic != *personal).count() >= max {
                return Err(SubscribeError::TooMany);
            }
            let topic: Arc<str> = topic.into();
            // Most sessions hold one or two subscriptions: grow by one, not to four.
            mine.reserve_exact(1);
            mine.push(Subscription {
                topic: topic.clone(),
                delivery,
            });
            topic
        };
        let mut entry = self.topics.entry(topic.clone()).or_default();
        if entry.is_empty() {
            self.interested(|| Interest::AddTopic(topic.to_string()));
        }
        Arc::make_mut(&mut *entry).push(session.clone());
        Ok(true)
    }

    /// Unsubscribes a session from a topic. Returns false if it was not subscribed.
    pub(crate) fn unsubscribe(&self, session: &SessionHandle, topic: &str) -> bool {
        let found = {
            let mut mine = session.shared.topics.lock();
            let before = mine.len();
            mine.retain(|t| &*t.topic != topic);
            mine.len() != before
        };
        if found {
            self.remove_subscriber(topic, session);
        }
        found
    }

    fn remove_subscriber(&self, topic: &str, session: &SessionHandle) {
        self.topics.remove_if_mut(topic, |name, subs| {
            Arc::make_mut(subs).retain(|s| s.id() != session.id());
            let empty = subs.is_empty();
            if empty {
                self.interested(|| Interest::RemoveTopic(name.to_string()));
            }
            empty
        });
    }

    /// The current subscribers of a topic (a snapshot; no lock is held).
    pub(crate) fn subscribers(&self, topic: &str) -> Option<Subscribers> {
        self.topics.get(topic).map(|s| s.clone())
    }

    /// Calls `f` for every local session the target names, without holding a
    /// map lock across anything but `f` itself (which must not wait).
    pub(crate) fn for_each(&self, target: &Target, mut f: impl FnMut(&SessionHandle)) {
        match target {
            Target::Session(id) => {
                if let Some(s) = self.session(id) {
                    f(&s);
                }
            }
            Target::User(user) => self.for_user(user, &mut f),
            Target::Users(users) => {
                for user in users {
                    self.for_user(user, &mut f);
                }
            }
            Target::Topic(topic) => {
                if let Some(subs) = self.subscribers(topic) {
                    subs.iter().for_each(&mut f);
                }
            }
            Target::All => self.sessions.iter().for_each(|s| f(s.value())),
        }
    }

    fn for_user(&self, user: &str, f: &mut impl FnMut(&SessionHandle)) {
        if let Some(list) = self.users.get(user) {
            list.iter().for_each(f);
        }
    }

    /// The local sessions the target names (cloned out, for callers that wait).
    pub(crate) fn collect(&self, target: &Target) -> Vec<SessionHandle> {
        let mut out = Vec::new();
        self.for_each(target, |s| out.push(s.clone()));
        out
    }
}
