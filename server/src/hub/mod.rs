//! The [`Hub`]: the one API for pushing to, calling, subscribing and
//! disconnecting sessions by [`Target`].
//!
//! Library users, built-in methods, the HTTP API and the dashboard all use it.
//! Every operation is serialised once into a frame and handed to the
//! [`Broker`] as an [`Envelope`]; each node's inbox (this one included) then
//! writes the shared frame to its own sessions.

mod calls;
mod inbox;
mod registry;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use serde::Serialize;
use serde_json::value::RawValue;
use switchboard_protocol::api::{ClusterStats, PresenceStats, SessionEvent, Stats};
use switchboard_protocol::contract::Push;
use switchboard_protocol::methods::{self, StreamPosition};
use switchboard_protocol::{Target, frame};

pub use calls::{CallEntry, CallOptions, CallProgress, CallReport, CallStream, CallUpdate};
use calls::{CallSink, Running};
use inbox::{NodeInbox, interest_worker};
pub(crate) use registry::{Registry, SubscribeError};

use crate::broker::{
    Broker, BrokerError, Envelope, History, NodeFigures, NodeId, PresenceChange, PresenceEntry, PresenceQuery,
    PresenceWindow, SharedFrame, StreamPolicy,
};
use crate::config::WebhookEvent;
use crate::config::{Config, Limits, StreamConfig, TopicPattern};
use crate::session::{Delivery, SessionHandle};
use crate::webhook::Webhook;

/// Errors of hub operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// The broker could not carry the operation to the other nodes.
    #[error(transparent)]
    Broker(#[from] BrokerError),
    /// The params could not be serialised as JSON.
    #[error("params could not be serialised: {0}")]
    Params(String),
}

/// Counters that tests and the dashboard read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Frames the hub serialised for pushes and calls.
    pub frames_serialised: u64,
    /// Frames written to session queues by this node.
    pub deliveries: u64,
}

/// A cheap, cloneable handle to a node's routing.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
    /// The sequence number of the last interest change the broker applied.
    applied: tokio::sync::watch::Receiver<u64>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("node", &self.inner.node).finish()
    }
}

pub(crate) struct HubInner {
    node: NodeId,
    pub(crate) registry: Registry,
    broker: Arc<dyn Broker>,
    limits: Limits,
    streams: Vec<StreamConfig>,
    join_leave: Vec<TopicPattern>,
    /// The topics whose subscribers are kept in presence.
    presence_topics: Vec<TopicPattern>,
    /// The calls this node made, waiting for reports.
    calls: DashMap<u64, CallSink>,
    /// The calls this node runs for their origins, by (origin, call id).
    running: DashMap<(NodeId, u64), Running>,
    frames_serialised: AtomicU64,
    deliveries: AtomicU64,
    messages_in: AtomicU64,
    next_session: AtomicU64,
    events: parking_lot::Mutex<VecDeque<SessionEvent>>,
    /// The lifecycle webhook's queue, when one is configured.
    webhook: Option<Webhook>,
}

/// How many connects and disconnects `stats` remembers.
const RECENT_EVENTS: usize = 100;

impl Hub {
    /// A hub for a node with the given broker.
    pub fn new(broker: Arc<dyn Broker>, config: &Config) -> Self {
        let limits = config.limits.clone();
        let streams = config.streams.clone();
        let node: NodeId = node_id().into();
        let inner = Arc::new(HubInner {
            node: node.clone(),
            registry: Registry::new(broker.wants_interest()),
            broker: broker.clone(),
            limits,
            streams,
            join_leave: config.join_leave.clone(),
            presence_topics: config.presence_patterns(),
            calls: DashMap::new(),
            running: DashMap::new(),
            frames_serialised: AtomicU64::new(0),
            deliveries: AtomicU64::new(0),
            messages_in: AtomicU64::new(0),
            next_session: AtomicU64::new(1),
            events: parking_lot::Mutex::new(VecDeque::new()),
            webhook: config.webhook.as_ref().and_then(|w| Webhook::start(w, node.clone())),
        });
        broker.attach(node, Arc::new(NodeInbox(Arc::downgrade(&inner))));
        let (applied_tx, applied) = tokio::sync::watch::channel(0);
        if inner.registry.interest.is_some() {
            tokio::spawn(interest_worker(Arc::downgrade(&inner), applied_tx));
        }
        Self { inner, applied }
    }

    /// Waits until every interest change made so far reached the broker, so
    /// that messages for new local sessions and subscribers are delivered.
    pub(crate) async fn interest_settled(&self) {
        let Some(q) = &self.inner.registry.interest else { return };
        let latest = q.latest();
        let mut applied = self.applied.clone();
        let _ = tokio::time::timeout(Duration::from_secs(5), applied.wait_for(|a| *a >= latest)).await;
    }

    /// Whether interest changes must settle before a subscription is confirmed.
    pub(crate) fn tracks_interest(&self) -> bool {
        self.inner.registry.interest.is_some()
    }

    /// Whether the broker reaches the other nodes right now.
    pub fn is_ready(&self) -> bool {
        self.inner.broker.is_ready()
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Counters for tests and the dashboard.
    pub fn stats(&self) -> HubStats {
        HubStats {
            frames_serialised: self.inner.frames_serialised.load(Ordering::Relaxed),
            deliveries: self.inner.deliveries.load(Ordering::Relaxed),
        }
    }

    /// Counters and recent connects and disconnects of this node, and the
    /// cluster's totals (the server API's `stats`).
    pub async fn node_stats(&self) -> Result<Stats, HubError> {
        let own = self.inner.figures();
        let nodes = self.inner.broker.nodes(own).await?;
        let counted = self.presence_stats(PresenceQuery::Everyone).await?;
        let cluster = ClusterStats {
            nodes: nodes.len(),
            sessions: counted.sessions,
            users: counted.users,
            topics: nodes.iter().map(|n| n.topics).sum(),
            messages_in: nodes.iter().map(|n| n.messages_in).sum(),
            messages_out: nodes.iter().map(|n| n.messages_out).sum(),
        };
        Ok(Stats {
            node: self.inner.node.to_string(),
            sessions: own.sessions as usize,
            users: own.users as usize,
            topics: own.topics as usize,
            messages_in: own.messages_in,
            messages_out: own.messages_out,
            events: self.inner.events.lock().iter().cloned().collect(),
            cluster,
        })
    }

    pub(crate) fn count_message_in(&self) {
        self.inner.messages_in.fetch_add(1, Ordering::Relaxed);
    }

    fn record(&self, kind: &str, session: &SessionHandle) {
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default();
        let mut events = self.inner.events.lock();
        if events.len() == RECENT_EVENTS {
            events.pop_front();
        }
        events.push_back(SessionEvent {
            kind: kind.to_owned(),
            session: session.id().to_string(),
            user: session.user().to_owned(),
            at_ms,
        });
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The timeout for calls whose caller names none (`limits.call_timeout_ms`).
    pub fn default_call_timeout(&self) -> Duration {
        self.inner.limits.call_timeout()
    }

    /// A new opaque session id: the node id, a dot, and a sequence number.
    pub(crate) fn next_session_id(&self) -> String {
        let n = self.inner.next_session.fetch_add(1, Ordering::Relaxed);
        format!("{}.{}", self.inner.node, n)
    }

    fn count_frame(&self) {
        self.inner.frames_serialised.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends the notification `method(params)` to every session of the target.
    ///
    /// A notification is kept nowhere: a session that is not connected when
    /// it is sent never receives it, and a reconnecting client cannot recover
    /// it. For pushes to a user that must survive a reconnect, publish on the
    /// user's personal topic `user:{id}` with [`publish`](Self::publish) (a
    /// recoverable topic when `streams` matches it).
    pub async fn notify<P: Serialize + ?Sized>(
        &self,
        target: Target,
        method: &str,
        params: &P,
    ) -> Result<(), HubError> {
        let params = serde_json::value::to_raw_value(params).map_err(|e| HubError::Params(e.to_string()))?;
        self.notify_raw(target, method, Some(&params)).await
    }

    /// Pushes the notification `P` to every session of the target, as
    /// [`notify`](Self::notify) does, with `P`'s params.
    pub async fn push<P: Push>(&self, target: Target, params: &P::Params) -> Result<(), HubError> {
        self.notify(target, P::NAME, params).await
    }

    /// Like [`notify`](Self::notify) with params already serialised.
    pub async fn notify_raw(&self, target: Target, method: &str, params: Option<&RawValue>) -> Result<(), HubError> {
        let frame = frame::write_notification(method, params.map(RawValue::get));
        self.count_frame();
        self.send_frame(target, frame.into()).await
    }

    /// Publishes `data` on `topic`: subscribers receive `rpc.message {topic, data}`.
    /// On a recoverable topic the publication is kept in history and carries
    /// its `offset` and `epoch`, which are returned.
    pub async fn publish<D: Serialize + ?Sized>(
        &self,
        topic: &str,
        data: &D,
    ) -> Result<Option<StreamPosition>, HubError> {
        let data = serde_json::value::to_raw_value(data).map_err(|e| HubError::Params(e.to_string()))?;
        self.publish_raw(topic, &data).await
    }

    /// Like [`publish`](Self::publish) with data already serialised.
    pub async fn publish_raw(&self, topic: &str, data: &RawValue) -> Result<Option<StreamPosition>, HubError> {
        self.count_frame();
        if let Some(policy) = self.stream_policy(topic) {
            let (offset, epoch) = timed_publish(|| self.inner.broker.publish_recoverable(topic, data, policy)).await?;
            return Ok(Some(StreamPosition { offset, epoch }));
        }
        let frame = frame::write_publication(topic, data.get(), None);
        self.send_frame(Target::Topic(topic.to_owned()), frame.into()).await?;
        Ok(None)
    }

    /// Publishes on the personal topic `user:{user}`, which every session of
    /// that user is subscribed to: a push to a user that survives reconnects.
    pub async fn publish_to_user<D: Serialize + ?Sized>(
        &self,
        user: &str,
        data: &D,
    ) -> Result<Option<StreamPosition>, HubError> {
        self.publish(&personal_topic(user), data).await
    }

    /// The history policy of a topic, if it is recoverable.
    pub fn stream_policy(&self, topic: &str) -> Option<StreamPolicy> {
        self.inner
            .streams
            .iter()
            .find(|s| s.matches(topic))
            .map(|s| StreamPolicy {
                size: s.history_size,
                ttl: Duration::from_millis(s.history_ttl_ms),
            })
    }

    /// Reads up to `limit` publications of `topic` after offset `since`.
    pub async fn history(&self, topic: &str, since: u64, limit: usize) -> Result<History, HubError> {
        Ok(self.inner.broker.history(topic, since, limit).await?)
    }

    async fn send_frame(&self, target: Target, frame: SharedFrame) -> Result<(), HubError> {
        let target = dedup(target);
        timed_publish(|| self.inner.broker.broadcast(Envelope::Deliver { target, frame })).await?;
        Ok(())
    }

    /// The sessions of `user`, or of everybody, across all nodes.
    pub async fn presence(&self, user: Option<&str>) -> Result<Vec<PresenceEntry>, HubError> {
        let query = user.map_or(PresenceQuery::Everyone, |u| PresenceQuery::User(u.to_owned()));
        self.presence_of(query, PresenceWindow::all()).await
    }

    /// The sessions `query` asks for across all nodes in `window`, sorted by
    /// (user, session). A topic's presence is kept only if
    /// [`keeps_presence`](Self::keeps_presence); for others it is empty.
    pub async fn presence_of(
        &self,
        query: PresenceQuery,
        window: PresenceWindow,
    ) -> Result<Vec<PresenceEntry>, HubError> {
        Ok(self.inner.broker.presence(query, window).await?)
    }

    /// How many sessions and distinct users `query` finds.
    pub async fn presence_stats(&self, query: PresenceQuery) -> Result<PresenceStats, HubError> {
        Ok(self.inner.broker.presence_stats(query).await?)
    }

    /// Whether the subscribers of `topic` are kept in presence (`presence_topics`).
    pub fn keeps_presence(&self, topic: &str) -> bool {
        self.inner.keeps_presence(topic)
    }

    /// Closes every session of the target with `code` and `reason`, after
    /// telling each `rpc.disconnect`.
    pub async fn disconnect(&self, target: Target, code: u16, reason: &str) -> Result<(), HubError> {
        let envelope = Envelope::Disconnect {
            target: dedup(target),
            code,
            reason: reason.to_owned(),
        };
        self.inner.broker.broadcast(envelope).await?;
        Ok(())
    }

    /// Subscribes every session of the target to `topics`.
    pub async fn subscribe(&self, target: Target, topics: Vec<String>) -> Result<(), HubError> {
        self.inner
            .broker
            .broadcast(Envelope::Subscribe {
                target: dedup(target),
                topics,
            })
            .await?;
        Ok(())
    }

    /// Unsubscribes every session of the target from `topics`.
    pub async fn unsubscribe(&self, target: Target, topics: Vec<String>) -> Result<(), HubError> {
        self.inner
            .broker
            .broadcast(Envelope::Unsubscribe {
                target: dedup(target),
                topics,
            })
            .await?;
        Ok(())
    }

    /// Adds a new session to the registry and to presence.
    pub(crate) async fn register(&self, session: &SessionHandle) {
        self.inner.registry.insert(session);
        self.record("connect", session);
        self.inner.emit(WebhookEvent::Connect, session, None);
        metrics::gauge!("switchboard_sessions").increment(1.0);
        let opened = PresenceChange::Opened(self.inner.presence_entry(session));
        if let Err(e) = self.inner.broker.presence_changed(opened).await {
            tracing::warn!(error = %e, "could not record presence");
        }
        self.interest_settled().await;
    }

    /// Removes a session from the registry and from presence.
    pub(crate) async fn unregister(&self, session: &SessionHandle) {
        let announced: Vec<String> = if self.inner.join_leave.is_empty() {
            Vec::new()
        } else {
            session
                .shared
                .topics
                .lock()
                .iter()
                .map(|s| s.topic.to_string())
                .collect()
        };
        self.inner.registry.remove(session);
        for topic in announced {
            self.announce(methods::LEAVE, session, &topic);
        }
        self.record("disconnect", session);
        self.inner.emit(WebhookEvent::Disconnect, session, None);
        metrics::gauge!("switchboard_sessions").decrement(1.0);
        let closed = PresenceChange::Closed(self.inner.presence_entry(session));
        if let Err(e) = self.inner.broker.presence_changed(closed).await {
            tracing::warn!(error = %e, "could not remove presence");
        }
    }

    /// Tells the lifecycle webhook, if any, that `session` subscribed to or
    /// unsubscribed from `topic`.
    pub(crate) fn emit_topic_event(&self, event: WebhookEvent, session: &SessionHandle, topic: &str) {
        self.inner.emit(event, session, Some(topic));
        let method = match event {
            WebhookEvent::Subscribe => methods::JOIN,
            WebhookEvent::Unsubscribe => methods::LEAVE,
            _ => return,
        };
        self.announce(method, session, topic);
    }

    /// Tells a topic's subscribers that `session` joined or left, if the topic announces it.
    fn announce(&self, method: &'static str, session: &SessionHandle, topic: &str) {
        if !self.inner.join_leave.iter().any(|p| p.matches(topic)) {
            return;
        }
        let member = methods::TopicMember {
            topic: topic.to_owned(),
            session: session.id().to_string(),
            user: session.user().to_owned(),
        };
        let hub = self.clone();
        let topic = topic.to_owned();
        tokio::spawn(async move {
            if let Err(e) = hub.notify(Target::Topic(topic), method, &member).await {
                tracing::debug!(error = %e, "could not announce a join or leave");
            }
        });
    }

    /// Subscribes one local session (used by `rpc.subscribe`).
    pub(crate) fn subscribe_local(
        &self,
        session: &SessionHandle,
        topic: &str,
        delivery: Delivery,
    ) -> Result<bool, SubscribeError> {
        self.inner
            .registry
            .subscribe(session, topic, self.inner.limits.max_subscriptions, delivery)
    }
}

impl HubInner {
    /// Queues a lifecycle event for the webhook, and records a subscription
    /// to a topic whose presence is kept. The personal topic is the gateway's
    /// doing, not the client's, so it is never reported.
    fn emit(&self, event: WebhookEvent, session: &SessionHandle, topic: Option<&str>) {
        if topic.and_then(|t| t.strip_prefix("user:")) == Some(session.user()) {
            return;
        }
        if let Some(webhook) = &self.webhook {
            webhook.emit(event, session, topic);
        }
        if let Some(topic) = topic
            && self.keeps_presence(topic)
        {
            let entry = self.presence_entry(session);
            let change = match event {
                WebhookEvent::Subscribe => PresenceChange::Joined(topic.to_owned(), entry),
                WebhookEvent::Unsubscribe => PresenceChange::Left(topic.to_owned(), entry),
                _ => return,
            };
            // Taken now, in order with the session's other changes; the
            // broker logs and repairs a write that fails.
            drop(self.broker.presence_changed(change));
        }
    }

    fn keeps_presence(&self, topic: &str) -> bool {
        self.presence_topics.iter().any(|p| p.matches(topic))
    }

    fn presence_entry(&self, session: &SessionHandle) -> PresenceEntry {
        PresenceEntry {
            session: session.id().to_string(),
            user: session.user().to_owned(),
            node: self.node.to_string(),
        }
    }

    /// What this node says about itself.
    pub(crate) fn figures(&self) -> NodeFigures {
        let r = &self.registry;
        NodeFigures {
            sessions: r.session_count() as u64,
            users: r.user_count() as u64,
            topics: r.topic_count() as u64,
            messages_in: self.messages_in.load(Ordering::Relaxed),
            messages_out: self.deliveries.load(Ordering::Relaxed),
        }
    }
}

/// The personal topic of a user.
pub fn personal_topic(user: &str) -> String {
    format!("user:{user}")
}

/// Runs a broker operation that sends to every node (a publication, a
/// delivery, a call), recording how long the broker took and whether it
/// failed. The clock starts before the operation is called: the local
/// broker does its work (handing the envelope to this node's inbox) in the
/// call itself, before its future is first polled.
async fn timed_publish<T, F>(operation: impl FnOnce() -> F) -> Result<T, BrokerError>
where
    F: Future<Output = Result<T, BrokerError>>,
{
    let hot = crate::metrics::hot();
    let started = Instant::now();
    let result = operation().await;
    hot.broker_publish.record(started.elapsed());
    if result.is_err() {
        hot.broker_errors.increment(1);
    }
    result
}

/// Users named twice would otherwise receive a push twice.
fn dedup(target: Target) -> Target {
    match target {
        Target::Users(mut users) => {
            users.sort();
            users.dedup();
            Target::Users(users)
        }
        other => other,
    }
}

/// A node id that differs between processes and restarts.
fn node_id() -> String {
    format!("n{:08x}", fastrand::u32(..))
}
