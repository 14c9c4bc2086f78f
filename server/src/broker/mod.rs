//! The [`Broker`]: how a node's [`Hub`](crate::Hub) reaches every node,
//! itself included.
//!
//! Every Hub operation becomes an [`Envelope`] handed to the broker, which
//! delivers it to each node's inbox; the node then acts on its own sessions.
//! The single-node default, [`LocalBroker`], delivers to its one node in
//! process; [`JsonBroker`] wraps another broker and round-trips every message
//! through JSON, which proves that no operation relies on shared memory.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use futures_util::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchboard_protocol::api::PresenceStats;
use switchboard_protocol::{ErrorObject, Target};
use tungstenite::Utf8Bytes;

mod presence;
mod redis;

pub(crate) use presence::PresenceBook;
pub use presence::{NodeFigures, PresenceChange, PresenceQuery, PresenceWindow};
pub use redis::RedisBroker;

pub use crate::config::RedisConfig;

/// The id of a gateway node.
pub type NodeId = Arc<str>;

/// A frame serialised once, shared by every session it goes to (and
/// compressed at most once, for those that negotiated compression).
#[derive(Clone, PartialEq, Eq)]
pub struct SharedFrame(pub crate::ws::Outgoing);

impl fmt::Debug for SharedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl From<String> for SharedFrame {
    fn from(s: String) -> Self {
        Self(crate::ws::Outgoing::shared(Utf8Bytes::from(s)))
    }
}

impl Serialize for SharedFrame {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for SharedFrame {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::from)
    }
}

/// A session as presence reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceEntry {
    /// The session id.
    pub session: String,
    /// The user.
    pub user: String,
    /// The node the session is connected to.
    pub node: String,
}

/// One message between nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Envelope {
    /// Write `frame` to every session the target names.
    Deliver {
        /// Who receives it.
        target: Target,
        /// The frame, serialised once.
        frame: SharedFrame,
    },
    /// Write a publication of a recoverable topic (with its offset) to the topic's subscribers.
    Publication {
        /// The topic.
        topic: String,
        /// The publication's offset in the topic's stream.
        offset: u64,
        /// The stream's epoch: a new one means the stream began again at offset 1.
        #[serde(default)]
        epoch: String,
        /// The `rpc.message` frame, serialised once.
        frame: SharedFrame,
    },
    /// Send the request `frame` (id `call`) to every session the target names
    /// and report to `origin` which sessions were reached and what they answered.
    Call {
        /// The call id, also the request id inside `frame`.
        call: u64,
        /// The node waiting for the answers.
        origin: NodeId,
        /// Who is called.
        target: Target,
        /// The request frame.
        frame: SharedFrame,
        /// How long each session has to answer, in milliseconds.
        timeout_ms: u64,
        /// Most sessions one node may call.
        max_sessions: usize,
        /// Whether the origin wants the sessions' progress reports.
        #[serde(default)]
        progress: bool,
    },
    /// The origin of `call` no longer wants its answers: the sessions still
    /// owing one are sent `rpc.cancel`.
    CallCancel {
        /// The call id.
        call: u64,
        /// The node that made the call.
        origin: NodeId,
    },
    /// One session's progress report on `call`.
    CallProgress {
        /// The call id.
        call: u64,
        /// The session.
        session: String,
        /// Its user.
        user: String,
        /// Its node.
        node: NodeId,
        /// What it reported.
        progress: Box<serde_json::value::RawValue>,
    },
    /// A node reached these sessions for `call` (`(session, user)` pairs).
    CallAck {
        /// The call id.
        call: u64,
        /// The node that answers.
        node: NodeId,
        /// The sessions that were sent the request.
        sessions: Vec<(String, String)>,
        /// Sessions that were not called because of the fan-in limit.
        skipped: Vec<(String, String)>,
    },
    /// One session's answer to `call`.
    CallResult {
        /// The call id.
        call: u64,
        /// The session.
        session: String,
        /// Its user.
        user: String,
        /// Its node.
        node: NodeId,
        /// What it answered.
        outcome: Result<Box<serde_json::value::RawValue>, ErrorObject>,
    },
    /// Close the sessions the target names.
    Disconnect {
        /// Whose sessions.
        target: Target,
        /// The close code.
        code: u16,
        /// The close reason.
        reason: String,
    },
    /// Subscribe the sessions the target names to topics.
    Subscribe {
        /// Whose sessions.
        target: Target,
        /// The topics.
        topics: Vec<String>,
    },
    /// Unsubscribe the sessions the target names from topics.
    Unsubscribe {
        /// Whose sessions.
        target: Target,
        /// The topics.
        topics: Vec<String>,
    },
}

/// How much history a recoverable topic keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPolicy {
    /// Most publications kept.
    pub size: usize,
    /// Longest time a publication is kept.
    pub ttl: Duration,
}

/// A read of a stream's history.
#[derive(Debug, Clone)]
pub struct History {
    /// The stream's epoch.
    pub epoch: String,
    /// The offset of the newest publication (0 when there is none).
    pub top: u64,
    /// The offset of the oldest publication kept (`top + 1` when none is kept).
    pub first: u64,
    /// Publications after the requested offset, oldest first, at most the requested number.
    pub entries: Vec<(u64, SharedFrame)>,
}

/// A change of what this node has local sessions for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interest {
    /// The first local session of this user arrived.
    AddUser(String),
    /// The last local session of this user left.
    RemoveUser(String),
    /// The first local subscriber of this topic arrived.
    AddTopic(String),
    /// The last local subscriber of this topic left.
    RemoveTopic(String),
}

/// Broker failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    /// The broker cannot be reached.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// A message could not be encoded or decoded.
    #[error("broker message could not be encoded: {0}")]
    Encoding(String),
}

/// Where a broker hands the messages for one node.
pub trait Inbox: Send + Sync + 'static {
    /// Handles one message. Must not wait.
    fn deliver(&self, envelope: Envelope);
    /// What the node says about itself, which a networked broker writes with
    /// its heartbeat for the other nodes' `stats`.
    fn figures(&self) -> NodeFigures {
        NodeFigures::default()
    }
}

/// Connects nodes. Message-based, asynchronous and fallible, so that it can
/// be carried by an external system.
pub trait Broker: Send + Sync + 'static {
    /// Starts delivering messages for `node` to `inbox`.
    fn attach(&self, node: NodeId, inbox: Arc<dyn Inbox>);
    /// Sends a message to every node that may have sessions it concerns,
    /// this one included (this one in process, at once). Returns how many
    /// nodes it reached, which is how many reports a multicast call waits for.
    fn broadcast(&self, envelope: Envelope) -> BoxFuture<'_, Result<usize, BrokerError>>;
    /// Sends a message to one node.
    fn send_to(&self, node: &str, envelope: Envelope) -> BoxFuture<'_, Result<(), BrokerError>>;
    /// This node gained or lost its first local session of a user or subscriber
    /// of a topic. A networked broker listens only where there is interest.
    /// Resolves once messages for the new interest will be delivered.
    fn interest(&self, change: Interest) -> BoxFuture<'_, Result<(), BrokerError>> {
        let _ = change;
        Box::pin(async { Ok(()) })
    }
    /// Whether the broker wants [`interest`](Self::interest) changes.
    fn wants_interest(&self) -> bool {
        false
    }
    /// Whether the broker can reach the other nodes right now (`/readyz`).
    fn is_ready(&self) -> bool {
        true
    }
    /// Records a change of this node's presence. The change is taken when
    /// this is called, in order with the node's other changes; the future
    /// says whether it reached what the other nodes read.
    fn presence_changed(&self, change: PresenceChange) -> BoxFuture<'static, Result<(), BrokerError>>;
    /// The sessions `query` asks for across the cluster in `window`, sorted by (user, session).
    fn presence(
        &self,
        query: PresenceQuery,
        window: PresenceWindow,
    ) -> BoxFuture<'_, Result<Vec<PresenceEntry>, BrokerError>>;
    /// How many sessions and distinct users `query` finds across the cluster.
    fn presence_stats(&self, query: PresenceQuery) -> BoxFuture<'_, Result<PresenceStats, BrokerError>>;
    /// What every live node says about itself (`own` is this node's, as it is now).
    fn nodes(&self, own: NodeFigures) -> BoxFuture<'_, Result<Vec<NodeFigures>, BrokerError>>;
    /// Appends `data` to the stream of `topic` and delivers it to every node's
    /// subscribers as one step, so that the order of offsets is the order of
    /// delivery. Returns the publication's offset and the stream's epoch.
    fn publish_recoverable<'a>(
        &'a self,
        topic: &'a str,
        data: &'a RawValue,
        policy: StreamPolicy,
    ) -> BoxFuture<'a, Result<(u64, String), BrokerError>>;
    /// Reads up to `limit` publications of `topic` after offset `since`.
    fn history<'a>(&'a self, topic: &'a str, since: u64, limit: usize) -> BoxFuture<'a, Result<History, BrokerError>>;
}

/// The in-process broker: one node, no network. History lives in memory and
/// is lost with the process, which the epoch makes visible to clients.
pub struct LocalBroker {
    inbox: RwLock<Option<Arc<dyn Inbox>>>,
    presence: Mutex<PresenceBook>,
    streams: DashMap<String, Arc<Mutex<Stream>>>,
    epoch_seed: u64,
    stream_count: AtomicU64,
}

struct Stream {
    epoch: String,
    top: u64,
    entries: VecDeque<(u64, Instant, SharedFrame)>,
}

impl Stream {
    fn evict(&mut self, policy: Option<StreamPolicy>, now: Instant) {
        let Some(policy) = policy else { return };
        while self.entries.len() > policy.size
            || self
                .entries
                .front()
                .is_some_and(|(_, at, _)| now.duration_since(*at) > policy.ttl)
        {
            self.entries.pop_front();
        }
    }
}

impl Default for LocalBroker {
    fn default() -> Self {
        Self {
            inbox: RwLock::new(None),
            presence: Mutex::new(PresenceBook::default()),
            streams: DashMap::new(),
            epoch_seed: fastrand::u64(..),
            stream_count: AtomicU64::new(0),
        }
    }
}

impl LocalBroker {
    /// A broker for a single node.
    pub fn new() -> Self {
        Self::default()
    }

    fn stream(&self, topic: &str) -> Arc<Mutex<Stream>> {
        if let Some(s) = self.streams.get(topic) {
            return s.clone();
        }
        self.streams
            .entry(topic.to_owned())
            .or_insert_with(|| {
                // A stream created anew has a new epoch: a position from before means nothing here.
                let n = self.stream_count.fetch_add(1, Ordering::Relaxed);
                let epoch = format!(
                    "{:x}",
                    self.epoch_seed.wrapping_add(n.wrapping_mul(0x2545_F491_4F6C_DD1D))
                );
                Arc::new(Mutex::new(Stream {
                    epoch,
                    top: 0,
                    entries: VecDeque::new(),
                }))
            })
            .clone()
    }

    fn deliver(&self, envelope: Envelope) {
        let inbox = self.inbox.read().clone();
        if let Some(inbox) = inbox {
            inbox.deliver(envelope);
        }
    }
}

impl Broker for LocalBroker {
    fn attach(&self, _node: NodeId, inbox: Arc<dyn Inbox>) {
        *self.inbox.write() = Some(inbox);
    }

    fn broadcast(&self, envelope: Envelope) -> BoxFuture<'_, Result<usize, BrokerError>> {
        self.deliver(envelope);
        Box::pin(async { Ok(1) })
    }

    fn send_to(&self, _node: &str, envelope: Envelope) -> BoxFuture<'_, Result<(), BrokerError>> {
        self.deliver(envelope);
        Box::pin(async { Ok(()) })
    }

    fn presence_changed(&self, change: PresenceChange) -> BoxFuture<'static, Result<(), BrokerError>> {
        self.presence.lock().apply(&change);
        Box::pin(async { Ok(()) })
    }

    fn presence(
        &self,
        query: PresenceQuery,
        window: PresenceWindow,
    ) -> BoxFuture<'_, Result<Vec<PresenceEntry>, BrokerError>> {
        let out = self.presence.lock().query(&query, &window);
        Box::pin(async move { Ok(out) })
    }

    fn presence_stats(&self, query: PresenceQuery) -> BoxFuture<'_, Result<PresenceStats, BrokerError>> {
        let stats = self.presence.lock().stats(&query);
        Box::pin(async move { Ok(stats) })
    }

    fn nodes(&self, own: NodeFigures) -> BoxFuture<'_, Result<Vec<NodeFigures>, BrokerError>> {
        Box::pin(async move { Ok(vec![own]) })
    }

    fn publish_recoverable<'a>(
        &'a self,
        topic: &'a str,
        data: &'a RawValue,
        policy: StreamPolicy,
    ) -> BoxFuture<'a, Result<(u64, String), BrokerError>> {
        let stream = self.stream(topic);
        let mut s = stream.lock();
        let now = Instant::now();
        s.top += 1;
        let offset = s.top;
        let frame: SharedFrame =
            switchboard_protocol::frame::write_publication(topic, data.get(), Some((offset, &s.epoch))).into();
        s.entries.push_back((offset, now, frame.clone()));
        s.evict(Some(policy), now);
        let epoch = s.epoch.clone();
        // Delivered while the stream is locked, so delivery order is offset order.
        self.deliver(Envelope::Publication {
            topic: topic.to_owned(),
            offset,
            epoch: epoch.clone(),
            frame,
        });
        drop(s);
        Box::pin(async move { Ok((offset, epoch)) })
    }

    fn history<'a>(&'a self, topic: &'a str, since: u64, limit: usize) -> BoxFuture<'a, Result<History, BrokerError>> {
        let stream = self.stream(topic);
        let s = stream.lock();
        let first = s.entries.front().map_or(s.top + 1, |(o, _, _)| *o);
        let entries = s
            .entries
            .iter()
            .filter(|(o, _, _)| *o > since)
            .take(limit)
            .map(|(o, _, f)| (*o, f.clone()))
            .collect();
        let history = History {
            epoch: s.epoch.clone(),
            top: s.top,
            first,
            entries,
        };
        drop(s);
        Box::pin(async move { Ok(history) })
    }
}

/// Wraps a broker and sends every message through JSON text, as a broker
/// over a network would. Used to test that the hub never relies on shared memory.
pub struct JsonBroker<B> {
    inner: B,
}

impl<B: Broker> JsonBroker<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Self { inner }
    }
}

fn round_trip(envelope: &Envelope) -> Result<Envelope, BrokerError> {
    let text = serde_json::to_string(envelope).map_err(|e| BrokerError::Encoding(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| BrokerError::Encoding(e.to_string()))
}

struct JsonInbox(Arc<dyn Inbox>);

impl Inbox for JsonInbox {
    fn deliver(&self, envelope: Envelope) {
        match round_trip(&envelope) {
            Ok(e) => self.0.deliver(e),
            Err(e) => tracing::error!(error = %e, "a broker message did not survive JSON"),
        }
    }

    fn figures(&self) -> NodeFigures {
        self.0.figures()
    }
}

impl<B: Broker> Broker for JsonBroker<B> {
    fn attach(&self, node: NodeId, inbox: Arc<dyn Inbox>) {
        self.inner.attach(node, Arc::new(JsonInbox(inbox)));
    }

    // Messages are round-tripped where they arrive (see `JsonInbox`).
    fn broadcast(&self, envelope: Envelope) -> BoxFuture<'_, Result<usize, BrokerError>> {
        self.inner.broadcast(envelope)
    }

    fn send_to(&self, node: &str, envelope: Envelope) -> BoxFuture<'_, Result<(), BrokerError>> {
        self.inner.send_to(node, envelope)
    }

    fn interest(&self, change: Interest) -> BoxFuture<'_, Result<(), BrokerError>> {
        self.inner.interest(change)
    }

    fn is_ready(&self) -> bool {
        self.inner.is_ready()
    }

    fn wants_interest(&self) -> bool {
        self.inner.wants_interest()
    }

    fn presence_changed(&self, change: PresenceChange) -> BoxFuture<'static, Result<(), BrokerError>> {
        self.inner.presence_changed(change)
    }

    fn presence(
        &self,
        query: PresenceQuery,
        window: PresenceWindow,
    ) -> BoxFuture<'_, Result<Vec<PresenceEntry>, BrokerError>> {
        self.inner.presence(query, window)
    }

    fn presence_stats(&self, query: PresenceQuery) -> BoxFuture<'_, Result<PresenceStats, BrokerError>> {
        self.inner.presence_stats(query)
    }

    fn nodes(&self, own: NodeFigures) -> BoxFuture<'_, Result<Vec<NodeFigures>, BrokerError>> {
        self.inner.nodes(own)
    }

    fn publish_recoverable<'a>(
        &'a self,
        topic: &'a str,
        data: &'a RawValue,
        policy: StreamPolicy,
    ) -> BoxFuture<'a, Result<(u64, String), BrokerError>> {
        self.inner.publish_recoverable(topic, data, policy)
    }

    fn history<'a>(&'a self, topic: &'a str, since: u64, limit: usize) -> BoxFuture<'a, Result<History, BrokerError>> {
        self.inner.history(topic, since, limit)
    }
}
