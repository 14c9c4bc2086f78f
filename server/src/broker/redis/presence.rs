//! Presence on Redis, in keys each node owns.
//!
//! Each node writes its own sessions and nothing else:
//!
//! * `{prefix}:presence:{node}:users`, a hash from user to the node's
//!   sessions of that user (space-separated);
//! * `{prefix}:presence:{node}:topic:{topic}`, a hash from session to user,
//!   for each topic whose presence is kept and that has members on the node;
//! * `{prefix}:presence:{node}:figures`, what the node says about itself;
//! * its member in the sorted set `{prefix}:presence:nodes`, scored with the
//!   time its heartbeat lapses.
//!
//! Every key expires `node_ttl_ms` after the node's last heartbeat, so a
//! node that died takes its sessions with it. The node keeps its share in
//! memory (a [`PresenceBook`]) and one task writes every change in order. At
//! each heartbeat the task extends its keys, writes again whole every key
//! Redis no longer has (after a restart without persistence or a flush), and
//! writes all of them again whole after any write failed (so that a session
//! that closed while Redis was away does not stay). Readers look only at the
//! keys of nodes whose heartbeat has not lapsed.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use switchboard_protocol::api::PresenceStats;
use tokio::sync::{mpsc, oneshot};

use super::{now_ms, unavailable};
use crate::broker::{
    BrokerError, Inbox, NodeFigures, PresenceBook, PresenceChange, PresenceEntry, PresenceQuery, PresenceWindow,
};

/// The names of the presence keys.
#[derive(Clone)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            prefix: format!("{prefix}:presence"),
        }
    }

    fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    fn users(&self, node: &str) -> String {
        format!("{}:{node}:users", self.prefix)
    }

    fn topic(&self, node: &str, topic: &str) -> String {
        format!("{}:{node}:topic:{topic}", self.prefix)
    }

    fn figures(&self, node: &str) -> String {
        format!("{}:{node}:figures", self.prefix)
    }
}

/// A change on its way to Redis, and who waits for it.
pub(super) struct Op {
    pub(super) change: PresenceChange,
    pub(super) done: oneshot::Sender<Result<(), BrokerError>>,
}

/// Most changes written in one round trip.
const BATCH: usize = 512;

/// This node's presence writer: every change in order, and the heartbeat.
pub(super) struct Writer {
    pub(super) con: ConnectionManager,
    pub(super) keys: Keys,
    pub(super) node: String,
    pub(super) every: Duration,
    pub(super) ttl_ms: u64,
    pub(super) inbox: Arc<dyn Inbox>,
}

struct State {
    book: PresenceBook,
    /// A write failed since the last whole write: Redis may hold what is gone.
    dirty: bool,
}

impl Writer {
    pub(super) async fn run(mut self, mut ops: mpsc::UnboundedReceiver<Op>) {
        let mut state = State {
            book: PresenceBook::default(),
            dirty: false,
        };
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                op = ops.recv() => {
                    let Some(op) = op else { return };
                    let mut batch = vec![op];
                    while batch.len() < BATCH && let Ok(op) = ops.try_recv() {
                        batch.push(op);
                    }
                    let result = self.write(&mut state, &batch).await;
                    if result.is_err() {
                        state.dirty = true;
                    }
                    for op in batch {
                        let _ = op.done.send(result.clone());
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.heartbeat(&mut state).await {
                        tracing::debug!(error = %e, "presence heartbeat failed");
                        state.dirty = true;
                    }
                }
            }
        }
    }

    /// Applies a batch of changes to the book and writes what they touched.
    async fn write(&mut self, state: &mut State, batch: &[Op]) -> Result<(), BrokerError> {
        let mut users = BTreeSet::new();
        let mut topics: BTreeMap<String, Vec<(PresenceEntry, bool)>> = BTreeMap::new();
        for op in batch {
            let touched = state.book.apply(&op.change);
            users.extend(touched.user);
            let entry = match &op.change {
                PresenceChange::Opened(e)
                | PresenceChange::Closed(e)
                | PresenceChange::Joined(_, e)
                | PresenceChange::Left(_, e) => e,
            };
            for (topic, joined) in touched.topics {
                topics.entry(topic).or_default().push((entry.clone(), joined));
            }
        }
        let mut pipe = redis::pipe();
        let ttl = self.ttl_ms;
        if !users.is_empty() {
            let key = self.keys.users(&self.node);
            for user in &users {
                match state.book.user_sessions(user) {
                    Some(sessions) => pipe.hset(&key, user, sessions).ignore(),
                    None => pipe.hdel(&key, user).ignore(),
                };
            }
            pipe.pexpire(&key, ttl as i64).ignore();
        }
        for (topic, changes) in &topics {
            let key = self.keys.topic(&self.node, topic);
            for (entry, joined) in changes {
                if *joined {
                    pipe.hset(&key, &entry.session, &entry.user).ignore();
                } else {
                    pipe.hdel(&key, &entry.session).ignore();
                }
            }
            pipe.pexpire(&key, ttl as i64).ignore();
        }
        let _: () = pipe.query_async(&mut self.con).await.map_err(unavailable)?;
        Ok(())
    }

    /// Says the node is alive with its figures, extends its keys, and writes
    /// again whole the keys Redis lost (or all of them after a failed write).
    async fn heartbeat(&mut self, state: &mut State) -> Result<(), BrokerError> {
        let ttl = self.ttl_ms;
        let now = now_ms();
        let figures = self.inbox.figures();
        let figures_key = self.keys.figures(&self.node);
        let users_key = self.keys.users(&self.node);
        let topics: Vec<String> = state.book.topics().map(str::to_owned).collect();
        let mut pipe = redis::pipe();
        pipe.zadd(self.keys.nodes(), &self.node, now + ttl)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(self.keys.nodes())
            .arg("-inf")
            .arg(now)
            .ignore()
            .hset_multiple(
                &figures_key,
                &[
                    ("sessions", figures.sessions),
                    ("users", figures.users),
                    ("topics", figures.topics),
                    ("messages_in", figures.messages_in),
                    ("messages_out", figures.messages_out),
                ],
            )
            .ignore()
            .pexpire(&figures_key, ttl as i64)
            .ignore();
        if state.dirty {
            // Everything again, in one transaction, so that readers never see the node half written.
            let mut all = redis::pipe();
            all.atomic();
            self.rewrite_users(&mut all, &state.book, &users_key);
            for topic in &topics {
                self.rewrite_topic(&mut all, &state.book, topic);
            }
            let _: () = pipe.query_async(&mut self.con).await.map_err(unavailable)?;
            let _: () = all.query_async(&mut self.con).await.map_err(unavailable)?;
            state.dirty = false;
            return Ok(());
        }
        pipe.pexpire(&users_key, ttl as i64);
        for topic in &topics {
            pipe.pexpire(self.keys.topic(&self.node, topic), ttl as i64);
        }
        let extended: Vec<bool> = pipe.query_async(&mut self.con).await.map_err(unavailable)?;
        // A key that is gone while the book has entries for it was lost: write it again.
        let mut again = redis::pipe();
        let mut lost = false;
        if !extended[0] && state.book.users().next().is_some() {
            self.rewrite_users(&mut again, &state.book, &users_key);
            lost = true;
        }
        for (topic, kept) in topics.iter().zip(&extended[1..]) {
            if !kept {
                self.rewrite_topic(&mut again, &state.book, topic);
                lost = true;
            }
        }
        if lost {
            tracing::info!("presence keys were lost in Redis; written again");
            let _: () = again.query_async(&mut self.con).await.map_err(unavailable)?;
        }
        Ok(())
    }

    fn rewrite_users(&self, pipe: &mut redis::Pipeline, book: &PresenceBook, key: &str) {
        pipe.del(key).ignore();
        let users: Vec<(&str, String)> = book.users().collect();
        if !users.is_empty() {
            pipe.hset_multiple(key, &users).ignore();
            pipe.pexpire(key, self.ttl_ms as i64).ignore();
        }
    }

    fn rewrite_topic(&self, pipe: &mut redis::Pipeline, book: &PresenceBook, topic: &str) {
        let key = self.keys.topic(&self.node, topic);
        pipe.del(&key).ignore();
        let members: Vec<(&str, &str)> = book.members(topic).map(|(u, s)| (s, u)).collect();
        if !members.is_empty() {
            pipe.hset_multiple(&key, &members).ignore();
            pipe.pexpire(&key, self.ttl_ms as i64).ignore();
        }
    }
}

/// The nodes whose heartbeat has not lapsed.
async fn live_nodes(con: &mut ConnectionManager, keys: &Keys) -> Result<Vec<String>, BrokerError> {
    redis::cmd("ZRANGEBYSCORE")
        .arg(keys.nodes())
        .arg(now_ms())
        .arg("+inf")
        .query_async(con)
        .await
        .map_err(unavailable)
}

/// The entries `query` asks for across the live nodes in `window`, sorted
/// by (user, session). Every node's share is read (a node's keys are not
/// sorted), but only the window's entries are sorted and made.
pub(super) async fn read(
    con: &mut ConnectionManager,
    keys: &Keys,
    query: &PresenceQuery,
    window: &PresenceWindow,
) -> Result<Vec<PresenceEntry>, BrokerError> {
    let nodes = live_nodes(con, keys).await?;
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for node in &nodes {
        match query {
            PresenceQuery::Everyone => pipe.hgetall(keys.users(node)),
            PresenceQuery::User(user) => pipe.cmd("HMGET").arg(keys.users(node)).arg(user),
            PresenceQuery::Topic(topic) => pipe.hgetall(keys.topic(node, topic)),
        };
    }
    // (user, session, index of the node), in the window.
    let mut found: Vec<(String, String, usize)> = Vec::new();
    let mut keep = |user: &str, session: String, node: usize| {
        if window.admits(user, &session) {
            found.push((user.to_owned(), session, node));
        }
    };
    match query {
        PresenceQuery::Everyone => {
            let per_node: Vec<Vec<(String, String)>> = pipe.query_async(con).await.map_err(unavailable)?;
            for (node, users) in per_node.into_iter().enumerate() {
                for (user, sessions) in users {
                    for session in sessions.split(' ') {
                        keep(&user, session.to_owned(), node);
                    }
                }
            }
        }
        PresenceQuery::User(user) => {
            let per_node: Vec<(Option<String>,)> = pipe.query_async(con).await.map_err(unavailable)?;
            for (node, (sessions,)) in per_node.into_iter().enumerate() {
                for session in sessions.iter().flat_map(|s| s.split(' ')) {
                    keep(user, session.to_owned(), node);
                }
            }
        }
        PresenceQuery::Topic(_) => {
            let per_node: Vec<Vec<(String, String)>> = pipe.query_async(con).await.map_err(unavailable)?;
            for (node, members) in per_node.into_iter().enumerate() {
                for (session, user) in members {
                    keep(&user, session, node);
                }
            }
        }
    }
    let order = |a: &(String, String, usize), b: &(String, String, usize)| (&a.0, &a.1).cmp(&(&b.0, &b.1));
    if found.len() > window.limit {
        found.select_nth_unstable_by(window.limit, order);
        found.truncate(window.limit);
    }
    found.sort_unstable_by(order);
    Ok(found
        .into_iter()
        .map(|(user, session, node)| PresenceEntry {
            session,
            user,
            node: nodes[node].clone(),
        })
        .collect())
}

/// How many sessions and distinct users `query` finds across the live
/// nodes, read without making an entry of each session.
pub(super) async fn stats(
    con: &mut ConnectionManager,
    keys: &Keys,
    query: &PresenceQuery,
) -> Result<PresenceStats, BrokerError> {
    let nodes = live_nodes(con, keys).await?;
    let mut out = PresenceStats::default();
    if nodes.is_empty() {
        return Ok(out);
    }
    let mut pipe = redis::pipe();
    for node in &nodes {
        match query {
            PresenceQuery::Everyone => pipe.hgetall(keys.users(node)),
            PresenceQuery::User(user) => pipe.cmd("HMGET").arg(keys.users(node)).arg(user),
            PresenceQuery::Topic(topic) => pipe.cmd("HVALS").arg(keys.topic(node, topic)),
        };
    }
    match query {
        PresenceQuery::Everyone => {
            let per_node: Vec<HashMap<String, String>> = pipe.query_async(con).await.map_err(unavailable)?;
            let mut users = HashSet::new();
            for node_users in per_node {
                for (user, sessions) in node_users {
                    out.sessions += sessions.split(' ').count();
                    users.insert(user);
                }
            }
            out.users = users.len();
        }
        PresenceQuery::User(_) => {
            let per_node: Vec<(Option<String>,)> = pipe.query_async(con).await.map_err(unavailable)?;
            out.sessions = per_node.iter().flat_map(|(s,)| s).map(|s| s.split(' ').count()).sum();
            out.users = usize::from(out.sessions > 0);
        }
        PresenceQuery::Topic(_) => {
            let per_node: Vec<Vec<String>> = pipe.query_async(con).await.map_err(unavailable)?;
            out.sessions = per_node.iter().map(Vec::len).sum();
            out.users = per_node.iter().flatten().collect::<HashSet<_>>().len();
        }
    }
    Ok(out)
}

/// What each live node said about itself at its last heartbeat (this node's
/// own figures replace its entry, as they are now).
pub(super) async fn nodes(
    con: &mut ConnectionManager,
    keys: &Keys,
    own_node: &str,
    own: NodeFigures,
) -> Result<Vec<NodeFigures>, BrokerError> {
    let nodes = live_nodes(con, keys).await?;
    let others: Vec<&String> = nodes.iter().filter(|n| *n != own_node).collect();
    let mut out = vec![own];
    if others.is_empty() {
        return Ok(out);
    }
    let mut pipe = redis::pipe();
    for node in &others {
        pipe.hgetall(keys.figures(node));
    }
    let per_node: Vec<HashMap<String, u64>> = pipe.query_async(con).await.map_err(unavailable)?;
    for f in per_node {
        let get = |k: &str| f.get(k).copied().unwrap_or(0);
        out.push(NodeFigures {
            sessions: get("sessions"),
            users: get("users"),
            topics: get("topics"),
            messages_in: get("messages_in"),
            messages_out: get("messages_out"),
        });
    }
    Ok(out)
}
