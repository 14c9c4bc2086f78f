//! The server API (`POST /api`): what backends send to drive the gateway.
//!
//! Every method is JSON-RPC 2.0 over HTTP with by-name params and needs an
//! API key with the method's scope (see [`Scope`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ErrorObject, Target};

/// Method names of the server API.
pub mod method {
    /// Push a notification to every session of a target.
    pub const NOTIFY: &str = "notify";
    /// Call a method on every session of a target and collect the answers.
    pub const CALL: &str = "call";
    /// Publish on a topic.
    pub const PUBLISH: &str = "publish";
    /// Who is connected.
    pub const PRESENCE: &str = "presence";
    /// Close every session of a target.
    pub const DISCONNECT: &str = "disconnect";
    /// Subscribe every session of a target to topics.
    pub const SUBSCRIBE: &str = "subscribe";
    /// Unsubscribe every session of a target from topics.
    pub const UNSUBSCRIBE: &str = "unsubscribe";
    /// Counters and recent events of this node.
    pub const STATS: &str = "stats";
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
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 6] = [
        Scope::Notify,
        Scope::Call,
        Scope::Publish,
        Scope::Presence,
        Scope::Disconnect,
        Scope::Subscribe,
    ];

    /// The scope a server API method needs.
    pub fn of(method: &str) -> Option<Scope> {
        Some(match method {
            method::NOTIFY => Scope::Notify,
            method::CALL => Scope::Call,
            method::PUBLISH => Scope::Publish,
            method::PRESENCE | method::STATS => Scope::Presence,
            method::DISCONNECT => Scope::Disconnect,
            method::SUBSCRIBE | method::UNSUBSCRIBE => Scope::Subscribe,
            _ => return None,
        })
    }
}

/// Params of `notify`.
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
}

/// One session's answer to `call`: `result` or `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CallEntry {
    /// The session.
    pub session: String,
    /// Its user.
    pub user: String,
    /// What it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// Why there is no result: its error, a timeout (-32004) or a disconnect (-32005).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorObject>,
}

/// Params of `presence`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PresenceParams {
    /// Only this user's sessions; everybody's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
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
}
