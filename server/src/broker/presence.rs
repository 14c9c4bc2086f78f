//! Presence: which sessions are online, by user and by topic.
//!
//! A [`PresenceBook`] is one node's view of presence, changed in the order
//! things happened on it. The local broker keeps the whole truth in one; the
//! Redis broker keeps this node's share in one and writes it into keys the
//! node owns, so that it can write them again whole when Redis lost them.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::PresenceEntry;

/// What presence is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceQuery {
    /// Every session of the cluster.
    Everyone,
    /// The sessions of one user.
    User(String),
    /// The subscribers of one topic whose presence is kept.
    Topic(String),
}

/// A change of a node's presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    /// A session connected.
    Opened(PresenceEntry),
    /// A session ended; it leaves every topic with it.
    Closed(PresenceEntry),
    /// A session subscribed to a topic whose presence is kept.
    Joined(String, PresenceEntry),
    /// A session unsubscribed from such a topic.
    Left(String, PresenceEntry),
}

/// What a node says about itself in `stats`, and writes with its heartbeat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFigures {
    /// Sessions connected to the node.
    pub sessions: u64,
    /// Users with a session on the node.
    pub users: u64,
    /// Topics with a subscriber on the node.
    pub topics: u64,
    /// Messages received from the node's clients.
    pub messages_in: u64,
    /// Frames the node wrote to its sessions' queues.
    pub messages_out: u64,
}

/// One node's view of presence (or every node's, for the local broker).
#[derive(Debug, Default)]
pub(crate) struct PresenceBook {
    sessions: HashMap<String, Held>,
    /// User → its sessions.
    users: HashMap<String, BTreeSet<String>>,
    /// Topic → its members, as (user, session).
    topics: HashMap<String, BTreeSet<(String, String)>>,
}

#[derive(Debug)]
struct Held {
    node: String,
    /// The topics with presence this session is in.
    topics: Vec<String>,
}

/// What a change touched: the user whose list changed, and each topic with
/// the member that joined (`true`) or left (`false`).
#[derive(Debug, Default)]
pub(crate) struct Touched {
    pub(crate) user: Option<String>,
    pub(crate) topics: Vec<(String, bool)>,
}

impl PresenceBook {
    /// Applies `change` and says what it touched.
    pub(crate) fn apply(&mut self, change: &PresenceChange) -> Touched {
        match change {
            PresenceChange::Opened(e) => {
                self.sessions.entry(e.session.clone()).or_insert_with(|| Held {
                    node: e.node.clone(),
                    topics: Vec::new(),
                });
                self.users.entry(e.user.clone()).or_default().insert(e.session.clone());
                Touched {
                    user: Some(e.user.clone()),
                    topics: Vec::new(),
                }
            }
            PresenceChange::Closed(e) => {
                let topics = self.sessions.remove(&e.session).map(|h| h.topics).unwrap_or_default();
                if let Some(list) = self.users.get_mut(&e.user) {
                    list.remove(&e.session);
                    if list.is_empty() {
                        self.users.remove(&e.user);
                    }
                }
                for topic in &topics {
                    self.leave(topic, e);
                }
                Touched {
                    user: Some(e.user.clone()),
                    topics: topics.into_iter().map(|t| (t, false)).collect(),
                }
            }
            PresenceChange::Joined(topic, e) => {
                if let Some(held) = self.sessions.get_mut(&e.session)
                    && !held.topics.contains(topic)
                {
                    held.topics.push(topic.clone());
                }
                self.topics
                    .entry(topic.clone())
                    .or_default()
                    .insert((e.user.clone(), e.session.clone()));
                Touched {
                    user: None,
                    topics: vec![(topic.clone(), true)],
                }
            }
            PresenceChange::Left(topic, e) => {
                if let Some(held) = self.sessions.get_mut(&e.session) {
                    held.topics.retain(|t| t != topic);
                }
                self.leave(topic, e);
                Touched {
                    user: None,
                    topics: vec![(topic.clone(), false)],
                }
            }
        }
    }

    fn leave(&mut self, topic: &str, e: &PresenceEntry) {
        if let Some(members) = self.topics.get_mut(topic) {
            members.remove(&(e.user.clone(), e.session.clone()));
            if members.is_empty() {
                self.topics.remove(topic);
            }
        }
    }

    /// The entries `query` asks for, sorted by (user, session).
    pub(crate) fn query(&self, query: &PresenceQuery) -> Vec<PresenceEntry> {
        let entry = |user: &str, session: &str| PresenceEntry {
            session: session.to_owned(),
            user: user.to_owned(),
            node: self.sessions.get(session).map(|h| h.node.clone()).unwrap_or_default(),
        };
        let mut out: Vec<PresenceEntry> = match query {
            PresenceQuery::Everyone => self
                .users
                .iter()
                .flat_map(|(u, sessions)| sessions.iter().map(|s| entry(u, s)))
                .collect(),
            PresenceQuery::User(user) => self
                .users
                .get(user)
                .into_iter()
                .flat_map(|sessions| sessions.iter().map(|s| entry(user, s)))
                .collect(),
            PresenceQuery::Topic(topic) => self
                .topics
                .get(topic)
                .into_iter()
                .flat_map(|m| m.iter().map(|(u, s)| entry(u, s)))
                .collect(),
        };
        sort(&mut out);
        out
    }

    /// The sessions of `user`, joined by spaces (as the Redis broker stores them), if any.
    pub(crate) fn user_sessions(&self, user: &str) -> Option<String> {
        let sessions = self.users.get(user)?;
        Some(sessions.iter().map(String::as_str).collect::<Vec<_>>().join(" "))
    }

    /// Every user with its sessions joined by spaces.
    pub(crate) fn users(&self) -> impl Iterator<Item = (&str, String)> {
        self.users
            .keys()
            .filter_map(|u| self.user_sessions(u).map(|s| (u.as_str(), s)))
    }

    /// Every topic with members.
    pub(crate) fn topics(&self) -> impl Iterator<Item = &str> {
        self.topics.keys().map(String::as_str)
    }

    /// The members of `topic`, as (user, session).
    pub(crate) fn members(&self, topic: &str) -> impl Iterator<Item = &(String, String)> {
        self.topics.get(topic).into_iter().flatten()
    }
}

/// Sorts entries by (user, session), the order presence answers in.
pub(crate) fn sort(entries: &mut [PresenceEntry]) {
    entries.sort_by(|a, b| (&a.user, &a.session).cmp(&(&b.user, &b.session)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(session: &str, user: &str) -> PresenceEntry {
        PresenceEntry {
            session: session.into(),
            user: user.into(),
            node: "n1".into(),
        }
    }

    #[test]
    fn a_closed_session_leaves_its_user_and_topics() {
        let mut book = PresenceBook::default();
        book.apply(&PresenceChange::Opened(e("n1.2", "bob")));
        book.apply(&PresenceChange::Opened(e("n1.1", "bob")));
        book.apply(&PresenceChange::Opened(e("n1.3", "amy")));
        book.apply(&PresenceChange::Joined("room".into(), e("n1.2", "bob")));
        book.apply(&PresenceChange::Joined("room".into(), e("n1.3", "amy")));
        let room = PresenceQuery::Topic("room".into());
        let sessions = |v: Vec<PresenceEntry>| v.into_iter().map(|e| e.session).collect::<Vec<_>>();
        assert_eq!(
            sessions(book.query(&room)),
            ["n1.3", "n1.2"],
            "sorted by user, then session"
        );
        assert_eq!(sessions(book.query(&PresenceQuery::Everyone)), ["n1.3", "n1.1", "n1.2"]);
        let touched = book.apply(&PresenceChange::Closed(e("n1.2", "bob")));
        assert_eq!(touched.topics, [("room".to_owned(), false)]);
        assert_eq!(sessions(book.query(&room)), ["n1.3"]);
        assert_eq!(book.user_sessions("bob").as_deref(), Some("n1.1"));
        book.apply(&PresenceChange::Left("room".into(), e("n1.3", "amy")));
        assert_eq!(book.topics().count(), 0, "an empty topic is forgotten");
    }
}
