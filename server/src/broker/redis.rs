//! [`RedisBroker`]: nodes connected through Redis.
//!
//! * **Routing.** A message for a user goes to the channel `{prefix}:user:{id}`,
//!   for a topic to `{prefix}:topic:{name}`, for everyone to `{prefix}:all`,
//!   for a session or a node to that node's inbox `{prefix}:node:{id}`
//!   (session ids start with their node id). A node subscribes to a user or
//!   topic channel only while it has a local session of that user or a local
//!   subscriber of that topic. `PUBLISH` answers how many nodes listened,
//!   which is how many reports a multicast call waits for.
//! * **Local first.** The sending node delivers to its own sessions in
//!   process, so local delivery keeps working while Redis is away; it skips
//!   its own messages when Redis echoes them back.
//! * **Presence** lives in keys each node owns and re-asserts at every
//!   heartbeat (see `presence.rs`): complete again after Redis lost its data,
//!   no session left behind that closed while Redis was away, and a crashed
//!   node's sessions gone once its keys expire.
//! * **History.** A recoverable publication is appended to a capped stream
//!   and published by one Lua script, so offsets are contiguous and delivery
//!   order is offset order on every node. Each stream has an epoch; if its
//!   keys expire or are lost, a new epoch tells clients that history is gone.
//! * **Reconnects.** Commands go through a `ConnectionManager` (which
//!   reconnects with backoff); the subscriber connection is re-established
//!   with backoff and every channel of interest is subscribed again.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use switchboard_protocol::Target;
use tokio::sync::{mpsc, oneshot};

use switchboard_protocol::backoff::backoff;

mod presence;

use crate::broker::{
    Broker, BrokerError, Envelope, History, Inbox, Interest, NodeFigures, NodeId, PresenceChange, PresenceEntry,
    PresenceQuery, PresenceWindow, SharedFrame, StreamPolicy,
};
use crate::config::RedisConfig;
use switchboard_protocol::api::PresenceStats;

/// What travels on a channel: the sending node and the message.
#[derive(Serialize, Deserialize)]
struct Wire {
    from: String,
    env: Envelope,
}

enum SubCommand {
    Subscribe(String, oneshot::Sender<()>),
    Unsubscribe(String),
}

/// A broker for many nodes sharing one Redis.
pub struct RedisBroker {
    config: RedisConfig,
    commands: ConnectionManager,
    node: RwLock<Option<NodeId>>,
    inbox: RwLock<Option<Arc<dyn Inbox>>>,
    /// Channels this node wants (the subscriber task keeps Redis in step).
    wanted: Arc<Mutex<HashSet<String>>>,
    sub_tx: mpsc::UnboundedSender<SubCommand>,
    sub_rx: Mutex<Option<mpsc::UnboundedReceiver<SubCommand>>>,
    ready: Arc<AtomicBool>,
    presence_keys: presence::Keys,
    presence_tx: mpsc::UnboundedSender<presence::Op>,
    presence_rx: Mutex<Option<mpsc::UnboundedReceiver<presence::Op>>>,
    append: redis::Script,
    read: redis::Script,
}

/// Appends a publication to a stream and publishes it, as one step.
/// KEYS: stream, top, epoch. ARGV: channel, maxlen, ttl ms, now ms, epoch
/// candidate, data JSON, topic as a JSON string.
const APPEND: &str = r#"
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[5]
  redis.call('SET', KEYS[3], epoch)
end
local offset = redis.call('INCR', KEYS[2])
local frame = '{"jsonrpc":"2.0","method":"rpc.message","params":{"topic":' .. ARGV[7] .. ',"data":' .. ARGV[6]
  .. ',"offset":' .. offset .. ',"epoch":"' .. epoch .. '"}}'
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[2], offset .. '-1', 't', ARGV[4], 'f', frame)
local ttl = tonumber(ARGV[3]) * 2
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
local wire = '{"from":"","env":{"publication":{"topic":' .. ARGV[7] .. ',"offset":' .. offset .. ',"epoch":"'
  .. epoch .. '","frame":' .. cjson.encode(frame) .. '}}}'
redis.call('PUBLISH', ARGV[1], wire)
return {offset, epoch}
"#;

/// Reads a stream after an offset. KEYS: stream, top, epoch. ARGV: since,
/// count, epoch candidate, ttl ms. Returns {epoch, top, first, offset1,
/// frame1, offset2, frame2, …}.
const READ: &str = r#"
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[3], epoch, 'PX', tonumber(ARGV[4]) * 2)
end
local top = tonumber(redis.call('GET', KEYS[2]) or '0')
local first = top + 1
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
if oldest[1] then
  first = tonumber(string.match(oldest[1][1], '^(%d+)'))
end
local out = {epoch, tostring(top), tostring(first)}
local since = tonumber(ARGV[1])
local from = math.max(since + 1, first)
if since < top and from <= top and tonumber(ARGV[2]) > 0 then
  local entries = redis.call('XRANGE', KEYS[1], from .. '-1', '+', 'COUNT', ARGV[2])
  for _, e in ipairs(entries) do
    table.insert(out, string.match(e[1], '^(%d+)'))
    table.insert(out, e[2][4])
  end
end
return out
"#;

fn unavailable(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Unavailable(e.to_string())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn new_epoch() -> String {
    format!("{:x}", fastrand::u64(..))
}

impl RedisBroker {
    /// A broker on the Redis at `config.url`. Connections are made in the
    /// background and re-made when lost; needs a tokio runtime.
    pub fn new(config: RedisConfig) -> Result<Self, BrokerError> {
        let client = redis::Client::open(config.url.as_str()).map_err(unavailable)?;
        let timeout = Duration::from_millis(config.command_timeout_ms);
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let commands = ConnectionManager::new_lazy_with_config(client, manager_config).map_err(unavailable)?;
        let (sub_tx, sub_rx) = mpsc::unbounded_channel();
        let (presence_tx, presence_rx) = mpsc::unbounded_channel();
        Ok(Self {
            presence_keys: presence::Keys::new(&config.prefix),
            presence_tx,
            presence_rx: Mutex::new(Some(presence_rx)),
            config,
            commands,
            node: RwLock::new(None),
            inbox: RwLock::new(None),
            wanted: Arc::new(Mutex::new(HashSet::new())),
            sub_tx,
            sub_rx: Mutex::new(Some(sub_rx)),
            ready: Arc::new(AtomicBool::new(false)),
            append: redis::Script::new(APPEND),
            read: redis::Script::new(READ),
        })
    }

    fn key(&self, parts: &[&str]) -> String {
        let mut k = self.config.prefix.clone();
        for p in parts {
            k.push(':');
            k.push_str(p);
        }
        k
    }

    fn node(&self) -> String {
        self.node.read().as_deref().unwrap_or_default().to_owned()
    }

    /// The channels a target's messages travel on.
    fn channels(&self, target: &Target) -> Vec<String> {
        match target {
            Target::Session(id) => vec![self.key(&["node", id.split('.').next().unwrap_or_default()])],
            Target::User(u) => vec![self.key(&["user", u])],
            Target::Users(us) => us.iter().map(|u| self.key(&["user", u])).collect(),
            Target::Topic(t) => vec![self.key(&["topic", t])],
            Target::All => vec![self.key(&["all"])],
        }
    }

    fn deliver_locally(&self, envelope: Envelope) {
        let inbox = self.inbox.read().clone();
        if let Some(inbox) = inbox {
            inbox.deliver(envelope);
        }
    }

    async fn publish(&self, channel: &str, envelope: &Envelope) -> Result<usize, BrokerError> {
        let wire = serde_json::to_string(&WireRef {
            from: &self.node(),
            env: envelope,
        })
        .map_err(|e| BrokerError::Encoding(e.to_string()))?;
        let mut con = self.commands.clone();
        let listeners: usize = con.publish(channel, wire).await.map_err(unavailable)?;
        Ok(listeners)
    }
}

#[derive(Serialize)]
struct WireRef<'a> {
    from: &'a str,
    env: &'a Envelope,
}

/// Splits a message for several users into one per user, so that a node
/// listening on two of the users' channels does not get it twice.
fn per_channel(envelope: Envelope) -> Vec<Envelope> {
    let retarget = |e: &Envelope, t: Target| -> Envelope {
        let mut e = e.clone();
        match &mut e {
            Envelope::Deliver { target, .. }
            | Envelope::Call { target, .. }
            | Envelope::Disconnect { target, .. }
            | Envelope::Subscribe { target, .. }
            | Envelope::Unsubscribe { target, .. } => *target = t,
            _ => {}
        }
        e
    };
    let users = match &envelope {
        Envelope::Deliver {
            target: Target::Users(u),
            ..
        }
        | Envelope::Call {
            target: Target::Users(u),
            ..
        }
        | Envelope::Disconnect {
            target: Target::Users(u),
            ..
        }
        | Envelope::Subscribe {
            target: Target::Users(u),
            ..
        }
        | Envelope::Unsubscribe {
            target: Target::Users(u),
            ..
        } => u.clone(),
        _ => return vec![envelope],
    };
    users
        .into_iter()
        .map(|u| retarget(&envelope, Target::User(u)))
        .collect()
}

fn target_of(envelope: &Envelope) -> Option<&Target> {
    match envelope {
        Envelope::Deliver { target, .. }
        | Envelope::Call { target, .. }
        | Envelope::Disconnect { target, .. }
        | Envelope::Subscribe { target, .. }
        | Envelope::Unsubscribe { target, .. } => Some(target),
        _ => None,
    }
}

impl Broker for RedisBroker {
    fn attach(&self, node: NodeId, inbox: Arc<dyn Inbox>) {
        *self.node.write() = Some(node.clone());
        *self.inbox.write() = Some(inbox.clone());
        {
            let mut wanted = self.wanted.lock();
            wanted.insert(self.key(&["node", &node]));
            wanted.insert(self.key(&["all"]));
        }
        let Some(rx) = self.sub_rx.lock().take() else { return };
        let client = match redis::Client::open(self.config.url.as_str()) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "invalid Redis URL");
                return;
            }
        };
        tokio::spawn(subscriber(
            client,
            node.to_string(),
            inbox.clone(),
            self.wanted.clone(),
            rx,
            self.ready.clone(),
        ));
        if let Some(ops) = self.presence_rx.lock().take() {
            let writer = presence::Writer {
                con: self.commands.clone(),
                keys: self.presence_keys.clone(),
                node: node.to_string(),
                every: Duration::from_millis(self.config.heartbeat_ms),
                ttl_ms: self.config.node_ttl_ms,
                inbox,
            };
            tokio::spawn(writer.run(ops));
        }
    }

    fn broadcast(&self, envelope: Envelope) -> BoxFuture<'_, Result<usize, BrokerError>> {
        Box::pin(async move {
            let mut reached = 0;
            let mut failure = None;
            for envelope in per_channel(envelope) {
                let Some(target) = target_of(&envelope) else { continue };
                let channels = self.channels(target);
                // Local first: this node's sessions never wait for Redis.
                self.deliver_locally(envelope.clone());
                reached += 1;
                for channel in channels {
                    let listening_here = self.wanted.lock().contains(&channel);
                    match self.publish(&channel, &envelope).await {
                        Ok(n) => reached += n.saturating_sub(usize::from(listening_here)),
                        Err(e) => failure = Some(e),
                    }
                }
            }
            match failure {
                Some(e) => Err(e),
                None => Ok(reached),
            }
        })
    }

    fn send_to(&self, node: &str, envelope: Envelope) -> BoxFuture<'_, Result<(), BrokerError>> {
        let node = node.to_owned();
        Box::pin(async move {
            if node == self.node() {
                self.deliver_locally(envelope);
                return Ok(());
            }
            self.publish(&self.key(&["node", &node]), &envelope).await.map(|_| ())
        })
    }

    fn interest(&self, change: Interest) -> BoxFuture<'_, Result<(), BrokerError>> {
        Box::pin(async move {
            match change {
                Interest::AddUser(u) => self.listen(self.key(&["user", &u])).await,
                Interest::AddTopic(t) => self.listen(self.key(&["topic", &t])).await,
                Interest::RemoveUser(u) => self.stop_listening(self.key(&["user", &u])),
                Interest::RemoveTopic(t) => self.stop_listening(self.key(&["topic", &t])),
            }
        })
    }

    fn wants_interest(&self) -> bool {
        true
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn presence_changed(&self, change: PresenceChange) -> BoxFuture<'static, Result<(), BrokerError>> {
        let (done, answer) = oneshot::channel();
        let sent = self.presence_tx.send(presence::Op { change, done });
        Box::pin(async move {
            sent.map_err(|_| BrokerError::Unavailable("the presence writer has stopped".to_owned()))?;
            answer
                .await
                .map_err(|_| BrokerError::Unavailable("the presence writer has stopped".to_owned()))?
        })
    }

    fn presence(
        &self,
        query: PresenceQuery,
        window: PresenceWindow,
    ) -> BoxFuture<'_, Result<Vec<PresenceEntry>, BrokerError>> {
        Box::pin(async move {
            let mut con = self.commands.clone();
            presence::read(&mut con, &self.presence_keys, &query, &window).await
        })
    }

    fn presence_stats(&self, query: PresenceQuery) -> BoxFuture<'_, Result<PresenceStats, BrokerError>> {
        Box::pin(async move {
            let mut con = self.commands.clone();
            presence::stats(&mut con, &self.presence_keys, &query).await
        })
    }

    fn nodes(&self, own: NodeFigures) -> BoxFuture<'_, Result<Vec<NodeFigures>, BrokerError>> {
        Box::pin(async move {
            let mut con = self.commands.clone();
            presence::nodes(&mut con, &self.presence_keys, &self.node(), own).await
        })
    }

    fn publish_recoverable<'a>(
        &'a self,
        topic: &'a str,
        data: &'a RawValue,
        policy: StreamPolicy,
    ) -> BoxFuture<'a, Result<(u64, String), BrokerError>> {
        Box::pin(async move {
            let mut con = self.commands.clone();
            let topic_json = serde_json::to_string(topic).map_err(|e| BrokerError::Encoding(e.to_string()))?;
            let (offset, epoch): (u64, String) = self
                .append
                .key(self.key(&["stream", topic]))
                .key(self.key(&["stream-top", topic]))
                .key(self.key(&["stream-epoch", topic]))
                .arg(self.key(&["topic", topic]))
                .arg(policy.size.max(1))
                .arg(policy.ttl.as_millis() as u64)
                .arg(now_ms())
                .arg(new_epoch())
                .arg(data.get())
                .arg(topic_json)
                .invoke_async(&mut con)
                .await
                .map_err(unavailable)?;
            Ok((offset, epoch))
        })
    }

    fn history<'a>(&'a self, topic: &'a str, since: u64, limit: usize) -> BoxFuture<'a, Result<History, BrokerError>> {
        Box::pin(async move {
            let mut con = self.commands.clone();
            // A stream read before its first publication gets its epoch now, for
            // as long as a publication would keep it.
            let ttl_ms = 600_000u64;
            let reply: Vec<String> = self
                .read
                .key(self.key(&["stream", topic]))
                .key(self.key(&["stream-top", topic]))
                .key(self.key(&["stream-epoch", topic]))
                .arg(since.min(i64::MAX as u64))
                .arg(limit.max(1))
                .arg(new_epoch())
                .arg(ttl_ms)
                .invoke_async(&mut con)
                .await
                .map_err(unavailable)?;
            let mut it = reply.into_iter();
            let epoch = it.next().unwrap_or_default();
            let top = it.next().and_then(|t| t.parse().ok()).unwrap_or(0);
            let first = it.next().and_then(|t| t.parse().ok()).unwrap_or(top + 1);
            let mut entries = Vec::new();
            while let (Some(offset), Some(frame)) = (it.next(), it.next()) {
                if let Ok(offset) = offset.parse::<u64>() {
                    entries.push((offset, SharedFrame::from(frame)));
                }
            }
            if limit == 0 {
                entries.clear();
            }
            Ok(History {
                epoch,
                top,
                first,
                entries,
            })
        })
    }
}

impl RedisBroker {
    async fn listen(&self, channel: String) -> Result<(), BrokerError> {
        if !self.wanted.lock().insert(channel.clone()) {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        let _ = self.sub_tx.send(SubCommand::Subscribe(channel, tx));
        // While Redis is away the channel stays wanted and is subscribed on
        // reconnect; local delivery does not wait for it.
        match tokio::time::timeout(Duration::from_millis(self.config.command_timeout_ms), rx).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(BrokerError::Unavailable("could not subscribe in time".into())),
        }
    }

    fn stop_listening(&self, channel: String) -> Result<(), BrokerError> {
        if self.wanted.lock().remove(&channel) {
            let _ = self.sub_tx.send(SubCommand::Unsubscribe(channel));
        }
        Ok(())
    }
}

/// Owns the subscriber connection: (re)connects with backoff, subscribes to
/// every wanted channel, applies interest changes, and hands messages to the inbox.
async fn subscriber(
    client: redis::Client,
    node: String,
    inbox: Arc<dyn Inbox>,
    wanted: Arc<Mutex<HashSet<String>>>,
    mut commands: mpsc::UnboundedReceiver<SubCommand>,
    ready: Arc<AtomicBool>,
) {
    let mut attempt = 0u32;
    loop {
        let connected = client.get_async_pubsub().await;
        let pubsub = match connected {
            Ok(p) => p,
            Err(e) => {
                ready.store(false, Ordering::Release);
                attempt += 1;
                let delay = backoff(
                    attempt,
                    Duration::from_millis(100),
                    Duration::from_secs(2),
                    fastrand::f64(),
                );
                crate::metrics::hot().broker_errors.increment(1);
                tracing::warn!(error = %e, ?delay, "Redis subscriber connection failed; retrying");
                tokio::time::sleep(delay).await;
                // Acknowledge waiting subscribers: the channel stays wanted and is subscribed on reconnect.
                while let Ok(cmd) = commands.try_recv() {
                    if let SubCommand::Subscribe(_, tx) = cmd {
                        let _ = tx.send(());
                    }
                }
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();
        let channels: Vec<String> = wanted.lock().iter().cloned().collect();
        if !channels.is_empty() && sink.subscribe(&channels).await.is_err() {
            continue;
        }
        attempt = 0;
        ready.store(true, Ordering::Release);
        tracing::info!(channels = channels.len(), "subscribed to Redis");
        loop {
            tokio::select! {
                message = stream.next() => {
                    let Some(message) = message else { break };
                    let Ok(text) = std::str::from_utf8(message.get_payload_bytes()) else { continue };
                    match serde_json::from_str::<Wire>(text) {
                        Ok(wire) if wire.from == node => {}
                        Ok(wire) => inbox.deliver(wire.env),
                        Err(e) => tracing::warn!(error = %e, "undecodable broker message"),
                    }
                }
                command = commands.recv() => {
                    let Some(command) = command else { return };
                    let ok = match command {
                        SubCommand::Subscribe(channel, done) => {
                            let ok = sink.subscribe(&channel).await.is_ok();
                            let _ = done.send(());
                            ok
                        }
                        SubCommand::Unsubscribe(channel) => sink.unsubscribe(&channel).await.is_ok(),
                    };
                    if !ok {
                        break;
                    }
                }
            }
        }
        ready.store(false, Ordering::Release);
        crate::metrics::hot().broker_errors.increment(1);
        tracing::warn!("lost the Redis subscriber connection; reconnecting");
    }
}
