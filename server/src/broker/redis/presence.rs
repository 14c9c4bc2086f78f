//! Presence on Redis, in keys each node owns.
//!
//! Each node writes its own sessions and nothing else:
//!
//! * `{prefix}:presence:{node}:sessions`, a sorted set of the node's
//!   sessions as members `user NUL session`, all of score 0, so that they
//!   sort by (user, session) and a page is a `ZRANGEBYLEX` from a cursor;
//! * `{prefix}:presence:{node}:members:{topic}`, the same for each topic
//!   whose presence is kept and that has members on the node;
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
//! keys of nodes whose heartbeat has not lapsed; a page reads at most its
//! size from each node and merges them.

use std::collections::{BTreeSet, HashMap, HashSet};
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

    fn sessions(&self, node: &str) -> String {
        format!("{}:{node}:sessions", self.prefix)
    }

    fn topic(&self, node: &str, topic: &str) -> String {
        format!("{}:{node}:members:{topic}", self.prefix)
    }

    fn figures(&self, node: &str) -> String {
        format!("{}:{node}:figures", self.prefix)
    }

    /// The key `query` reads on `node`.
    fn of(&self, node: &str, query: &PresenceQuery) -> String {
        match query {
            PresenceQuery::Everyone | PresenceQuery::User(_) => self.sessions(node),
            PresenceQuery::Topic(topic) => self.topic(node, topic),
        }
    }
}

/// A session as a member of a sorted set: `user NUL session` sorts as
/// (user, session) does, since NUL sorts before every other byte.
fn member(user: &str, session: &str) -> String {
    format!("{user}\0{session}")
}

/// The (user, session) of a member (session ids hold no NUL).
fn unmember(member: &str) -> Option<(&str, &str)> {
    member.rsplit_once('\0')
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
        let mut pipe = redis::pipe();
        let sessions_key = self.keys.sessions(&self.node);
        let mut sessions_touched = false;
        let mut topics = BTreeSet::new();
        for op in batch {
            let touched = state.book.apply(&op.change);
            let entry = match &op.change {
                PresenceChange::Opened(e) => {
                    pipe.zadd(&sessions_key, member(&e.user, &e.session), 0).ignore();
                    sessions_touched = true;
                    e
                }
                PresenceChange::Closed(e) => {
                    pipe.zrem(&sessions_key, member(&e.user, &e.session)).ignore();
                    sessions_touched = true;
                    e
                }
                PresenceChange::Joined(_, e) | PresenceChange::Left(_, e) => e,
            };
            for (topic, joined) in touched.topics {
                let key = self.keys.topic(&self.node, &topic);
                let m = member(&entry.user, &entry.session);
                if joined {
                    pipe.zadd(&key, m, 0).ignore();
                } else {
                    pipe.zrem(&key, m).ignore();
                }
                topics.insert(key);
            }
        }
        let ttl = self.ttl_ms as i64;
        if sessions_touched {
            pipe.pexpire(&sessions_key, ttl).ignore();
        }
        for key in &topics {
            pipe.pexpire(key, ttl).ignore();
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
        let sessions_key = self.keys.sessions(&self.node);
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
            self.rewrite_sessions(&mut all, &state.book, &sessions_key);
            for topic in &topics {
                self.rewrite_topic(&mut all, &state.book, topic);
            }
            let _: () = pipe.query_async(&mut self.con).await.map_err(unavailable)?;
            let _: () = all.query_async(&mut self.con).await.map_err(unavailable)?;
            state.dirty = false;
            return Ok(());
        }
        pipe.pexpire(&sessions_key, ttl as i64);
        for topic in &topics {
            pipe.pexpire(self.keys.topic(&self.node, topic), ttl as i64);
        }
        let extended: Vec<bool> = pipe.query_async(&mut self.con).await.map_err(unavailable)?;
        // A key that is gone while the book has entries for it was lost: write it again.
        let mut again = redis::pipe();
        let mut lost = false;
        if !extended[0] && state.book.everyone().next().is_some() {
            self.rewrite_sessions(&mut again, &state.book, &sessions_key);
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

    fn rewrite_sessions(&self, pipe: &mut redis::Pipeline, book: &PresenceBook, key: &str) {
        self.rewrite(pipe, key, book.everyone());
    }

    fn rewrite_topic(&self, pipe: &mut redis::Pipeline, book: &PresenceBook, topic: &str) {
        self.rewrite(pipe, &self.keys.topic(&self.node, topic), book.members(topic));
    }

    /// Replaces `key` with the sorted set of `members`.
    fn rewrite<'a>(&self, pipe: &mut redis::Pipeline, key: &str, members: impl Iterator<Item = (&'a str, &'a str)>) {
        pipe.del(key).ignore();
        let members: Vec<(u8, String)> = members.map(|(u, s)| (0, member(u, s))).collect();
        if !members.is_empty() {
            pipe.zadd_multiple(key, &members).ignore();
            pipe.pexpire(key, self.ttl_ms as i64).ignore();
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

/// A `ZRANGEBYLEX` of `key` from `start` to `end`, at most `limit` members.
fn range(pipe: &mut redis::Pipeline, key: String, start: &str, end: &str, limit: usize) {
    let cmd = pipe.cmd("ZRANGEBYLEX").arg(key).arg(start).arg(end);
    if let Ok(limit) = i64::try_from(limit) {
        cmd.arg("LIMIT").arg(0).arg(limit);
    }
}

/// The bounds of `query` in `window` for `ZRANGEBYLEX`: after the cursor,
/// and within the user's members for a user.
fn bounds(query: &PresenceQuery, window: &PresenceWindow) -> (String, String) {
    let after = window.after.as_ref().map(|(u, s)| format!("({}", member(u, s)));
    match query {
        PresenceQuery::User(user) => {
            let first = format!("[{}", member(user, ""));
            let start = match after {
                Some(after) if after[1..] > first[1..] => after,
                _ => first,
            };
            (start, format!("({user}\u{1}"))
        }
        _ => (after.unwrap_or_else(|| "-".to_owned()), "+".to_owned()),
    }
}

/// The entries `query` asks for across the live nodes in `window`, sorted
/// by (user, session): at most `window.limit` from each node, merged.
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
    let (start, end) = bounds(query, window);
    let mut pipe = redis::pipe();
    for node in &nodes {
        range(&mut pipe, keys.of(node, query), &start, &end, window.limit);
    }
    let per_node: Vec<Vec<String>> = pipe.query_async(con).await.map_err(unavailable)?;
    let mut found: Vec<(String, usize)> = Vec::new();
    for (node, members) in per_node.into_iter().enumerate() {
        found.extend(members.into_iter().map(|m| (m, node)));
    }
    let mut entries: Vec<PresenceEntry> = found
        .iter()
        .filter_map(|(m, node)| {
            let (user, session) = unmember(m)?;
            let wanted = match query {
                PresenceQuery::User(u) => u == user,
                _ => true,
            };
            (wanted && window.admits(user, session)).then(|| PresenceEntry {
                session: session.to_owned(),
                user: user.to_owned(),
                node: nodes[*node].clone(),
            })
        })
        .collect();
    entries.sort_unstable_by(|a, b| (&a.user, &a.session).cmp(&(&b.user, &b.session)));
    entries.truncate(window.limit);
    Ok(entries)
}

/// How many sessions and distinct users `query` finds across the live
/// nodes. Sessions are counted by Redis; distinct users (a user may be on
/// several nodes) need the members.
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
    if let PresenceQuery::User(_) = query {
        let (start, end) = bounds(query, &PresenceWindow::all());
        for node in &nodes {
            pipe.cmd("ZLEXCOUNT").arg(keys.sessions(node)).arg(&start).arg(&end);
        }
        let counts: Vec<usize> = pipe.query_async(con).await.map_err(unavailable)?;
        out.sessions = counts.iter().sum();
        out.users = usize::from(out.sessions > 0);
        return Ok(out);
    }
    for node in &nodes {
        pipe.cmd("ZRANGE").arg(keys.of(node, query)).arg(0).arg(-1);
    }
    let per_node: Vec<Vec<String>> = pipe.query_async(con).await.map_err(unavailable)?;
    let mut users = HashSet::new();
    for member in per_node.iter().flatten() {
        if let Some((user, _)) = unmember(member) {
            out.sessions += 1;
            users.insert(user);
        }
    }
    out.users = users.len();
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
