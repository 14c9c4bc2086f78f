//! Presence: which sessions are online, by user and by topic.
//!
//! A [`PresenceBook`] is one node's view of presence, changed in the order
//! things happened on it. The local broker keeps the whole truth in one; the
//! Redis broker keeps this node's share in one and writes it into keys the
//! node owns, so that it can write them again whole when Redis lost them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use switchboard_protocol::api::PresenceStats;

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

/// Which part of a presence answer to read: the entries after `after`, a
/// (user, session) position, at most `limit` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceWindow {
    /// Start after this (user, session); from the first entry without one.
    pub after: Option<(String, String)>,
    /// At most this many entries.
    pub limit: usize,
}

impl PresenceWindow {
    /// Every entry.
    pub fn all() -> Self {
        Self {
            after: None,
            limit: usize::MAX,
        }
    }

    /// Whether (user, session) lies past the window's start.
    pub(crate) fn admits(&self, user: &str, session: &str) -> bool {
        self.after
            .as_ref()
            .is_none_or(|(u, s)| (user, session) > (u.as_str(), s.as_str()))
    }
}

/// One node's presence: this node's share for the Redis broker, the whole
/// truth for the local broker. Names are shared (`Arc<str>`) between the
/// indexes, so a session in presence costs one copy of its id and user.
#[derive(Debug, Default)]
pub(crate) struct PresenceBook {
    /// The node every entry is on.
    node: String,
    sessions: HashMap<Arc<str>, Held>,
    /// User → its sessions, sorted (a page of everyone is a range).
    users: BTreeMap<Arc<str>, BTreeSet<Arc<str>>>,
    /// Topic → its members as (user, session), sorted.
    topics: HashMap<Arc<str>, BTreeSet<Member>>,
}

type Member = (Arc<str>, Arc<str>);

#[derive(Debug)]
struct Held {
    user: Arc<str>,
    /// The topics with presence this session is in.
    topics: Vec<Arc<str>>,
}

/// What a change touched: each topic with the member that joined (`true`)
/// or left (`false`).
#[derive(Debug, Default)]
pub(crate) struct Touched {
    pub(crate) topics: Vec<(String, bool)>,
}

impl PresenceBook {
    /// Applies `change` and says what it touched.
    pub(crate) fn apply(&mut self, change: &PresenceChange) -> Touched {
        match change {
            PresenceChange::Opened(e) => {
                if self.node.is_empty() {
                    self.node = e.node.clone();
                }
                let user = self.user_name(&e.user);
                let session: Arc<str> = e.session.as_str().into();
                self.users.entry(user.clone()).or_default().insert(session.clone());
                self.sessions.entry(session).or_insert(Held {
                    user,
                    topics: Vec::new(),
                });
                Touched { topics: Vec::new() }
            }
            PresenceChange::Closed(e) => {
                let Some((session, held)) = self.sessions.remove_entry(e.session.as_str()) else {
                    return Touched::default();
                };
                if let Some(list) = self.users.get_mut(&held.user) {
                    list.remove(&session);
                    if list.is_empty() {
                        self.users.remove(&held.user);
                    }
                }
                let member = (held.user, session);
                for topic in &held.topics {
                    self.leave(topic, &member);
                }
                Touched {
                    topics: held.topics.iter().map(|t| (t.to_string(), false)).collect(),
                }
            }
            PresenceChange::Joined(topic, e) => {
                let Some((session, held)) = self.sessions.get_key_value(e.session.as_str()) else {
                    return Touched::default();
                };
                let member = (held.user.clone(), session.clone());
                let (name, members) = match self.topics.get_key_value(topic.as_str()) {
                    Some((name, _)) => {
                        let name = name.clone();
                        let members = self.topics.get_mut(&name).expect("present");
                        (name, members)
                    }
                    None => {
                        let name: Arc<str> = topic.as_str().into();
                        (name.clone(), self.topics.entry(name).or_default())
                    }
                };
                if members.insert(member) {
                    let held = self.sessions.get_mut(e.session.as_str()).expect("present");
                    held.topics.push(name);
                }
                Touched {
                    topics: vec![(topic.clone(), true)],
                }
            }
            PresenceChange::Left(topic, e) => {
                let Some((session, held)) = self.sessions.get_key_value(e.session.as_str()) else {
                    return Touched::default();
                };
                let member = (held.user.clone(), session.clone());
                self.leave(topic, &member);
                if let Some(held) = self.sessions.get_mut(e.session.as_str()) {
                    held.topics.retain(|t| **t != **topic);
                }
                Touched {
                    topics: vec![(topic.clone(), false)],
                }
            }
        }
    }

    /// The shared name of `user`, made once while the user has sessions.
    fn user_name(&self, user: &str) -> Arc<str> {
        self.users
            .get_key_value(user)
            .map_or_else(|| user.into(), |(name, _)| name.clone())
    }

    fn leave(&mut self, topic: &str, member: &Member) {
        if let Some(members) = self.topics.get_mut(topic) {
            members.remove(member);
            if members.is_empty() {
                self.topics.remove(topic);
            }
        }
    }

    fn entry(&self, user: &str, session: &str) -> PresenceEntry {
        PresenceEntry {
            session: session.to_owned(),
            user: user.to_owned(),
            node: self.node.clone(),
        }
    }

    /// The entries `query` asks for in `window`, sorted by (user, session):
    /// only the window is read, never the whole list.
    pub(crate) fn query(&self, query: &PresenceQuery, window: &PresenceWindow) -> Vec<PresenceEntry> {
        let after = window.after.as_ref().map(|(u, s)| (u.as_str(), s.as_str()));
        match query {
            PresenceQuery::Everyone => {
                let from = after.map_or(Bound::Unbounded, |(user, _)| Bound::Included(user));
                let users = self.users.range::<str, _>((from, Bound::Unbounded));
                users
                    .flat_map(|(u, sessions)| sessions.iter().map(move |s| (u, s)))
                    .filter(|(u, s)| window.admits(u, s))
                    .take(window.limit)
                    .map(|(u, s)| self.entry(u, s))
                    .collect()
            }
            PresenceQuery::User(user) => self
                .users
                .get(user.as_str())
                .into_iter()
                .flatten()
                .filter(|s| window.admits(user, s))
                .take(window.limit)
                .map(|s| self.entry(user, s))
                .collect(),
            PresenceQuery::Topic(topic) => {
                let Some(members) = self.topics.get(topic.as_str()) else {
                    return Vec::new();
                };
                let from: Bound<Member> = after.map_or(Bound::Unbounded, |(user, session)| {
                    Bound::Excluded((user.into(), session.into()))
                });
                let members = members.range((from, Bound::Unbounded));
                members.take(window.limit).map(|(u, s)| self.entry(u, s)).collect()
            }
        }
    }

    /// How many sessions and distinct users `query` finds, counted without
    /// copying an entry.
    pub(crate) fn stats(&self, query: &PresenceQuery) -> PresenceStats {
        match query {
            PresenceQuery::Everyone => PresenceStats {
                sessions: self.sessions.len(),
                users: self.users.len(),
            },
            PresenceQuery::User(user) => {
                let sessions = self.users.get(user.as_str()).map_or(0, BTreeSet::len);
                PresenceStats {
                    sessions,
                    users: usize::from(sessions > 0),
                }
            }
            PresenceQuery::Topic(topic) => {
                let Some(members) = self.topics.get(topic.as_str()) else {
                    return PresenceStats::default();
                };
                // Sorted by user: a new user is one unlike the member before.
                let mut users = 0;
                let mut last: Option<&Arc<str>> = None;
                for (user, _) in members {
                    if last != Some(user) {
                        users += 1;
                        last = Some(user);
                    }
                }
                PresenceStats {
                    sessions: members.len(),
                    users,
                }
            }
        }
    }

    /// Every session, as (user, session).
    pub(crate) fn everyone(&self) -> impl Iterator<Item = (&str, &str)> {
        self.users
            .iter()
            .flat_map(|(u, sessions)| sessions.iter().map(move |s| (&**u, &**s)))
    }

    /// Every topic with members.
    pub(crate) fn topics(&self) -> impl Iterator<Item = &str> {
        self.topics.keys().map(|t| &**t)
    }

    /// The members of `topic`, as (user, session).
    pub(crate) fn members(&self, topic: &str) -> impl Iterator<Item = (&str, &str)> {
        self.topics.get(topic).into_iter().flatten().map(|(u, s)| (&**u, &**s))
    }
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

    fn sessions(v: Vec<PresenceEntry>) -> Vec<String> {
        v.into_iter().map(|e| e.session).collect()
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
        let all = PresenceWindow::all();
        assert_eq!(
            sessions(book.query(&room, &all)),
            ["n1.3", "n1.2"],
            "sorted by user, then session"
        );
        assert_eq!(
            sessions(book.query(&PresenceQuery::Everyone, &all)),
            ["n1.3", "n1.1", "n1.2"]
        );
        assert_eq!(book.query(&room, &all)[0].node, "n1");
        let touched = book.apply(&PresenceChange::Closed(e("n1.2", "bob")));
        assert_eq!(touched.topics, [("room".to_owned(), false)]);
        assert_eq!(sessions(book.query(&room, &all)), ["n1.3"]);
        assert_eq!(book.everyone().collect::<Vec<_>>(), [("amy", "n1.3"), ("bob", "n1.1")]);
        book.apply(&PresenceChange::Left("room".into(), e("n1.3", "amy")));
        assert_eq!(book.topics().count(), 0, "an empty topic is forgotten");
    }

    #[test]
    fn windows_page_through_every_entry_once_and_stats_count_without_copies() {
        let mut book = PresenceBook::default();
        let mut expected = Vec::new();
        for user in ["amy", "bob", "cy"] {
            for n in 0..4 {
                let session = format!("{user}.{n}");
                book.apply(&PresenceChange::Opened(e(&session, user)));
                book.apply(&PresenceChange::Joined("room".into(), e(&session, user)));
                expected.push(session);
            }
        }
        for query in [PresenceQuery::Everyone, PresenceQuery::Topic("room".into())] {
            let mut seen = Vec::new();
            let mut after = None;
            loop {
                let page = book.query(
                    &query,
                    &PresenceWindow {
                        after: after.clone(),
                        limit: 5,
                    },
                );
                let Some(last) = page.last() else { break };
                after = Some((last.user.clone(), last.session.clone()));
                seen.extend(sessions(page));
            }
            assert_eq!(seen, expected, "{query:?}");
            assert_eq!(book.stats(&query), PresenceStats { sessions: 12, users: 3 });
        }
        let bob = PresenceQuery::User("bob".into());
        let window = PresenceWindow {
            after: Some(("bob".into(), "bob.1".into())),
            limit: 1,
        };
        assert_eq!(sessions(book.query(&bob, &window)), ["bob.2"]);
        assert_eq!(book.stats(&bob), PresenceStats { sessions: 4, users: 1 });
        assert_eq!(
            book.stats(&PresenceQuery::Topic("none".into())),
            PresenceStats::default()
        );
    }
}
