//! The [`Broker`]: how a node's [`Hub`](crate::Hub) reaches every node,
//! itself included.
//!
//! Every Hub operation becomes an [`Envelope`] handed to the broker, which
//! delivers it to each node's inbox; the node then acts on its own sessions.
//! The single-node default, [`LocalBroker`], delivers to its one node in
//! process; [`JsonBroker`] wraps another broker and round-trips every message
//! through JSON, which proves that no operation relies on shared memory.

use std::fmt;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use futures_util::future::BoxFuture;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use switchboard_protocol::{ErrorObject, Target};

/// The id of a gateway node.
pub type NodeId = Arc<str>;

/// A frame serialised once, shared by every session it goes to.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedFrame(pub Utf8Bytes);

impl fmt::Debug for SharedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0.as_str(), f)
    }
}

impl From<String> for SharedFrame {
    fn from(s: String) -> Self {
        Self(Utf8Bytes::from(s))
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
}

/// Connects nodes. Message-based, asynchronous and fallible, so that it can
/// be carried by an external system.
pub trait Broker: Send + Sync + 'static {
    /// Starts delivering messages for `node` to `inbox`.
    fn attach(&self, node: NodeId, inbox: Arc<dyn Inbox>);
    /// Sends a message to every node, this one included.
    fn broadcast(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BrokerError>>;
    /// Sends a message to one node.
    fn send_to(&self, node: &str, envelope: Envelope) -> BoxFuture<'_, Result<(), BrokerError>>;
    /// How many nodes a broadcast reaches (what a multicast call waits to hear from).
    fn node_count(&self) -> BoxFuture<'_, Result<usize, BrokerError>>;
    /// Records a new session for presence.
    fn session_opened(&self, entry: PresenceEntry) -> BoxFuture<'_, Result<(), BrokerError>>;
    /// Forgets a session for presence.
    fn session_closed(&self, entry: PresenceEntry) -> BoxFuture<'_, Result<(), BrokerError>>;
    /// The sessions of one user, or of everybody.
    fn presence(&self, user: Option<String>) -> BoxFuture<'_, Result<Vec<PresenceEntry>, BrokerError>>;
}

/// The in-process broker: one node, no network.
#[derive(Default)]
pub struct LocalBroker {
    inbox: RwLock<Option<Arc<dyn Inbox>>>,
    presence: DashMap<String, Vec<PresenceEntry>>,
}

impl LocalBroker {
    /// A broker for a single node.
    pub fn new() -> Self {
        Self::default()
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

    fn broadcast(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BrokerError>> {
        self.deliver(envelope);
        Box::pin(async { Ok(()) })
    }

    fn send_to(&self, _node: &str, envelope: Envelope) -> BoxFuture<'_, Result<(), BrokerError>> {
        self.deliver(envelope);
        Box::pin(async { Ok(()) })
    }

    fn node_count(&self) -> BoxFuture<'_, Result<usize, BrokerError>> {
        Box::pin(async { Ok(1) })
    }

    fn session_opened(&self, entry: PresenceEntry) -> BoxFuture<'_, Result<(), BrokerError>> {
        self.presence.entry(entry.user.clone()).or_default().push(entry);
        Box::pin(async { Ok(()) })
    }

    fn session_closed(&self, entry: PresenceEntry) -> BoxFuture<'_, Result<(), BrokerError>> {
        self.presence.remove_if_mut(&entry.user, |_, list| {
            list.retain(|e| e.session != entry.session);
            list.is_empty()
        });
        Box::pin(async { Ok(()) })
    }

    fn presence(&self, user: Option<String>) -> BoxFuture<'_, Result<Vec<PresenceEntry>, BrokerError>> {
        let mut out: Vec<PresenceEntry> = match user {
            Some(user) => self.presence.get(&user).map(|l| l.clone()).unwrap_or_default(),
            None => self.presence.iter().flat_map(|e| e.value().clone()).collect(),
        };
        out.sort_by(|a, b| (&a.user, &a.session).cmp(&(&b.user, &b.session)));
        Box::pin(async move { Ok(out) })
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

impl<B: Broker> Broker for JsonBroker<B> {
    fn attach(&self, node: NodeId, inbox: Arc<dyn Inbox>) {
        self.inner.attach(node, inbox);
    }

    fn broadcast(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move { self.inner.broadcast(round_trip(&envelope)?).await })
    }

    fn send_to(&self, node: &str, envelope: Envelope) -> BoxFuture<'_, Result<(), BrokerError>> {
        let node = node.to_owned();
        Box::pin(async move { self.inner.send_to(&node, round_trip(&envelope)?).await })
    }

    fn node_count(&self) -> BoxFuture<'_, Result<usize, BrokerError>> {
        self.inner.node_count()
    }

    fn session_opened(&self, entry: PresenceEntry) -> BoxFuture<'_, Result<(), BrokerError>> {
        self.inner.session_opened(entry)
    }

    fn session_closed(&self, entry: PresenceEntry) -> BoxFuture<'_, Result<(), BrokerError>> {
        self.inner.session_closed(entry)
    }

    fn presence(&self, user: Option<String>) -> BoxFuture<'_, Result<Vec<PresenceEntry>, BrokerError>> {
        self.inner.presence(user)
    }
}
