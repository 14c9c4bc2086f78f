//! Built-in methods (`rpc.*`) and their parameters and results.
//!
//! Names starting with `rpc.` belong to the gateway in both directions, as
//! the JSON-RPC 2.0 specification reserves them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The protocol version announced in `rpc.welcome` and the WebSocket subprotocol.
pub const PROTOCOL_VERSION: &str = "switchboard.v1";

/// The prefix reserved for the gateway's own methods.
pub const RESERVED_PREFIX: &str = "rpc.";

/// Server → client: sent once, first, on every new session.
pub const WELCOME: &str = "rpc.welcome";
/// Server → client: a publication on a subscribed topic.
pub const MESSAGE: &str = "rpc.message";
/// Both directions: the caller gave up on request `id`.
pub const CANCEL: &str = "rpc.cancel";
/// Both directions: progress of request `id`, sent by the side running it, before its answer.
pub const PROGRESS: &str = "rpc.progress";
/// Server → client: sent just before a deliberate close.
pub const DISCONNECT: &str = "rpc.disconnect";
/// Client → server: subscribe to topics.
pub const SUBSCRIBE: &str = "rpc.subscribe";
/// Request (client → server): the subscribers of a topic whose presence is kept.
pub const PRESENCE: &str = "rpc.presence";
/// Client → server: unsubscribe from topics.
pub const UNSUBSCRIBE: &str = "rpc.unsubscribe";
/// Client → server: publish on a topic.
pub const PUBLISH: &str = "rpc.publish";
/// Client → server: read a recoverable topic's history.
pub const HISTORY: &str = "rpc.history";
/// Client → server: liveness check; answers `"pong"`.
pub const PING: &str = "rpc.ping";
/// Client → server: the OpenRPC document of the methods this session may call.
pub const DISCOVER: &str = "rpc.discover";
/// Client → server: replace the session's token.
pub const REFRESH: &str = "rpc.refresh";
/// Server → client: a session joined a topic that announces joins.
pub const JOIN: &str = "rpc.join";
/// Server → client: a session left a topic that announces leaves.
pub const LEAVE: &str = "rpc.leave";
/// Server → client: the session's token expires soon; send `rpc.refresh`.
pub const EXPIRING: &str = "rpc.expiring";

/// Whether `method` is reserved for the gateway.
pub fn is_reserved(method: &str) -> bool {
    method.starts_with(RESERVED_PREFIX)
}

/// Limits of a session, announced in `rpc.welcome` so clients can stay within them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Limits {
    /// The largest text frame accepted, in bytes (larger ones close the session with 1009).
    pub max_message_size: usize,
    /// The most messages in one batch.
    pub max_batch: usize,
    /// The most requests from this client handled at once; more get `-32003`.
    pub max_in_flight: usize,
    /// How often the server pings, in milliseconds.
    pub ping_interval_ms: u64,
    /// The most topics this session may be subscribed to.
    pub max_subscriptions: usize,
}

/// Params of `rpc.welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Welcome {
    /// The opaque id of this session.
    pub session: String,
    /// The user this session belongs to.
    pub user: String,
    /// The protocol version, `switchboard.v1`.
    pub protocol: String,
    /// The limits that apply to this session.
    pub limits: Limits,
}

/// A position in a recoverable stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StreamPosition {
    /// The offset of the last publication seen.
    pub offset: u64,
    /// The stream's epoch; it changes when history is lost.
    pub epoch: String,
}

/// Params of `rpc.message`: one publication on a topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Publication {
    /// The topic it was published on.
    pub topic: String,
    /// The payload, as published.
    pub data: serde_json::Value,
    /// Its offset in the topic's stream, when the topic is recoverable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The stream's epoch, when the topic is recoverable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

/// Params of `rpc.cancel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Cancel {
    /// The id of the request the caller gave up on.
    pub id: serde_json::Value,
}

/// Params of `rpc.progress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Progress {
    /// The id of the request still running.
    pub id: serde_json::Value,
    /// How far it got: any JSON value the method documents.
    pub progress: serde_json::Value,
}

/// Params of `rpc.disconnect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Disconnect {
    /// The close code that follows.
    pub code: u16,
    /// Why.
    pub reason: String,
    /// Whether the client should reconnect.
    pub reconnect: bool,
}

/// One topic in `rpc.subscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TopicRequest {
    /// The topic name.
    pub topic: String,
    /// Resume after this position (recoverable topics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<StreamPosition>,
}

/// Params of `rpc.subscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubscribeParams {
    /// The topics to subscribe to.
    pub topics: Vec<TopicRequest>,
}

/// The outcome of subscribing to one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TopicResult {
    /// The topic name.
    pub topic: String,
    /// Whether every publication since the given position was replayed.
    /// Always `true` when no position was given.
    pub recovered: bool,
    /// The stream's current offset (recoverable topics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The stream's epoch (recoverable topics only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
    /// Why recovery was incomplete, when `recovered` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<RecoveryGap>,
}

/// Why a subscription with `since` was not recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryGap {
    /// The stream's history was lost (or the position belongs to another stream): reload state.
    EpochChanged,
    /// Publications after the position are no longer kept: reload state.
    WindowExceeded,
    /// More publications were missed than one replay may carry: reload state.
    ReplayTooLarge,
    /// History could not be read right now.
    Unavailable,
}

/// Result of `rpc.subscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SubscribeResult {
    /// One entry per requested topic, in request order.
    pub topics: Vec<TopicResult>,
}

/// Params of `rpc.unsubscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UnsubscribeParams {
    /// The topics to leave.
    pub topics: Vec<String>,
}

/// Params of `rpc.presence`: like the server API's `presence {topic}`, with
/// the same paging and the same answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicPresenceParams {
    /// The topic (one whose presence is kept, and that `authorization.presence` allows).
    pub topic: String,
    /// Ask for one page of at most this many entries: the result is then `{entries, next}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The `next` cursor of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// Params of `rpc.publish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PublishParams {
    /// The topic to publish on.
    pub topic: String,
    /// The payload.
    pub data: serde_json::Value,
}

/// Result of `rpc.publish`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PublishResult {
    /// The publication's offset, when the topic is recoverable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// The stream's epoch, when the topic is recoverable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<String>,
}

/// How many publications `rpc.history` and the server API's `history` return
/// when the request names no `limit` (fewer if the gateway's maximum is lower).
pub const DEFAULT_HISTORY_LIMIT: u64 = 100;

/// Params of `rpc.history` and of the server API's `history`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// The topic; only recoverable topics (those matching the gateway's `streams`) have history.
    pub topic: String,
    /// Only publications after this position, as in `rpc.subscribe`. Without
    /// it, the most recent ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<StreamPosition>,
    /// The most publications to return: default 100 (or the gateway's
    /// maximum, `limits.max_replay`, if lower); more than the maximum is
    /// refused with `-32602`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// One publication read from a topic's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryPublication {
    /// Its offset in the topic's stream.
    pub offset: u64,
    /// The payload, as published.
    pub data: serde_json::Value,
}

/// Result of `rpc.history` and of the server API's `history`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HistoryResult {
    /// Publications oldest first: the first `limit` after `since`, or without
    /// `since` the most recent `limit`. Empty when `recovered` is false. When
    /// the last one's offset is below `offset`, more follow: ask again with it
    /// as `since`.
    pub publications: Vec<HistoryPublication>,
    /// The stream's newest offset.
    pub offset: u64,
    /// The stream's epoch; it changes when history is lost.
    pub epoch: String,
    /// Whether the publications after `since` can still be read, as in
    /// `rpc.subscribe`. Always `true` without `since`.
    pub recovered: bool,
    /// Why not, when `recovered` is false: `epoch_changed` (history was lost,
    /// or the position is another stream's) or `window_exceeded` (what came
    /// after the position is no longer kept). Either way: reload state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<RecoveryGap>,
}

/// Params of `rpc.refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RefreshParams {
    /// The new token.
    pub token: String,
}

/// Result of `rpc.refresh`, and params of `rpc.expiring`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Expiry {
    /// When the session's token expires, in milliseconds since the Unix epoch
    /// (absent when it does not expire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_ms: Option<u64>,
}

/// Params of `rpc.join` and `rpc.leave`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TopicMember {
    /// The topic.
    pub topic: String,
    /// The session that joined or left.
    pub session: String,
    /// Its user.
    pub user: String,
}
