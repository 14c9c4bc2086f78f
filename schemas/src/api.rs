//! The server API (`POST /api`): what backends send to drive the gateway.
//!
//! Every method is JSON-RPC 2.0 over HTTP with by-name params and needs an
//! API key with the method's scope (see [`Scope`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ErrorObject, Target};

/// Method names of the server API.
pub mod method {
    /// Push a notification to every session of a target. Not recoverable:
    /// a client that is away when it is sent never gets it. A push a user's
    /// clients must not miss is a [`PUBLISH`] on the personal topic `user:{id}`.
    pub const NOTIFY: &str = "notify";
    /// Call a method on every session of a target and collect the answers.
    pub const CALL: &str = "call";
    /// Publish on a topic. On a recoverable topic the publication is kept,
    /// and subscribers that were away receive it when they resume; on the
    /// personal topic `user:{id}` that is the recoverable push to a user.
    pub const PUBLISH: &str = "publish";
    /// Who is connected.
    pub const PRESENCE: &str = "presence";
    /// `presence_stats`: how many sessions and users a topic or user has, or the cluster.
    pub const PRESENCE_STATS: &str = "presence_stats";
    /// Close every session of a target.
    pub const DISCONNECT: &str = "disconnect";
    /// Subscribe every session of a target to topics.
    pub const SUBSCRIBE: &str = "subscribe";
    /// Unsubscribe every session of a target from topics.
    pub const UNSUBSCRIBE: &str = "unsubscribe";
    /// Counters and recent events of this node.
    pub const STATS: &str = "stats";
    /// The publications a recoverable topic keeps.
    pub const HISTORY: &str = "history";
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `notify`.
    Notify,
    /// `call`.
    Call,
    /// `publish`.
    Publish,
    /// `presence` and `stats`.
    Presence,
    /// `disconnect`.
    Disconnect,
    /// `subscribe` and `unsubscribe`.
    Subscribe,
    /// `history`.
    History,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 7] = [
        Scope::Notify,
        Scope::Call,
        Scope::Publish,
        Scope::Presence,
        Scope::Disconnect,
        Scope::Subscribe,
        Scope::History,
    ];

    /// The scope a server API method needs.
    pub fn of(method: &str) -> Option<Scope> {
        Some(match method {
            method::NOTIFY => Scope::Notify,
            method::CALL => Scope::Call,
            method::PUBLISH => Scope::Publish,
            method::PRESENCE | method::PRESENCE_STATS | method::STATS => Scope::Presence,
            method::DISCONNECT => Scope::Disconnect,
            method::SUBSCRIBE | method::UNSUBSCRIBE => Scope::Subscribe,
            method::HISTORY => Scope::History,
            _ => return None,
        })
    }
}

/// Params of `notify`. The notification is sent to the sessions connected
/// now and kept nowhere: nothing recovers it after a reconnect (publish on
/// `user:{id}` for that).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyParams {
    /// Who receives it.
    pub target: Target,
    /// The notification's method, as the client sees it.
    pub method: String,
    /// The notification's params (an array or an object), passed on untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Value>,
}

/// Params of `call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallParams {
    /// Who is called.
    pub target: Target,
    /// The method to call on each client.
    pub method: String,
    /// Its params (an array or an object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<serde_json::Value>,
    /// How long each session has to answer, in milliseconds (default: the gateway's call timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// When the call is complete. Without one the result is the array of
    /// outcomes; with one it is [`CallOutcomes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<CallPolicy>,
    /// Answer with NDJSON lines as the outcomes arrive ([`StreamLine`]),
    /// clients' progress included, instead of one JSON-RPC answer. Only for a
    /// single request with an id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// When a multicast call is complete. Errors never count as successes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallPolicy {
    /// `"all"`: when every session reached has answered or timed out; met
    /// when every one of them answered with a result.
    #[default]
    All,
    /// `"first"`: at the first result (the other sessions are cancelled);
    /// without any, when every session has answered or timed out, not met.
    First,
    /// `{"quorum": n}`: after `n` results (the other sessions are
    /// cancelled), or, not met, as soon as `n` can no longer be reached.
    Quorum(u32),
}

impl CallPolicy {
    /// How many results meet the policy, given how many sessions were reached.
    pub fn needed(self, reached: usize) -> usize {
        match self {
            CallPolicy::All => reached,
            CallPolicy::First => 1,
            CallPolicy::Quorum(n) => n as usize,
        }
    }
}

impl Serialize for CallPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            CallPolicy::All => s.serialize_str("all"),
            CallPolicy::First => s.serialize_str("first"),
            CallPolicy::Quorum(n) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry("quorum", n)?;
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for CallPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        const EXPECTED: &str = r#""all", "first" or {"quorum": n} with n >= 1"#;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = CallPolicy;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CallPolicy, E> {
                match v {
                    "all" => Ok(CallPolicy::All),
                    "first" => Ok(CallPolicy::First),
                    other => Err(E::custom(format_args!("unknown policy `{other}`: expected {EXPECTED}"))),
                }
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<CallPolicy, A::Error> {
                use serde::de::Error;
                let mut quorum = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key != "quorum" || quorum.is_some() {
                        return Err(A::Error::custom(format_args!(
                            "unknown policy `{key}`: expected {EXPECTED}"
                        )));
                    }
                    quorum = Some(map.next_value::<i64>()?);
                }
                match quorum {
                    Some(n) if n >= 1 => u32::try_from(n)
                        .map(CallPolicy::Quorum)
                        .map_err(|_| A::Error::custom("quorum is too large")),
                    Some(_) => Err(A::Error::custom("quorum must be at least 1")),
                    None => Err(A::Error::custom(format_args!("expected {EXPECTED}"))),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl JsonSchema for CallPolicy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CallPolicy".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "When a multicast call is complete: \"all\" (every session answered or timed out), \"first\" (the first result; the rest are cancelled) or {\"quorum\": n} (n results; the rest are cancelled). Errors never count as results.",
            "oneOf": [
                {"type": "string", "enum": ["all", "first"]},
                {
                    "type": "object",
                    "properties": {"quorum": {"type": "integer", "minimum": 1}},
                    "required": ["quorum"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// One outcome of a multicast `call`: a session's `result` or `error`, or
/// (with neither `session` nor `user`, and `node` null) a node the call
/// reached that never acknowledged it (`-32007`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallEntry {
    /// The session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Its user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The node the session is connected to (null for a node that never acknowledged the call).
    pub node: Option<String>,
    /// What it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why there is no result: the client's own error, a timeout (-32004), a
    /// disconnect (-32005), the session's pending-call limit (-32010), a node
    /// that never acknowledged (-32007) or a cancel (-32011).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// The result of `call` with a `policy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallOutcomes {
    /// Every outcome known when the call completed, the cancelled ones included.
    pub outcomes: Vec<CallEntry>,
    /// Whether the policy was met.
    pub met: bool,
}

/// A client's progress report on a streamed `call`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallProgress {
    /// The session that reported it.
    pub session: String,
    /// Its user.
    pub user: String,
    /// Its node.
    pub node: String,
    /// What the client reported (any JSON value).
    pub progress: serde_json::Value,
}

/// The totals of a multicast call, the last line of a streamed `call`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CallSummary {
    /// Sessions that answered with a result.
    pub results: usize,
    /// Every other error: the clients' own, disconnects, limits, unacknowledged nodes.
    pub errors: usize,
    /// Sessions that did not answer in time (-32004).
    pub timeouts: usize,
    /// Sessions cancelled before they answered (-32011).
    pub cancelled: usize,
    /// Whether the policy was met (only when the call named one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
}

/// One line of a streamed `call` (`"stream": true`): an outcome as it
/// arrives, a client's progress, and last `{"done": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum StreamLine {
    /// The totals: always the last line.
    Done {
        /// The call's totals.
        done: CallSummary,
    },
    /// A client's progress report.
    Progress(CallProgress),
    /// One outcome.
    Outcome(CallEntry),
}

/// Params of `presence`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceParams {
    /// Only this user's sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Only this topic's subscribers (a topic whose presence is kept, see `presence_topics`).
    /// Not together with `user`; with neither, every session of the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Ask for one page of at most this many entries (at most `limits.max_presence_entries`):
    /// the result is then a [`PresencePage`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// The `next` cursor of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// One page of presence, sorted by (user, session).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PresencePage {
    /// The entries of this page.
    pub entries: Vec<PresenceEntry>,
    /// The cursor to pass as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// Params of `presence_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceStatsParams {
    /// Count this user's sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Count this topic's subscribers (a topic whose presence is kept). With neither, the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

/// Result of `presence_stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PresenceStats {
    /// Sessions.
    pub sessions: usize,
    /// Distinct users among them.
    pub users: usize,
}

/// One connected session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PresenceEntry {
    /// The session id.
    pub session: String,
    /// Its user.
    pub user: String,
    /// The node it is connected to.
    pub node: String,
}

/// Params of `disconnect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DisconnectParams {
    /// Whose sessions.
    pub target: Target,
    /// The close code (default 4502, kicked: terminal). Must be 4000–4999 or 1012.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// The close reason (at most 123 bytes are sent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Params of `subscribe` and `unsubscribe`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetTopicsParams {
    /// Whose sessions.
    pub target: Target,
    /// The topics.
    pub topics: Vec<String>,
}

/// A connect or disconnect, as `stats` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SessionEvent {
    /// `connect` or `disconnect`.
    pub kind: String,
    /// The session.
    pub session: String,
    /// Its user.
    pub user: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// Result of `stats`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {
    /// This node's id.
    pub node: String,
    /// Sessions on this node.
    pub sessions: usize,
    /// Users with a session on this node.
    pub users: usize,
    /// Topics with a subscriber on this node.
    pub topics: usize,
    /// Messages received from clients since the start.
    pub messages_in: u64,
    /// Frames written to session queues since the start.
    pub messages_out: u64,
    /// The most recent connects and disconnects, newest last.
    pub events: Vec<SessionEvent>,
    /// The whole cluster (every node whose heartbeat is current).
    pub cluster: ClusterStats,
}

/// The cluster's part of `stats`. `nodes`, `sessions` and `users` are exact,
/// read from presence; `topics`, `messages_in` and `messages_out` are sums of
/// what each node reported at its last heartbeat (this node's as it is now),
/// so a topic with subscribers on two nodes counts twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClusterStats {
    /// Live nodes.
    pub nodes: usize,
    /// Sessions on all nodes.
    pub sessions: usize,
    /// Distinct users with a session on any node.
    pub users: usize,
    /// Sum over the nodes of the topics with a local subscriber.
    pub topics: u64,
    /// Sum over the nodes of the messages received from clients.
    pub messages_in: u64,
    /// Sum over the nodes of the frames written to session queues.
    pub messages_out: u64,
}
